"""Reward shaping: one home for the math both reward wrappers apply. Two forms of the intrinsic part:

* ``form="bonus"`` — Motif's (Klissarov et al., 2023)::

    r = alpha_ext * r_env + alpha_int * 1[r_hat >= eps] * r_hat / N(caption)^beta

* ``form="potential"`` — potential-based shaping (Ng, Harada & Russell 1999) with ``Phi = 1[r_hat >= eps] * r_hat``::

    r = alpha_ext * r_env + alpha_int * (gamma * Phi(caption') - Phi(caption))

  It sums to ``Phi(last) - Phi(first)`` over an episode (for gamma near 1), so it cannot pay an agent to linger: a
  per-step bonus on captions that rarely repeat (MiniGrid scene descriptions, where N stays 1) outweighs a sparse
  task reward and teaches the agent to avoid finishing. Set ``gamma`` to the agent's discount. No count decay.
  By default (``terminal_potential="keep"``) the caption an episode terminates on keeps its potential, so ending
  in a high-potential state pays ``alpha_int * gamma * Phi(last)``: where termination is the goal (MiniGrid) that
  is a small success bonus. Where an episode can also end badly (lava, a NetHack death) that end would be paid
  for too; ``terminal_potential="zero"`` treats termination as Ng et al.'s absorbing state with ``Phi = 0``, the
  policy-invariant choice. Truncation (a time limit) is not termination: the last caption keeps its potential.

``r_hat`` is the reward model's (already normalized) output for the caption of the observation a step reached,
``eps`` its ``threshold(threshold_quantile)`` (``-inf`` when the model has no threshold or the quantile is
``None``), and ``N`` counts how often the caption was seen, the current sighting included, within the episode
or over all of training. With a constant reward model of 1 the intrinsic part is the count bonus 1/N^beta.

Counting convention (the same in the single-env and the VecEnv wrapper): the caption of an episode's first
observation (from ``reset``) is *counted* but never *rewarded* — no action led to it. Every step's caption is
counted, then rewarded.

Nothing here imports Gymnasium or SB3, and every object is picklable when the reward model is.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, fields
from itertools import islice
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from llm_reward.types import CaptionRewardFn

COUNT_SCOPES = ("episode", "global")
FORMS = ("bonus", "potential")
TERMINAL_POTENTIALS = ("keep", "zero")


@dataclass(frozen=True)
class ShapingConfig:
    """The shaping knobs of ``conf/reward/*.yaml`` (``reward.shaping``), checked when built.

    Example:
        >>> ShapingConfig(form="potential", alpha_int=0.1).beta  # no count decay for a potential
        0.0
        >>> ShapingConfig(threshold_quantile="0.5")
        Traceback (most recent call last):
        ...
        TypeError: threshold_quantile must be a number, got '0.5' (str)
    """

    alpha_ext: float = 1.0  #: weight of the environment reward
    alpha_int: float = 0.1  #: weight of the intrinsic (reward model) part
    beta: float | None = None  #: count-decay exponent (bonus form; None = 3): the bonus is divided by N^beta
    threshold_quantile: float | None = 0.5  #: zero r_hat below the model's quantile threshold; None = no threshold
    count_scope: Literal["episode", "global"] = "episode"  #: reset counts at episode start, or never
    form: Literal["bonus", "potential"] = "bonus"  #: Motif's count-decayed bonus, or potential-based shaping
    gamma: float = 0.99  #: the agent's discount, used by the potential form
    terminal_potential: Literal["keep", "zero"] = "keep"  #: potential form: Phi of a terminal caption, or 0

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise ValueError(f"form must be one of {list(FORMS)}, got {self.form!r}")
        if self.beta is None:
            object.__setattr__(self, "beta", 3.0 if self.form == "bonus" else 0.0)
        for name in ("alpha_ext", "alpha_int", "beta"):
            object.__setattr__(self, name, _number(name, getattr(self, name)))
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        object.__setattr__(self, "gamma", _number("gamma", self.gamma))
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma!r}")
        if self.form == "potential" and self.beta != 0:
            raise ValueError(f"beta (count decay) applies to form='bonus' only; a potential must depend on the "
                             f"caption alone, so use beta=0 (or leave it unset) with form='potential', got "
                             f"beta={self.beta!r}")
        if self.threshold_quantile is not None:
            q = _number("threshold_quantile", self.threshold_quantile)
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"threshold_quantile must be in [0, 1] or None, got {self.threshold_quantile!r}")
            object.__setattr__(self, "threshold_quantile", q)
        if self.terminal_potential not in TERMINAL_POTENTIALS:
            raise ValueError(f"terminal_potential must be one of {list(TERMINAL_POTENTIALS)}, got "
                             f"{self.terminal_potential!r}")
        if self.count_scope not in COUNT_SCOPES:
            raise ValueError(f"count_scope must be one of {list(COUNT_SCOPES)}, got {self.count_scope!r}")

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> "ShapingConfig":
        """Like ``ShapingConfig(**kwargs)`` but an unknown key is named along with the allowed ones."""
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise TypeError(f"unknown shaping option(s) {unknown}; allowed: {allowed}")
        return cls(**dict(kwargs))


def _number(name: str, value: Any) -> float:
    # Rejects strings and bools up front (Motif compared a threshold as a string).
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def shaped_rewards(r_env: Any, r_hat: Any, counts: Any, config: ShapingConfig,
                   threshold: float = -math.inf) -> tuple[np.ndarray, np.ndarray]:
    """The shaping formula on arrays of shape [B]: returns ``(r_intrinsic, r_total)`` as float64.

    ``r_intrinsic = 1[r_hat >= threshold] * r_hat / counts**beta`` is the bonus *before* ``alpha_int``;
    ``r_total = alpha_ext * r_env + alpha_int * r_intrinsic`` is what the agent is trained on.

    Example:
        >>> r_int, r_total = shaped_rewards([1.0, 0.0], [2.0, 2.0], [1, 2], ShapingConfig(beta=1.0, alpha_int=0.5))
        >>> r_int.tolist(), r_total.tolist()
        ([2.0, 1.0], [2.0, 0.5])
    """
    r_env, r_hat, counts = (np.asarray(x, dtype=np.float64) for x in (r_env, r_hat, counts))
    if not r_env.shape == r_hat.shape == counts.shape:
        raise ValueError(f"r_env, r_hat and counts must have one shape, got {r_env.shape}, {r_hat.shape}, "
                         f"{counts.shape}")
    if np.any(counts < 1):
        raise ValueError(f"caption counts include the current sighting and must be >= 1, got {counts.min()}")
    r_int = np.where(r_hat >= threshold, r_hat, 0.0) / counts ** config.beta
    return r_int, config.alpha_ext * r_env + config.alpha_int * r_int


def potential_rewards(r_env: Any, r_hat_next: Any, r_hat_prev: Any, config: ShapingConfig,
                      threshold: float = -math.inf, terminated: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The potential form on arrays of shape [B]: ``r_intrinsic = gamma * Phi(next) - Phi(prev)`` with
    ``Phi = 1[r_hat >= threshold] * r_hat``, and ``r_total = alpha_ext * r_env + alpha_int * r_intrinsic``.
    With ``config.terminal_potential == "zero"``, ``Phi(next) = 0`` where ``terminated`` (bools, shape [B])."""
    r_env, r_hat_next, r_hat_prev = (np.asarray(x, dtype=np.float64) for x in (r_env, r_hat_next, r_hat_prev))
    if not r_env.shape == r_hat_next.shape == r_hat_prev.shape:
        raise ValueError(f"r_env, r_hat_next and r_hat_prev must have one shape, got {r_env.shape}, "
                         f"{r_hat_next.shape}, {r_hat_prev.shape}")
    phi_next, phi_prev = (np.where(r >= threshold, r, 0.0) for r in (r_hat_next, r_hat_prev))
    if config.terminal_potential == "zero":
        if terminated is None:
            raise ValueError("terminal_potential='zero' needs the step's terminated flags")
        phi_next = np.where(np.asarray(terminated, dtype=bool).reshape(phi_next.shape), 0.0, phi_next)
    r_int = config.gamma * phi_next - phi_prev
    return r_int, config.alpha_ext * r_env + config.alpha_int * r_int


def reward_threshold(reward_model: Any, quantile: float | None) -> float:
    """``eps``: the model's ``threshold(quantile)`` when it has one and a quantile is set, else ``-inf``."""
    threshold = getattr(reward_model, "threshold", None)
    if quantile is None or not callable(threshold):
        return -math.inf
    return float(threshold(quantile))


def check_captioner(reward_model: Any, env_captioner: str | None) -> None:
    """A reward model trained on one captioner's text must not score another's (the formats differ silently)."""
    expected = getattr(reward_model, "captioner", None)
    if isinstance(expected, str) and env_captioner is not None and expected != env_captioner:
        raise ValueError(f"the reward model was trained on captions of captioner {expected!r}, but the env is "
                         f"captioned by {env_captioner!r}; use the captioner the reward model was fitted on")


class CaptionCounter:
    """N(caption): per-env counters reset at episode start (``"episode"``), or one shared counter (``"global"``)."""

    def __init__(self, n_envs: int = 1, scope: str = "episode"):
        if scope not in COUNT_SCOPES:
            raise ValueError(f"count scope must be one of {list(COUNT_SCOPES)}, got {scope!r}")
        self.scope = scope
        self._counters = [Counter() for _ in range(n_envs if scope == "episode" else 1)]

    def _counter(self, index: int) -> Counter:
        return self._counters[index if self.scope == "episode" else 0]

    def add(self, index: int, caption: str) -> int:
        """Count one sighting of ``caption`` in env ``index``; returns N including this sighting."""
        counter = self._counter(index)
        counter[caption] += 1
        return counter[caption]

    def count(self, index: int, caption: str) -> int:
        return self._counter(index)[caption]

    def reset_episode(self, index: int) -> None:
        """A new episode starts in env ``index``: forget its episodic counts (global counts persist)."""
        if self.scope == "episode":
            self._counters[index].clear()


class CachedReward:
    """Calls the reward model once per *unique* caption, batched: captions repeat, inference must not dominate.

    The cache holds at most ``max_size`` captions (oldest evicted first). Call :meth:`clear` when the reward
    model's weights change; a reward model whose answers change by themselves sets ``cacheable = False``. It is
    the one caption -> reward cache: the wrappers put it in front of any reward model (and online feedback in front
    of each refitted model).

    Example:
        >>> cached = CachedReward(lambda captions: np.arange(len(captions), dtype=np.float32))
        >>> cached(["a", "b", "a"]).tolist(), cached(["b"]).tolist(), cached.stats()
        ([0.0, 1.0, 0.0], [1.0], {'model_calls': 1, 'captions_scored': 2, 'cache_hits': 1})
    """

    def __init__(self, reward_model: CaptionRewardFn, max_size: int = 1_000_000):
        if not callable(reward_model):
            raise TypeError(f"reward_model must be callable on a list of captions, got {type(reward_model).__name__}")
        self.reward_model = reward_model
        self.max_size = int(max_size)
        self.cache: dict[str, float] = {}
        self.model_calls = 0  # batched calls into the reward model
        self.captions_scored = 0  # captions those calls scored
        self.cache_hits = 0  # captions answered from the cache

    def __call__(self, captions: Sequence[str]) -> np.ndarray:
        if not getattr(self.reward_model, "cacheable", True):  # e.g. online feedback: answers improve over time
            values = np.asarray(self.reward_model(list(captions)), dtype=np.float64)
            self.model_calls += 1
            self.captions_scored += len(captions)
            return values
        missing: list[str] = []
        for caption in captions:  # one pass on the hot path: the hit count and the misses together
            if caption in self.cache:
                self.cache_hits += 1
            else:
                missing.append(caption)
        missing = list(dict.fromkeys(missing))
        fresh: dict[str, float] = {}
        if missing:
            values = np.asarray(self.reward_model(missing), dtype=np.float64)
            self.model_calls += 1
            self.captions_scored += len(missing)
            if values.shape != (len(missing),):
                raise ValueError(f"reward model returned shape {values.shape} for {len(missing)} captions; "
                                 f"expected ({len(missing)},)")
            if not np.all(np.isfinite(values)):
                bad = missing[int(np.flatnonzero(~np.isfinite(values))[0])]
                raise ValueError(f"reward model returned a non-finite reward for caption {bad!r}")
            fresh = dict(zip(missing, values.tolist()))
            overflow = len(self.cache) + len(fresh) - self.max_size
            for key in list(islice(self.cache, max(overflow, 0))):
                del self.cache[key]
            self.cache.update(islice(fresh.items(), self.max_size))
        return np.array([fresh[c] if c in fresh else self.cache[c] for c in captions], dtype=np.float64)

    def clear(self) -> None:
        self.cache.clear()

    def stats(self) -> dict[str, int]:
        return {"model_calls": self.model_calls, "captions_scored": self.captions_scored,
                "cache_hits": self.cache_hits}


class Shaper:
    """Per-step bookkeeping shared by both wrappers: cached r_hat, caption counts, the formula, episode sums.

    Example:
        >>> shaper = Shaper(lambda captions: np.ones(len(captions)), ShapingConfig(alpha_int=1.0, beta=1.0))
        >>> shaper.begin_episode(0, "start")
        >>> [float(shaper.step([0.0], ["door"])[0][0]) for _ in range(2)]  # 1/N: the second sighting pays half
        [1.0, 0.5]
    """

    def __init__(self, reward_model: CaptionRewardFn, config: ShapingConfig, n_envs: int = 1):
        self.config = config
        self.reward = CachedReward(reward_model)
        self.threshold = reward_threshold(reward_model, config.threshold_quantile)
        self.counter = CaptionCounter(n_envs, config.count_scope)
        self._sums = np.zeros((n_envs, 3))  # extrinsic, intrinsic, shaped
        self._previous = [""] * n_envs  # each env's last caption: the potential form's Phi(prev)

    def begin_episode(self, index: int, caption: str) -> None:
        """Env ``index`` was reset to an observation captioned ``caption``: counted, not rewarded."""
        self.counter.reset_episode(index)
        self.counter.add(index, caption)
        self._sums[index] = 0.0
        self._previous[index] = caption

    def step(self, r_env: Any, captions: Sequence[str],
             terminated: Any = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Shaped rewards for one step of every env and the per-env info parts to add (``terminated``: bools,
        true where the step ended the episode other than by a time limit)."""
        n = len(captions)
        counts = np.array([self.counter.add(i, c) for i, c in enumerate(captions)], dtype=np.int64)
        r_env = np.asarray(r_env, dtype=np.float64).reshape(n)
        if self.config.form == "potential":
            # One batched call: previous captions are cache hits except just after a reset.
            r_hat = self.reward([*captions, *self._previous])
            r_int, r_total = potential_rewards(r_env, r_hat[:n], r_hat[n:], self.config, self.threshold, terminated)
            self._previous = list(captions)
        else:
            r_int, r_total = shaped_rewards(r_env, self.reward(captions), counts, self.config, self.threshold)
        for column, part in enumerate((r_env, r_int, r_total)):
            self._sums[:, column] += part
        parts = [{"r_extrinsic": float(e), "r_intrinsic": float(i), "caption_count": int(n)}
                 for e, i, n in zip(r_env, r_int, counts)]
        return r_total, parts

    def end_episode(self, index: int) -> dict[str, float]:
        """The episode's sums (``info["episode_shaped"]``): true return, intrinsic part (before alpha), shaped."""
        ext, intr, shaped = self._sums[index].tolist()
        return {"r_extrinsic": ext, "r_intrinsic": intr, "r_shaped": shaped}
