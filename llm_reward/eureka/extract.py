"""Find ``compute_reward`` in an LLM response: by name with ``ast``, nested and sibling helpers kept.

Eureka's own extractor kept the text after the last ``def``, which truncates a function with nested helpers. Here
every fenced code block is parsed; the last one that defines ``compute_reward`` at module level wins, and of it
we keep the imports, function definitions and plain assignments (constants) -- not stray module-level calls,
prints or demo code.

    >>> text = ("Here:\\n```python\\nimport numpy as np\\ndef compute_reward(obs, action, next_obs, info):\\n"
    ...         "    def speed(o):\\n        return float(o[8])\\n"
    ...         "    return speed(next_obs), {'speed': speed(next_obs)}\\nprint(compute_reward(1, 2, 3, 4))\\n```")
    >>> print(extract_reward_code(text).strip())
    import numpy as np
    def compute_reward(obs, action, next_obs, info):
        def speed(o):
            return float(o[8])
        return speed(next_obs), {'speed': speed(next_obs)}
"""

from __future__ import annotations

import ast
import re

FUNCTION_NAME = "compute_reward"
SIGNATURE = "compute_reward(obs, action, next_obs, info) -> (float, dict[str, float])"
#: A fence line (an optional language, then spaces) and the block up to the closing fence or the end. The spaces
#: before and after the language are never adjacent quantifiers (that backtracked quadratically on a fence line of
#: spaces without a newline), so matching is linear in the reply's length.
_FENCE = re.compile(r"```[ \t]*(?:([A-Za-z0-9_+-]+)[ \t]*)?\n(.*?)(?:```|\Z)", re.DOTALL)
_KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.Assign, ast.AnnAssign)
_NEWLINE = re.compile(r"\r\n|\r|\n")  # the line ends ast counts (not str.splitlines' \f, \v, \x1c...)
#: Longest LLM reply looked at; checked before any parsing (a reply is a few KB; the code itself is capped at
#: 20,000 characters by the allow-list).
MAX_REPLY_CHARS = 200_000


class ExtractionError(ValueError):
    """No usable ``compute_reward`` in a response; ``str(exc)`` is a one-line reason for the LLM."""


def code_blocks(text: str) -> list[str]:
    """Fenced code blocks of ``text`` (an unclosed last fence runs to the end); the whole text if none."""
    blocks = [body for lang, body in _FENCE.findall(text) if lang.lower() in ("", "python", "py", "python3")]
    return blocks or [text]


def extract_reward_code(text: str) -> str:
    """The module source defining ``compute_reward`` (imports, helpers, constants); :class:`ExtractionError` if none.

    The signature is checked: four positional parameters ``(obs, action, next_obs, info)``.
    """
    if not isinstance(text, str) or not text.strip():
        raise ExtractionError("the response is empty")
    if len(text) > MAX_REPLY_CHARS:
        raise ExtractionError(f"the response is {len(text)} characters; the limit is {MAX_REPLY_CHARS}")
    last_error = f"no function named {FUNCTION_NAME} found; write {SIGNATURE}"
    for block in reversed(code_blocks(text)):
        tree = _parse(block)
        if tree is None:
            if f"def {FUNCTION_NAME}" in block:
                last_error = f"the code block defining {FUNCTION_NAME} has a syntax error: {_syntax_error(block)}"
            continue
        functions = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == FUNCTION_NAME]
        if not functions:
            continue
        check_signature(functions[-1])
        chosen = functions[-1]
        kept = [node for node in tree.body if isinstance(node, _KEPT)
                and not (isinstance(node, ast.FunctionDef) and node.name == FUNCTION_NAME and node is not chosen)]
        return "\n".join(_segments(block, kept)) + "\n"
    raise ExtractionError(last_error)


def _segments(source: str, nodes: list[ast.stmt]) -> list[str]:
    """The source text of each node, in time linear in ``len(source)`` (``ast.get_source_segment`` splits the
    whole source again for every node: quadratic in a long reply)."""
    starts = [0, *(match.end() for match in _NEWLINE.finditer(source))]

    def offset(line: int, column: int) -> int:  # ast columns count UTF-8 bytes
        begin = starts[line - 1]
        end = starts[line] if line < len(starts) else len(source)
        return begin + len(source[begin:end].encode()[:column].decode(errors="replace"))

    return [source[offset(node.lineno, node.col_offset):offset(node.end_lineno, node.end_col_offset)]
            for node in nodes]


def check_signature(function: ast.FunctionDef) -> None:
    """ExtractionError unless ``function`` takes exactly four positional arguments (extra ones need defaults)."""
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    required = len(positional) - len(args.defaults)
    if args.kwonlyargs and len(args.kw_defaults) != sum(d is not None for d in args.kw_defaults):
        raise ExtractionError(f"{FUNCTION_NAME} has required keyword-only arguments; write {SIGNATURE}")
    if args.vararg is None and (len(positional) < 4 or required > 4):
        names = ", ".join(a.arg for a in positional)
        raise ExtractionError(f"{FUNCTION_NAME}({names}) must take four arguments; write {SIGNATURE}")


def info_keys_used(source: str) -> frozenset[str] | None:
    """The ``info`` keys ``compute_reward`` reads, when it reads them only as ``info["k"]``, ``info.get("k")`` or
    ``"k" in info``; ``None`` when it uses ``info`` any other way (passes it on, iterates it).

    Lets the reward wrappers send only what the code reads to its worker.

    >>> sorted(info_keys_used("def compute_reward(o, a, n, info):\\n    return info.get('x', 0.0) + info['y'], {}"))
    ['x', 'y']
    >>> info_keys_used("def compute_reward(o, a, n, info):\\n    return helper(info), {}") is None
    True
    """
    tree = ast.parse(source)
    function = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == FUNCTION_NAME), None)
    positional = [*function.args.posonlyargs, *function.args.args] if function is not None else []
    if len(positional) < 4:
        return None
    name = positional[3].arg
    parents = {child: node for node in ast.walk(function) for child in ast.iter_child_nodes(node)}
    keys: set[str] = set()
    for node in ast.walk(function):
        if not (isinstance(node, ast.Name) and node.id == name) or node is positional[3]:
            continue
        parent = parents.get(node)
        key = None
        if isinstance(parent, ast.Subscript) and parent.value is node:
            key = parent.slice
        elif isinstance(parent, ast.Attribute) and parent.attr == "get" and isinstance(parents.get(parent), ast.Call):
            call = parents[parent]
            key = call.args[0] if call.func is parent and call.args else None
        elif isinstance(parent, ast.Compare) and node in parent.comparators and len(parent.ops) == 1 \
                and isinstance(parent.ops[0], (ast.In, ast.NotIn)):
            key = parent.left
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            return None
        keys.add(key.value)
    return frozenset(keys)


def _parse(block: str) -> ast.Module | None:
    try:
        return ast.parse(block)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _syntax_error(block: str) -> str:
    try:
        ast.parse(block)
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except Exception as exc:  # noqa: BLE001 - any parser failure becomes the reason text
        return type(exc).__name__
    return "unknown"
