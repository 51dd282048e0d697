"""Strict JSON and atomic writes for everything the library writes (metrics, reports, reward models, checkpoints).

NaN and infinities are not valid JSON, so they become null; NumPy scalars and arrays become plain numbers and
lists. A file is written beside its destination and renamed into place, and a directory of files is filled as a
temporary sibling and swapped in (:func:`replaced_directory`): a crash never leaves a half-written file or directory
where a reader would take it for a finished one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator

import numpy as np


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None, NumPy types as Python ones and dict keys as strings."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    return value


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` to ``path`` (parent directories created) as indented, key-sorted strict JSON, atomically.

    Args:
        path: the file to write (replaced if it exists).
        data: anything :func:`json_safe` turns into JSON.

    Returns:
        ``path`` as a Path.

    Example:
        >>> import tempfile
        >>> path = write_json(Path(tempfile.mkdtemp()) / "metrics.json", {"loss": float("nan"), "n": np.int64(3)})
        >>> json.loads(path.read_text())
        {'loss': None, 'n': 3}
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(json_safe(data), indent=2, sort_keys=True, default=float, allow_nan=False) + "\n"
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def replaced_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Fill a temporary sibling of ``path``, then swap it in for ``path`` (replaced if it exists).

    Nothing appears at ``path`` until the block finishes; if it raises, the temporary directory is removed and
    ``path`` keeps what it held.

    Args:
        path: the directory to write.

    Yields:
        The temporary directory to write the files into.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> with replaced_directory(root / "model") as tmp:
        ...     _ = write_json(tmp / "config.json", {"version": 1})
        ...     (root / "model").exists()
        False
        >>> sorted(p.name for p in root.iterdir()), (root / "model" / "config.json").is_file()
        (['model'], True)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    old = None
    try:
        yield tmp
        if path.exists():
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            path.rename(old)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
