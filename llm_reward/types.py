"""The contracts every part of llm_reward is written against.

The data path reads top to bottom:

    env --CaptionWrapper--> info["caption"] --PreferenceLabeler--> P(first preferred)
        --reward model (CaptionRewardFn)--> raw reward --shaping--> reward seen by the agent

Borrowed from imitation: a labeler returns the probability that the *first* item is preferred, and the
trainable reward (``CaptionRewardFn``) is kept apart from the processed reward the RL agent sees.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import gymnasium as gym
import numpy as np

#: OpenAI-style chat messages: ``[{"role": "system"|"user"|"assistant", "content": "..."}]``.
Messages = list[dict[str, str]]


@runtime_checkable
class Captioner(Protocol):
    """Turns one observation into text. May keep state within an episode (e.g. to describe events)."""

    #: Identifies the caption format; a reward model trained on one captioner refuses another's captions.
    name: str

    def reset(self) -> None:
        """Forget per-episode state; called on every ``env.reset``."""

    def __call__(self, env: gym.Env, obs: Any, info: dict[str, Any]) -> str:
        """Caption ``obs`` (the observation *after* the step). ``env`` is the env being wrapped."""


@runtime_checkable
class ProgressFn(Protocol):
    """Ground-truth progress of an observation (higher is better): the free oracle behind oracle labels."""

    def __call__(self, env: gym.Env, obs: Any, info: dict[str, Any]) -> float: ...


@runtime_checkable
class CaptionRewardFn(Protocol):
    """A trainable reward on captions: one float per caption, returned as float32 array of shape [B]."""

    def __call__(self, captions: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class PreferenceLabeler(Protocol):
    """Labels caption pairs: float32 P(first preferred) per pair, 0.5 for a tie, NaN when unknown."""

    def __call__(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray: ...
