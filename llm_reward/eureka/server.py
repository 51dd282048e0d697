"""The reward-server protocol: the only way reward code runs. A jailed worker evaluates ``compute_reward`` on
batches this process sends; every reply is checked here before a number is used.

Checks on every batch, at run time as much as in the smoke test: the reply is one binary frame for exactly the
batch sent; every total and component is finite and within +-``MAX_ABS_REWARD``; the component names are the
same on every call and contain no control characters; and the worker's CPU time, counted by the kernel (not
reported by the worker), stays within ``cpu_s_per_call`` per transition plus a small allowance, over all calls so
far and in every batch (so fast calls bank no budget for one long call).

    >>> server = RewardServer("def compute_reward(o, a, n, i):\\n    return 1.0, {'alive': 1.0}")  # doctest: +SKIP
    >>> server.rewards(np.zeros((2, 3)), np.zeros((2, 1)), np.zeros((2, 3)), [{}, {}])  # doctest: +SKIP
    (array([1., 1.]), {'alive': array([1., 1.])})
    >>> server.close()  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import os
import select
import tempfile
import time
from typing import Any, Sequence

import numpy as np

from llm_reward.eureka import channel
from llm_reward.eureka.batch import encode_request
from llm_reward.eureka.channel import ChannelError
from llm_reward.eureka.context import ALWAYS_HIDDEN
from llm_reward.eureka.extract import info_keys_used
from llm_reward.eureka.guard import plain_info
from llm_reward.eureka.jail import check_isolation
from llm_reward.eureka.sandbox import CLEANUP_S, SandboxLimits, remove_tree, spawn_worker

#: Default CPU budget of one ``compute_reward`` call (a typical one takes 5-50 microseconds).
CPU_S_PER_CALL = 0.005
#: CPU the worker may spend beyond the per-call budget (first-call warm-ups, request decoding).
CPU_SLACK_S = 2.0
#: CPU one batch may spend beyond its calls' budget (a first call's warm-up, the kernel's 10 ms accounting ticks,
#: batches in flight). Checked on every batch, so fast calls cannot bank budget for one long call.
BATCH_CPU_SLACK_S = 0.5
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


class CodeRewardError(RuntimeError):
    """The reward code failed on a request (raised in the caller's process with the worker's one-line reason)."""


class RewardServer:
    """A long-lived jailed worker that evaluates ``compute_reward`` on batches sent by this process.

    Requests are encoded by us (trusted, :mod:`~llm_reward.eureka.batch`: raw array bytes behind a cached layout,
    a pickle for anything else); each reply is one typed binary frame of float64 (or a JSON error frame), checked
    here for its batch size, names and values before any number is used. ``limits``
    (:class:`~llm_reward.eureka.sandbox.SandboxLimits`) sets the worker's memory, private tmpfs size and
    ``isolation``; ``memory_mb`` is kept as a shortcut.
    """

    def __init__(self, code: str, *, hidden_info_keys: Sequence[str] = ALWAYS_HIDDEN, call_timeout_s: float = 10.0,
                 startup_timeout_s: float = 60.0, memory_mb: int = 2048, limits: SandboxLimits | None = None,
                 cpu_s_per_call: float = CPU_S_PER_CALL, _inner_layers: bool = True, _jailed: bool | None = None):
        if not cpu_s_per_call > 0:
            raise ValueError(f"reward.cpu_s_per_call must be > 0, got {cpu_s_per_call}")
        self.code, self.call_timeout_s, self.cpu_s_per_call = code, call_timeout_s, cpu_s_per_call
        self.hidden = frozenset(hidden_info_keys)
        self.info_keys = info_keys_used(code)  # send only what the code reads (None: all of it)
        self.names: tuple[str, ...] | None = None
        self._pending: collections.deque[int] = collections.deque()
        self._calls = 0
        self._worker = None
        self.pid: int | None = None  # of the process that runs the code, as this process sees it
        limits = limits or SandboxLimits(memory_mb=memory_mb)
        limits = SandboxLimits(timeout_s=startup_timeout_s, memory_mb=limits.memory_mb, cpu_seconds=10 ** 7,
                               max_file_mb=limits.max_file_mb, writable_mb=limits.writable_mb,
                               isolation=limits.isolation)
        jailed = check_isolation(limits.isolation) if _jailed is None else _jailed
        self._dir = tempfile.mkdtemp(prefix="eureka-serve-")
        request_read, self._requests = os.pipe()
        os.set_blocking(self._requests, False)
        try:
            self._worker = spawn_worker({"mode": "serve", "code": code, "inner_layers": bool(_inner_layers)},
                                        limits, self._dir, jailed=jailed, extra_fds=(request_read,),
                                        extra_args=("--requests", str(request_read)))
        except BaseException:
            os.close(self._requests)
            remove_tree(self._dir, time.monotonic() + CLEANUP_S)
            raise
        finally:
            os.close(request_read)
        self._stat_fd: int | None = None
        self._clock: int | None = None
        self._cpu_at_ready = self._cpu_at_reply = 0.0
        frame = self._next(time.monotonic() + startup_timeout_s)
        if frame["type"] != "ready":
            reason = channel.reason_text(frame.get("reason"))
            self.close()
            raise CodeRewardError(f"the reward worker did not start: {reason}")
        self.pid = self._worker.code_pid
        if self.pid is not None:
            self._clock = _cpu_clock(self.pid)
            self._stat_fd = _open_stat(self.pid) if self._clock is None else None
        self._cpu_at_ready = self._cpu_at_reply = self._cpu_seconds()

    def _fail(self, reason: str) -> CodeRewardError:
        self.close()
        return CodeRewardError(reason)

    def _next(self, deadline: float) -> dict[str, Any]:
        body = self._next_body(deadline)
        try:
            return channel.decode_payload(body)
        except ChannelError as exc:
            raise self._fail(f"reward worker: {exc}") from None

    def _next_body(self, deadline: float) -> bytes:
        if self._worker is None:
            raise CodeRewardError("the reward worker is closed")
        try:
            body = self._worker.reader.read_body(deadline)
        except ChannelError as exc:
            raise self._fail(f"reward worker: {exc}") from None
        if body is None:
            lines = self._worker.log_tail(2000).strip().splitlines()
            tail = channel.reason_text(lines[-1] if lines else "no output")
            raise self._fail(f"the reward worker exited (CPU, memory or process limit): {tail}")
        return body

    def send(self, obs: Any, actions: Any, next_obs: Any, infos: Sequence[dict]) -> None:
        """Queue a batch of ``n`` transitions without waiting; :meth:`receive` returns the replies in order.

        Hidden info keys are dropped here: they never reach the worker.
        """
        if self._worker is None:
            raise CodeRewardError("the reward worker is closed")
        if self.info_keys is None:
            shown = [plain_info(info, self.hidden) for info in infos]
        elif self.info_keys:
            shown = [plain_info({k: info[k] for k in self.info_keys if k in info}, self.hidden) for info in infos]
        else:
            shown = None  # the code reads no info key: nothing to filter or send
        request = encode_request(obs, actions, next_obs, shown)
        try:
            written = os.write(self._requests, request)  # the usual case: the pipe takes it all at once
        except BlockingIOError:
            written = 0
        except (BrokenPipeError, OSError):
            raise self._fail("the reward worker is gone") from None
        if written < len(request):
            self._send_rest(memoryview(request)[written:])
        self._pending.append(len(actions))

    def _send_rest(self, request: memoryview) -> None:
        deadline = None
        try:
            while request:  # non-blocking: a worker that stops reading cannot hang this process
                try:
                    request = request[os.write(self._requests, request):]
                except BlockingIOError:
                    if deadline is None:
                        deadline = time.monotonic() + self.call_timeout_s
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not select.select([], [self._requests], [], remaining)[1]:
                        raise self._fail("timed out sending a batch (the reward worker stopped reading)") from None
        except (BrokenPipeError, OSError, TypeError):
            raise self._fail("the reward worker is gone") from None

    def receive(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Totals ``(n,)`` and components ``{name: (n,)}`` of the oldest batch sent; a failure closes the worker."""
        names, values = self.receive_table()
        values = values.copy()  # writable arrays of its own for the caller (the table is a view of the frame)
        return values[0], dict(zip(names, values[1:]))

    def receive_table(self) -> tuple[tuple[str, ...], np.ndarray]:
        """:meth:`receive` as the frame holds it: component names and a read-only ``(1 + k, n)`` array whose
        row 0 is the totals and row ``1 + j`` component ``names[j]``."""
        n = self._pending.popleft()
        body = self._next_body(time.monotonic() + self.call_timeout_s)
        try:
            if body.startswith(channel.REWARDS_TAG):
                names, values = channel.decode_rewards(body, n)
            else:
                frame = channel.decode_payload(body)
                if frame["type"] == "error":
                    raise self._fail(channel.reason_text(frame.get("reason")))
                raise ChannelError(f"unexpected {frame['type'][:40]!r} frame instead of rewards")
        except ChannelError as exc:
            raise self._fail(f"reward worker: {exc}") from None
        if self.names is None:
            self.names = names
        elif names != self.names:
            raise self._fail(f"compute_reward changed its component names from {list(self.names)} to {list(names)}")
        self._calls += n
        self.check_cpu(n)
        return names, values

    def check_cpu(self, batch: int = 0) -> None:
        """CodeRewardError (and the worker closed) if the code used more CPU than its budget: for the calls so far,
        and for the ``batch`` calls answered since the last check (one ``clock_gettime``, a fraction of a
        microsecond)."""
        cpu = self._cpu_seconds()
        spent, self._cpu_at_reply = cpu - self._cpu_at_reply, cpu
        used = cpu - self._cpu_at_ready
        if spent > BATCH_CPU_SLACK_S + self.cpu_s_per_call * batch:
            raise self._fail(f"the reward code used {spent:.2f} s of CPU for a batch of {batch} calls; "
                             f"{self._budget()}")
        if used > CPU_SLACK_S + self.cpu_s_per_call * self._calls:
            raise self._fail(f"the reward code used {used:.2f} s of CPU for {self._calls} calls; {self._budget()}")

    def _budget(self) -> str:
        return f"the budget is {self.cpu_s_per_call * 1000:g} ms per call (reward.cpu_s_per_call)"

    def _cpu_seconds(self) -> float:
        """User + system CPU of the worker (all its threads), as the kernel counts it: the process's CPU-time
        clock (nanoseconds), else the ticks in ``/proc/<pid>/stat``."""
        if self._clock is not None:
            try:
                return time.clock_gettime(self._clock)
            except OSError:  # the worker is gone (its reply channel says why)
                return self._cpu_at_reply
        if self._stat_fd is None:
            return 0.0
        try:
            fields = os.pread(self._stat_fd, 1024, 0).rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S  # stat fields 14 and 15: utime, stime

    def rewards(self, obs: Any, actions: Any, next_obs: Any,
                infos: Sequence[dict]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Totals ``(n,)`` and components ``{name: (n,)}`` for a batch of ``n`` transitions."""
        self.send(obs, actions, next_obs, infos)
        return self.receive()

    def close(self) -> None:
        """Stop the worker and remove its directory (bounded in time; safe to call twice)."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        for fd in (self._requests, self._stat_fd):
            try:
                if fd is not None:
                    os.close(fd)
            except OSError:
                pass
        self._stat_fd = None
        worker.close(grace_s=1.0)
        remove_tree(self._dir, time.monotonic() + CLEANUP_S)

    def __del__(self) -> None:
        if getattr(self, "_worker", None) is not None:
            self.close()


def _cpu_clock(pid: int) -> int | None:
    """The clock id of ``pid``'s process CPU-time clock (``clock_getcpuclockid(3)``: all its threads, counted by the
    kernel in nanoseconds), or ``None`` where the kernel does not let this process read it."""
    clock = ((~pid) << 3) | 2  # Linux's MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)
    try:
        time.clock_gettime(clock)
    except (OSError, OverflowError):
        return None
    return clock


def _open_stat(pid: int) -> int | None:
    try:
        return os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
