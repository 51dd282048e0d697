"""A stage's identity: the one way every track names a cached or resumable result after the inputs that decide it.

A stage (Motif's rollouts, labels and reward model; an RLAIF run; a Eureka search) is reused when it is found
under its key, so the key must change whenever an input that changes the result changes, and only then. Each
track lists what decides its stage (a dict of settings, a file's bytes, a sentence) and asks :func:`digest` for
the short, stable hash that goes into the key: Motif's stage paths (through the resolvers of
``llm_reward.conf``), RLAIF's run directory (``rlaif.pipeline.run_key``) and Eureka's default run directory
(``eureka.rundir``).

    >>> digest({"seed": 0, "lr": 0.001}) == digest({"lr": 0.001, "seed": 0})
    True
    >>> digest("text:reach the goal"), len(digest(b"model bytes", length=10))
    ('c7dd57de', 10)
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def digest(decided: Any, length: int = 8) -> str:
    """The first ``length`` hex digits of the SHA-256 of what decides a stage (stable across runs and machines).

    Args:
        decided: bytes (a file's content) and text are hashed as they are; anything else (a dict of settings) as
            its canonical JSON: keys sorted, values that JSON cannot hold as their ``str``.
        length: how many hex digits to keep.

    Returns:
        The hex digest prefix.

    Example:
        >>> digest({"env_id": "Hopper-v5", "search": {"seed": 0}})
        '0e252ade'
    """
    if isinstance(decided, bytes):
        data = decided
    elif isinstance(decided, str):
        data = decided.encode()
    else:
        data = json.dumps(decided, sort_keys=True, default=str).encode()
    return hashlib.sha256(data).hexdigest()[:length]
