"""The AST allow-list every piece of reward code passes before it reaches a sandbox worker.

The check runs on the source text only (``ast.parse`` executes nothing). It admits plain arithmetic Python over
``math`` and ``numpy``: no other imports, no ``open``/``exec``/``eval``/``compile``/``__import__``/``getattr``/
``globals`` and friends, no dunder names or attributes, no numpy file or FFI helpers, no ``global``/``nonlocal``,
no ``str.format`` (its field syntax reaches attributes). The worker enforces the same limits a second time with
restricted builtins and an audit hook, so a gap here is not an escape by itself.

    >>> check_code("import numpy as np\\ndef compute_reward(obs, action, next_obs, info):\\n    return 0.0, {}")
    >>> check_code("import os")
    Traceback (most recent call last):
    ...
    llm_reward.eureka.allowlist.CodeRejected: line 1: import of 'os' is not allowed (only math, numpy)
"""

from __future__ import annotations

import ast

ALLOWED_MODULES = frozenset({"math", "numpy"})
MAX_SOURCE_CHARS = 20_000

#: Builtins the reward code may call (the worker gives it exactly these).
SAFE_BUILTINS = frozenset({
    "abs", "all", "any", "bool", "dict", "divmod", "enumerate", "filter", "float", "int", "isinstance", "len",
    "list", "map", "max", "min", "pow", "range", "reversed", "round", "set", "sorted", "str", "sum", "tuple",
    "zip", "True", "False", "None", "ValueError", "TypeError", "KeyError", "IndexError", "ZeroDivisionError",
    "ArithmeticError", "Exception", "print",
})

#: Names that are never allowed, whatever they are bound to.
FORBIDDEN_NAMES = frozenset({
    "open", "exec", "eval", "compile", "__import__", "getattr", "setattr", "delattr", "hasattr", "globals",
    "locals", "vars", "dir", "input", "breakpoint", "help", "memoryview", "type", "object", "super", "classmethod",
    "staticmethod", "property", "id", "exit", "quit", "copyright", "credits", "license", "BaseException",
    "SystemExit", "KeyboardInterrupt", "GeneratorExit", "bytearray", "bytes", "os", "sys", "subprocess",
    "socket", "ctypes", "pickle", "shutil", "signal", "importlib", "builtins", "io", "pathlib",
})

#: Attributes that are never allowed on anything (numpy I/O, FFI, pickling, frames, formatting escapes).
FORBIDDEN_ATTRIBUTES = frozenset({
    "load", "loads", "save", "savez", "savez_compressed", "savetxt", "loadtxt", "genfromtxt", "fromfile",
    "tofile", "fromregex", "memmap", "open_memmap", "dump", "dumps", "ctypeslib", "ctypes", "lib", "f2py",
    "distutils", "testing", "DataSource", "format", "format_map", "os", "sys", "system", "popen", "gi_frame",
    "gi_code", "f_globals", "f_locals", "f_back", "f_builtins", "cr_frame", "tb_frame", "func_globals",
    "mro", "show_config", "show_runtime", "char", "rec", "polynomial", "exceptions",
})

_FORBIDDEN_NODES: dict[type, str] = {
    ast.Global: "'global' statements", ast.Nonlocal: "'nonlocal' statements", ast.ClassDef: "class definitions",
    ast.AsyncFunctionDef: "async functions", ast.Await: "await", ast.AsyncFor: "async for",
    ast.AsyncWith: "async with", ast.With: "'with' blocks", ast.Delete: "'del' statements",
}
if hasattr(ast, "TryStar"):
    _FORBIDDEN_NODES[ast.TryStar] = "'except*' blocks"


class CodeRejected(ValueError):
    """Reward code that failed the allow-list; ``str(exc)`` is a one-line reason for the LLM."""


def check_code(source: str) -> None:
    """Raise :class:`CodeRejected` with a one-line reason unless ``source`` passes the allow-list.

    >>> check_code("def compute_reward(obs, action, next_obs, info):\\n    return obs.__class__, {}")
    Traceback (most recent call last):
    ...
    llm_reward.eureka.allowlist.CodeRejected: line 2: dunder attribute '__class__' is not allowed
    """
    if not isinstance(source, str):
        raise CodeRejected(f"reward code must be a string, got {type(source).__name__}")
    if len(source) > MAX_SOURCE_CHARS:
        raise CodeRejected(f"reward code is {len(source)} characters; the limit is {MAX_SOURCE_CHARS}")
    if "\x00" in source:
        raise CodeRejected("reward code contains a NUL byte")
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise CodeRejected(f"line {exc.lineno}: syntax error: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise CodeRejected(f"unparsable reward code: {type(exc).__name__}") from None
    for node in ast.walk(tree):
        reason = _node_reason(node)
        if reason is not None:
            raise CodeRejected(f"line {getattr(node, 'lineno', '?')}: {reason}")


def _node_reason(node: ast.AST) -> str | None:
    for kind, what in _FORBIDDEN_NODES.items():
        if isinstance(node, kind):
            return f"{what} are not allowed in reward code"
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] not in ALLOWED_MODULES or "." in alias.name:
                return f"import of {alias.name!r} is not allowed (only math, numpy)"
    elif isinstance(node, ast.ImportFrom):
        if node.level or node.module is None or node.module not in ALLOWED_MODULES:
            return f"import from {node.module!r} is not allowed (only math, numpy)"
        for alias in node.names:
            if alias.name == "*" or alias.name.startswith("_") or alias.name in FORBIDDEN_ATTRIBUTES:
                return f"'from {node.module} import {alias.name}' is not allowed"
    elif isinstance(node, ast.Name):
        if node.id.startswith("__") or node.id in FORBIDDEN_NAMES:
            return f"name {node.id!r} is not allowed"
    elif isinstance(node, ast.Attribute):
        if node.attr.startswith("_"):
            return f"{'dunder' if node.attr.startswith('__') else 'private'} attribute {node.attr!r} is not allowed"
        if node.attr in FORBIDDEN_ATTRIBUTES:
            return f"attribute {node.attr!r} is not allowed"
    elif isinstance(node, (ast.FunctionDef, ast.Lambda)):
        name = getattr(node, "name", "lambda")
        if name.startswith("__") or name in FORBIDDEN_NAMES:
            return f"function name {name!r} is not allowed"
        for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs, node.args.vararg,
                    node.args.kwarg]:
            if arg is not None and (arg.arg.startswith("__") or arg.arg in FORBIDDEN_NAMES):
                return f"argument name {arg.arg!r} is not allowed"
    elif isinstance(node, ast.alias) and node.asname is not None:
        if node.asname.startswith("__") or node.asname in FORBIDDEN_NAMES:
            return f"import alias {node.asname!r} is not allowed"
    elif isinstance(node, ast.ExceptHandler) and node.type is None:
        return "a bare 'except:' is not allowed (catch Exception)"
    elif isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) > 2_000:
        return "string constants longer than 2000 characters are not allowed"
    return None
