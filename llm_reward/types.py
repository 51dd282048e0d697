"""The contracts every part of llm_reward is written against.

The data path reads top to bottom:

    env --CaptionWrapper--> info["caption"] --Labeler--> P(first preferred)
        --reward model (CaptionRewardFn)--> raw reward --shaping--> reward seen by the agent

Borrowed from imitation: a labeler returns the probability that the *first* item is preferred, and the
trainable reward (``CaptionRewardFn``) is kept apart from the processed reward the RL agent sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

import gymnasium as gym
import numpy as np

#: OpenAI-style chat messages: ``[{"role": "system"|"user"|"assistant", "content": "..."}]``.
Messages = list[dict[str, str]]


@runtime_checkable
class Captioner(Protocol):
    """Turns one observation into text. May keep state within an episode (e.g. to describe events).

    A plain function ``fn(obs, info) -> str`` becomes one with
    :class:`~llm_reward.shaping.captions.FunctionCaptioner` (or ``EnvAdapter.from_function``).

    Example:
        >>> class Steps:
        ...     name = "steps-v1"
        ...     def reset(self):
        ...         self.n = 0
        ...     def __call__(self, env, obs, info):
        ...         self.n += 1
        ...         return f"Step {self.n}."
        >>> captioner = Steps()
        >>> captioner.reset()
        >>> isinstance(captioner, Captioner), captioner(None, 0, {}), captioner(None, 0, {})
        (True, 'Step 1.', 'Step 2.')
    """

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


def position_consistency(forward: np.ndarray, reverse: np.ndarray) -> float:
    """Fraction of pairs judged in both orders whose preferred side is the same both times (ties excluded).

    Args:
        forward: P(first preferred) per pair as asked; NaN where not asked or unknown.
        reverse: the same pairs asked swapped, mapped back to P(first preferred).

    Returns:
        The fraction in [0, 1], or NaN when no pair has a decided answer in both orders.

    Example:
        >>> position_consistency(np.array([0.9, 0.8]), np.array([0.7, 0.2]))
        0.5
    """
    both = ~np.isnan(forward) & ~np.isnan(reverse)
    decided = both & (forward != 0.5) & (reverse != 0.5)
    if not decided.any():
        return float("nan")
    return float(np.mean((forward[decided] > 0.5) == (reverse[decided] > 0.5)))


@dataclass
class LabelBatch:
    """Labels for a batch of pairs, with both orders kept apart so position bias can be measured.

    Example:
        >>> nan = float("nan")
        >>> batch = LabelBatch(np.array([0.8, 0.5], np.float32), np.array([0.9, nan]), np.array([0.7, nan]))
        >>> batch.position_consistency, batch.llm_prompts
        (1.0, 0)
    """

    label: np.ndarray  # float32 P(first preferred); NaN = unknown
    forward: np.ndarray  # P(first preferred) judged in the given order; NaN if not asked or unknown
    reverse: np.ndarray  # the same pair judged swapped, mapped back to P(first preferred)
    llm_prompts: int = 0  # prompts this batch sent to the LLM layer (cache hits included)
    retries: int = 0  # free-text verdict follow-ups (Motif style)
    # Pointwise judges: the strength behind the labels per caption (label = sigmoid(score_a - score_b)). Any two
    # scored captions can then be compared without asking again (reward_model.dense_pairs).
    caption_scores: dict[str, float] | None = None

    @property
    def position_consistency(self) -> float:
        """Same preferred side in both orders, over pairs asked both ways (NaN if none was)."""
        return position_consistency(self.forward, self.reverse)


@runtime_checkable
class Labeler(Protocol):
    """Every way of judging caption pairs: P(first preferred) per pair, 0.5 for a tie, NaN when unknown.

    ``label`` returns a :class:`LabelBatch` (both orders kept apart where a pair is asked in two); ``fingerprint``
    is what decides the labels (a label store refuses to mix labels made under different ones); ``llm`` is the
    judge (``llm.stats`` counts its calls). Calling a labeler returns ``label(pairs).label``.

    Example:
        >>> from llm_reward.feedback.labelers import LLMPreferenceLabeler
        >>> from llm_reward.feedback.prompts import PairPrompt
        >>> from llm_reward.llm import make_llm
        >>> judge = LLMPreferenceLabeler(make_llm("local:tiny"), PairPrompt("minigrid", goal=None), mode="pointwise")
        >>> isinstance(judge, Labeler), judge.label([("A wall.", "A wall.")]).label.tolist()  # a tie, not asked
        (True, [0.5])
    """

    #: The judge (an :class:`llm_reward.llm.base.LLM`): its ``stats`` count prompts, calls and cache hits.
    llm: Any

    @property
    def fingerprint(self) -> dict[str, object]:
        """What decides the labels (model, prompt version, question form, sampling)."""

    def label(self, pairs: Sequence[tuple[str, str]]) -> LabelBatch:
        """Label ``pairs`` of (first, second) captions."""

    def __call__(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """``label(pairs).label``: float32 P(first preferred) per pair."""


#: The name this protocol had before :class:`Labeler` declared ``label`` and ``fingerprint``.
PreferenceLabeler = Labeler
