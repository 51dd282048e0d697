"""ONI-style online feedback: captions seen during RL are judged by an LLM in a background thread.

Env stepping never waits for the LLM: the reward function answers from what is labelled so far (0, or the current
reward-model estimate, for captions still pending) and queues what is new. The judge takes the *newest* pending
captions first and forgets the oldest when more than ``max_pending`` wait: a judge slower than the env would
otherwise spend the run on a first-in-first-out backlog of early, random-policy scenes while the states the agent
reaches now (a door it just opened) wait behind them. Two variants (ONI, Zheng et al., 2024):

* ``retrieval`` — each new caption is judged alone (P(it shows progress)); the label is the reward, looked up.
* ``ranking`` — each new caption is paired with earlier ones and the pairs are labelled (``pair_mode``: pointwise
  by default, or ``"rlaif"`` pairwise in both orders); a Bradley–Terry reward model is refit on a geometric
  schedule (often while labels are few, then rarely) and generalizes to captions not judged yet.

Use it as the ``reward_model`` of :class:`llm_reward.LLMRewardVecEnv`; ``cacheable = False`` tells the wrapper not
to freeze the first answer for a caption, since answers improve as labels arrive.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from llm_reward.feedback.labelers import LLMPreferenceLabeler
from llm_reward.feedback.prompts import CaptionPrompt, PairPrompt
from llm_reward.llm.base import LLM
from llm_reward.llm.errors import LLMCapabilityError, LLMConfigError

log = logging.getLogger(__name__)
_MAX_MEMO = 50_000  # model estimates kept per refit
Variant = Literal["retrieval", "ranking"]


@dataclass
class OnlineStats:
    labelled_captions: int = 0
    labelled_pairs: int = 0
    pending: int = 0
    llm_prompts: int = 0
    llm_errors: int = 0  # failed LLM batches, retried (a judge that can never answer sets judge_stopped instead)
    dropped: int = 0  # captions given up on after max_retries failures
    fits: int = 0
    fit_errors: int = 0  # refits that raised (the labels stay; the next batch tries again)
    evicted: int = 0  # oldest pending captions forgotten unjudged to keep max_pending (offered again if seen)
    judge_stopped: int = 0  # 1 once the judge failed in a way retrying cannot fix (no log-probs, a bad model
    # spec); rewards then come from what it labelled so far. check_judge() before training catches this up front.

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class OnlineFeedback:
    """A non-blocking caption reward backed by an LLM judge working in a background thread.

    Example:
        >>> from llm_reward import LLMRewardVecEnv
        >>> from llm_reward.llm import make_llm
        >>> feedback = OnlineFeedback(make_llm("local"), domain="minigrid", goal="The goal is to open the door.")
        >>> venv = LLMRewardVecEnv(venv, reward_model=feedback, threshold_quantile=None)  # doctest: +SKIP
        >>> with feedback: model.learn(100_000)  # doctest: +SKIP
    """

    cacheable = False

    def __init__(self, llm: LLM, *, domain: str, goal: str | None, variant: Variant = "retrieval",
                 batch_size: int = 8, pairs_per_caption: int = 2, default_reward: float = 0.0,
                 min_pairs_to_fit: int = 32, refit_growth: float = 1.5, encoder: str = "char_cnn",
                 encoder_kwargs: Mapping[str, Any] | None = None, epochs: int = 30, targets: str = "hard",
                 max_retries: int = 3, max_pending: int = 2_000, seed: int = 0, pair_mode: str = "pointwise"):
        from llm_reward.motif.stages import to_targets

        to_targets(np.zeros(0), targets)  # validates
        if variant not in ("retrieval", "ranking"):
            raise ValueError(f"variant must be 'retrieval' or 'ranking', got {variant!r}")
        if batch_size < 1 or pairs_per_caption < 1 or min_pairs_to_fit < 2 or refit_growth <= 1.0 or max_pending < 1:
            raise ValueError("need batch_size >= 1, pairs_per_caption >= 1, min_pairs_to_fit >= 2, refit_growth > 1, "
                             "max_pending >= 1")
        self.llm, self.variant = llm, variant
        self.caption_prompt = CaptionPrompt(domain, goal)
        self.pair_labeler = LLMPreferenceLabeler(llm, PairPrompt(domain, goal, chain_of_thought=False), mode=pair_mode)
        self.batch_size, self.pairs_per_caption, self.default_reward = batch_size, pairs_per_caption, default_reward
        self.min_pairs_to_fit, self.refit_growth = min_pairs_to_fit, refit_growth
        if variant == "ranking":  # only ranking fits a model: bad hyper-parameters fail here, not in the worker
            from llm_reward.reward_model import make_encoder

            make_encoder(encoder, **dict(encoder_kwargs or {}))
        self.encoder, self.encoder_kwargs = encoder, dict(encoder_kwargs or {})
        self.epochs, self.targets, self.max_retries = epochs, targets, max_retries
        self.stats = OnlineStats()
        self._rng = random.Random(seed)
        self._seed = seed
        self._table: dict[str, float] = {}  # caption -> reward (labels, or model estimates in ranking mode)
        self._inflight: set[str] = set()
        self._failures: dict[str, int] = {}
        self._pairs: list[tuple[str, str, float]] = []
        self._seen: list[str] = []  # judged captions, partners for new pairs
        self._judged: set[str] = set()  # ranking: judged before any model exists, so not in _table yet
        self._model: Any = None
        self._fitted_on = 0
        self._lock = threading.Lock()
        self._pending: deque[str] = deque()  # newest on the right: the worker takes from there
        self.max_pending = max_pending
        self._has_work = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the reward function (learner thread) --------------------------------------------------------------------
    def __call__(self, captions: Sequence[str]) -> np.ndarray:
        """Current rewards; unseen captions are queued for judging and get the default (or model estimate)."""
        if self._thread is None or not self._thread.is_alive():
            self.start()
        out = np.empty(len(captions), dtype=np.float32)
        new: list[str] = []
        missing: list[int] = []
        with self._lock:
            asking = not self.stats.judge_stopped  # read under the lock the stopping worker clears the queue with
            for i, caption in enumerate(captions):
                value = self._table.get(caption)
                if value is None:
                    missing.append(i)
                    if asking and caption not in self._inflight and caption not in self._judged:
                        self._inflight.add(caption)
                        new.append(caption)
                    value = self.default_reward
                out[i] = value
            if new:
                self._enqueue_locked(new)
        # Every caption not judged yet gets the current model's estimate, call after call: a potential that jumped
        # between the default and the estimate for the same caption would pay for nothing.
        if self._model is not None and missing:
            out[missing] = self._estimate([captions[i] for i in missing])
        return out

    def _enqueue_locked(self, captions: list[str]) -> None:
        """Add to the pending set (lock held), forgetting the oldest beyond ``max_pending``."""
        self._pending.extend(captions)
        while len(self._pending) > self.max_pending:
            self._inflight.discard(self._pending.popleft())
            self.stats.evicted += 1
        self._has_work.set()

    def _estimate(self, captions: list[str]) -> np.ndarray:
        """The current model's normalized estimates, memoized until the next refit: the same unjudged captions are
        asked for at every env step, and scoring them afresh each time dominated training on long captions."""
        model, mean, std, memo = self._model
        values = [memo.get(c) for c in captions]
        todo = list(dict.fromkeys(c for c, v in zip(captions, values) if v is None))
        fresh: dict[str, float] = {}
        if todo:
            fresh = dict(zip(todo, ((model(todo) - mean) / std).astype(np.float32).tolist()))
            if len(memo) > _MAX_MEMO:  # bounded: a long run sees far more distinct scenes than fit in memory
                memo.clear()
            memo.update(fresh)
        return np.array([fresh[c] if v is None else v for c, v in zip(captions, values)], dtype=np.float32)

    def check_judge(self) -> None:
        """Ask the judge one question the way the worker will, in this thread: a judge that can never label (no
        log-probs, a bad model spec or key, an unreachable server) raises here, before training, instead of
        stopping the worker. The result cache is bypassed: a cached answer proves nothing about the judge now."""
        cache, self.llm.cache = self.llm.cache, None
        try:
            if self.variant == "retrieval":
                self.llm.choice_probs_batch([self.caption_prompt.rlaif("You see a wall.")], ["1", "2"])
            else:
                self.pair_labeler.label([("You see a wall.", "You see an open door.")])
        finally:
            self.llm.cache = cache

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def start(self) -> "OnlineFeedback":
        """Start the judge thread (a closed one is restarted once its last batch has finished; a judge that
        stopped for good is not)."""
        if not self.stats.judge_stopped and (self._thread is None or not self._thread.is_alive()):
            # Each worker has its own stop event: a closed worker still finishing a slow batch stays stopped.
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._work, args=(self._stop,), name="llm-reward-online",
                                            daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> "OnlineFeedback":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until nothing is pending (for tests and evaluation, never called from the RL loop)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._inflight:
                    return True
            time.sleep(0.01)
        return False

    def save(self, directory: str | os.PathLike, *, captioner: str | None = None) -> Path:
        """Write what was learned so far to ``directory``: ``captions.parquet`` (caption, current reward),
        ``pairs.parquet`` (ranking: the judged pairs) and, once a model is fitted and ``captioner`` is given, a
        reloadable frozen reward under ``reward_model/`` (:class:`~llm_reward.reward_model.RewardArtifact`).

        The frozen reward is normalized afresh over every judged caption with its threshold table, as an offline
        artifact is; the agent was paid with the last refit's normalization, so the two differ slightly."""
        import pandas as pd

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            table, pairs, seen, model = dict(self._table), list(self._pairs), list(self._seen), self._model
        pd.DataFrame({"caption": list(table), "reward": list(table.values())}).to_parquet(
            directory / "captions.parquet", index=False)
        if self.variant == "ranking":
            pd.DataFrame(pairs, columns=["caption_a", "caption_b", "label"]).to_parquet(
                directory / "pairs.parquet", index=False)
        if model is not None and captioner is not None:
            from llm_reward.reward_model import build_artifact

            artifact = build_artifact(model[0], seen, captioner=captioner,
                                      metrics={"online": self.stats.as_dict(), "pairs": len(pairs)})
            artifact.save(directory / "reward_model")
        return directory

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("OnlineFeedback owns a thread and lives in the learner process; wrap the VecEnv with it "
                        "(LLMRewardVecEnv) instead of pickling it into SubprocVecEnv workers")

    # -- the worker (background thread) --------------------------------------------------------------------------
    def _next_batch(self) -> list[str]:
        """Up to ``batch_size`` of the newest pending captions ([] after a short wait when there are none)."""
        self._has_work.wait(timeout=0.05)
        with self._lock:
            batch = [self._pending.pop() for _ in range(min(self.batch_size, len(self._pending)))]
            if not self._pending:
                self._has_work.clear()
        return batch

    def _work(self, stop: threading.Event) -> None:
        while not stop.is_set():
            batch = self._next_batch()
            if not batch:
                continue
            try:
                self._label(batch)
            except (LLMCapabilityError, LLMConfigError) as err:  # retrying cannot help; training goes on
                log.error("online feedback: the judge cannot label (%s: %s); training continues on the %d captions "
                          "labelled so far", type(err).__name__, err, self.stats.labelled_captions)
                with self._lock:
                    self.stats.judge_stopped = 1
                    self._inflight.clear()
                    self._pending.clear()
                    self.stats.pending = 0
                return
            except Exception as err:  # a flaky judge must never take training down: retry, count, move on
                self.stats.llm_errors += 1
                log.warning("online feedback: LLM batch failed (%s: %s); retrying", type(err).__name__, err)
                self._retry(batch)
                time.sleep(min(2.0 ** self.stats.llm_errors, 30.0) * 0.05)
            with self._lock:
                self.stats.pending = len(self._inflight)

    def _retry(self, batch: list[str]) -> None:
        for caption in batch:
            self._failures[caption] = self._failures.get(caption, 0) + 1
            if self._failures[caption] > self.max_retries:
                self.stats.dropped += 1
                with self._lock:  # give up, never to ask again: retrieval stores a neutral label; ranking leaves
                    if self.variant == "retrieval":  # the caption to the fitted model's estimate
                        self._table[caption] = self.default_reward
                    else:
                        self._judged.add(caption)
                    self._inflight.discard(caption)
            else:
                with self._lock:
                    self._enqueue_locked([caption])

    def _label(self, batch: list[str]) -> None:
        if self.variant == "retrieval":
            probs = self.llm.choice_probs_batch([self.caption_prompt.rlaif(c) for c in batch], ["1", "2"])
            self.stats.llm_prompts += len(batch)
            with self._lock:
                for caption, p in zip(batch, probs):
                    self._table[caption] = float(p["1"])
                    self._inflight.discard(caption)
                self.stats.labelled_captions = len(self._table)
            return
        partners = self._seen or batch
        pairs = [(c, self._rng.choice(partners)) for c in batch for _ in range(self.pairs_per_caption)]
        pairs = [(a, b) for a, b in pairs if a != b] or [(batch[0], batch[-1])]
        labels = self.pair_labeler.label(pairs)
        self.stats.llm_prompts += labels.llm_prompts
        self._pairs += [(a, b, float(y)) for (a, b), y in zip(pairs, labels.label) if not np.isnan(y)]
        self._seen += batch
        self._judged.update(batch)
        self.stats.labelled_pairs = len(self._pairs)
        refit = False
        if len(self._pairs) >= max(self.min_pairs_to_fit, self.refit_growth * self._fitted_on):
            try:
                refit = self._refit()
            except Exception as err:  # the labels are kept: raising would have the batch judged again
                self.stats.fit_errors += 1
                log.warning("online feedback: reward-model refit failed (%s: %s)", type(err).__name__, err)
        # A refit has already re-scored every judged caption; otherwise only this batch needs the model's estimate
        # (scored outside the lock: env stepping must not wait for the model).
        values = self._estimate(batch) if self._model is not None and not refit else []
        with self._lock:
            self._table.update(zip(batch, map(float, values)))
            for caption in batch:
                self._inflight.discard(caption)
            self.stats.labelled_captions = len(self._seen)

    def _refit(self) -> bool:
        """Refit the reward model on all pairs so far; False when there is nothing to learn yet (all ties)."""
        from llm_reward.motif.stages import to_targets
        from llm_reward.reward_model import fit_reward_model

        a, b, y = zip(*self._pairs)
        labels = to_targets(np.asarray(y, dtype=np.float32), self.targets)
        if np.all(labels == 0.5):
            return False
        model, _ = fit_reward_model(list(a), list(b), labels, encoder=self.encoder, epochs=self.epochs,
                                    seed=self._seed, progress=False, encoder_kwargs=self.encoder_kwargs)
        raw = model(self._seen)
        mean, std = float(raw.mean()), float(raw.std() + 1e-6)
        table = dict(zip(self._seen, ((raw - mean) / std).astype(np.float32).tolist()))
        with self._lock:  # the new model and its table together: no step sees one model's values beside the other's
            self._model = (model, mean, std, {})  # a fresh estimate memo for the new model
            self._table.update(table)
        self._fitted_on = len(self._pairs)
        self.stats.fits += 1
        return True
