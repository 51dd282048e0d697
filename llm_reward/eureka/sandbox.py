"""Start sandbox processes, bound everything they can make the caller wait for, and read back only checked numbers.

Two kinds of child process, both ``python -I`` on this package:

- a **reward server** (``mode="serve"``, :class:`llm_reward.eureka.server.RewardServer`) is the only process that
  ever runs reward code. It starts inside the OS jail (:mod:`llm_reward.eureka.jail`: bubblewrap namespaces and
  read-only mounts, a private size-capped tmpfs, no privileges, seccomp, death with its parent), then loads the
  code behind the allow-list, restricted builtins and an audit hook (:mod:`llm_reward.eureka.guard`), and answers
  batches of transitions with binary frames of float64 that the library checks (finite, bounded, fixed names,
  CPU per call measured by the kernel);
- a **runner** (``mode="smoke"`` or ``"train"``, :func:`run_job`) is trusted code: it steps the env, trains the
  agent and computes every statistic, asking its own reward server for the code's rewards. Hidden info keys are
  filtered out before a request is written, so they never enter the code's process.

The caller cannot be hung through a child: frames are read with a deadline and a size cap, the log is read
through a descriptor the caller opened (a regular file, never followed, bounded), the caller's directory is
removed without recursion, and the whole job, cleanup included, has a deadline.

    >>> result = run_job({"mode": "smoke", "env_id": "CartPole-v1", "seed": 0, "n_steps": 20,
    ...                   "code": "def compute_reward(o, a, n, i):\\n    return 1.0, {'alive': 1.0}"})  # doctest: +SKIP
    >>> result.ok, result.result["components"]["alive"]  # doctest: +SKIP
    (True, [1.0, 1.0, 1.0])
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from llm_reward.eureka import channel
from llm_reward.eureka.channel import ChannelError, FrameReader
from llm_reward.eureka.frames import ErrorFrame, ProgressFrame, SmokeResult, TrainResult, parse_frame
from llm_reward.eureka.jail import (JAIL_TMP, NOBODY, check_isolation, default_isolation, jail_command,
                                   jailed_child, package_root)

log = logging.getLogger(__name__)

WORKER_MODULE = "llm_reward.eureka.worker"
LOG_TAIL_BYTES = 64 * 1024
CLEANUP_S = 10.0  # the part of a job's deadline kept for stopping the worker and removing its directory
_LIVE: set[subprocess.Popen] = set()  # running children, so an interrupted search can stop them all
_LIVE_LOCK = threading.Lock()
_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "LD_LIBRARY_PATH", "MUJOCO_GL", "PYOPENGL_PLATFORM")


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one sandbox process. ``cpu_seconds`` defaults to the wall-clock timeout plus a margin.

    ``isolation`` is ``"os"`` (the jail; an error where it cannot start) or ``"process"`` (the user accepts a
    weaker sandbox without namespaces; warned on every run); the default comes from ``LLM_REWARD_SANDBOX_ISOLATION``
    or is ``"os"``. ``writable_mb`` caps the private tmpfs, the only place reward code can write.

    >>> SandboxLimits(timeout_s=30).cpu_limit
    35
    """

    timeout_s: float = 60.0
    memory_mb: int = 6144
    max_file_mb: int = 64
    cpu_seconds: int | None = None
    writable_mb: int = 64
    isolation: str = field(default_factory=default_isolation)

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"sandbox.timeout_s must be > 0, got {self.timeout_s}")
        if self.memory_mb < 512:
            raise ValueError(f"sandbox.memory_mb must be >= 512 (the worker imports torch), got {self.memory_mb}")
        if self.max_file_mb < 1:
            raise ValueError(f"sandbox.max_file_mb must be >= 1, got {self.max_file_mb}")
        if self.writable_mb < 1:
            raise ValueError(f"sandbox.writable_mb must be >= 1, got {self.writable_mb}")
        if self.isolation not in ("os", "process"):
            raise ValueError(f"sandbox.isolation must be 'os' or 'process', got {self.isolation!r}")

    @property
    def cpu_limit(self) -> int:
        return int(self.cpu_seconds if self.cpu_seconds is not None else self.timeout_s + 5)

    def as_job(self) -> dict[str, Any]:
        """The limits as the JSON a child reads."""
        return {"cpu_seconds": self.cpu_limit, "memory_mb": self.memory_mb, "max_file_mb": self.max_file_mb,
                "writable_mb": self.writable_mb, "isolation": self.isolation, "timeout_s": self.timeout_s}


