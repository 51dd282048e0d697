"""Strict JSON for everything the library writes (metrics, reports, reward-model files): NaN and infinities are not
valid JSON, so they become null; NumPy scalars and arrays become plain numbers and lists."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

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
    """Write ``data`` to ``path`` (parent directories created) as indented, key-sorted strict JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(data), indent=2, sort_keys=True, default=float, allow_nan=False) + "\n")
    return path
