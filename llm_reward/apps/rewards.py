"""The reward kinds of ``llm-reward-train``, one class per ``conf/reward/*.yaml`` (``builder._target_``).

Each has a cheap ``check(run)`` (bad settings fail before minutes of rollouts or annotation) and
``build(run) -> BuiltReward``, and reads only the objects the run context holds (the judge, the labeler, the
reward-model recipe, the rollouts stage, the pair sampling), never the config tree. Which rollouts, labels and
reward model a kind uses is the run's stage identity (``run.paths``, computed in ``conf/base.yaml``):
``reward=oracle`` and ``reward=shuffled`` declare their own label source there (``reward.fitted_on``), so no path
is edited here. A new kind is a YAML file plus a class (or a
``build(run)`` function with ``_partial_: true``), e.g. ``reward=eureka`` from the Eureka track.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from llm_reward.apps._common import ConfigError, config_key
from llm_reward.envs import get_adapter
from llm_reward.motif.online import VARIANTS, OnlineFeedback
from llm_reward.motif.stages import annotate_stage, fit_stage, oracle_stage, resolve_goal, sample_pairs, \
    shuffle_labels
from llm_reward.training.context import BuiltReward, RunContext

LabelSource = Literal["llm", "oracle", "shuffled"]


class ExtrinsicOnly:
    """``reward=none``: the env reward alone, the baseline every shaped run is compared against."""

    def check(self, run: RunContext) -> None:
        pass

    def build(self, run: RunContext) -> BuiltReward:
        return BuiltReward(None)


def constant_reward(captions: list[str]) -> np.ndarray:
    """Reward 1 for every caption: with count decay it becomes the count bonus 1 / N(caption)^beta."""
    return np.ones(len(captions), dtype=np.float32)


class CountBonus(ExtrinsicOnly):
    """``reward=count``: the count bonus on the same caption space (no LLM)."""

    def build(self, run: RunContext) -> BuiltReward:
        return BuiltReward(constant_reward)


@dataclass
class OfflineReward:
    """``reward=motif | oracle | shuffled``: rollouts -> pairs -> labels -> Bradley–Terry reward model (Motif).

    ``labels``: ``llm`` (the judge of ``llm``/``feedback``), ``oracle`` (the env's progress oracle: the upper
    reference) or ``shuffled`` (the judge's labels permuted across pairs with ``shuffle_seed``: same pairs,
    rollouts, recipe and shaping, but no link between a caption and its label — what the LLM's content adds).
    """

    labels: LabelSource = "llm"
    shuffle_seed: int = 0

    def __post_init__(self) -> None:
        if self.labels not in ("llm", "oracle", "shuffled"):
            raise ValueError(f"reward.builder.labels must be 'llm', 'oracle' or 'shuffled', got {self.labels!r}")

    def check(self, run: RunContext) -> None:
        with config_key("pairs.n"):
            if run.pairs.n < 1:
                raise ValueError(f"the number of caption pairs to label must be >= 1, got {run.pairs.n}")
        with config_key("reward_model"):
            run.recipe.check()
        judged = self.labels != "oracle"
        if judged:  # a bad model spec, option or missing API key fails now, not after rollouts
            run.labeler()
        dense = run.recipe.dense_pairs
        if dense and not (judged and run.labeler_scores_captions):
            raise ConfigError(f"reward_model.dense_pairs={dense} needs a pointwise judge's caption scores "
                              "(feedback=pointwise, or a pointwise feedback.strategy); these labels come from "
                              f"{'a pairwise judge' if judged else 'the progress oracle'}: set it to 0")

    def build(self, run: RunContext) -> BuiltReward:
        rollouts = run.rollouts()
        with config_key("reward_model.max_chars"):
            run.recipe.check_encodable(rollouts["caption"].tolist())
        pairs = sample_pairs(rollouts, run.pairs.n, unique_captions=run.pairs.unique_captions, seed=run.data_seed)
        if self.labels == "oracle":
            labelled, report = oracle_stage(pairs)
        else:
            labelled, report = annotate_stage(pairs, run.labeler(), store_path=run.path("labels"),
                                              batch_size=run.pairs.batch_size, progress=run.progress)
            if self.labels == "shuffled":
                labelled = shuffle_labels(labelled, self.shuffle_seed)
        model_path = run.path("reward_model")
        artifact = fit_stage(labelled, rollouts, captioner=run.captioner, path=model_path, recipe=run.recipe,
                             progress=run.progress)
        metrics = {"annotation": report.as_dict(), "reward_model": artifact.metrics,
                   "reward_model_dir": str(model_path)}
        # The frozen reward is kept with the run: the data/ copy is a cache. The judge's counts (LLM calls, cache
        # hits) go to TensorBoard beside the reward-model calls.
        return BuiltReward(artifact, metrics, keep=lambda run_dir: artifact.save(run_dir / "reward_model"),
                           counters={"annotation": report.as_dict})


@dataclass
class OnlineReward:
    """``reward=oni``: the judge labels captions in a background thread while the agent trains (ONI)."""

    variant: str = "retrieval"
    batch_size: int = 8
    max_pending: int = 2_000

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"reward.variant must be 'retrieval' or 'ranking', got {self.variant!r}")
        if self.batch_size < 1 or self.max_pending < 1:
            raise ValueError(f"reward.batch_size and reward.max_pending must be >= 1, got {self.batch_size}, "
                             f"{self.max_pending}")

    def check(self, run: RunContext) -> None:
        with config_key("reward_model"):
            run.recipe.check()
        if run.recipe.dense_pairs:
            raise ConfigError(f"reward_model.dense_pairs={run.recipe.dense_pairs} applies to offline labels "
                              "(reward=motif, shuffled); reward=oni refits on the pairs it labels online: set it to 0")
        if self.variant == "ranking":  # the run's labeler judges the pairs: a bad judging config fails now
            run.labeler()
        run.llm()

    def build(self, run: RunContext) -> BuiltReward:
        adapter = get_adapter(run.env_id)
        # ranking: pairs judged by the run's labeler (the same feedback config as offline Motif); retrieval: one
        # question per caption, whose answer is the reward.
        feedback = OnlineFeedback(run.llm(), domain=adapter.family, goal=resolve_goal(run.env_id, run.goal),
                                  variant=self.variant, batch_size=self.batch_size, max_pending=self.max_pending,
                                  seed=run.seed, recipe=replace(run.recipe, seed=run.seed),
                                  labeler=run.labeler() if self.variant == "ranking" else None)
        feedback.check_judge()  # a judge that can never label fails here, not silently during training

        def finish(run_dir: Path) -> dict[str, Any]:  # stop the judge thread, keep what it learned
            feedback.close()
            feedback.save(run_dir / "online_feedback", captioner=run.captioner)
            return {"online_feedback": {**feedback.stats.as_dict(), "llm": feedback.llm.stats.as_dict()}}

        return BuiltReward(feedback, finish=finish, needs_core=True,
                           counters={"llm": feedback.llm.stats.as_dict, "online": feedback.stats.as_dict})