@dataclass
class SandboxResult:
    """What came back: ``ok`` with the final ``result`` frame, or a one-line ``reason``."""

    ok: bool
    reason: str = ""
    result: SmokeResult | TrainResult | None = None
    progress: list[ProgressFrame] = field(default_factory=list)
    elapsed_s: float = 0.0
    killed: bool = False
    log_tail: str = ""
    pid: int | None = None  # the child's pid, which is also its session and process-group id


def scrubbed_environment(home: str) -> dict[str, str]:
    """A fresh environment: a few locale/path variables, single-threaded math, home and tmp at ``home``."""
    env = {key: os.environ[key] for key in _ENV_KEEP if key in os.environ}
    env.update({"HOME": home, "TMPDIR": home, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "OPENBLAS_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"})
    return env


@dataclass
class WorkerProcess:
    """A started child: its process, the channel it reports on, the log the caller opened for it."""

    proc: subprocess.Popen
    reader: FrameReader
    log_fd: int
    directory: str
    init_pid: int | None = None  # bubblewrap's init in the jail (PID 1 there); None when not jailed
    pidfd: int | None = None  # a handle on that init: killing it ends everything in the jail
    closed: bool = False

    @property
    def code_pid(self) -> int | None:
        """The pid of the interpreter that runs the code (whose CPU time the kernel counts), once it runs."""
        return self.proc.pid if self.init_pid is None else jailed_child(self.init_pid)

    def log_tail(self, max_bytes: int = LOG_TAIL_BYTES) -> str:
        return read_log_tail(self.log_fd, max_bytes)

    def close(self, grace_s: float = 2.0) -> bool:
        """Stop the process (SIGKILL to its group after ``grace_s``), close the descriptors; True if killed."""
        if self.closed:
            return False
        killed = end_worker(self.proc, grace_s=grace_s)
        if self.pidfd is not None:
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except OSError:
                pass  # already gone
        for fd in (self.reader.fd, self.log_fd, self.pidfd):
            if fd is None:
                continue
            try:
                os.close(fd)
            except OSError:
                pass
        self.closed = True
        return killed


def _bootstrap() -> str:
    """``python -I -c`` program that imports the worker from this very package (``-I`` ignores PYTHONPATH)."""
    return (f"import sys; sys.path.insert(0, {package_root()!r}); "
            f"from {WORKER_MODULE} import main; main()")


