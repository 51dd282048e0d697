"""The AST allow-list every piece of reward code passes before it reaches a sandbox worker.

The check runs on the source text only (``ast.parse`` executes nothing). It allows rather than forbids: plain
arithmetic Python over ``math`` and ``numpy`` where every attribute is named here. ``np.<name>`` and
``math.<name>`` must be one of the listed numerical callables, types or constants (``np.linalg.<name>`` likewise);
a module may only appear as the left side of such an attribute (never stored, passed or returned, so no chain of
attributes reaches another module); any other attribute must be a listed ndarray, dict, list, str or float
method or property, never assigned, and the dtype-taking ones (``GUARDED_METHODS``) only called directly. Dunder
and private names, ``open``/``exec``/``eval``/``getattr``/``type`` and friends, classes, ``global``/``nonlocal``
and ``with`` are refused, and so are ``buffer=`` and object or record dtypes written out. The worker enforces
limits a second time (a numpy namespace that refuses those dtypes at run time, restricted builtins, an audit hook:
:mod:`llm_reward.eureka.guard`) and the operating system a third (:mod:`llm_reward.eureka.jail`), so a gap here
is not an escape by itself.

    >>> check_code("import numpy as np\\ndef compute_reward(obs, action, next_obs, info):\\n    return 0.0, {}")
    >>> check_code("import os")
    Traceback (most recent call last):
    ...
    llm_reward.eureka.allowlist.CodeRejected: line 1: import of 'os' is not allowed (only math, numpy)
    >>> check_code("import numpy as np\\nb = np.ma")
    Traceback (most recent call last):
    ...
    llm_reward.eureka.allowlist.CodeRejected: line 2: 'np.ma' is not an allowed numpy name
"""

from __future__ import annotations

import ast
import math

import numpy as np

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

#: ``np.<name>``: numerical callables, types and constants (no I/O, FFI, pickling, submodules but linalg).
NUMPY_NAMES = frozenset({
    # elementwise math
    "abs", "absolute", "fabs", "sign", "sqrt", "cbrt", "square", "exp", "exp2", "expm1", "log", "log2", "log10",
    "log1p", "power", "float_power", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "arctan2", "sinh", "cosh",
    "tanh", "arcsinh", "arccosh", "arctanh", "hypot", "deg2rad", "rad2deg", "degrees", "radians", "floor", "ceil",
    "trunc", "rint", "round", "around", "fix", "mod", "fmod", "remainder", "divmod", "floor_divide", "true_divide",
    "divide", "multiply", "add", "subtract", "negative", "positive", "reciprocal", "maximum", "minimum", "fmax",
    "fmin", "clip", "heaviside", "copysign", "logaddexp", "logaddexp2", "sinc", "nan_to_num", "interp",
    "isfinite", "isnan", "isinf", "isclose", "allclose", "array_equal", "equal", "not_equal", "less",
    "less_equal", "greater", "greater_equal", "logical_and", "logical_or", "logical_not", "logical_xor",
    "bitwise_and", "bitwise_or", "bitwise_xor", "invert", "left_shift", "right_shift", "where", "select",
    "piecewise", "signbit",
    # reductions and statistics
    "sum", "prod", "mean", "median", "std", "var", "min", "max", "amin", "amax", "ptp", "average", "cumsum",
    "cumprod", "nansum", "nanmean", "nanmax", "nanmin", "nanstd", "nanmedian", "percentile", "quantile",
    "argmax", "argmin", "argsort", "sort", "all", "any", "count_nonzero", "nonzero", "argwhere", "flatnonzero",
    "unique", "bincount", "histogram", "digitize", "searchsorted", "diff", "gradient", "trapezoid", "convolve",
    "correlate", "corrcoef", "cov",
    # construction and shape
    "array", "asarray", "asanyarray", "ascontiguousarray", "copy", "zeros", "ones", "full", "empty", "zeros_like",
    "ones_like", "full_like", "empty_like", "arange", "linspace", "logspace", "geomspace", "eye", "identity",
    "diag", "diagonal", "trace", "tri", "tril", "triu", "meshgrid", "reshape", "ravel", "squeeze",
    "expand_dims", "transpose", "swapaxes", "moveaxis", "flip", "fliplr", "flipud", "roll", "rot90",
    "concatenate", "stack", "vstack", "hstack", "dstack", "column_stack", "split", "array_split", "tile",
    "repeat", "broadcast_to", "atleast_1d", "atleast_2d", "atleast_3d", "take", "take_along_axis", "unravel_index",
    "ravel_multi_index", "indices", "shape", "ndim", "size", "isscalar", "isin", "in1d", "intersect1d",
    "union1d", "setdiff1d", "pad",
    # linear algebra at the top level
    "dot", "vdot", "inner", "outer", "matmul", "cross", "tensordot", "einsum", "kron", "linalg",
    # types and their limits
    "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "bool_", "intp", "ndarray", "number", "integer", "floating", "generic", "finfo", "iinfo",
    # constants
    "pi", "e", "inf", "nan", "newaxis", "euler_gamma",
})
#: ``np.linalg.<name>``.
LINALG_NAMES = frozenset({"norm", "det", "inv", "pinv", "solve", "eig", "eigh", "eigvals", "eigvalsh", "svd",
                          "qr", "cholesky", "lstsq", "matrix_rank", "matrix_power", "cond", "slogdet"})
