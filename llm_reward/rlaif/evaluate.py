"""Evaluation of a trained policy against its start: win rates under pairwise judges (both orders), a
length-controlled win rate, the judges' preference for longer answers, and the KL to the start.

* ``win_rate`` — mean over held-out answer pairs of the judge's soft P(trained better), each pair judged in both
  orders and averaged (0.5 = no change);
* ``length_controlled_win_rate`` — a logistic fit ``P(trained better) = sigmoid(a + b * length gap)`` over the pairs,
  read at a zero length gap: the win rate if the trained policy wrote as long as the start (as in AlpacaEval's
  length-controlled win rate, with one covariate);
* ``longer_preference`` — how often the judge prefers the longer answer of a pair of different lengths (RLAIF reports
  verbosity bias of 64-79 % in annotators).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from llm_reward.feedback.judges import PairwiseJudge
from llm_reward.rlaif.policy import Policy, Samples
from llm_reward.rlaif.rloo import exact_kl


@dataclass
class Answers:
    """Answers of one policy to held-out prompts (row ``i`` answers ``prompts[i]``)."""

    prompts: list[str]
    texts: list[str]
    lengths: np.ndarray  # generated tokens


def generate_answers(policy: Policy, prompts: Sequence[str], *, samples_per_prompt: int, max_new_tokens: int,
                     temperature: float, seed: int, batch_size: int = 16) -> tuple[Answers, list[Samples]]:
    """Sampled answers (the same seeds for every policy, so start and trained differ only by their weights)."""
    rows = [p for p in prompts for _ in range(samples_per_prompt)]
    texts, lengths, batches = [], [], []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start: start + batch_size]
        samples = policy.sample(chunk, k=1, max_new_tokens=max_new_tokens, temperature=temperature,
                                seed=seed + start)
        batches.append(samples)
        texts += samples.texts
        lengths += samples.lengths.tolist()
    return Answers(rows, texts, np.array(lengths, dtype=np.float64)), batches


@torch.no_grad()
def kl_to_start(policy: Policy, start_model: Any, batches: Sequence[Samples], temperature: float) -> float:
    """Mean per-answer KL(trained || start) over the trained policy's own answers (full vocabulary per position)."""
    total, count = 0.0, 0
    for samples in batches:
        logits = policy.logits(samples, temperature=temperature)
        logits_start = policy.logits(samples, model=start_model, temperature=temperature)
        total += float(exact_kl(logits, logits_start, samples.completion_mask).sum())
        count += len(samples.texts)
    return total / max(count, 1)


def length_controlled_win_rate(preference: np.ndarray, length_gap: np.ndarray, *, l2: float = 1.0) -> float:
    """Win rate at zero length gap from a logistic fit of soft preferences on the standardised length gap.

    Example:
        >>> gap = np.array([-10.0, -5.0, 5.0, 10.0])
        >>> round(length_controlled_win_rate(np.array([0.1, 0.3, 0.7, 0.9]), gap), 2)  # all of it is length
        0.5
    """
    y = np.asarray(preference, dtype=np.float64)
    gap = np.asarray(length_gap, dtype=np.float64)
    keep = ~np.isnan(y)
    y, gap = y[keep], gap[keep]
    if len(y) == 0:
        return float("nan")
    scale = gap.std() or 1.0
    x = gap / scale
    a, b = 0.0, 0.0
    for _ in range(50):  # Newton's method on the (ridge-regularised) soft-label logistic log-likelihood
        p = 1.0 / (1.0 + np.exp(-(a + b * x)))
        w = p * (1 - p)
        grad = np.array([np.sum(y - p), np.sum((y - p) * x) - l2 * b])
        hess = np.array([[np.sum(w) + 1e-9, np.sum(w * x)], [np.sum(w * x), np.sum(w * x * x) + l2]])
        step = np.linalg.solve(hess, grad)
        a, b = a + step[0], b + step[1]
        if np.abs(step).max() < 1e-8:
            break
    return float(1.0 / (1.0 + math.exp(-a)))


def judge_answers(judge: PairwiseJudge, trained: Answers, start: Answers) -> dict[str, float]:
    """Win rate of ``trained`` over ``start`` under one judge, both orders, with length controls beside it."""
    batch = judge.label(list(zip(trained.texts, start.texts)), contexts=trained.prompts)
    pref = batch.label.astype(np.float64)
    gap = trained.lengths - start.lengths
    differ = (gap != 0) & ~np.isnan(pref)
    longer_first = gap[differ] > 0
    prefers_first = pref[differ] > 0.5
    decided = ~np.isnan(pref)
    return {
        "win_rate": float(np.nanmean(pref)),
        "win_rate_hard": float(np.mean(np.where(pref[decided] == 0.5, 0.5, pref[decided] > 0.5))),
        "length_controlled_win_rate": length_controlled_win_rate(pref, gap),
        "longer_preference": float(np.mean(longer_first == prefers_first)) if differ.any() else float("nan"),
        "position_consistency": batch.position_consistency,
        "pairs": int(decided.sum()),
        "judge_prompts": batch.llm_prompts,
    }


def evaluate(policy: Policy, start_model: Any, prompts: Sequence[str], judges: dict[str, PairwiseJudge], *,
             samples_per_prompt: int, max_new_tokens: int, temperature: float, seed: int,
             start_answers: Answers | None = None) -> tuple[dict[str, Any], Answers]:
    """Held-out evaluation; returns the metrics and the start policy's answers (reusable across checkpoints)."""
    settings = dict(samples_per_prompt=samples_per_prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                    seed=seed)
    trained, batches = generate_answers(policy, prompts, **settings)
    if start_answers is None:
        start_policy = Policy(start_model, policy.tokenizer, policy.name + ":start")
        start_answers, _ = generate_answers(start_policy, prompts, **settings)
    result: dict[str, Any] = {
        "kl_to_start": kl_to_start(policy, start_model, batches, temperature),
        "mean_length": float(trained.lengths.mean()), "start_mean_length": float(start_answers.lengths.mean()),
        "eval_answers": len(trained.texts),
    }
    for name, judge in judges.items():
        result[name] = judge_answers(judge, trained, start_answers)
    return result, start_answers
