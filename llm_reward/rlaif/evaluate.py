"""Evaluation of a trained policy against its start: win rates under pairwise judges (both orders), a
length-controlled win rate, the judges' preference for longer answers, and the KL to the start.

* ``win_rate`` — mean over held-out answer pairs of the judge's soft P(trained better), each pair judged in both
  orders and averaged (0.5 = no change);
* ``length_controlled_win_rate`` — a logistic fit ``P(trained better) = sigmoid(a + b * length gap)`` over the pairs,
  read at a zero length gap: the win rate if the trained policy wrote as long as the start (as in AlpacaEval's
  length-controlled win rate, with one covariate);
* ``longer_preference`` — how often the judge prefers the longer answer of a pair of different lengths (RLAIF reports
  verbosity bias of 64-79 % in annotators);
* ``checker`` — on prompts with verifiable instructions, the fraction of constraints met by the start and by the
  trained policy's answers, their paired difference with a bootstrap interval, and how often each judge's
  preference agrees with the checker where the checker tells the two answers apart;
* ``null`` — the start policy against itself (other sampling seeds), judged by the same judges: it must read 0.5
  within its interval, or the evaluation itself is biased.

Intervals are 95 % percentile bootstraps over prompts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from llm_reward.rlaif.constraints import Constraint, checker_success
from llm_reward.rlaif.judging import ComparingJudge
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


def bootstrap_ci(values: Sequence[float], *, n_boot: int = 2000, seed: int = 0) -> list[float]:
    """95 % percentile bootstrap interval of the mean of ``values`` (NaNs dropped; ``[nan, nan]`` if none left).

    Example:
        >>> low, high = bootstrap_ci([0.0, 1.0] * 20)
        >>> 0.3 < low < 0.5 < high < 0.7
        True
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return [float("nan"), float("nan")]
    means = np.random.default_rng(seed).choice(v, size=(n_boot, v.size), replace=True).mean(axis=1)
    return [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]


def judge_answers(judge: ComparingJudge, trained: Answers, start: Answers) -> dict[str, Any]:
    """Win rate of ``trained`` over ``start`` under one judge, both orders, with length controls beside it.

    Example:
        >>> from llm_reward.feedback.judges import PairwiseJudge
        >>> class FirstAlways:  # answers "1" whatever it reads: pure position bias
        ...     name, cache = "first", None
        ...     def choice_probs_batch(self, conversations, choices):
        ...         return [{"1": 0.9, "2": 0.1} for _ in conversations]
        >>> from llm_reward.feedback.text_prompts import ResponsePairPrompt
        >>> a = Answers(["q", "q"], ["good", "fine"], np.array([1.0, 1.0]))
        >>> b = Answers(["q", "q"], ["bad", "poor"], np.array([1.0, 1.0]))
        >>> out = judge_answers(PairwiseJudge(FirstAlways(), ResponsePairPrompt()), a, b)
        >>> out["win_rate"], out["position_consistency"]
        (0.5, 0.0)
    """
    batch = judge.label(list(zip(trained.texts, start.texts)), contexts=trained.prompts)
    pref = batch.label.astype(np.float64)
    gap = trained.lengths - start.lengths
    differ = (gap != 0) & ~np.isnan(pref)
    longer_first = gap[differ] > 0
    prefers_first = pref[differ] > 0.5
    decided = ~np.isnan(pref)
    return {
        "win_rate": float(np.nanmean(pref)), "win_rate_ci": bootstrap_ci(pref),
        "win_rate_hard": float(np.mean(np.where(pref[decided] == 0.5, 0.5, pref[decided] > 0.5))),
        "length_controlled_win_rate": length_controlled_win_rate(pref, gap),
        "longer_preference": float(np.mean(longer_first == prefers_first)) if differ.any() else float("nan"),
        "position_consistency": batch.position_consistency,
        "pairs": int(decided.sum()),
        "judge_prompts": batch.llm_prompts, "identical_pairs": int(sum(a == b for a, b in zip(trained.texts,
                                                                                               start.texts))),
        "preferences": pref.tolist(),
    }


def checker_scores(answers: Answers, constraints: Mapping[str, Sequence[Constraint]]) -> np.ndarray:
    """Fraction of its prompt's constraints each answer meets (NaN for open-ended prompts)."""
    return np.array([checker_success(t, constraints.get(p, ())) for p, t in zip(answers.prompts, answers.texts)])