#: ``math.<name>``: everything public in math (functions and float constants only).
MATH_NAMES = frozenset(name for name in dir(math) if not name.startswith("_"))
#: Submodule names reachable from a module alias, with what they allow.
_MODULE_NAMES = {"numpy": NUMPY_NAMES, "math": MATH_NAMES, "numpy.linalg": LINALG_NAMES}
#: Any other ``x.<name>``: ndarray methods and properties, dict/list/str/float methods, finfo fields.
OBJECT_ATTRIBUTES = frozenset({
    "all", "any", "argmax", "argmin", "argsort", "astype", "clip", "copy", "cumprod", "cumsum", "diagonal", "dot",
    "fill", "flatten", "item", "max", "mean", "min", "nonzero", "prod", "ravel", "repeat", "reshape", "round",
    "sort", "squeeze", "std", "sum", "swapaxes", "take", "tolist", "trace", "transpose", "var", "T", "shape",
    "ndim", "size", "dtype", "real", "imag", "flat", "nbytes", "itemsize", "kind",
    "get", "items", "keys", "values", "update", "pop", "setdefault", "append", "extend", "insert", "index",
    "count", "reverse", "remove", "clear", "lower", "upper", "strip", "lstrip", "rstrip", "startswith",
    "endswith", "split", "join", "replace", "isdigit", "isalpha", "is_integer", "conjugate",
    "eps", "tiny", "resolution", "bits",
    # ufunc methods (np.add.reduce, np.maximum.accumulate)
    "reduce", "accumulate", "outer",
})
#: dtype kinds reward code may make: numbers, bools, datetimes and fixed-width bytes or text. Never objects ('O'),
#: raw or structured records ('V') or variable-width strings ('T'): their memory holds pointers, and an array of
#: them built over another array's memory reads and forges Python objects.
SAFE_DTYPE_KINDS = frozenset("biufcmMSU")
#: ndarray methods that take a ``dtype`` (or, for ``clip`` and ``dot``, an operand that can promote to object):
#: they may only be called directly, and the worker routes each call through a run-time dtype check
#: (``guard.call_method``).
GUARDED_METHODS = frozenset({"astype", "sum", "prod", "mean", "std", "var", "cumsum", "cumprod", "trace", "clip",
                             "dot"})
_FORBIDDEN_NODES: dict[type, str] = {
    ast.Global: "'global' statements", ast.Nonlocal: "'nonlocal' statements", ast.ClassDef: "class definitions",
    ast.AsyncFunctionDef: "async functions", ast.Await: "await", ast.AsyncFor: "async for",
    ast.AsyncWith: "async with", ast.With: "'with' blocks", ast.Delete: "'del' statements",
}
if hasattr(ast, "Match"):  # a class pattern reads attributes by name (``case int(__class__=c)``)
    _FORBIDDEN_NODES[ast.Match] = "'match' statements"
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
    try:
        modules = module_aliases(tree)
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            reason = _node_reason(node) or _attribute_reason(node, modules, parents) or _dtype_reason(node)
            if reason is not None:
                raise CodeRejected(f"line {getattr(node, 'lineno', '?')}: {reason}")
    except (RecursionError, MemoryError) as exc:  # a checker that cannot finish refuses: never an uncaught error
        raise CodeRejected(f"reward code too deeply nested to check: {type(exc).__name__}") from None


