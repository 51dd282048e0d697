"""Run a job on untrusted reward code in a fresh, limited child interpreter and read back only numbers.

Layers, outermost first:

1. the AST allow-list (:mod:`llm_reward.eureka.allowlist`) on the source, in the library process (parsing only);
2. a child ``python -I -m llm_reward.eureka.worker`` in a new session, in its own temporary directory, with an
   environment rebuilt from a short allow-list (no API keys or tokens), inside a new network namespace
   (``unshare -n`` as root, ``unshare -rn`` as a user where user namespaces are allowed; otherwise no network
   isolation and a one-time warning -- the allow-list still refuses ``socket``);
3. rlimits set by the worker on itself: CPU seconds, address space, file size, core dumps, processes;
4. an audit hook in the worker, installed right before the code is compiled: no processes, sockets, ctypes or
   signals, no writes outside the sandbox directory, no reads of other processes' environments or home dirs;
5. restricted builtins and an import hook that hands out only ``math`` and ``numpy``;
6. a wall-clock deadline on the parent side: the whole process group is SIGKILLed when it passes, and always
   once the job is over, so nothing the code started is left behind;
7. results only as length-prefixed frames on a private pipe (:mod:`llm_reward.eureka.channel`): JSON checked
   against a schema, or the reward server's binary float64 frames checked for length, names and finite values;
   the worker's stdout/stderr go to a log file that is never parsed.

    >>> result = run_job({"mode": "smoke", "env_id": "CartPole-v1", "seed": 0, "n_steps": 20,
    ...                   "code": "def compute_reward(o, a, n, i):\\n    return 1.0, {'alive': 1.0}"})  # doctest: +SKIP
    >>> result.ok, result.result["components"]["alive"]  # doctest: +SKIP
    (True, [1.0, 1.0, 1.0])
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from llm_reward.eureka import channel
from llm_reward.eureka.channel import ChannelError, FrameReader

log = logging.getLogger(__name__)

WORKER_MODULE = "llm_reward.eureka.worker"
_LIVE: set[subprocess.Popen] = set()  # running workers, so an interrupted search can stop them all
_LIVE_LOCK = threading.Lock()
_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "LD_LIBRARY_PATH", "MUJOCO_GL", "PYOPENGL_PLATFORM")


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one worker. ``cpu_seconds`` defaults to the wall-clock timeout plus a margin.

    >>> SandboxLimits(timeout_s=30).cpu_limit
    35
    """

    timeout_s: float = 60.0
    memory_mb: int = 6144
    max_file_mb: int = 64
    cpu_seconds: int | None = None
    max_extra_processes: int = 64
    isolate_network: bool = True

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"sandbox.timeout_s must be > 0, got {self.timeout_s}")
        if self.memory_mb < 512:
            raise ValueError(f"sandbox.memory_mb must be >= 512 (the worker imports torch), got {self.memory_mb}")
        if self.max_file_mb < 1:
            raise ValueError(f"sandbox.max_file_mb must be >= 1, got {self.max_file_mb}")

    @property
    def cpu_limit(self) -> int:
        return int(self.cpu_seconds if self.cpu_seconds is not None else self.timeout_s + 5)


@dataclass
class SandboxResult:
    """What came back: ``ok`` with the final ``result`` frame, or a one-line ``reason``."""

    ok: bool
    reason: str = ""
    result: dict[str, Any] | None = None
    progress: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0
    killed: bool = False
    log_tail: str = ""
    pid: int | None = None  # the worker's pid, which is also its session and process-group id