def within_prompt_agreement(reward: Sequence[float], truth: Sequence[float], k: int) -> tuple[float, int]:
    """How a reward orders answers to the same prompt (rows ``i*k .. i*k+k-1``) against a ground truth: over the
    pairs where ``truth`` differs (both scored; NaN skips a pair), how many the reward orders the same way (a reward
    tie counts half), and how many pairs there are. RLOO's advantage sees only within-prompt differences, so this is
    what a reward must get right.

    Example:
        >>> within_prompt_agreement([0.9, 0.1, 0.5, 0.5], [1.0, 0.0, 1.0, 0.0], k=2)
        (1.5, 2)
    """
    reward, truth = np.asarray(reward, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if len(reward) != len(truth) or k < 1 or len(truth) % k:
        raise ValueError(f"{len(reward)} rewards and {len(truth)} truths are not groups of k={k} answers")
    agreeing, pairs = 0.0, 0
    for start in range(0, len(truth), k):
        for a in range(start, start + k):
            for b in range(a + 1, start + k):  # pairs the truth tells apart and the reward scored (NaN: neither)
                if truth[a] != truth[b] and not np.isnan(truth[a] - truth[b] + reward[a] - reward[b]):
                    pairs += 1
                    same_way = (reward[a] > reward[b]) == (truth[a] > truth[b])
                    agreeing += 0.5 if reward[a] == reward[b] else float(same_way)
    return agreeing, pairs


def checker_comparison(trained: Answers, start: Answers, constraints: Mapping[str, Sequence[Constraint]],
                       preferences: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """Instruction success of both policies on the same prompts, their paired difference, and judge-checker agreement.

    ``preferences[name]`` is a judge's P(trained better) per pair; agreement counts pairs where the checker scores
    the two answers differently and the judge is not tied.

    Example:
        >>> from llm_reward.rlaif.constraints import parse_constraint
        >>> rules = {"q": (parse_constraint("no_commas"),)}
        >>> trained = Answers(["q", "q"], ["a b", "c d"], np.ones(2))
        >>> start = Answers(["q", "q"], ["a, b", "c d"], np.ones(2))
        >>> out = checker_comparison(trained, start, rules, {"judge": [0.8, 0.5]})
        >>> out["checker_success_start"], out["checker_success_trained"], out["judge_checker_agreement"]["judge"]
        (0.5, 1.0, 1.0)
    """
    after, before = checker_scores(trained, constraints), checker_scores(start, constraints)
    scored = ~np.isnan(after)
    if not scored.any():
        return {"checker_prompts": 0}
    diff = after[scored] - before[scored]
    differ = scored & (after != before)
    agreement = {}
    for name, pref in preferences.items():
        pref = np.asarray(pref, dtype=np.float64)
        use = differ & ~np.isnan(pref) & (pref != 0.5)
        agreement[name] = float(np.mean((pref[use] > 0.5) == (after[use] > before[use]))) if use.any() else float("nan")
    return {"checker_prompts": int(scored.sum()), "checker_success_start": float(before[scored].mean()),
            "checker_success_trained": float(after[scored].mean()),
            "checker_success_start_ci": bootstrap_ci(before[scored]),
            "checker_success_trained_ci": bootstrap_ci(after[scored]),
            "checker_success_difference": float(diff.mean()), "checker_success_difference_ci": bootstrap_ci(diff),
            "checker_pairs_differing": int(differ.sum()), "judge_checker_agreement": agreement,
            "differences": diff.tolist()}


def evaluate(policy: Policy, start_model: Any, prompts: Sequence[str], judges: Mapping[str, ComparingJudge], *,
             samples_per_prompt: int, max_new_tokens: int, temperature: float, seed: int,
             start_answers: Answers | None = None, constraints: Mapping[str, Sequence[Constraint]] | None = None,
             null_seed: int | None = None) -> tuple[dict[str, Any], Answers]:
    """Held-out evaluation; returns the metrics and the start policy's answers (reusable across checkpoints).

    ``judges`` maps a name (``"judge"``, ``"heldout_judge"``) to any comparing judge; ``constraints`` maps prompts to
    their verifiable instructions (checker metrics); ``null_seed`` adds the null control (start vs start answers
    sampled with that seed), judged by every judge.

    Example:
        >>> result, _ = evaluate(policy, start_model, prompts.heldout, {"heldout_judge": judge},
        ...                      samples_per_prompt=1, max_new_tokens=48, temperature=0.9, seed=1234,
        ...                      constraints=prompts.constraints, null_seed=4321)  # doctest: +SKIP
        >>> result["heldout_judge"]["win_rate"], result["null"]["heldout_judge"]["win_rate"]  # doctest: +SKIP
        (0.71, 0.5)
    """
    settings = dict(samples_per_prompt=samples_per_prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                    seed=seed)
    start_policy = Policy(start_model, policy.tokenizer, policy.name + ":start")
    trained, batches = generate_answers(policy, prompts, **settings)
    if start_answers is None:
        start_answers, _ = generate_answers(start_policy, prompts, **settings)
    result: dict[str, Any] = {
        "kl_to_start": kl_to_start(policy, start_model, batches, temperature),
        "mean_length": float(trained.lengths.mean()), "start_mean_length": float(start_answers.lengths.mean()),
        "eval_answers": len(trained.texts),
    }
    for name, judge in judges.items():
        result[name] = judge_answers(judge, trained, start_answers)
    if constraints:
        result["checker"] = checker_comparison(trained, start_answers, constraints,
                                               {name: result[name]["preferences"] for name in judges})
    if null_seed is not None:
        other, _ = generate_answers(start_policy, prompts, **{**settings, "seed": null_seed})
        result["null"] = {name: judge_answers(judge, other, start_answers) for name, judge in judges.items()}
        if constraints:
            result["null"]["checker"] = checker_comparison(other, start_answers, constraints, {})
    return result, start_answers
