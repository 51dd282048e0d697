"""Preference labelers: an LLM judge asked a feedback mode's question, and the ground-truth oracle.

:class:`LLMPreferenceLabeler` is a feedback ``mode`` (``conf/feedback/``) as one of the questions of
:mod:`llm_reward.feedback.strategies` (:func:`~llm_reward.feedback.strategies.mode_question`): ``pointwise`` asks
:class:`~llm_reward.feedback.strategies.PointwiseQuestion`, ``rlaif``
:class:`~llm_reward.feedback.strategies.PairQuestion`, ``motif``
:class:`~llm_reward.feedback.strategies.VerdictQuestion`. It labels through that question's labeler and keeps the
mode's fingerprint, so label stores written under a mode stay valid.

Every labeler answers P(first preferred) per pair: 1.0 / 0.0 for a clear verdict, 0.5 for a tie, a soft value
for RLAIF probabilities, and NaN when the judge gave no usable answer (such pairs are excluded from training).

``mode="pointwise"`` never shows the judge a pair: each distinct caption is asked once whether it shows progress,
and a pair's label is Bradley–Terry on those answers, ``sigmoid(logit P(yes | a) - logit P(yes | b))``. A small
judge shown two long captions answers by position alone (Qwen2.5-Coder-1.5B on DoorKey scenes: "2" in 100 % of
pairs, in both orders); asked about one caption at a time it ranks them (``benchmarks/annotation.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np

from llm_reward.feedback.judges import LabelBatch, position_consistency
from llm_reward.feedback.prompts import CaptionPrompt, PairPrompt
from llm_reward.feedback.strategies import MODES, JudgingSpec, mode_question
from llm_reward.llm.base import LLM
from llm_reward.types import Labeler

Mode = Literal["rlaif", "motif", "pointwise"]


@dataclass
class LLMPreferenceLabeler:
    """Asks an LLM which caption shows more progress, the way a feedback ``mode`` asks.

    Args:
        llm: the judge (:func:`~llm_reward.llm.make_llm`).
        prompt: the question's domain, goal and (``motif``) chain of thought.
        mode: ``rlaif`` (P(first preferred) from the judge's answer-token probabilities), ``motif`` (free-text
            verdicts) or ``pointwise`` (one P(yes) per caption, Bradley-Terry labels from their scores).
        both_orders: ask each pair in both orders and average (cancels the judge's position bias).
        temperature: sampling temperature of ``motif`` verdicts.
        top_p: nucleus sampling of ``motif`` verdicts.
        max_tokens: the longest ``motif`` verdict.

    Example:
        >>> from llm_reward.llm import make_llm
        >>> judge = LLMPreferenceLabeler(make_llm("local:tiny"), PairPrompt("nethack", goal=None), mode="rlaif")
        >>> judge.question  # the question the mode asks, and labels through
        PairQuestion(template='plain', chain_of_thought=False, calibration=None, both_orders=True)
        >>> judge([("You kill the newt!", "It's a wall.")])  # doctest: +SKIP
        array([0.93], dtype=float32)
    """

    llm: LLM
    prompt: PairPrompt
    mode: Mode = "rlaif"
    both_orders: bool = True
    temperature: float = 0.1
    top_p: float = 0.95
    max_tokens: int = 320
    question: JudgingSpec = field(init=False)
    judge: Labeler = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.question = mode_question(self.mode, both_orders=self.both_orders,
                                      chain_of_thought=self.prompt.chain_of_thought, temperature=self.temperature,
                                      top_p=self.top_p, max_tokens=self.max_tokens)
        self.judge = self.question.build(self.llm, domain=self.prompt.domain, goal=self.prompt.goal)

    @property
    def fingerprint(self) -> dict[str, object]:
        """What decides the labels; a label store refuses to mix labels made under different fingerprints.

        The mode's own (not the question's), so stores written under a mode stay valid."""
        if self.mode == "pointwise":
            return {"llm": self.llm.name, "mode": self.mode, "domain": self.prompt.domain, "goal": self.prompt.goal,
                    "prompt_version": CaptionPrompt(self.prompt.domain, self.prompt.goal).version}
        return {
            "llm": self.llm.name, "mode": self.mode, "both_orders": self.both_orders, "domain": self.prompt.domain,
            "goal": self.prompt.goal, "chain_of_thought": self.prompt.chain_of_thought,
            "prompt_version": self.prompt.version, "temperature": self.temperature, "top_p": self.top_p,
        }

    def __call__(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        return self.label(pairs).label

    def label(self, pairs: Sequence[tuple[str, str]]) -> LabelBatch:
        """The mode's question asked about ``pairs`` (identical captions: a tie, never asked)."""
        return self.judge.label(pairs)


def oracle_labels(progress_first: Sequence[float], progress_second: Sequence[float]) -> np.ndarray:
    """Ground-truth labels from the env's progress oracle: 1 if the first is further along, 0.5 if equal.

    Args:
        progress_first: the oracle's progress of each pair's first observation.
        progress_second: the same for the second observation.

    Returns:
        float32 P(first preferred) per pair: 1, 0 or 0.5.

    Raises:
        ValueError: the two differ in shape, or a progress is NaN (rollouts collected without an oracle).

    Example:
        >>> oracle_labels([2.0, 1.0, 1.0], [1.0, 3.0, 1.0])
        array([1. , 0. , 0.5], dtype=float32)
    """
    a = np.asarray(progress_first, dtype=np.float64)
    b = np.asarray(progress_second, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"progress arrays differ in shape: {a.shape} vs {b.shape}")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("progress contains NaN: these rollouts were collected without a progress oracle")
    return np.where(a > b, 1.0, np.where(a < b, 0.0, 0.5)).astype(np.float32)


def agreement(labels: np.ndarray, reference: np.ndarray) -> float:
    """Agreement of labels with a reference on pairs where both are decided (neither tie nor unknown)."""
    mask = ~np.isnan(labels) & ~np.isnan(reference) & (labels != 0.5) & (reference != 0.5)
    if not mask.any():
        return float("nan")
    return float(np.mean((labels[mask] > 0.5) == (reference[mask] > 0.5)))


__all__ = ["LLMPreferenceLabeler", "LabelBatch", "oracle_labels", "position_consistency", "agreement", "MODES"]
