"""Inside a sandbox worker: resource limits, an audit hook, and loading reward code with restricted builtins.

This module runs in the child process only (``llm_reward.eureka.worker``). The library process never calls
:func:`load_reward`. The audit hook and the restricted builtins live in the same process as the reward code, so
code that gets past the allow-list could tamper with them: they are defence in depth. The wall is the operating
system's (:mod:`llm_reward.eureka.jail`), and every number is checked again by the library.
"""

from __future__ import annotations

import ast
import builtins
import math
import os
import resource
import sys
import traceback
import types
from typing import Any, Callable, Iterable

import numpy as np

from llm_reward.eureka.allowlist import (ALLOWED_MODULES, GUARDED_METHODS, LINALG_NAMES, NUMPY_NAMES, SAFE_BUILTINS,
                                         SAFE_DTYPE_KINDS, check_code, module_aliases, module_of)
from llm_reward.eureka.channel import MAX_ABS_REWARD, MAX_COMPONENTS, MAX_NAME_CHARS, valid_name
from llm_reward.eureka.extract import FUNCTION_NAME

CODE_FILENAME = "<reward_code>"
RewardFn = Callable[[Any, Any, Any, dict], "tuple[float, dict[str, float]]"]


class RewardCodeError(Exception):
    """The reward code raised, returned something invalid, or tried something forbidden (one-line ``str``)."""


#: Open files a reward server may hold (it needs about ten): each descriptor can pin memory no rlimit counts
#: (a pipe's buffer), so their number is capped too.
SERVER_MAX_OPEN_FILES = 64


def apply_limits(*, cpu_seconds: int, memory_mb: int, max_file_mb: int, max_processes: int | None,
                 max_open_files: int | None = None) -> None:
    """Lower this process's rlimits (hard limits too, so the code cannot raise them again; a limit inherited lower
    from the parent stays)."""

    def lower(kind: int, value: int, hard_margin: int = 0) -> None:
        _, hard = resource.getrlimit(kind)
        cap = hard if hard != resource.RLIM_INFINITY else value + hard_margin
        resource.setrlimit(kind, (min(value, cap), min(value + hard_margin, cap)))

    lower(resource.RLIMIT_CPU, cpu_seconds, 5)
    lower(resource.RLIMIT_AS, memory_mb * 1024 * 1024)
    lower(resource.RLIMIT_FSIZE, max_file_mb * 1024 * 1024)
    lower(resource.RLIMIT_CORE, 0)
    if max_processes is not None:
        lower(resource.RLIMIT_NPROC, max_processes)
    if max_open_files is not None:
        lower(resource.RLIMIT_NOFILE, max_open_files)


_BLOCKED_EVENTS = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "subprocess.Popen",
                   "pty.spawn", "socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo",
                   "socket.gethostbyname", "ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function", "os.kill",
                   "os.killpg", "signal.pthread_kill", "os.setsid", "sys._current_frames", "builtins.input",
                   "os.chmod", "os.chown", "os.link", "os.symlink", "os.truncate", "os.putenv", "os.unsetenv",
                   "webbrowser.open", "shutil.", "os.startfile", "sys.setrecursionlimit", "resource.setrlimit",
                   "resource.prlimit", "os.setuid", "os.setgid")
_PATH_WRITE_EVENTS = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.utime")
_PATH_READ_EVENTS = ("os.listdir", "os.scandir", "glob.glob")