def module_aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> module for ``np``/``math`` (bound in the worker) and every import of numpy, math, linalg.

    A name must stand for one module wherever it is bound (``import math as np`` in one branch and ``import numpy
    as np`` in another would let the check and the run disagree), and no function parameter may take a module's
    name."""
    aliases = {"np": "numpy", "numpy": "numpy", "math": "math"}
    bound: dict[str, tuple[str, int]] = {}
    for node in ast.walk(tree):
        pairs = []
        if isinstance(node, ast.Import):
            pairs = [(alias.asname or alias.name, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "numpy":
            pairs = [(alias.asname or alias.name, "numpy.linalg") for alias in node.names if alias.name == "linalg"]
        for name, module in pairs:
            if name in bound and bound[name][0] != module:
                raise CodeRejected(f"line {node.lineno}: {name!r} is bound to two different modules")
            bound[name] = (module, node.lineno)
            aliases[name] = module
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.arg in aliases:
            raise CodeRejected(f"line {node.lineno}: a parameter may not be named after the module {node.arg!r}")
    return aliases


def module_of(node: ast.AST, modules: dict[str, str]) -> str | None:
    """The module ``node`` evaluates to (``np``, ``np.linalg``), or None if it is not a module expression.

    Looks at most two levels down (no recursion: a chain of thousands of attributes is just "not a module")."""
    if isinstance(node, ast.Name):
        return modules.get(node.id)
    if isinstance(node, ast.Attribute) and node.attr == "linalg" and isinstance(node.value, ast.Name) \
            and modules.get(node.value.id) == "numpy":
        return "numpy.linalg"
    return None


def _attribute_reason(node: ast.AST, modules: dict[str, str], parents: dict[ast.AST, ast.AST]) -> str | None:
    """Modules only as the base of an allowed attribute; every other attribute from OBJECT_ATTRIBUTES."""
    if isinstance(node, ast.Name) and node.id in modules:
        parent = parents.get(node)
        if not isinstance(node.ctx, ast.Load):
            return f"the module name {node.id!r} cannot be assigned"
        if not (isinstance(parent, ast.Attribute) and parent.value is node):
            return f"the module {node.id!r} may only be used as {node.id}.<name>"
    elif isinstance(node, ast.Attribute):
        module = module_of(node.value, modules)
        if module is not None:
            if node.attr not in _MODULE_NAMES[module]:
                base = ast.unparse(node.value)
                return f"'{base}.{node.attr}' is not an allowed {module.split('.')[0]} name"
            if module == "numpy" and node.attr == "linalg":
                parent = parents.get(node)
                if not (isinstance(parent, ast.Attribute) and parent.value is node):
                    return "numpy.linalg may only be used as np.linalg.<name>"
        elif node.attr not in OBJECT_ATTRIBUTES and not node.attr.startswith("_"):
            return f"attribute {node.attr!r} is not allowed (not an ndarray, dict, list or str method)"
        elif not isinstance(node.ctx, ast.Load):
            return f"attributes cannot be assigned or deleted ('.{node.attr}')"
        elif node.attr in GUARDED_METHODS:
            parent = parents.get(node)
            if not (isinstance(parent, ast.Call) and parent.func is node):
                return f"'.{node.attr}' may only be called directly, as x.{node.attr}(...)"
    return None


def _dtype_reason(node: ast.AST) -> str | None:
    """No ``buffer=`` and no object, record or pointer dtype written out (the worker checks computed ones)."""
    if not isinstance(node, ast.Call):
        return None
    given = [kw.value for kw in node.keywords if kw.arg == "dtype"]
    if isinstance(node.func, ast.Attribute) and node.func.attr == "astype" and node.args:
        given.append(node.args[0])
    for keyword in node.keywords:
        if keyword.arg == "buffer":
            return "'buffer=' is not allowed (an array over another object's memory)"
    for value in given:
        if isinstance(value, (ast.List, ast.Tuple, ast.Dict)):
            return "record (structured) dtypes are not allowed in reward code"
        if isinstance(value, ast.Constant) and not _safe_dtype(value.value):
            return f"dtype {value.value!r} is not allowed (numbers, bools or fixed-width text only)"
    return None


def _safe_dtype(value: object) -> bool:
    try:
        return np.dtype(value).kind in SAFE_DTYPE_KINDS  # type: ignore[call-overload]
    except (TypeError, ValueError, SyntaxError):
        return True  # not a dtype at all: numpy raises at run time


def _node_reason(node: ast.AST) -> str | None:
    for kind, what in _FORBIDDEN_NODES.items():
        if isinstance(node, kind):
            return f"{what} are not allowed in reward code"
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] not in ALLOWED_MODULES or "." in alias.name:
                return f"import of {alias.name!r} is not allowed (only math, numpy)"
    elif isinstance(node, ast.ImportFrom):
        if node.level or node.module not in _MODULE_NAMES:
            return f"import from {node.module!r} is not allowed (only math, numpy, numpy.linalg)"
        for alias in node.names:
            if alias.name not in _MODULE_NAMES[node.module]:
                return f"'from {node.module} import {alias.name}' is not allowed"
    elif isinstance(node, ast.Name):
        if node.id.startswith("__") or node.id in FORBIDDEN_NAMES:
            return f"name {node.id!r} is not allowed"
    elif isinstance(node, ast.Attribute):
        if node.attr.startswith("_"):
            return f"{'dunder' if node.attr.startswith('__') else 'private'} attribute {node.attr!r} is not allowed"
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
