"""Rewards for text RLAIF: the judge's 1-10 score (direct) or a reward model distilled from its preferences.

Both are a :class:`TextReward`: ``score(prompts, completions) -> float array``. :func:`as_reward_funcs` turns any
of them (or a bare :class:`ScoreJudge` / :class:`RewardModel`) into the callable TRL's GRPO and RLOO trainers take
as ``reward_funcs``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from llm_reward.feedback.judges import PairwiseJudge, ScoreJudge
from llm_reward.reward_model import RewardModel, fit_reward_model
from llm_reward.reward_model.artifact import RewardArtifact, build_artifact
from llm_reward.rlaif.judging import ChecklistJudge

CAPTIONER = "rlaif_prompt_answer"  # the artifact's input format: reward_text(prompt, answer)

log = logging.getLogger(__name__)


@runtime_checkable
class TextReward(Protocol):
    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        """One reward per (prompt, completion)."""


@dataclass
class DirectReward:
    """Direct RLAIF: each answer judged alone, rescaled to [-1, 1]: a :class:`ScoreJudge`'s expected 1-10 score
    (``judge.reward_form=score``) or a :class:`~llm_reward.rlaif.judging.ChecklistJudge`'s mean P(yes) over "helpful?"
    and one question per instruction of the prompt (``judge.reward_form=checklist``; ``instructions`` leaves out
    "helpful?" where the prompt carries instructions).

    Example:
        >>> from llm_reward.llm import make_llm
        >>> from llm_reward.feedback.judges import ScoreJudge
        >>> from llm_reward.feedback.text_prompts import ResponseScorePrompt
        >>> reward = DirectReward(ScoreJudge(make_llm("local"), ResponseScorePrompt()))  # doctest: +SKIP
        >>> reward.score(["HP 2/30. What now?"], ["Quaff a healing potion."])  # doctest: +SKIP
        array([0.48])
    """

    judge: ScoreJudge | ChecklistJudge

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        return self.judge.scores(list(completions), contexts=list(prompts))


def reward_text(prompt: str, completion: str) -> str:
    """What the distilled reward model reads: the prompt and the answer."""
    return f"Prompt: {prompt.strip()}\nAnswer: {completion.strip()}"


@dataclass
class DistilledReward:
    """Distilled RLAIF: a Bradley-Terry reward model over (prompt, answer) text, stored as a
    :class:`~llm_reward.reward_model.artifact.RewardArtifact` (weights-only load, strict JSON, normalised once over
    the texts it was trained on).

    Example:
        >>> import tempfile
        >>> from llm_reward.reward_model import RewardModel
        >>> from llm_reward.reward_model.artifact import build_artifact
        >>> texts = [reward_text("q", "yes"), reward_text("q", "no")]
        >>> reward = DistilledReward(build_artifact(RewardModel("char_cnn", seed=0), texts, captioner=CAPTIONER,
        ...                                         metrics={}))
        >>> again = DistilledReward.load(reward.save(tempfile.mkdtemp() + "/rm"))
        >>> bool(abs(again.score(["q"], ["yes"])[0] - reward.score(["q"], ["yes"])[0]) < 1e-5)
        True
    """

    artifact: RewardArtifact

    @property
    def metrics(self) -> dict[str, Any]:
        return self.artifact.metrics

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        return self.artifact([reward_text(p, c) for p, c in zip(prompts, completions)]).astype(np.float64)

    def save(self, path: str | Any) -> Any:
        return self.artifact.save(path)

    @classmethod
    def load(cls, path: str | Any) -> "DistilledReward":
        artifact = RewardArtifact.load(path)
        artifact.check_captioner(CAPTIONER)
        return cls(artifact)


def checker_labels(first: Sequence[float], second: Sequence[float]) -> np.ndarray:
    """P(first better) by the checker: 1, 0, 0.5 for equal success, NaN for prompts without constraints.

    Example:
        >>> checker_labels([1.0, 0.5, 0.5, float("nan")], [0.5, 1.0, 0.5, float("nan")]).tolist()
        [1.0, 0.0, 0.5, nan]
    """
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    return np.where(np.isnan(a) | np.isnan(b), np.nan, np.sign(a - b) / 2 + 0.5)


def fit_distilled_reward(judge: Any, prompts: Sequence[str], first: Sequence[str], second: Sequence[str],
                         *, encoder: str = "sentence_embedding", epochs: int = 40, seed: int = 0,
                         progress: bool = False, shuffle_labels: bool = False,
                         checker: np.ndarray | None = None) -> DistilledReward:
    """Label answer pairs with a comparing judge (both orders) and distil them into a reward model.

    ``first[i]`` and ``second[i]`` are two answers to ``prompts[i]``; labels are the judge's soft P(first better).
    ``shuffle_labels`` permutes the labels across pairs (the control: same pairs, same label distribution, no
    information); ``checker`` (P(first better) by the instruction checker, :func:`checker_labels`) adds the reward
    model's agreement with the checker (``oracle_agreement`` on its held-out pairs) and the judge's own.
    """
    batch = judge.label(list(zip(first, second)), contexts=list(prompts))
    labels = batch.label.astype(np.float64)
    if shuffle_labels:
        labels = np.random.default_rng(seed + 99).permutation(labels)
    texts_a = [reward_text(p, c) for p, c in zip(prompts, first)]
    texts_b = [reward_text(p, c) for p, c in zip(prompts, second)]
    oracle = None if checker is None else np.asarray(checker, dtype=np.float64)
    model, metrics = fit_reward_model(texts_a, texts_b, labels, encoder=encoder, epochs=epochs, seed=seed,
                                      progress=progress, patience=None, oracle_labels=oracle)
    metrics.update(judge_position_consistency=batch.position_consistency, judge_prompts=batch.llm_prompts,
                   label_mean=float(np.nanmean(batch.label)), shuffled_labels=shuffle_labels, pairs=len(texts_a))
    if oracle is not None:
        use = ~np.isnan(oracle) & (oracle != 0.5) & (batch.label != 0.5)
        metrics["judge_checker_agreement"] = (float(np.mean((batch.label[use] > 0.5) == (oracle[use] > 0.5)))
                                              if use.any() else float("nan"))
        metrics["checker_pairs"] = int(use.sum())
    log.info("distilled reward: %d pairs, held-out accuracy %.3f, judge position consistency %.2f",
             len(texts_a), metrics["heldout_accuracy"], metrics["judge_position_consistency"])
    return DistilledReward(build_artifact(model, texts_a + texts_b, captioner=CAPTIONER, metrics=metrics))


def _text(item: Any) -> str:
    """TRL hands plain strings, or conversations (lists of ``{"role", "content"}``) in its conversational format."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        return str(item.get("content", ""))
    if isinstance(item, (list, tuple)) and item:
        return _text(item[-1])
    raise TypeError(f"expected a string or a chat message list, got {type(item).__name__}: {item!r}")


def as_reward_funcs(reward: TextReward | ScoreJudge | RewardModel | RewardArtifact) -> Callable[..., list[float]]:
    """A TRL ``reward_funcs`` callable ``(prompts, completions, **kwargs) -> list[float]`` for a judge or reward model.

    Example:
        >>> from trl import GRPOTrainer  # doctest: +SKIP
        >>> trainer = GRPOTrainer(model=..., reward_funcs=as_reward_funcs(score_judge), ...)  # doctest: +SKIP
    """
    if isinstance(reward, ScoreJudge):
        reward = DirectReward(reward)
    elif isinstance(reward, RewardArtifact):
        reward.check_captioner(CAPTIONER)
        reward = DistilledReward(reward)
    elif isinstance(reward, RewardModel):  # raw, un-normalised scores
        reward = DistilledReward(RewardArtifact(reward, captioner=CAPTIONER, metrics={}, mean=0.0, std=1.0,
                                                quantiles=[0.0, 1.0]))
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
