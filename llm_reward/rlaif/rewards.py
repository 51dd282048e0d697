"""Rewards for text RLAIF: the judge's 1-10 score (direct) or a reward model distilled from its preferences.

Both are a :class:`TextReward`: ``score(prompts, completions) -> float array``. :func:`as_reward_funcs` turns any
of them (or a bare :class:`ScoreJudge` / :class:`RewardModel`) into the callable TRL's GRPO and RLOO trainers take
as ``reward_funcs``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from llm_reward.feedback.judges import PairwiseJudge, ScoreJudge
from llm_reward.reward_model import RewardModel, fit_reward_model

log = logging.getLogger(__name__)


@runtime_checkable
class TextReward(Protocol):
    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        """One reward per (prompt, completion)."""


@dataclass
class DirectReward:
    """Direct RLAIF: the judge's expected 1-10 score of each answer, rescaled to [-1, 1].

    Example:
        >>> from llm_reward.llm import make_llm
        >>> from llm_reward.feedback.judges import ScoreJudge
        >>> from llm_reward.feedback.text_prompts import ResponseScorePrompt
        >>> reward = DirectReward(ScoreJudge(make_llm("local"), ResponseScorePrompt()))  # doctest: +SKIP
        >>> reward.score(["HP 2/30. What now?"], ["Quaff a healing potion."])  # doctest: +SKIP
        array([0.48])
    """

    judge: ScoreJudge

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        return self.judge.scores(list(completions), contexts=list(prompts))


def reward_text(prompt: str, completion: str) -> str:
    """What the distilled reward model reads: the prompt and the answer."""
    return f"Prompt: {prompt.strip()}\nAnswer: {completion.strip()}"


@dataclass
class DistilledReward:
    """Distilled RLAIF: a Bradley-Terry reward model over (prompt, answer) text, z-normalised on its training texts."""

    model: RewardModel
    mean: float = 0.0
    std: float = 1.0
    metrics: dict[str, Any] = field(default_factory=dict)

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        raw = self.model([reward_text(p, c) for p, c in zip(prompts, completions)]).astype(np.float64)
        return (raw - self.mean) / self.std


def fit_distilled_reward(judge: PairwiseJudge, prompts: Sequence[str], first: Sequence[str], second: Sequence[str],
                         *, encoder: str = "sentence_embedding", epochs: int = 40, seed: int = 0,
                         progress: bool = False) -> DistilledReward:
    """Label answer pairs with the pairwise judge (both orders) and distil them into a reward model.

    ``first[i]`` and ``second[i]`` are two answers to ``prompts[i]``; labels are the judge's soft P(first better).
    """
    batch = judge.label(list(zip(first, second)), contexts=list(prompts))
    texts_a = [reward_text(p, c) for p, c in zip(prompts, first)]
    texts_b = [reward_text(p, c) for p, c in zip(prompts, second)]
    model, metrics = fit_reward_model(texts_a, texts_b, batch.label, encoder=encoder, epochs=epochs, seed=seed,
                                      progress=progress, patience=None)
    raw = model(texts_a + texts_b).astype(np.float64)
    metrics.update(judge_position_consistency=batch.position_consistency, judge_prompts=batch.llm_prompts,
                   label_mean=float(np.nanmean(batch.label)))
    log.info("distilled reward: %d pairs, held-out accuracy %.3f, judge position consistency %.2f",
             len(texts_a), metrics["heldout_accuracy"], metrics["judge_position_consistency"])
    return DistilledReward(model, float(raw.mean()), float(raw.std() + 1e-8), metrics)


def _text(item: Any) -> str:
    """TRL hands plain strings, or conversations (lists of ``{"role", "content"}``) in its conversational format."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        return str(item.get("content", ""))
    if isinstance(item, (list, tuple)) and item:
        return _text(item[-1])
    raise TypeError(f"expected a string or a chat message list, got {type(item).__name__}: {item!r}")


def as_reward_funcs(reward: TextReward | ScoreJudge | RewardModel) -> Callable[..., list[float]]:
    """A TRL ``reward_funcs`` callable ``(prompts, completions, **kwargs) -> list[float]`` for a judge or reward model.

    Example:
        >>> from trl import GRPOTrainer  # doctest: +SKIP
        >>> trainer = GRPOTrainer(model=..., reward_funcs=as_reward_funcs(score_judge), ...)  # doctest: +SKIP
    """
    if isinstance(reward, ScoreJudge):
        reward = DirectReward(reward)
    elif isinstance(reward, RewardModel):
        reward = DistilledReward(reward)
    elif isinstance(reward, PairwiseJudge):
        raise TypeError("a pairwise judge compares two answers and gives no reward for one: use a ScoreJudge "
                        "(direct RLAIF) or a reward model distilled from the pairwise judge (fit_distilled_reward)")
    if not isinstance(reward, TextReward):
        raise TypeError(f"as_reward_funcs needs a ScoreJudge, a RewardModel or an object with "
                        f"score(prompts, completions); got {type(reward).__name__}")

    def reward_func(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        return [float(v) for v in reward.score([_text(p) for p in prompts], [_text(c) for c in completions])]

    reward_func.__name__ = f"llm_reward_{type(reward).__name__}"  # TRL logs each reward function by name
    return reward_func
