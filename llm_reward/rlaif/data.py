"""Prompt sets for text RLAIF: a JSONL file, one ``{"prompt": "...", "split": "train"|"heldout"}`` per line.

The shipped set (``shipped``) is our own: NetHack and MiniGrid situations written in the style of the env
captions, each asking for short, useful advice, plus general instructions; every fourth prompt of each source is
held out for evaluation. A user file without ``split`` fields is split by a seeded ``heldout_fraction``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

SHIPPED = "shipped"


class PromptFileError(ValueError):
    """The prompt file is missing, empty or malformed (raised before any model is loaded)."""


@dataclass(frozen=True)
class PromptSet:
    """Train and held-out prompts (never overlapping).

    Example:
        >>> prompts = load_prompts("shipped")
        >>> len(prompts.train) > len(prompts.heldout) > 0
        True
    """

    train: tuple[str, ...]
    heldout: tuple[str, ...]
    source: str


def shipped_path() -> Path:
    """The prompt file inside the installed package."""
    return Path(str(resources.files("llm_reward.rlaif") / "data" / "prompts.jsonl"))


def load_prompts(path: str | Path = SHIPPED, *, heldout_fraction: float = 0.25, seed: int = 0,
                 key: str = "data.prompts") -> PromptSet:
    """Read and validate a prompt file; ``key`` names the config entry in error messages."""
    file = shipped_path() if str(path) == SHIPPED else Path(path).expanduser()
    if not file.is_file():
        raise PromptFileError(f"{key}: prompt file not found: {file}")
    rows = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise PromptFileError(f"{key}: {file}:{number} is not valid JSON ({err.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
            raise PromptFileError(f'{key}: {file}:{number} needs a non-empty string "prompt" field, got {line[:80]!r}')
        split = row.get("split")
        if split not in (None, "train", "heldout"):
            raise PromptFileError(f'{key}: {file}:{number} has split {split!r}; use "train" or "heldout"')
        rows.append((row["prompt"].strip(), split))
    if not rows:
        raise PromptFileError(f"{key}: prompt file {file} holds no prompts")
    if any(split is None for _, split in rows):
        if not 0.0 < heldout_fraction < 1.0:
            raise PromptFileError(f"data.heldout_fraction must be in (0, 1), got {heldout_fraction}")
        order = list(range(len(rows)))
        random.Random(seed).shuffle(order)
        n_held = max(1, round(heldout_fraction * len(rows)))
        held = set(order[:n_held])
        rows = [(p, s or ("heldout" if i in held else "train")) for i, (p, s) in enumerate(rows)]
    train = tuple(dict.fromkeys(p for p, s in rows if s == "train"))
    heldout = tuple(dict.fromkeys(p for p, s in rows if s == "heldout" and p not in train))
    if not train or not heldout:
        raise PromptFileError(f"{key}: {file} needs both train and held-out prompts "
                              f"(got {len(train)} train, {len(heldout)} held-out)")
    return PromptSet(train, heldout, str(file))