def spawn_worker(job: dict[str, Any], limits: SandboxLimits, directory: str, *, jailed: bool = False,
                 extra_fds: tuple[int, ...] = (), extra_args: tuple[str, ...] = ()) -> WorkerProcess:
    """Start a child on ``job``; the caller owns the returned process (``close()`` it).

    ``directory`` is the caller's private directory: it holds the log the caller opens here. A ``jailed`` child
    runs under bubblewrap with a private tmpfs; an unjailed reward server (isolation ``"process"``) writes in
    ``directory/work``.
    """
    read_fd, write_fd = os.pipe()
    info_read, info_write = os.pipe() if jailed else (None, None)
    log_fd = os.open(os.path.join(directory, "worker.log"),
                     os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    home = directory
    if jailed:
        home = JAIL_TMP
    elif job.get("mode") == "serve":
        home = os.path.join(directory, "work")
        os.mkdir(home, 0o700)
        if os.getuid() == 0:  # the server drops to nobody before it loads the code
            os.chmod(directory, 0o711)
            os.chown(home, NOBODY, NOBODY)
    job = {**job, "work_dir": home, "parent_pid": os.getpid(), "jailed": jailed, "limits": limits.as_job()}
    argv = [sys.executable, "-I", "-c", _bootstrap(), "--channel", str(write_fd), *extra_args]
    fds = (write_fd, *extra_fds)
    if jailed:
        argv = jail_command(argv, writable_mb=limits.writable_mb, info_fd=info_write)
        fds = (*fds, info_write)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log_fd, stderr=log_fd, cwd=home if not jailed
                                else directory, env=scrubbed_environment(home), pass_fds=fds, start_new_session=True)
    except BaseException:
        for fd in (read_fd, log_fd, info_read):
            if fd is not None:
                os.close(fd)
        raise
    finally:
        for fd in (write_fd, info_write):
            if fd is not None:
                os.close(fd)
    with _LIVE_LOCK:
        _LIVE.add(proc)
    try:
        proc.stdin.write(json.dumps(job).encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    init_pid = pidfd = None
    if info_read is not None:
        init_pid = _jailed_pid(info_read, time.monotonic() + limits.timeout_s)
        if init_pid is not None:
            try:
                pidfd = os.pidfd_open(init_pid)
            except OSError:
                pidfd = None
    return WorkerProcess(proc, FrameReader(read_fd), log_fd, directory, init_pid, pidfd)


def _jailed_pid(fd: int, deadline: float) -> int | None:
    """The jailed child's pid (as this process sees it) from bubblewrap's ``--info-fd`` JSON; closes ``fd``."""
    data = b""
    try:
        while len(data) < 4096:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    try:
        pid = json.loads(data.decode()).get("child-pid")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None
    return pid if isinstance(pid, int) and pid > 0 else None


def end_worker(proc: subprocess.Popen, grace_s: float = 2.0) -> bool:
    """Wait briefly for a child that has reported, then SIGKILL its whole process group; True if it was killed.

    Bounded: a child that even SIGKILL cannot reap in 5 s (stuck in the kernel) is left to init with a warning.
    """
    killed = False
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        killed = True
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # also whatever it started, even after it exited itself
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        log.warning("sandbox child %d did not exit after SIGKILL; leaving it", proc.pid)
    with _LIVE_LOCK:
        _LIVE.discard(proc)
    return killed


def kill_all_workers() -> int:
    """SIGKILL every child this process started that is still running (Ctrl-C of a search); returns the count.

    Reward servers die with their runner (``PR_SET_PDEATHSIG``), so killing the runners stops them too.
    """
    with _LIVE_LOCK:
        live = list(_LIVE)
    for proc in live:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return len(live)


def read_log_tail(fd: int, max_bytes: int = LOG_TAIL_BYTES) -> str:
    """The last ``max_bytes`` of the log behind ``fd`` (opened by the caller), or "" unless it is a regular file."""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return ""
        start = max(0, info.st_size - max_bytes)
        return os.pread(fd, max_bytes, start).decode("utf-8", errors="replace")
    except OSError:
        return ""


def remove_tree(path: str | os.PathLike, deadline: float) -> bool:
    """Delete ``path`` and everything under it without recursion and without following links; False (and the rest
    left on disk, with a warning) if ``deadline`` passes first.

    Works one directory descriptor at a time, so neither depth (a chain of 1,000+ directories) nor long paths
    can exhaust the stack or PATH_MAX, and a hostile tree cannot redirect it outside ``path``.
    """
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return True
    except OSError:
        log.warning("could not open %s for removal", path)
        return False
    names: list[str] = []  # the path from ``path`` down to ``fd``
    try:
        while time.monotonic() < deadline:
            child = None
            with os.scandir(fd) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        child = entry.name
                        break
                    try:
                        os.unlink(entry.name, dir_fd=fd)
                    except FileNotFoundError:
                        pass
            if child is not None:
                below = os.open(child, flags, dir_fd=fd)
                os.close(fd)
                fd, names = below, [*names, child]
                continue
            if not names:
                os.close(fd)
                fd = -1
                os.rmdir(path)
                return True
            parent = os.open("..", flags, dir_fd=fd)
            os.close(fd)
            fd = parent
            os.rmdir(names.pop(), dir_fd=fd)
    except OSError as exc:
        log.warning("could not remove %s: %s", path, exc)
        return False
    finally:
        if fd >= 0:
            os.close(fd)
    log.warning("ran out of time removing %s; the rest is left on disk", path)
    return False


def run_job(job: dict[str, Any], *, limits: SandboxLimits | None = None, sandbox_root: str | Path | None = None,
            on_progress: Callable[[ProgressFrame], None] | None = None,
            log_path: str | Path | None = None) -> SandboxResult:
    """Run ``job`` (mode ``smoke`` or ``train`` and its arguments) in a runner with its own reward server; return
    the checked result.

    ``log_path`` receives the end of the runner's stdout/stderr. Returns within ``limits.timeout_s`` plus
    :data:`CLEANUP_S` whatever the code does; never raises for anything the reward code does; raises ValueError for
    a bad ``job`` and :class:`~llm_reward.eureka.jail.SandboxUnavailable` when ``sandbox.isolation='os'`` cannot
    run on this machine.
    """
    limits = limits or SandboxLimits()
    if job.get("mode") not in ("smoke", "train"):
        raise ValueError(f"run_job needs mode 'smoke' or 'train', got {job.get('mode')!r}")
    jailed = check_isolation(limits.isolation) if job.get("code") is not None else False
    start = time.monotonic()
    deadline = start + limits.timeout_s
    directory = tempfile.mkdtemp(prefix="eureka-sandbox-", dir=sandbox_root)
    if os.getuid() == 0:  # an unjailed reward server (isolation 'process') below it runs as nobody
        os.chmod(directory, 0o711)
    try:
        worker = spawn_worker({**job, "jail": jailed}, limits, directory)
        outcome = SandboxResult(ok=False)
        try:
            outcome = _collect(worker.reader, job["mode"], deadline, on_progress, job.get("milestones") or ())
        finally:
            outcome.pid = worker.proc.pid
            log_text = worker.log_tail()
            outcome.killed = worker.close()
        outcome.elapsed_s = time.monotonic() - start
        outcome.log_tail = log_text[-4000:]
        if log_path is not None:
            Path(log_path).write_text(log_text, errors="replace")
        if not outcome.ok and not outcome.reason:
            outcome.reason = _exit_reason(worker.proc.returncode, outcome.log_tail)
        return outcome
    finally:
        remove_tree(directory, deadline + CLEANUP_S)  # stopping the worker takes at most 7 s of this


def _collect(reader: FrameReader, mode: str, deadline: float,
             on_progress: Callable[[ProgressFrame], None] | None, milestones: Sequence[str] = ()) -> SandboxResult:
    outcome = SandboxResult(ok=False)
    while True:
        try:
            frame = reader.read(deadline)
        except ChannelError as exc:
            outcome.reason = ("timed out (an endless loop, a sleep, or reward code too slow for the budget)"
                              if str(exc) == "timed out" else f"bad output from the worker: {exc}")
            return outcome
        if frame is None:
            return outcome
        try:
            checked = parse_frame(mode, frame, milestones)
        except ChannelError as exc:
            outcome.reason = f"bad output from the worker: {exc}"
            return outcome
        if isinstance(checked, ProgressFrame):
            outcome.progress.append(checked)
            if on_progress is not None:
                on_progress(checked)
        elif isinstance(checked, ErrorFrame):
            outcome.reason = checked.reason
            return outcome
        else:
            outcome.ok, outcome.result = True, checked
            return outcome


def _exit_reason(returncode: int | None, log_tail: str) -> str:
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.Signals._value2member_map_ else returncode
        if name == "SIGXCPU":
            return "killed: CPU-time limit exceeded"
        return f"killed by {name} (CPU, memory or process limit)"
    lines = [line for line in log_tail.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "no output"
    return channel.reason_text(f"the worker exited with code {returncode} without a result: {last}")
