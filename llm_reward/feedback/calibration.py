"""Contextual calibration of a pairwise judge (Zhao et al. 2021): remove the judge's prior for answering "1".

A small judge has a strong preference for one position whatever it is shown. Contextual calibration measures that
preference on *content-free* pairs (both descriptions "N/A", empty, "[MASK]") and divides it out:
``logit p' = logit p - logit p_cf``. For a bias that does not depend on content this makes the two orders agree,
which both-order averaging alone does not (it keeps the right side only on average). Batch calibration (Zhou et al.
2024) estimates the same offset from the batch itself: over pairs judged in both orders the true preferences cancel,
so the mean logit of all prompts is the position bias; it costs no extra calls.

Example:
    >>> import numpy as np
    >>> from llm_reward.feedback.judges import LabelBatch
    >>> batch = LabelBatch(label=np.array([0.5], "f4"), forward=np.array([0.9], "f4"), reverse=np.array([0.1], "f4"))
    >>> calibrated = calibrate(batch, prior_logit=batch_prior(batch))  # judge said "1" both times: pure bias
    >>> calibrated.forward.round(2), calibrated.reverse.round(2)
    (array([0.5], dtype=float32), array([0.5], dtype=float32))
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from llm_reward.feedback.judges import PAIR_CHOICES, LabelBatch, logit, sigmoid
from llm_reward.llm.base import LLM
from llm_reward.types import Messages

#: Zhao et al.'s content-free inputs.
CONTENT_FREE = ("N/A", "", "[MASK]")


def content_free_prior(llm: LLM, verdict: Callable[[str, str], Messages],
                       fillers: Sequence[str] = CONTENT_FREE) -> float:
    """Mean logit of P("1") over content-free pairs ``(filler, filler)``: the judge's prior for the first position.

    ``verdict(first, second)`` renders the same prompt the judge uses for real pairs (e.g. ``PairPrompt.verdict``).
    """
    if not fillers:
        raise ValueError("content_free_prior needs at least one filler text")
    probs = llm.choice_probs_batch([verdict(f, f) for f in fillers], list(PAIR_CHOICES))
    return float(np.mean(logit(np.array([p["1"] for p in probs]))))


def batch_prior(batch: LabelBatch) -> float:
    """Position bias estimated from a batch judged in both orders: the mean logit of P("1") over all its prompts.

    ``forward`` holds P("1") of the given order, ``reverse`` 1 - P("1") of the swapped one, so the prompts' own
    answers are ``forward`` and ``1 - reverse``. NaN when nothing was judged in both orders.
    """
    both = ~np.isnan(batch.forward) & ~np.isnan(batch.reverse)
    if not both.any():
        return float("nan")
    answers = np.concatenate([batch.forward[both], 1.0 - batch.reverse[both]])
    return float(np.mean(logit(answers)))


def batch_calibrated(batch: LabelBatch) -> LabelBatch:
    """``batch`` with its own :func:`batch_prior` removed (unchanged when nothing was judged in both orders)."""
    prior = batch_prior(batch)
    return calibrate(batch, prior) if np.isfinite(prior) else batch


def calibrate(batch: LabelBatch, prior_logit: float) -> LabelBatch:
    """Both orders shifted by the prior (``logit P("1") - prior_logit``) and averaged again; NaN stays NaN."""
    if not np.isfinite(prior_logit):
        raise ValueError(f"prior_logit must be finite, got {prior_logit}")
    forward = sigmoid(logit(batch.forward) - prior_logit)
    # reverse = 1 - P("1" | swapped): shift the swapped prompt's own answer, then map back.
    reverse = 1.0 - sigmoid(logit(1.0 - batch.reverse) - prior_logit)
    forward = np.where(np.isnan(batch.forward), np.nan, forward).astype(np.float32)
    reverse = np.where(np.isnan(batch.reverse), np.nan, reverse).astype(np.float32)
    label = np.where(np.isnan(forward), reverse, np.where(np.isnan(reverse), forward, (forward + reverse) / 2))
    asked = ~np.isnan(batch.forward) | ~np.isnan(batch.reverse)
    label = np.where(asked, label, batch.label).astype(np.float32)  # identical captions keep their tie
    return replace(batch, label=label, forward=forward, reverse=reverse)
