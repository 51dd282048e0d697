"""The two labelling strategies of online feedback (ONI, Zheng et al., 2024), each owning its reward table.

* :class:`RetrievalLabels` — each new caption is judged alone (P(it shows progress), the one pointwise scorer of
  ``feedback``); the label is the reward, looked up.
* :class:`RankingLabels` — each new caption is paired with earlier ones and the pairs are labelled by any
  :class:`~llm_reward.types.Labeler` (the run's, from the same ``feedback`` config as offline Motif); a
  Bradley–Terry reward model is refit with the offline recipe on a geometric schedule (often while labels are
  few, then rarely), normalized as an offline artifact is, and generalizes to captions not judged yet.

A strategy answers ``rewards(captions)`` (NaN where it has nothing yet) from the learner thread and ``label(batch)``
from the judge thread; :class:`~llm_reward.motif.online.OnlineFeedback` glues one to a judge queue.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Sequence

import numpy as np
import pandas as pd

from llm_reward.feedback.judges import PointwiseScorer
from llm_reward.feedback.prompts import CaptionPrompt
from llm_reward.llm.base import LLM
from llm_reward.motif.judge_queue import OnlineStats
from llm_reward.reward_model import RewardArtifact, RewardModelRecipe, build_artifact, to_targets
from llm_reward.shaping.formula import CachedReward
from llm_reward.types import Labeler

log = logging.getLogger(__name__)
_MAX_ESTIMATES = 50_000  # model estimates cached per refit: a long run sees far more scenes than fit in memory


class RetrievalLabels:
    """Caption -> P(yes) from the judge, looked up; captions not judged yet have no reward (NaN)."""

    def __init__(self, llm: LLM, prompt: CaptionPrompt, stats: OnlineStats, default_reward: float = 0.0):
        self.scorer = PointwiseScorer(llm, prompt.rlaif)
        self.stats, self.default_reward = stats, default_reward
        self._table: dict[str, float] = {}
        self._lock = threading.Lock()

    def rewards(self, captions: Sequence[str]) -> np.ndarray:
        table = self._table
        return np.array([table.get(c, np.nan) for c in captions], dtype=np.float32)

    def label(self, batch: list[str]) -> None:
        probs = self.scorer.yes_probs(batch)
        self.stats.llm_prompts += len(batch)
        with self._lock:
            self._table.update(zip(batch, map(float, probs)))
            self.stats.labelled_captions = len(self._table)

    def give_up(self, caption: str) -> None:
        """A caption the judge failed on too often gets the neutral default, never to be asked again."""
        with self._lock:
            self._table[caption] = self.default_reward

    def check(self) -> None:
        self.scorer.check()

    def snapshot(self) -> tuple[dict[str, float], None, None]:
        with self._lock:
            return dict(self._table), None, None


class RankingLabels:
    """Pairs of judged captions -> a Bradley–Terry reward model, refit as labels grow; rewards are its estimates."""

    def __init__(self, labeler: Labeler, stats: OnlineStats, *, recipe: RewardModelRecipe,
                 pairs_per_caption: int = 2, min_pairs_to_fit: int = 32, refit_growth: float = 1.5, seed: int = 0):
        if pairs_per_caption < 1 or min_pairs_to_fit < 2 or refit_growth <= 1.0:
            raise ValueError("need pairs_per_caption >= 1, min_pairs_to_fit >= 2 and refit_growth > 1")
        recipe.check()  # bad hyper-parameters fail here, not in the worker
        self.labeler = labeler
        self.stats, self.recipe = stats, recipe
        self.pairs_per_caption, self.min_pairs_to_fit = pairs_per_caption, min_pairs_to_fit
        self.refit_growth = refit_growth
        self._rng = random.Random(seed)
        self._pairs: list[tuple[str, str, float]] = []
        self._seen: list[str] = []  # judged captions, partners for new pairs
        self._fitted_on = 0
        self.artifact: RewardArtifact | None = None
        self._reward: CachedReward | None = None  # the artifact's estimates, cached until the next refit

    def rewards(self, captions: Sequence[str]) -> np.ndarray:
        """The current model's normalized estimate for every caption, judged or not (one answer per caption between
        refits: a potential that jumped between the default and the estimate for the same caption would pay for
        nothing); NaN before the first fit."""
        reward = self._reward  # one read: a refit swaps model and cache together
        if reward is None:
            return np.full(len(captions), np.nan, dtype=np.float32)
        return reward(list(captions)).astype(np.float32)

    def label(self, batch: list[str]) -> None:
        partners = self._seen or batch
        pairs = [(c, self._rng.choice(partners)) for c in batch for _ in range(self.pairs_per_caption)]
        pairs = [(a, b) for a, b in pairs if a != b] or [(batch[0], batch[-1])]
        labels = self.labeler.label(pairs)
        self.stats.llm_prompts += labels.llm_prompts
        self._pairs += [(a, b, float(y)) for (a, b), y in zip(pairs, labels.label) if not np.isnan(y)]
        self._seen += batch
        self.stats.labelled_pairs = len(self._pairs)
        if len(self._pairs) >= max(self.min_pairs_to_fit, self.refit_growth * self._fitted_on):
            try:
                self.refit()
            except Exception as err:  # the labels are kept: raising would have the batch judged again
                self.stats.fit_errors += 1
                log.warning("online feedback: reward-model refit failed (%s: %s)", type(err).__name__, err)
        self.stats.labelled_captions = len(self._seen)

    def refit(self) -> bool:
        """Refit on all pairs so far; False when there is nothing to learn yet (all ties)."""
        a, b, y = zip(*self._pairs)
        if np.all(to_targets(np.asarray(y, dtype=np.float32), self.recipe.targets) == 0.5):
            return False
        model, _ = self.recipe.fit(a, b, np.asarray(y, dtype=np.float32), progress=False)
        # The offline artifact's normalization, over every caption judged so far.
        artifact = build_artifact(model, list(self._seen), captioner="online", metrics={})
        self.artifact, self._reward = artifact, CachedReward(artifact, max_size=_MAX_ESTIMATES)
        self._fitted_on = len(self._pairs)
        self.stats.fits += 1
        return True

    def give_up(self, caption: str) -> None:
        """Nothing to store: the caption keeps the fitted model's estimate."""

    def check(self) -> None:
        self.labeler.label([("You see a wall.", "You see an open door.")])

    def snapshot(self) -> tuple[dict[str, float], pd.DataFrame, RewardArtifact | None]:
        seen, pairs, artifact = list(self._seen), list(self._pairs), self.artifact
        values = artifact(seen).tolist() if artifact is not None and seen else [np.nan] * len(seen)
        return (dict(zip(seen, values)), pd.DataFrame(pairs, columns=["caption_a", "caption_b", "label"]),
                artifact)
