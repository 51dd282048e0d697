"""What decides a search, the default run directory keyed on it, and the check that a resumed run is the same search.

A run directory holds finished candidates that a rerun reuses without asking the LLM again, so reusing one written
for another env, coder, context, prompt text or training setting would report another search's code as this one's.
The identity is every setting that changes a finished candidate; settings that only add work (more samples,
iterations or final seeds) or change where it runs (workers, executor, limits) may change on resume.

    >>> ident = search_identity("MountainCarContinuous-v0", "qwen", {"seed": 0, "total_timesteps": 1000,
    ...                         "workers": 2}, {"description": "Drive up the hill."})
    >>> sorted(ident["search"])
    ['seed', 'total_timesteps']
    >>> default_run_dir(ident, root="runs/eureka").parts[:3]
    ('runs', 'eureka', 'MountainCarContinuous-v0')
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

from llm_reward.eureka.prompts import PROMPTS_DIGEST
from llm_reward.eureka.reflection import DIAGNOSIS_DIGEST
from llm_reward.identity import digest

#: ``search.*`` keys a resumed run may change: they add or place work, never change a finished candidate.
RESUMABLE_KEYS = frozenset({"samples", "iterations", "final_seeds", "baselines", "blind", "workers", "executor",
                            "ray_address", "timeout_s", "memory_mb"})


class RunDirMismatch(ValueError):
    """The run directory holds a search for another env id, coder, context or search setting."""


def search_identity(env_id: str, llm_name: str, search: Mapping[str, Any],
                    context: Mapping[str, Any] | None, prompts: str = PROMPTS_DIGEST) -> dict[str, Any]:
    """The settings that decide a search's candidates (JSON-able; ``search`` as :func:`dataclasses.asdict`;
    ``prompts`` the digest of the prompt texts, :data:`~llm_reward.eureka.prompts.PROMPTS_DIGEST`).

    Where the context names milestones (MiniGrid), the reflection sent to the coder reports them, so the
    identity also holds ``diagnosis``, the digest of the failure diagnosis's texts
    (:data:`~llm_reward.eureka.reflection.DIAGNOSIS_DIGEST`); other envs' identities are as they were.

        >>> "diagnosis" in search_identity("MiniGrid-DoorKey-8x8-v0", "qwen", {}, {"milestones": ["opened the door"]})
        True
    """
    identity = {"env_id": env_id, "llm": llm_name, "prompts": prompts,
                "search": {k: v for k, v in sorted(search.items()) if k not in RESUMABLE_KEYS},
                "context": dict(context) if context is not None else None}
    if context is not None and context.get("milestones"):
        identity["diagnosis"] = DIAGNOSIS_DIGEST
    return identity


def identity_hash(identity: Mapping[str, Any]) -> str:
    """Eight hex digits of the identity's SHA-256 (:func:`llm_reward.identity.digest`, stable across machines)."""
    return digest(dict(identity))


def default_run_dir(identity: Mapping[str, Any], root: str | Path = "runs/eureka") -> Path:
    """``<root>/<env id>/<coder>-<identity hash>-seed<seed>``: two different searches never share a directory."""
    coder = re.sub(r"[^A-Za-z0-9._-]+", "_", str(identity["llm"])) or "llm"
    env = re.sub(r"[^A-Za-z0-9._-]+", "_", str(identity["env_id"]))
    seed = identity["search"].get("seed", 0)
    return Path(root) / env / f"{coder}-{identity_hash(identity)}-seed{seed}"


def check_run_dir(run_dir: str | Path, identity: Mapping[str, Any]) -> None:
    """Raise :class:`RunDirMismatch` if ``run_dir/config.json`` was written for another search (another env id,
    coder, prompt texts, search setting or context).

    The message names each differing setting and what to set (``run_dir=...``). A directory without
    ``config.json`` is new. Older directories that stored no context are compared on what they stored.
    """
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return
    try:
        stored = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RunDirMismatch(f"run_dir={run_dir} has an unreadable config.json ({exc}); set run_dir to a new "
                             f"directory or delete this one") from None
    differs = []
    for key, name in (("env_id", "env.id"), ("llm", "llm (the coder)"), ("prompts", "prompts (the prompt texts)")):
        # a directory from before prompts were versioned stores none: its replies answer older prompts
        if stored.get(key) != identity[key]:
            differs.append(f"{name}: stored {stored.get(key)!r}, now {identity[key]!r}")
    if stored.get("diagnosis") != identity.get("diagnosis"):  # the reflection's milestone texts, where it has them
        differs.append(f"diagnosis (the failure diagnosis's texts): stored {stored.get('diagnosis')!r}, now "
                       f"{identity.get('diagnosis')!r}")
    old_search = stored.get("search") or {}
    for key, value in identity["search"].items():
        if key in old_search and old_search[key] != value:
            differs.append(f"search.{key}: stored {old_search[key]!r}, now {value!r}")
    old_context = stored.get("context")
    if old_context is not None and identity.get("context") is not None:
        for key in sorted(set(old_context) | set(identity["context"])):
            if old_context.get(key) != identity["context"].get(key):
                differs.append(f"context.{key} differs")
    if differs:
        raise RunDirMismatch(f"run_dir={run_dir} holds another search ({'; '.join(differs)}); resuming it would "
                             f"report its candidates as this search's. Set run_dir to a new directory (or leave "
                             f"run_dir unset: the default is keyed on env id, coder and search settings), or "
                             f"delete {run_dir}")
