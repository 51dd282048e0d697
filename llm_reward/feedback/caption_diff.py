"""Compact and difference captions: show a small judge only what tells two observations apart.

A scene caption lists everything in view; two captions of one task share most of it (the mission, the walls, the
status fields that did not change), and a 1.5B judge shown two long, mostly equal paragraphs answers by position.
:func:`difference_pair` splits both captions into clauses, drops the clauses they share, rounds long decimals
and (optionally) shortens "2 steps forward and 1 step left" to "3 steps away"; the mission, when both captions
state the same one, is returned once so the prompt can say it a single time.

Clauses are sentences, the items of a "You see a, b, c." list, and the fields of a trailing "(Dlvl 1, gold 0, ...)"
status summary, so the rules fit MiniGrid scene captions and NetHack message + status captions alike.

Example:
    >>> pair = difference_pair("You see a wall 2 steps forward. You carry a key.",
    ...                        "You see a wall 2 steps forward, a goal 3 steps forward.")
    >>> pair.first, pair.second
    ('You carry a key.', 'You see a goal 3 steps forward.')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Bump when the rules change: labels made from difference captions are keyed on it.
VERSION = "diff-v1"
NOTHING_ELSE = "Nothing else."

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")
_MISSION = re.compile(r"^Mission:\s*(.*?)\.\s+")
_STATUS = re.compile(r"\s*\(([^()]*)\)\s*$")
_DECIMAL = re.compile(r"-?\d+\.\d+")
_STEPS = re.compile(r"(\d+) steps? (?:forward|left|right)(?: and (\d+) steps? (?:forward|left|right))?")


@dataclass(frozen=True)
class CaptionPair:
    """Two captions reduced to what differs, and what both share that a prompt should state once."""

    first: str
    second: str
    mission: str | None = None  # the mission both captions state, removed from each

    @property
    def same(self) -> bool:
        """Nothing tells the two apart after reduction: a tie, not worth a judge's call."""
        return self.first == self.second


def round_numbers(text: str, digits: int = 1) -> str:
    """Decimals rounded to ``digits`` places (integers untouched): '0.4837 m' -> '0.5 m'.

    Example:
        >>> round_numbers("the block is 0.0834 m from the target, speed 1.25")
        'the block is 0.1 m from the target, speed 1.2'
    """
    return _DECIMAL.sub(lambda m: f"{float(m.group()):.{digits}f}", text)


def total_steps(text: str) -> str:
    """'2 steps forward and 1 step left' -> '3 steps away': the direction rarely matters for progress.

    Example:
        >>> total_steps("a key 1 step forward and 1 step left")
        'a key 2 steps away'
    """
    def total(match: re.Match[str]) -> str:
        n = int(match.group(1)) + int(match.group(2) or 0)
        return f"{n} step{'s' if n != 1 else ''} away"

    return _STEPS.sub(total, text)


def split_mission(caption: str) -> tuple[str | None, str]:
    """``("open the door", rest)`` for a caption starting with ``Mission: open the door.``, else ``(None, caption)``."""
    match = _MISSION.match(caption.strip())
    if match is None:
        return None, caption.strip()
    return match.group(1).strip(), caption.strip()[match.end():]


def clauses(caption: str) -> list[str]:
    """The caption's clauses in order: sentences, items of a 'You see ...' list, fields of a trailing status."""
    sentences, fields = _parts(caption)
    return sentences + fields


def _parts(caption: str) -> tuple[list[str], list[str]]:
    text = caption.strip()
    status = _STATUS.search(text)
    fields: list[str] = []
    if status is not None:
        fields = [f.strip() for f in status.group(1).split(",") if f.strip()]
        text = text[: status.start()].strip()
    out: list[str] = []
    for sentence in (s.strip() for s in _SENTENCE_END.split(text) if s.strip()):
        if sentence.startswith("You see ") and ", " in sentence:
            body = sentence[len("You see "):].rstrip(".")
            out.extend(f"You see {item.strip()}." for item in body.split(", ") if item.strip())
        else:
            out.append(sentence)
    return out, fields


def _join(parts: list[str], fields: list[str] = ()) -> str:
    """Clauses back into text; consecutive 'You see x.' clauses merge into one list sentence again."""
    if not parts and not fields:
        return NOTHING_ELSE
    merged: list[str] = []
    seen: list[str] = []
    for part in parts + [""]:
        if part.startswith("You see "):
            seen.append(part[len("You see "):].rstrip("."))
            continue
        if seen:
            merged.append("You see " + ", ".join(seen) + ".")
            seen = []
        if part:
            merged.append(part if part[-1] in ".!?" else part + ".")
    if fields:
        merged.append("(" + ", ".join(fields) + ")")
    return " ".join(merged)


def compact(caption: str, *, digits: int = 1, steps: bool = True, walls: bool = True) -> str:
    """One caption with rounded decimals, (``steps``) total step distances and (``walls=False``) no walls in the
    'You see' list: they tell where the agent stands, never how far the task has got. Its mission is kept.

    Example:
        >>> compact("Mission: open the door. You see a wall 1 step left, a red door 2 steps forward.", walls=False)
        'Mission: open the door. You see a red door 2 steps away.'
    """
    text = round_numbers(caption.strip(), digits)
    text = total_steps(text) if steps else text
    if walls:
        return text
    mission, rest = split_mission(text)
    sentences, fields = _parts(rest)
    kept = _join([c for c in sentences if not c.startswith("You see a wall ")], fields)
    kept = "You see no objects." if kept == NOTHING_ELSE else kept
    return f"Mission: {mission}. {kept}" if mission is not None else kept


def difference_pair(first: str, second: str, *, digits: int = 1, steps: bool = False) -> CaptionPair:
    """Each caption reduced to the clauses the other lacks (rounded; ``steps`` sums step distances).

    A shared mission is lifted out into :attr:`CaptionPair.mission`; different missions stay in their captions.
    A side with nothing of its own reads ``"Nothing else."``.
    """
    a, b = compact(first, digits=digits, steps=steps), compact(second, digits=digits, steps=steps)
    mission_a, rest_a = split_mission(a)
    mission_b, rest_b = split_mission(b)
    mission = mission_a if mission_a is not None and mission_a == mission_b else None
    if mission is None:
        rest_a, rest_b = a, b
    (text_a, fields_a), (text_b, fields_b) = _parts(rest_a), _parts(rest_b)
    first_only = _join([c for c in text_a if c not in text_b], [f for f in fields_a if f not in fields_b])
    second_only = _join([c for c in text_b if c not in text_a], [f for f in fields_b if f not in fields_a])
    return CaptionPair(first_only, second_only, mission)
