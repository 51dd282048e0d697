"""NetHack (NLE): the message line as caption (Motif's choice), an optional status summary, and a score oracle.

The observation is restricted through NLE's own ``observation_keys`` to ``glyphs`` (21x79), ``blstats`` (27,)
and ``message`` (256 bytes): all the captioner needs, and what the agents' feature extractor reads.
"""

from __future__ import annotations

import functools
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from llm_reward.envs.registry import EnvAdapter

OBSERVATION_KEYS = ("glyphs", "blstats", "message")
NO_MESSAGE = "(no message)"
#: Progress = score + DEPTH_WEIGHT * dungeon depth: going down outranks anything collected on one level.
DEPTH_WEIGHT = 100.0
HUNGER_NAMES = ("Satiated", "Not hungry", "Hungry", "Weak", "Fainting", "Fainted", "Starved")


def register_gym_envs() -> None:
    import nle  # noqa: F401  (importing registers the NetHack* ids)


def owns(unwrapped: gym.Env) -> bool:
    from nle.env.base import NLE

    return isinstance(unwrapped, NLE)


def adapter(env_id: str, *, status: bool = False) -> EnvAdapter:
    """The NetHack adapter; ``status=True`` appends a status summary (depth, gold, HP, XL, hunger) to captions.

    To use status captions for an id: ``register_adapter(env_id, functools.partial(nethack.adapter, status=True))``.
    """
    register_gym_envs()
    if env_id not in gym.registry:
        raise ValueError(f"unknown NetHack env id {env_id!r}; registered ids look like 'NetHackScore-v0', "
                         f"'NetHackStaircase-v0' or 'NetHackOracle-v0'")
    captioner = functools.partial(NetHackCaptioner, status=status)
    return EnvAdapter(family="nethack", captioner_factory=captioner, captioner_name=captioner().name, goal=None,
                      progress=progress, success=success, inner_wrapper=seeded_with_stats, eval_deterministic=False,
                      make_kwargs={"observation_keys": OBSERVATION_KEYS, "savedir": None})


class NetHackSeeding(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Makes ``reset(seed=s)`` reproducible: NLE 1.3 only seeds its numpy RNG, never the game itself.

    On a seeded reset the game's core/disp RNGs are drawn from ``s``; later unseeded resets draw fresh game seeds
    from the same stream, so a seeded env replays the same sequence of games. Never-seeded envs stay random.
    ``reset(options={})`` is passed on as ``None`` (NLE 1.3 raises KeyError on an empty options dict).
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self._game_seeds: np.random.Generator | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self._game_seeds = np.random.default_rng(seed)
        if self._game_seeds is not None:
            core, disp = (int(s) for s in self._game_seeds.integers(0, 2**63 - 1, size=2))
            self.env.unwrapped.seed(core, disp, reseed=False)
        return self.env.reset(seed=seed, options=options or None)


class NetHackStats(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Copies the in-game ``score``, ``gold`` and dungeon ``depth`` from ``blstats`` into every step's ``info``.

    Evaluation reads them at an episode's last step (``env.eval_info_keys``: how much gold an agent steered towards
    gold collected), and success criteria such as ``"gold >= 20"`` can name them. NLE's observation after the game
    ends (death) is blank, so a step without a live status line reports the last one seen.
    """

    def __init__(self, env: gym.Env):
        from nle import nethack

        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self._fields = {"score": nethack.NLE_BL_SCORE, "gold": nethack.NLE_BL_GOLD, "depth": nethack.NLE_BL_DEPTH}
        self._last: dict[str, float] = {}

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._last = self._stats(obs["blstats"]) or {"score": 0.0, "gold": 0.0, "depth": 1.0}
        return obs, {**info, **self._last}

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._last = self._stats(obs["blstats"]) or self._last
        return obs, reward, terminated, truncated, {**info, **self._last}

    def _stats(self, blstats: np.ndarray) -> dict[str, float] | None:
        if blstats[self._fields["depth"]] < 1:  # the blank observation of a finished game
            return None
        return {name: float(blstats[index]) for name, index in self._fields.items()}


def seeded_with_stats(env: gym.Env) -> gym.Env:
    """The NetHack inner wrapper: reproducible game seeding, then the status fields in ``info``."""
    return NetHackStats(NetHackSeeding(env))


def decode_message(message: np.ndarray) -> str:
    """The message line as text: bytes up to the first NUL, whitespace collapsed, ``(no message)`` if empty."""
    raw = np.asarray(message, dtype=np.uint8).tobytes().split(b"\0", 1)[0]
    return " ".join(raw.decode("latin-1").split()) or NO_MESSAGE


def status_summary(blstats: np.ndarray) -> str:
    from nle import nethack

    hunger = int(blstats[nethack.NLE_BL_HUNGER])
    return (f"Dlvl {int(blstats[nethack.NLE_BL_DEPTH])}, gold {int(blstats[nethack.NLE_BL_GOLD])}, "
            f"HP {int(blstats[nethack.NLE_BL_HP])}/{int(blstats[nethack.NLE_BL_HPMAX])}, "
            f"XL {int(blstats[nethack.NLE_BL_XP])}, "
            f"{HUNGER_NAMES[hunger] if 0 <= hunger < len(HUNGER_NAMES) else f'hunger {hunger}'}")


class NetHackCaptioner:
    """Caption = the message line, optionally followed by ``(Dlvl 1, gold 0, HP 14/14, XL 1, Not hungry)``."""

    def __init__(self, status: bool = False):
        self.status = bool(status)
        self.name = "nethack-message+status-v1" if self.status else "nethack-message-v1"

    def reset(self) -> None:
        pass

    def __call__(self, env: gym.Env, obs: Any, info: dict[str, Any]) -> str:
        text = decode_message(obs["message"])
        return f"{text} ({status_summary(obs['blstats'])})" if self.status else text


def progress(env: gym.Env, obs: Any, info: dict[str, Any]) -> float:
    """In-game score plus ``DEPTH_WEIGHT`` per dungeon level."""
    from nle import nethack

    blstats = obs["blstats"]
    return float(blstats[nethack.NLE_BL_SCORE]) + DEPTH_WEIGHT * float(blstats[nethack.NLE_BL_DEPTH])


def success(env: gym.Env, reward: SupportsFloat, terminated: bool, truncated: bool, info: dict[str, Any]) -> bool:
    """True when the NLE task ended successfully (e.g. Staircase reached Dlvl 2); never for the Score task."""
    status_enum = getattr(env.unwrapped, "StepStatus", None)
    successful = getattr(status_enum, "TASK_SUCCESSFUL", None)
    return bool(terminated and successful is not None and info.get("end_status") == successful)