def install_audit_hook(sandbox_dir: str) -> None:
    """From now on: no processes, sockets, ctypes, frames or signals; files written only under ``sandbox_dir``;
    files read only from the interpreter's own trees, system libraries and ``sandbox_dir``.

    Audit hooks cannot be removed, so this holds for the rest of the worker's life. It is installed after the
    env and the agent are built, right before the reward code is compiled.
    """
    sandbox = os.path.realpath(sandbox_dir) + os.sep
    python_trees = tuple({os.path.realpath(p) + os.sep for p in
                          [sys.prefix, sys.base_prefix, sys.exec_prefix, *[p for p in sys.path if p]]
                          if os.path.isdir(p)} | {sandbox})
    system = ("/usr/", "/lib/", "/lib64/", "/etc/", "/proc/self/", "/sys/devices/system/cpu/", "/dev/null",
              "/dev/urandom")
    forbidden = ("environ", "/etc/shadow", "/etc/gshadow", "/.ssh", ".netrc", "/root/", "/home/")

    def readable(full: str) -> bool:
        if (full + os.sep).startswith(python_trees):
            return "environ" not in full
        return full.startswith(system) and not any(bad in full for bad in forbidden)

    def hook(event: str, args: tuple) -> None:
        if event.startswith(_BLOCKED_EVENTS):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC))
            if not isinstance(path, (str, bytes)):
                if writing:
                    raise PermissionError("sandbox: writing through a file descriptor is not allowed")
                return
            full = os.path.realpath(os.fsdecode(path))
            if writing and not (full + os.sep).startswith(sandbox):
                raise PermissionError(f"sandbox: writing {full} is not allowed")
            if not writing and not readable(full):
                raise PermissionError(f"sandbox: reading {full} is not allowed")
        elif event in _PATH_WRITE_EVENTS or event in _PATH_READ_EVENTS:
            paths = [a for a in args if isinstance(a, (str, bytes, os.PathLike))]
            for path in paths:
                full = os.path.realpath(os.fsdecode(path))
                if event in _PATH_WRITE_EVENTS and not (full + os.sep).startswith(sandbox):
                    raise PermissionError(f"sandbox: {event} on {full} is not allowed")
                if event in _PATH_READ_EVENTS and not readable(full):
                    raise PermissionError(f"sandbox: listing {full} is not allowed")

    sys.addaudithook(hook)


def _refuse_dtype(dtype: Any) -> None:
    """TypeError if ``dtype`` names an object, record or pointer dtype (see ``SAFE_DTYPE_KINDS``)."""
    if dtype is not None and np.dtype(dtype).kind not in SAFE_DTYPE_KINDS:
        raise TypeError(f"dtype {np.dtype(dtype)} is not allowed in reward code (numbers, bools or fixed-width text)")


#: Result types that need no further look: Python numbers and numpy's number, bool, time and fixed-width scalars.
_PLAIN_RESULTS = frozenset({float, int, bool, type(None)} | {
    kind for kind in set(np.sctypeDict.values()) if np.dtype(kind).kind in SAFE_DTYPE_KINDS})


def _checked(result: Any) -> Any:
    """``result`` unless it is (or directly holds) an array or scalar of a refused dtype."""
    if isinstance(result, (np.ndarray, np.generic)):
        if result.dtype.kind not in SAFE_DTYPE_KINDS:
            raise TypeError(f"an array of dtype {result.dtype} is not allowed in reward code (numbers, bools or "
                            "fixed-width text)")
    elif isinstance(result, (tuple, list)):
        for item in result:
            if isinstance(item, (np.ndarray, np.generic)) and item.dtype.kind not in SAFE_DTYPE_KINDS:
                raise TypeError(f"an array of dtype {item.dtype} is not allowed in reward code")
    return result


def _guarded(fn: Callable) -> Callable:
    """``fn`` refusing a ``dtype=`` argument and a result of a refused dtype (a ufunc's methods likewise)."""
    ndarray, plain, safe_kinds = np.ndarray, _PLAIN_RESULTS, SAFE_DTYPE_KINDS

    def call(*args: Any, **kwargs: Any) -> Any:
        if kwargs and "dtype" in kwargs:
            _refuse_dtype(kwargs["dtype"])
        result = fn(*args, **kwargs)
        kind = type(result)  # the common results first: every reward call goes through here several times
        if kind in plain or (kind is ndarray and result.dtype.kind in safe_kinds):
            return result
        return _checked(result)

    if isinstance(fn, np.ufunc):
        for method in ("reduce", "accumulate", "outer"):
            setattr(call, method, _guarded(getattr(fn, method)))
    try:
        reduce = _REDUCTIONS.get(fn)
    except TypeError:  # an unhashable callable
        reduce = None
    if reduce is None:
        return call

    def call_reduction(*args: Any, **kwargs: Any) -> Any:
        if kwargs or len(args) != 1 or type(args[0]) is not ndarray:
            return call(*args, **kwargs)
        result = reduce(args[0], None)  # what fn(array) computes (numpy's wrapper calls exactly this), 1 us sooner
        kind = type(result)
        if kind in plain or (kind is ndarray and result.dtype.kind in safe_kinds):
            return result
        return _checked(result)

    return call_reduction


