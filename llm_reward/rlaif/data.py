"""Prompt sets for text RLAIF: a JSONL file, one ``{"prompt": "...", "split": "train"|"heldout"}`` per line,
with an optional ``"constraints": ["max_words:20", "no_commas"]`` (verifiable instructions,
:mod:`llm_reward.rlaif.constraints`).

The shipped set (``shipped``) is our own: NetHack and MiniGrid situations written in the style of the env
captions, each asking for short, useful advice, plus general instructions; every fourth prompt of each source is
held out for evaluation. ``shipped_instructions`` is the same questions, each followed by two verifiable
instructions (IFEval-style) that the checker scores. A user file without ``split`` fields is split by a seeded
``heldout_fraction``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Mapping

from llm_reward.rlaif.constraints import Constraint, ConstraintError, assign_constraints, parse_constraint, \
    render_prompt

SHIPPED = "shipped"
SHIPPED_INSTRUCTIONS = "shipped_instructions"


class PromptFileError(ValueError):
    """The prompt file is missing, empty or malformed (raised before any model is loaded)."""


@dataclass(frozen=True)
class PromptSet:
    """Train and held-out prompts (never overlapping).

    Example:
        >>> prompts = load_prompts("shipped")
        >>> len(prompts.train) > len(prompts.heldout) > 0
        True
        >>> with_rules = load_prompts("shipped_instructions")
        >>> [c.spec for c in with_rules.constraints_of(with_rules.heldout[0])]  # doctest: +SKIP
        ['no_commas', 'max_words:20']
    """

    train: tuple[str, ...]
    heldout: tuple[str, ...]
    source: str
    constraints: Mapping[str, tuple[Constraint, ...]] = field(default_factory=dict)  # rendered prompt -> its rules

    def constraints_of(self, prompt: str) -> tuple[Constraint, ...]:
        """The verifiable instructions of ``prompt`` (empty for an open-ended prompt)."""
        return tuple(self.constraints.get(prompt, ()))


def shipped_path() -> Path:
    """The prompt file inside the installed package."""
    return Path(str(resources.files("llm_reward.rlaif") / "data" / "prompts.jsonl"))


def load_prompts(path: str | Path = SHIPPED, *, heldout_fraction: float = 0.25, seed: int = 0,
                 key: str = "data.prompts") -> PromptSet:
    """Read and validate a prompt file (``shipped``, ``shipped_instructions`` or a path); ``key`` names the config
    entry in error messages. Unknown constraints raise :class:`PromptFileError` before anything else runs."""
    with_rules = str(path) == SHIPPED_INSTRUCTIONS
    file = shipped_path() if str(path) in (SHIPPED, SHIPPED_INSTRUCTIONS) else Path(path).expanduser()
    if not file.is_file():
        raise PromptFileError(f"{key}: prompt file not found: {file}")
    rows, table = [], {}
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
        specs = row.get("constraints", [])
        if not isinstance(specs, list):
            raise PromptFileError(f'{key}: {file}:{number} "constraints" must be a list of specs like "no_commas"')
        try:
            rules = tuple(parse_constraint(s, key=f"{key} ({file}:{number})") for s in specs)
        except ConstraintError as err:
            raise PromptFileError(str(err)) from None
        question = row["prompt"].strip()
        if with_rules:
            rules = assign_constraints(question)
        text = render_prompt(question, rules)
        table[text] = rules
        rows.append((text, split))
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
    source = f"{file}#instructions" if with_rules else str(file)
    return PromptSet(train, heldout, source, {p: r for p, r in table.items() if r})
