"""The judge queue of online feedback: a background thread that labels the newest captions first.

Env stepping never waits for it: :meth:`JudgeQueue.offer` only records what is new. The worker takes the *newest*
pending captions first and forgets the oldest when more than ``max_pending`` wait: a judge slower than the env
would otherwise spend the run on a first-in-first-out backlog of early, random-policy scenes while the states the
agent reaches now (a door it just opened) wait behind them. A caption is offered at most once while pending or
after it was judged (ONI re-queued pending captions); a failed batch is retried ``max_retries`` times per caption
before it is given up; a judge that can never answer (no log-probs, a bad model spec) stops the queue for good.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Callable, Iterable

from llm_reward.llm.errors import LLMCapabilityError, LLMConfigError

log = logging.getLogger(__name__)


@dataclass
class OnlineStats:
    """Counters of one online-feedback run (``metrics.json``'s ``online_feedback``)."""

    labelled_captions: int = 0
    labelled_pairs: int = 0
    pending: int = 0
    llm_prompts: int = 0
    llm_errors: int = 0  # failed LLM batches, retried (a judge that can never answer sets judge_stopped instead)
    dropped: int = 0  # captions given up on after max_retries failures
    fits: int = 0
    fit_errors: int = 0  # refits that raised (the labels stay; the next batch tries again)
    evicted: int = 0  # oldest pending captions forgotten unjudged to keep max_pending (offered again if seen)
    judge_stopped: int = 0  # 1 once the judge failed in a way retrying cannot fix; rewards then come from what it
    # labelled so far. OnlineFeedback.check_judge() before training catches this up front.

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class JudgeQueue:
    """Pending captions (newest first, bounded) and the thread that hands them to ``label(batch)``.

    Example:
        >>> judged = []
        >>> queue = JudgeQueue(judged.extend, batch_size=2).start()
        >>> queue.offer(["a", "b", "a"]); queue.wait_idle(timeout=5)
        True
        >>> queue.offer(["a"]); queue.close(); sorted(judged)  # "a" is never asked twice
        ['a', 'b']
    """

    def __init__(self, label: Callable[[list[str]], None], *, batch_size: int = 8, max_pending: int = 2_000,
                 max_retries: int = 3, give_up: Callable[[str], None] | None = None,
                 stats: OnlineStats | None = None):
        if batch_size < 1 or max_pending < 1 or max_retries < 0:
            raise ValueError(f"need batch_size >= 1, max_pending >= 1 and max_retries >= 0, got {batch_size}, "
                             f"{max_pending}, {max_retries}")
        self.label, self.give_up = label, give_up
        self.batch_size, self.max_pending, self.max_retries = batch_size, max_pending, max_retries
        self.stats = stats or OnlineStats()
        self._lock = threading.Lock()
        self._pending: deque[str] = deque()  # newest on the right: the worker takes from there
        self._inflight: set[str] = set()  # pending or being judged
        self._done: set[str] = set()  # judged (or given up): never offered again
        self._failures: dict[str, int] = {}
        self._has_work = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopped(self) -> bool:
        """True once the judge failed for good."""
        return bool(self.stats.judge_stopped)

    def offer(self, captions: Iterable[str]) -> None:
        """Queue the captions neither pending nor judged; forget the oldest beyond ``max_pending``."""
        with self._lock:  # read under the lock the stopping worker clears the queue with
            if self.stats.judge_stopped:
                return
            new = [c for c in dict.fromkeys(captions) if c not in self._inflight and c not in self._done]
            if not new:
                return
            self._inflight.update(new)
            self._push_locked(new)

    def _push_locked(self, captions: list[str]) -> None:
        self._pending.extend(captions)
        while len(self._pending) > self.max_pending:
            self._inflight.discard(self._pending.popleft())
            self.stats.evicted += 1
        self._has_work.set()

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "JudgeQueue":
        """Start the worker (a closed one is restarted once its last batch has finished; a judge that stopped for
        good is not)."""
        if not self.stats.judge_stopped and not self.running():
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

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until nothing is pending (for tests and evaluation, never called from the RL loop)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._inflight:
                    return True
            time.sleep(0.01)
        return False

    # -- the worker -----------------------------------------------------------------------------------------------
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
                self.label(batch)
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
            else:
                with self._lock:
                    self._done.update(batch)
                    self._inflight.difference_update(batch)
            with self._lock:
                self.stats.pending = len(self._inflight)

    def _retry(self, batch: list[str]) -> None:
        for caption in batch:
            self._failures[caption] = self._failures.get(caption, 0) + 1
            if self._failures[caption] > self.max_retries:  # give up, never to ask again
                self.stats.dropped += 1
                if self.give_up is not None:
                    self.give_up(caption)
                with self._lock:
                    self._done.add(caption)
                    self._inflight.discard(caption)
            else:
                with self._lock:
                    self._push_locked([caption])