@functools.lru_cache(maxsize=1)
def network_isolation_prefix() -> tuple[str, ...]:
    """The command prefix that gives a child an empty network namespace here, or ``()`` when none works."""
    unshare = shutil.which("unshare")
    if unshare is None:
        log.warning("no 'unshare' binary: sandbox workers keep network access (the allow-list still refuses socket)")
        return ()
    for flags in (("-n",), ("-rn",)):
        try:
            probe = subprocess.run([unshare, *flags, "true"], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return (unshare, *flags)
    log.warning("network namespaces are not permitted here: sandbox workers keep network access "
                "(the allow-list still refuses socket)")
    return ()


def scrubbed_environment(sandbox_dir: str) -> dict[str, str]:
    """A fresh environment: a few locale/path variables, single-threaded math, home and tmp in the sandbox."""
    env = {key: os.environ[key] for key in _ENV_KEEP if key in os.environ}
    env.update({"HOME": sandbox_dir, "TMPDIR": sandbox_dir, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "OPENBLAS_NUM_THREADS": "1", "PYTHONHASHSEED": "0"})
    return env


def _user_task_count() -> int:
    """Processes + threads of this user now (RLIMIT_NPROC counts them all)."""
    uid, count = os.getuid(), 0
    try:
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid == uid:
                        count += len(os.listdir(f"/proc/{entry.name}/task"))
                except OSError:
                    continue
    except OSError:
        return 4096
    return count


def run_job(job: dict[str, Any], *, limits: SandboxLimits | None = None, sandbox_root: str | Path | None = None,
            on_progress: Callable[[dict[str, Any]], None] | None = None,
            log_path: str | Path | None = None) -> SandboxResult:
    """Run ``job`` (a worker mode and its arguments) in a fresh sandbox and return the checked result.

    ``log_path`` receives the worker's stdout/stderr (capped by the file-size limit). The sandbox directory is
    deleted afterwards. Never raises for anything the reward code does; raises only for a bad ``job``.
    """
    limits = limits or SandboxLimits()
    if job.get("mode") not in ("smoke", "train"):
        raise ValueError(f"run_job needs mode 'smoke' or 'train', got {job.get('mode')!r}")
    sandbox_dir = tempfile.mkdtemp(prefix="eureka-sandbox-", dir=sandbox_root)
    try:
        proc, reader, log_file = spawn_worker(job, limits, sandbox_dir)
        start, deadline = time.monotonic(), time.monotonic() + limits.timeout_s
        outcome = SandboxResult(ok=False)
        try:
            outcome = _collect(reader, job["mode"], deadline, on_progress)
        finally:
            outcome.pid = proc.pid
            outcome.killed = end_worker(proc)
            os.close(reader.fd)
            log_file.close()
        outcome.elapsed_s = time.monotonic() - start
        log_text = Path(sandbox_dir, "worker.log").read_text(errors="replace")
        outcome.log_tail = log_text[-4000:]
        if log_path is not None:
            Path(log_path).write_text(log_text)
        if not outcome.ok and not outcome.reason:
            outcome.reason = _exit_reason(proc.returncode, outcome.log_tail)
        return outcome
    finally:
        shutil.rmtree(sandbox_dir, ignore_errors=True)


def spawn_worker(job: dict[str, Any], limits: SandboxLimits, sandbox_dir: str, extra_fds: tuple[int, ...] = (),
                 extra_args: tuple[str, ...] = ()) -> tuple[subprocess.Popen, FrameReader, Any]:
    """Start a worker on ``job``; the caller owns the returned process, channel reader and log file."""
    read_fd, write_fd = os.pipe()
    job = {**job, "sandbox_dir": sandbox_dir,
           "limits": {"cpu_seconds": limits.cpu_limit, "memory_mb": limits.memory_mb,
                      "max_file_mb": limits.max_file_mb,
                      "max_processes": _user_task_count() + limits.max_extra_processes}}
    prefix = network_isolation_prefix() if limits.isolate_network else ()
    command = [*prefix, sys.executable, "-I", "-m", WORKER_MODULE, "--channel", str(write_fd), *extra_args]
    log_file = open(Path(sandbox_dir, "worker.log"), "wb")  # noqa: SIM115 - closed by the caller
    try:
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=log_file, stderr=subprocess.STDOUT,
                                cwd=sandbox_dir, env=scrubbed_environment(sandbox_dir),
                                pass_fds=(write_fd, *extra_fds), start_new_session=True)
    except BaseException:
        os.close(read_fd)
        log_file.close()
        raise
    finally:
        os.close(write_fd)
    with _LIVE_LOCK:
        _LIVE.add(proc)
    try:
        proc.stdin.write(json.dumps(job).encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    return proc, FrameReader(read_fd), log_file


def end_worker(proc: subprocess.Popen, grace_s: float = 2.0) -> bool:
    """Wait briefly for a worker that has reported, then SIGKILL its whole process group; True if it was killed."""
    killed = False
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        killed = True
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # also whatever it started, even after it exited itself
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    with _LIVE_LOCK:
        _LIVE.discard(proc)
    return killed


def kill_all_workers() -> int:
    """SIGKILL every worker this process started that is still running (Ctrl-C of a search); returns the count."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for proc in live:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return len(live)


def _collect(reader: FrameReader, mode: str, deadline: float,
             on_progress: Callable[[dict[str, Any]], None] | None) -> SandboxResult:
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
            checked = check_frame(mode, frame)
        except ChannelError as exc:
            outcome.reason = f"bad output from the worker: {exc}"
            return outcome
        if checked["type"] == "progress":
            outcome.progress.append(checked)
            if on_progress is not None:
                on_progress(checked)
        elif checked["type"] == "error":
            outcome.reason = checked["reason"]
            return outcome
        elif checked["type"] == "result":
            outcome.ok, outcome.result = True, checked
            return outcome


def check_frame(mode: str, frame: dict[str, Any]) -> dict[str, Any]:
    """The frame rebuilt from its expected, checked fields only; ChannelError for anything else."""
    kind = frame["type"]
    if kind == "error":
        return {"type": "error", "reason": channel.reason_text(frame.get("reason"))}
    if kind == "progress" and mode == "train":
        return {"type": "progress", "point": int(channel.finite_number(frame.get("point"), "point")),
                "timestep": int(channel.finite_number(frame.get("timestep"), "timestep")),
                "episodes": int(channel.finite_number(frame.get("episodes"), "episodes")),
                "success_rate": channel.optional_number(frame.get("success_rate"), "success_rate"),
                "env_return": channel.optional_number(frame.get("env_return"), "env_return"),
                "reward_mean": channel.optional_number(frame.get("reward_mean"), "reward_mean"),
                "components": channel.component_means(frame.get("components"))}
    if kind == "result" and mode == "smoke":
        components = frame.get("components")
        if not isinstance(components, dict) or len(components) > channel.MAX_COMPONENTS:
            raise ChannelError("smoke components must be a dict of at most 32 entries")
        stats = {}
        for name, values in components.items():
            channel.component_means({name: 0.0})  # the name check
            stats[name] = channel.number_list(values, f"components[{name!r}]", max_len=3)
        return {"type": "result", "steps": int(channel.finite_number(frame.get("steps"), "steps")),
                "total": channel.number_list(frame.get("total"), "total", max_len=3), "components": stats}
    if kind == "result" and mode == "train":
        return {"type": "result", "timesteps": int(channel.finite_number(frame.get("timesteps"), "timesteps")),
                "eval_success": channel.optional_number(frame.get("eval_success"), "eval_success"),
                "eval_return": channel.optional_number(frame.get("eval_return"), "eval_return")}
    raise ChannelError(f"unexpected frame type {kind!r} in mode {mode!r}")


def _exit_reason(returncode: int | None, log_tail: str) -> str:
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.Signals._value2member_map_ else returncode
        if name == "SIGXCPU":
            return "killed: CPU-time limit exceeded"
        return f"killed by {name} (CPU, memory or process limit)"
    lines = [line for line in log_tail.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "no output"
    return channel.reason_text(f"the worker exited with code {returncode} without a result: {last}")
