"""Pre-screening reward code on stored rollouts, before any RL is spent on it.

A candidate that passed the smoke test is run (in its sandboxed reward server, never here) on transitions
collected once per search and stored in the run directory. Its score is the rank agreement (Spearman) of its
per-step reward with the env adapter's progress oracle (``info["progress"]`` after the step, which the reward code
never sees): a reward that rises where the oracle says the agent is closer to success ranks high. The search can
train only the best-scoring candidates (``search.prescreen_top``) and reports how well this score predicted the
training fitness of those it did train (``prescreen_spearman``).

    >>> rollouts = collect_rollouts("MountainCarContinuous-v0", n_steps=500, seed=0)  # doctest: +SKIP
    >>> prescreen_score("import numpy as np\\ndef compute_reward(obs, action, next_obs, info):\\n"
    ...                 "    return float(next_obs[0]), {}", rollouts)  # doctest: +SKIP
    0.99...
    >>> round(spearman([1, 2, 3, 4], [10, 20, 40, 30]), 2)
    0.8
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from llm_reward.eureka.context import ALWAYS_HIDDEN

BATCH = 256


class PrescreenError(ValueError):
    """The env cannot be pre-screened on (no progress oracle); names ``search.prescreen_steps``."""


@dataclass
class Rollouts:
    """Stored transitions: per-step ``obs``, ``actions``, ``next_obs``, ``infos`` and the oracle's ``progress``."""

    env_id: str
    obs: list[Any]
    actions: list[Any]
    next_obs: list[Any]
    infos: list[dict[str, Any]]
    progress: np.ndarray

    def __len__(self) -> int:
        return len(self.actions)


def collect_rollouts(env_id: str, *, n_steps: int, seed: int = 0, success: str | None = None,
                     max_episode_steps: int | None = None) -> Rollouts:
    """``n_steps`` random-action transitions of ``env_id`` with the adapter's progress oracle after each step.

    Raises :class:`PrescreenError` (naming ``search.prescreen_steps``) when the env has no progress oracle.
    """
    from llm_reward.envs import make_env

    env = make_env(env_id, seed=seed, success=success, max_episode_steps=max_episode_steps)
    env.action_space.seed(seed)
    obs_list, actions, next_list, infos, progress = [], [], [], [], []
    try:
        obs, _ = env.reset(seed=seed)
        for _ in range(n_steps):
            action = env.action_space.sample()
            next_obs, _, terminated, truncated, info = env.step(action)
            if "progress" not in info:
                raise PrescreenError(f"env {env_id!r} has no progress oracle (info['progress']) to pre-screen reward "
                                 f"code against; set search.prescreen_steps=0")
            obs_list.append(obs)
            actions.append(np.asarray(action))
            next_list.append(next_obs)
            infos.append(dict(info))
            progress.append(float(info["progress"]))
            obs = env.reset()[0] if terminated or truncated else next_obs
    finally:
        env.close()
    return Rollouts(env_id, obs_list, actions, next_list, infos, np.asarray(progress, dtype=np.float64))


def load_or_collect(path: Path, env_id: str, **kwargs: Any) -> Rollouts:
    """The rollouts stored at ``path`` (written by this library, so a pickle), collected and stored first if new."""
    if path.is_file():
        with path.open("rb") as f:
            rollouts = pickle.load(f)  # noqa: S301 - written by collect_rollouts in this run directory
        if rollouts.env_id == env_id and len(rollouts) == kwargs.get("n_steps", len(rollouts)):
            return rollouts
    rollouts = collect_rollouts(env_id, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        pickle.dump(rollouts, f)
    tmp.replace(path)
    return rollouts


def _stack(items: Sequence[Any]) -> Any:
    if isinstance(items[0], dict):
        return {key: np.stack([np.asarray(item[key]) for item in items]) for key in items[0]}
    return np.stack([np.asarray(item) for item in items])


def candidate_rewards(code: str, rollouts: Rollouts, *,
                      hidden_info_keys: Sequence[str] = ALWAYS_HIDDEN) -> np.ndarray:
    """The code's total reward on every stored transition, computed by a sandboxed reward server.

    Raises :class:`~llm_reward.eureka.server.CodeRewardError` if the code fails on a transition.
    """
    from llm_reward.eureka.server import RewardServer

    server = RewardServer(code, hidden_info_keys=hidden_info_keys)
    try:
        totals = []
        for start in range(0, len(rollouts), BATCH):
            end = min(start + BATCH, len(rollouts))
            total, _ = server.rewards(_stack(rollouts.obs[start:end]), _stack(rollouts.actions[start:end]),
                                      _stack(rollouts.next_obs[start:end]), rollouts.infos[start:end])
            totals.append(np.asarray(total, dtype=np.float64))
    finally:
        server.close()
    return np.concatenate(totals)


def prescreen_score(code: str, rollouts: Rollouts, *,
                    hidden_info_keys: Sequence[str] = ALWAYS_HIDDEN) -> float | None:
    """Spearman rank correlation of the code's per-step reward with the progress oracle (None: either constant)."""
    return spearman(candidate_rewards(code, rollouts, hidden_info_keys=hidden_info_keys), rollouts.progress)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values), dtype=np.float64)
    sorted_values = values[order]
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_values[end] != sorted_values[start]:
            ranks[order[start:end]] = (start + end - 1) / 2.0
            start = end
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation of two equal-length sequences; None when one is constant or n < 2."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"spearman needs equal lengths, got {len(x)} and {len(y)}")
    if len(x) < 2:
        return None
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float(np.sum(rx * rx) * np.sum(ry * ry)))
    return None if denom == 0.0 else float(np.sum(rx * ry) / denom)
