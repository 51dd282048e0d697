"""Preference labelers: LLM judges (Motif, RLAIF and pointwise styles) and the ground-truth oracle.

The LLM labeler is the shared judge code of :mod:`llm_reward.feedback.judges` with caption prompts: ``rlaif``
is its :class:`PairwiseJudge`, ``pointwise`` its :class:`PointwiseScorer`, ``motif`` its both-order averaging over
free-text verdicts.

Every labeler answers P(first preferred) per pair: 1.0 / 0.0 for a clear verdict, 0.5 for a tie, a soft value
for RLAIF probabilities, and NaN when the judge gave no usable answer (such pairs are excluded from training).

``mode="pointwise"`` never shows the judge a pair: each distinct caption is asked once whether it shows progress,
and a pair's label is Bradley–Terry on those answers, ``sigmoid(logit P(yes | a) - logit P(yes | b))``. A small
judge shown two long captions answers by position alone (Qwen2.5-Coder-1.5B on DoorKey scenes: "2" in 100 % of
pairs, in both orders); asked about one caption at a time it ranks them (``benchmarks/annotation.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from llm_reward.feedback import calibration
from llm_reward.feedback.judges import (LabelBatch, PairwiseJudge, PointwiseScorer, both_order_labels,
                                        bradley_terry_labels, position_consistency)
from llm_reward.feedback.prompts import VERDICT_ONLY_REQUEST, CaptionPrompt, PairPrompt, parse_verdict
from llm_reward.llm.base import LLM

Mode = Literal["rlaif", "motif", "pointwise"]
MODES = ("rlaif", "motif", "pointwise")


@dataclass
class LLMPreferenceLabeler:
    """Asks an LLM which caption shows more progress.

    Args:
        llm: the judge (:func:`~llm_reward.llm.make_llm`).
        prompt: the question's domain, goal and wording.
        mode: ``rlaif`` (P(first preferred) from the judge's answer-token probabilities), ``motif`` (free-text
            verdicts) or ``pointwise`` (one P(yes) per caption, Bradley-Terry labels from their scores).
        both_orders: ask each pair in both orders and average (cancels the judge's position bias).
        temperature: sampling temperature of ``motif`` verdicts.
        top_p: nucleus sampling of ``motif`` verdicts.
        max_tokens: the longest ``motif`` verdict.

    Example:
        >>> from llm_reward.llm import make_llm
        >>> judge = LLMPreferenceLabeler(make_llm("local"), PairPrompt("nethack", goal=None), mode="rlaif")
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

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {self.mode!r}")

    @property
    def fingerprint(self) -> dict[str, object]:
        """What decides the labels; a label store refuses to mix labels made under different fingerprints."""
        if self.mode == "pointwise":
            prompt = self._caption_prompt
            return {"llm": self.llm.name, "mode": self.mode, "domain": prompt.domain, "goal": prompt.goal,
                    "prompt_version": prompt.version}
        return {
            "llm": self.llm.name, "mode": self.mode, "both_orders": self.both_orders, "domain": self.prompt.domain,
            "goal": self.prompt.goal, "chain_of_thought": self.prompt.chain_of_thought,
            "prompt_version": self.prompt.version, "temperature": self.temperature, "top_p": self.top_p,
        }

    @property
    def _caption_prompt(self) -> CaptionPrompt:
        """The one-caption question pointwise mode asks, built from the pair prompt's domain and goal."""
        return CaptionPrompt(self.prompt.domain, self.prompt.goal)

    def __call__(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        return self.label(pairs).label

    def label(self, pairs: Sequence[tuple[str, str]]) -> LabelBatch:
        if self.mode == "pointwise":
            return self._pointwise(pairs)
        if self.mode == "rlaif":  # the shared pairwise judge, with the caption prompt as its template
            return PairwiseJudge(self.llm, self.prompt, both_orders=self.both_orders).label(pairs)
        return both_order_labels(pairs, lambda _indices, ordered: self._motif(ordered), both_orders=self.both_orders)

    def _pointwise(self, pairs: Sequence[tuple[str, str]]) -> LabelBatch:
        """Bradley–Terry labels from one P(yes) per distinct caption (identical captions: tie, never asked)."""
        n = len(pairs)
        forward = np.full(n, np.nan, dtype=np.float32)
        asked = [i for i, (a, b) in enumerate(pairs) if a != b]
        scorer = PointwiseScorer(self.llm, self._caption_prompt.rlaif)
        scores: dict[str, float] = {}
        if asked:
            captions = [c for i in asked for c in pairs[i]]
            yes = scorer.yes_probs(captions)
            forward[asked] = bradley_terry_labels(yes[0::2], yes[1::2])
            scores = dict(zip(captions, calibration.logit(yes).tolist()))
        label = np.where(np.isnan(forward), 0.5, forward).astype(np.float32)
        return LabelBatch(label, forward, np.full(n, np.nan, dtype=np.float32), llm_prompts=scorer.prompts_sent,
                          caption_scores=scores)

    def _motif(self, ordered: list[tuple[str, str]]) -> tuple[np.ndarray, int]:
        """P(first preferred) from free-text verdicts for each ordered pair, NaN where the judge gave none."""
        # An empty reply is parsed like any other: no verdict -> retry -> unknown (counted), never a silent label.
        sampling = dict(max_tokens=self.max_tokens, temperature=self.temperature, top_p=self.top_p, allow_empty=True)
        conversations = [self.prompt.motif(a, b) for a, b in ordered]
        answers = self.llm.complete_batch(conversations, **sampling)
        verdicts = [parse_verdict(text) for text in answers]
        missing = [i for i, v in enumerate(verdicts) if v is None]
        if missing:  # One follow-up asking for the verdict alone; still nothing -> unknown.
            follow_ups = [
                conversations[i] + [{"role": "assistant", "content": answers[i]},
                                    {"role": "user", "content": VERDICT_ONLY_REQUEST}]
                for i in missing
            ]
            for i, text in zip(missing, self.llm.complete_batch(follow_ups, **{**sampling, "max_tokens": 12})):
                verdicts[i] = parse_verdict(text)
        return np.array([np.nan if v is None else v for v in verdicts], dtype=np.float32), len(missing)


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