#: numpy reductions that, called on one exact ndarray and nothing else, are their ufunc's ``reduce`` over all axes
#: (numpy's ``_wrapreduction`` calls ``ufunc.reduce(array, None, None, None)``). Reward code calls them on every
#: transition, and their Python wrapper costs more than the reduction.
_REDUCTIONS = {getattr(np, name): ufunc.reduce for name, ufunc in (
    ("sum", np.add), ("prod", np.multiply), ("max", np.maximum), ("min", np.minimum), ("amax", np.maximum),
    ("amin", np.minimum)) if hasattr(np, name)}


#: Where the dtype sits among the positional arguments of a ``GUARDED_METHODS`` method (``x.sum(axis, dtype)``).
_DTYPE_POSITION = {"astype": 0, "sum": 1, "prod": 1, "mean": 1, "std": 1, "var": 1, "cumsum": 1, "cumprod": 1,
                   "trace": 3}


def call_method(obj: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """``obj.<name>(*args, **kwargs)`` for a method of ``GUARDED_METHODS``: reward code's calls of them are
    rewritten to this (:func:`load_reward`), so a computed dtype (``x.astype(chr(79))``) is refused at run time.

    >>> call_method(np.arange(3), "astype", "O")
    Traceback (most recent call last):
    ...
    TypeError: dtype object is not allowed in reward code (numbers, bools or fixed-width text)
    """
    if "dtype" in kwargs:
        _refuse_dtype(kwargs["dtype"])
    position = _DTYPE_POSITION.get(name)
    if position is not None and len(args) > position:
        _refuse_dtype(args[position])
    return _checked(getattr(obj, name)(*args, **kwargs))


class _InstanceCheck:
    """Stands for ``np.ndarray`` in ``isinstance`` only: calling it raises, so no array is ever built over another
    object's memory (``np.ndarray(shape, dtype, buffer=...)``)."""

    __slots__ = ("_types",)

    def __init__(self, types_: tuple[type, ...]):
        self._types = types_

    def __instancecheck__(self, obj: Any) -> bool:
        return isinstance(obj, self._types)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("np.ndarray(...) is not allowed in reward code (build arrays with np.array, np.zeros, ...)")

    def __repr__(self) -> str:
        return "<numpy.ndarray, for isinstance() only>"


class _Namespace(types.SimpleNamespace):
    """A read-only module stand-in holding exactly the names it was built with."""

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("the reward code's numpy is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("the reward code's numpy is read-only")


def _exposed(value: Any) -> Any:
    if value is np.ndarray:
        return _InstanceCheck((np.ndarray,))
    if isinstance(value, type) or not callable(value):  # scalar types, finfo/iinfo, constants
        return value
    return _guarded(value)


def safe_numpy() -> types.SimpleNamespace:
    """The ``np`` reward code gets: the allow-listed names only, ``ndarray`` for isinstance only, every callable
    refusing object, record and pointer dtypes (in its ``dtype=`` argument and in its result). So no allowed call,
    however aliased and with whatever computed argument, builds an array that reads or forges raw memory.

    >>> snp = safe_numpy()
    >>> float(snp.sum(snp.ones(3)))
    3.0
    >>> snp.array([print])
    Traceback (most recent call last):
    ...
    TypeError: an array of dtype object is not allowed in reward code (numbers, bools or fixed-width text)
    """
    linalg = _Namespace(**{name: _guarded(getattr(np.linalg, name)) for name in LINALG_NAMES
                           if hasattr(np.linalg, name)})
    names = {name: _exposed(getattr(np, name)) for name in NUMPY_NAMES if name != "linalg" and hasattr(np, name)}
    return _Namespace(linalg=linalg, **names)


class _RouteMethods(ast.NodeTransformer):
    """``x.astype(...)`` (any of ``GUARDED_METHODS``, called on a non-module) becomes
    ``__method__(x, "astype", ...)``."""

    def __init__(self, modules: dict[str, str]):
        self.modules = modules

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in GUARDED_METHODS \
                and module_of(func.value, self.modules) is None:
            routed = ast.Call(func=ast.Name("__method__", ast.Load()),
                              args=[func.value, ast.Constant(func.attr), *node.args], keywords=node.keywords)
            return ast.copy_location(routed, node)
        return node


def _importer(np_view: types.SimpleNamespace) -> Callable:
    def restricted_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (),
                          level: int = 0) -> Any:
        """The code's ``import numpy`` gets ``np_view``; ``math`` is math. numpy's own lazy imports of its loaded
        submodules also pass through here (C code imports with the calling frame's builtins): they are allowed,
        and C code takes the module from ``sys.modules``, never from this return value."""
        top = name.split(".")[0]
        if level == 0 and top in ALLOWED_MODULES and (name in ("math", "numpy") or name in sys.modules):
            module = builtins.__import__(name, globals, locals, fromlist, level)
            if name == "numpy":
                return np_view
            if name == "numpy.linalg":
                return np_view.linalg if fromlist else np_view
            return module if top == "math" else None
        raise ImportError(f"import of {name!r} is not allowed (only math, numpy)")

    return restricted_import


def load_reward(source: str) -> RewardFn:
    """Check ``source`` against the allow-list, execute it with restricted builtins, return ``compute_reward``.

    The code's ``np`` (and ``import numpy``) is :func:`safe_numpy`, and its calls of dtype-taking ndarray methods
    go through :func:`call_method`.
    """
    check_code(source)
    np_view = safe_numpy()
    safe = {name: getattr(builtins, name) for name in SAFE_BUILTINS if hasattr(builtins, name)}
    safe["__import__"] = _importer(np_view)
    namespace: dict[str, Any] = {"__builtins__": safe, "__name__": "reward_code", "np": np_view, "math": math,
                                 "__method__": call_method}
    try:
        tree = ast.parse(source)
        tree = ast.fix_missing_locations(_RouteMethods(module_aliases(tree)).visit(tree))
        exec(compile(tree, CODE_FILENAME, "exec"), namespace)  # noqa: S102 - inside the sandbox worker only
    except BaseException as exc:  # noqa: BLE001 - any failure of untrusted code becomes a reason
        raise RewardCodeError(f"defining the reward code failed: {describe_exception(exc)}") from None
    fn = namespace.get(FUNCTION_NAME)
    if not callable(fn):
        raise RewardCodeError(f"the code defines no function {FUNCTION_NAME}")
    return fn


def describe_exception(exc: BaseException) -> str:
    """``Type: message (line N)`` with the line in the reward code where it happened, on one line."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == CODE_FILENAME:
            line = frame.lineno
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - a hostile __str__
        message = ""
    where = f" (line {line} of the reward code)" if line is not None else ""
    text = f"{type(exc).__name__}: {message}"[:300]
    return " ".join(text.split()) + where


def _as_number(value: Any, what: str, name: str | None = None) -> float:
    """``value`` as a finite float within range; ``what`` (and ``name``, quoted after it) says what it is in the
    error."""
    # A plain float in range (NaN fails the comparison) is by far the most common value and needs nothing else;
    # this runs for every total and component of every transition the reward server answers, so the error label
    # is only built past this point.
    if type(value) is float and -MAX_ABS_REWARD <= value <= MAX_ABS_REWARD:
        return value
    if name is not None:
        what = f"{what} {name!r}"
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, (bool, np.bool_)):
        raise RewardCodeError(f"{what} is a bool; return a float")
    if not isinstance(value, (int, float, np.integer, np.floating)):
        raise RewardCodeError(f"{what} is {type(value).__name__}, not a float")
    number = float(value)
    if not math.isfinite(number):
        raise RewardCodeError(f"{what} is {number}; rewards must be finite")
    if abs(number) > MAX_ABS_REWARD:
        raise RewardCodeError(f"{what} = {number:g} exceeds +-{MAX_ABS_REWARD:g}")
    return number


def call_reward(fn: RewardFn, obs: Any, action: Any, next_obs: Any, info: dict) -> tuple[float, dict[str, float]]:
    """One checked call: ``(finite total, {str: finite float})`` or :class:`RewardCodeError` with the reason."""
    try:
        result = fn(obs, action, next_obs, info)
    except Exception as exc:  # noqa: BLE001
        raise RewardCodeError(_failure(exc)) from None
    return _checked_result(result)


def _failure(exc: Exception) -> str:
    """The one-line reason for an exception the reward code raised."""
    if isinstance(exc, RecursionError):
        return "RecursionError: maximum recursion depth exceeded"
    if isinstance(exc, MemoryError):
        return "MemoryError: the reward code ran out of memory"
    return describe_exception(exc)


def _checked_result(result: Any) -> tuple[float, dict[str, float]]:
    if not isinstance(result, tuple) or len(result) != 2:
        raise RewardCodeError(f"compute_reward returned {type(result).__name__}; return (total, {{name: value}})")
    total, parts = result
    total = _as_number(total, "the total reward")
    if not isinstance(parts, dict):
        raise RewardCodeError(f"the components are {type(parts).__name__}, not a dict of floats")
    if len(parts) > MAX_COMPONENTS:
        raise RewardCodeError(f"{len(parts)} reward components; at most {MAX_COMPONENTS}")
    components = {}
    for name, value in parts.items():
        if not valid_name(name):
            raise RewardCodeError(f"component names must be 1-{MAX_NAME_CHARS} letters, digits, spaces or _.:+-/()[], "
                                  "not starting with __")
        components[name] = _as_number(value, "component", name)
    return total, components


#: Values a reward call's fast path takes as they are (``np.float64`` is a ``float`` and compares like one).
_PLAIN_FLOATS = frozenset({float, np.float64})


def call_rewards(fn: RewardFn, transitions: Iterable[tuple[Any, Any, Any, dict | None]],
                 known: tuple[str, ...] | None = None) -> tuple[tuple[str, ...], list[tuple[float, ...]]]:
    """:func:`call_reward` on each ``(obs, action, next_obs, info)`` of a batch (``info`` ``None``: a new empty
    dict for that call): the component names and one ``(total, *components)`` row per call, or
    :class:`RewardCodeError` with the first failure's reason.

    Every call must return the names of the first, in the same order. A call whose result is an exact
    ``(float, dict)`` with names checked already (``known``, the previous batch's, or this batch's first call's)
    and plain floats within +-``MAX_ABS_REWARD`` is taken as it is; any other result gets the full check, which
    would accept such a result unchanged. The reward server answers every vector step, and the full check costs
    more than many reward functions.
    """
    names: tuple[str, ...] | None = None
    expected = known
    rows: list[tuple[float, ...]] = []
    plain, low, high = _PLAIN_FLOATS, -MAX_ABS_REWARD, MAX_ABS_REWARD
    for obs, action, next_obs, info in transitions:
        try:
            result = fn(obs, action, next_obs, {} if info is None else info)
        except Exception as exc:  # noqa: BLE001
            raise RewardCodeError(_failure(exc)) from None
        if type(result) is tuple and len(result) == 2 and type(result[1]) is dict and tuple(result[1]) == expected:
            row = (result[0], *result[1].values())
            for value in row:
                if type(value) not in plain or not low <= value <= high:  # NaN fails the comparison
                    break
            else:
                rows.append(row)
                names = expected
                continue
        total, components = _checked_result(result)
        if names is None:
            names = expected = tuple(components)
        elif tuple(components) != names:
            raise RewardCodeError("compute_reward returned different component names on different calls")
        rows.append((total, *components.values()))
    return names or (), rows


_NEVER_SHOWN = frozenset({"terminal_observation", "final_observation", "final_info"})


def plain_info(info: dict, hidden: frozenset[str] = frozenset()) -> dict[str, Any]:
    """What the reward code sees of ``info``: numbers, bools, short strings and small numeric arrays (copies),
    without the ``hidden`` keys (the env's own reward terms)."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        if not isinstance(key, str) or key in _NEVER_SHOWN or key in hidden:
            continue
        if isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
            out[key] = value.item() if isinstance(value, np.generic) else value
        elif isinstance(value, str) and len(value) <= 2000:
            out[key] = value
        elif isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.size <= 4096:
            out[key] = value.copy()
    return out
