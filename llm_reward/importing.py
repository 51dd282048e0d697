"""Objects named by import path in configs and YAML (rl-baselines3-zoo wrappers, policy classes): one resolver."""

from __future__ import annotations

import importlib
from typing import Any


def import_object(path: str) -> Any:
    """The object at ``"package.module.Name"`` (or ``"package.module:Name"``); ValueError naming the path otherwise.

    Example:
        >>> import_object("collections.OrderedDict").__name__, import_object("os.path:join").__name__
        ('OrderedDict', 'join')
    """
    if not isinstance(path, str):
        raise ValueError(f"expected an import path 'package.module.Name', got {path!r}")
    module, _, attr = path.replace(":", ".").rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(f"cannot import {path!r} (expected 'package.module.Name'): {error}") from error
