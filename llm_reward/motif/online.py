"""ONI-style online feedback: captions seen during RL are judged by an LLM in a background thread.

Env stepping never waits for the LLM: the reward function answers from what is labelled so far (0, or the current
reward-model estimate, for captions still pending) and queues what is new. Three parts:

* the judge queue (:class:`~llm_reward.motif.judge_queue.JudgeQueue`): thread, newest-first with eviction, retry, stop;
* a labelling strategy (:mod:`llm_reward.motif.labelling`): ``retrieval`` looks labels up, ``ranking`` refits a
  Bradley–Terry model with the offline recipe and normalization;
* persistence (:meth:`OnlineFeedback.save`): the labels, pairs and a reloadable frozen reward.

Use it as the ``reward_model`` of :class:`llm_reward.LLMRewardVecEnv`; ``cacheable = False`` tells the wrapper not
to freeze the first answer for a caption, since answers improve as labels arrive.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from llm_reward.feedback.labelers import LLMPreferenceLabeler
from llm_reward.feedback.prompts import CaptionPrompt, PairPrompt
from llm_reward.llm.base import LLM
from llm_reward.motif.judge_queue import JudgeQueue, OnlineStats
from llm_reward.motif.labelling import RankingLabels, RetrievalLabels
from llm_reward.reward_model import RewardModelRecipe, build_artifact
from llm_reward.types import Labeler

Variant = Literal["retrieval", "ranking"]
VARIANTS = ("retrieval", "ranking")


class OnlineFeedback:
    """A non-blocking caption reward backed by an LLM judge working in a background thread.

    Args:
        llm: the judge.
        domain: the caption family the prompts name (an env adapter's ``family``).
        goal: the goal sentence the judge is given (None: zero knowledge).
        variant: ``retrieval`` (one question per caption, whose P(yes) is the reward) or ``ranking`` (pairs labelled,
            a Bradley-Terry reward model refit online).
        labeler: ``ranking`` only: the :class:`~llm_reward.types.Labeler` that judges the pairs (``llm-reward-train``
            passes the run's, built from the same ``feedback`` config as offline Motif). None: an
            :class:`~llm_reward.feedback.labelers.LLMPreferenceLabeler` of ``pair_mode`` on ``llm``.
        recipe: the reward model's training recipe for ``ranking``; ``encoder``, ``encoder_kwargs``, ``epochs`` and
            ``targets`` build one when it is not given.
        batch_size: captions the worker labels at a time; ``max_pending``: captions queued at most (the oldest are
            forgotten first).

    The other keywords tune the queue (``max_retries``) and the ranking schedule (``pairs_per_caption``,
    ``min_pairs_to_fit``, ``refit_growth``); ``default_reward`` is what a caption not judged yet earns.

    Example:
        >>> from llm_reward import make_llm
        >>> feedback = OnlineFeedback(make_llm("local:tiny"), domain="minigrid", goal="The goal is to open the door.")
        >>> with feedback:
        ...     first = feedback(["You see an open door."])  # not judged yet: the default reward, at once
        ...     idle = feedback.wait_idle(timeout=60)
        >>> float(first[0]), idle, 0.0 <= float(feedback(["You see an open door."])[0]) <= 1.0
        (0.0, True, True)

    In training: ``venv = LLMRewardVecEnv(venv, reward_model=feedback, threshold_quantile=None)`` and
    ``with feedback: model.learn(100_000)``.
    """

    cacheable = False

    def __init__(self, llm: LLM, *, domain: str, goal: str | None, variant: Variant = "retrieval",
                 batch_size: int = 8, pairs_per_caption: int = 2, default_reward: float = 0.0,
                 min_pairs_to_fit: int = 32, refit_growth: float = 1.5, encoder: str = "char_cnn",
                 encoder_kwargs: Mapping[str, Any] | None = None, epochs: int = 30, targets: str = "hard",
                 max_retries: int = 3, max_pending: int = 2_000, seed: int = 0, pair_mode: str = "pointwise",
                 recipe: RewardModelRecipe | None = None, labeler: Labeler | None = None):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be 'retrieval' or 'ranking', got {variant!r}")
        recipe = recipe or RewardModelRecipe(encoder=encoder, encoder_kwargs=dict(encoder_kwargs or {}),
                                             epochs=epochs, seed=seed, targets=targets)  # validates targets
        self.llm, self.variant, self.default_reward = llm, variant, default_reward
        self.stats = OnlineStats()
        if variant == "retrieval":
            self.strategy: RetrievalLabels | RankingLabels = RetrievalLabels(
                llm, CaptionPrompt(domain, goal), self.stats, default_reward)
        else:
            if labeler is None:
                labeler = LLMPreferenceLabeler(llm, PairPrompt(domain, goal, chain_of_thought=False), mode=pair_mode)
            self.strategy = RankingLabels(labeler, self.stats, recipe=recipe, pairs_per_caption=pairs_per_caption,
                                          min_pairs_to_fit=min_pairs_to_fit, refit_growth=refit_growth, seed=seed)
        self.queue = JudgeQueue(self.strategy.label, batch_size=batch_size, max_pending=max_pending,
                                max_retries=max_retries, give_up=self.strategy.give_up, stats=self.stats)

    def __call__(self, captions: Sequence[str]) -> np.ndarray:
        """Current rewards; unseen captions are queued for judging and get the default (or the model's estimate)."""
        if not self.queue.running():
            self.start()
        captions = list(captions)
        out = self.strategy.rewards(captions)
        self.queue.offer(captions)  # only what is neither pending nor judged is queued
        return np.where(np.isnan(out), np.float32(self.default_reward), out).astype(np.float32)

    def check_judge(self) -> None:
        """Ask the judge one question the way the worker will, in this thread: a judge that can never label (no
        log-probs, a bad model spec or key, an unreachable server) raises here, before training, instead of
        stopping the worker. The result cache is bypassed: a cached answer proves nothing about the judge now."""
        cache, self.llm.cache = self.llm.cache, None
        try:
            self.strategy.check()
        finally:
            self.llm.cache = cache

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def start(self) -> "OnlineFeedback":
        """Start the judge thread (restarted after ``close`` once its last batch has finished; a judge that stopped
        for good is not)."""
        self.queue.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        self.queue.close(timeout)

    def __enter__(self) -> "OnlineFeedback":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until nothing is pending (for tests and evaluation, never called from the RL loop)."""
        return self.queue.wait_idle(timeout)

    def save(self, directory: str | os.PathLike, *, captioner: str | None = None) -> Path:
        """Write what was learned so far to ``directory``: ``captions.parquet`` (caption, current reward),
        ``pairs.parquet`` (ranking: the judged pairs) and, once a model is fitted and ``captioner`` is given, a
        reloadable frozen reward under ``reward_model/`` (:class:`~llm_reward.reward_model.RewardArtifact`, with
        the same normalization the agent was paid with)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        table, pairs, artifact = self.strategy.snapshot()
        pd.DataFrame({"caption": list(table), "reward": list(table.values())}).to_parquet(
            directory / "captions.parquet", index=False)
        if pairs is not None:
            pairs.to_parquet(directory / "pairs.parquet", index=False)
        if artifact is not None and captioner is not None:
            frozen = build_artifact(artifact.model, list(table), captioner=captioner,
                                    metrics={"online": self.stats.as_dict(), "pairs": len(pairs)})
            frozen.save(directory / "reward_model")
        return directory

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("OnlineFeedback owns a thread and lives in the learner process; wrap the VecEnv with it "
                        "(LLMRewardVecEnv) instead of pickling it into SubprocVecEnv workers")
