"""Where candidates train: one interface, a bounded local pool by default and Ray for a cluster.

Each task is :func:`llm_reward.eureka.candidate.evaluate_candidate` on a ``CandidateJob`` (a typed record that
pickles, for Ray); it starts its own sandbox worker, so a local "worker" is a thread that waits on a child process
(the GIL is not the bottleneck) and a Ray task is the same call on whichever node Ray picks.

    >>> with make_executor("local", workers=2) as pool:  # doctest: +SKIP
    ...     future = pool.submit(evaluate_candidate, job)
    ...     result = future.result()
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib.util
from typing import Any, Callable, Protocol

EXECUTORS = ("local", "ray")


class ExecutorError(ValueError):
    """A bad ``search.executor`` choice (unknown, or Ray requested without the ``ray`` extra)."""


class Executor(Protocol):
    """``submit(fn, *args) -> concurrent.futures.Future`` and ``shutdown(cancel=...)``; usable as a context manager."""

    workers: int

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future: ...

    def shutdown(self, cancel: bool = False) -> None: ...


class _ContextManager:
    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown(cancel=exc[0] is not None)


class LocalExecutor(_ContextManager):
    """At most ``workers`` candidates at once on this machine."""

    def __init__(self, workers: int = 2):
        if int(workers) < 1:
            raise ExecutorError(f"search.workers must be >= 1, got {workers}")
        self.workers = int(workers)
        self._pool = cf.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="eureka-candidate")

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        return self._pool.submit(fn, *args)

    def shutdown(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)


class RayExecutor(_ContextManager):
    """Candidates as Ray tasks (one CPU each). ``address=None`` starts a local instance with ``num_cpus=workers``;
    ``address="auto"`` or ``"ray://host:10001"`` joins a cluster."""

    def __init__(self, workers: int = 2, address: str | None = None):
        import ray

        if int(workers) < 1:
            raise ExecutorError(f"search.workers must be >= 1, got {workers}")
        self.workers = int(workers)
        self._ray = ray
        self._started_here = not ray.is_initialized()
        if self._started_here:
            kwargs: dict[str, Any] = {"address": address} if address else {"num_cpus": self.workers}
            ray.init(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True, **kwargs)
        self._remote: dict[Callable, Any] = {}

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = self._ray.remote(num_cpus=1, max_retries=0)(fn)
        return remote.remote(*args).future()

    def shutdown(self, cancel: bool = False) -> None:
        if self._started_here and self._ray.is_initialized():
            self._ray.shutdown()


def check_executor(kind: str) -> None:
    """ExecutorError now (before any LLM call or training) for an unknown kind or a missing Ray."""
    if kind not in EXECUTORS:
        raise ExecutorError(f"search.executor must be one of {EXECUTORS}, got {kind!r}")
    if kind == "ray" and importlib.util.find_spec("ray") is None:
        raise ExecutorError("search.executor=ray needs Ray: pip install 'llm_reward[ray]' (or pip install ray)")


def make_executor(kind: str = "local", *, workers: int = 2, address: str | None = None) -> Executor:
    """``"local"`` (default) or ``"ray"`` with at most ``workers`` candidates training at once."""
    check_executor(kind)
    if kind == "ray":
        return RayExecutor(workers, address=address)
    return LocalExecutor(workers)
