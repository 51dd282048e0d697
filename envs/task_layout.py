"""Observation layouts read from an env class's own documentation: what each index of the observation means.

Gymnasium's MuJoCo v5 tasks, gymnasium-robotics (Fetch, Adroit, mazes) and classic control document their
observation in the class docstring: a ``## Observation Space`` section with a markdown table (``| Num | Observation
| ... | Unit |``), one table per dict key for goal-conditioned envs (after a bullet naming the key), and a bullet
list of the parts (``*cfrc_ext (78 elements):* ...``) for ranges the table leaves out. This module parses that text
and completes it with the MuJoCo model (body and joint names), so every index gets a meaning::

    env = gym.make("HalfCheetah-v5")
    layout = observation_layout(env)          # 17 fields: rootz (m), rooty (rad), ...
"""

from __future__ import annotations

import inspect
import re
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


@dataclass(frozen=True)
class ObsField:
    """One observation element: ``obs[key][index]`` (``key`` is None for a Box observation).

    ``name`` is the env's own identifier when it documents one (the XML joint or site name, e.g. ``rootz``), else
    ``obs[3]`` / ``observation[3]``; ``meaning`` is the documented description; ``unit`` e.g. ``m``, ``rad/s`` or ''.
    """

    key: str | None
    index: int
    name: str
    meaning: str
    unit: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_HEADING = re.compile(r"^\s*(#{2,4})\s*(.+?)\s*$")
_KEY_BULLET = re.compile(r"^\s*[*-]\s*`(\w+)`\s*:")
_PART_BULLET = re.compile(r"^\s*[-*]\s*\*(?P<name>.+?)\s*\((?P<n>\d+)\s*elements?[^)]*\)\s*:?\*\s*:?\s*(?P<text>.*)$")
_PARENS = re.compile(r"\(([^()]*)\)\s*$")
_TAGS = re.compile(r"</?\w+>")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_BLANK_NAMES = {"", "-", "na", "n/a", "none"}


def class_doc(cls: type) -> str:
    """The first docstring along ``cls``'s MRO that documents an observation space (else the first docstring)."""
    docs = [inspect.getdoc(c) or "" for c in cls.__mro__ if c.__doc__]
    return next((d for d in docs if re.search(r"#+\s*Observation Space", d, re.I)), docs[0] if docs else "")


def doc_section(doc: str, title: str) -> str:
    """Text of the ``## <title>`` section (any heading level), up to the next heading of the same or higher level."""
    lines, out, level = doc.splitlines(), [], None
    for line in lines:
        heading = _HEADING.match(line)
        if level is None:
            if heading and heading.group(2).lower().startswith(title.lower()):
                level = len(heading.group(1))
            continue
        if heading and len(heading.group(1)) <= level:
            break
        out.append(line)
    return "\n".join(out)


@dataclass
class _Documented:
    rows: dict[int, dict[str, str]]
    excluded: list[dict[str, str]]
    parts: list[tuple[str, int, str]]


def parse_observation_doc(doc: str) -> dict[str | None, _Documented]:
    """Per dict key (None for a Box observation): the first observation table's rows and the parts bullet list."""
    section = doc_section(doc, "Observation Space") or doc_section(doc, "Observation")
    found: dict[str | None, _Documented] = {}
    key: str | None = None
    table: list[str] = []

    def close_table() -> None:
        entry = found.setdefault(key, _Documented({}, [], []))
        if table and not entry.rows and not entry.excluded:
            _fill_rows(entry, table)
        table.clear()

    for line in section.splitlines() + [""]:
        stripped = line.strip()
        if stripped.startswith("|"):
            table.append(stripped)
            continue
        if table:
            close_table()
        if match := _KEY_BULLET.match(line):
            key = match.group(1)
        elif match := _PART_BULLET.match(line):
            found.setdefault(key, _Documented({}, [], [])).parts.append(
                (match.group("name").strip(), int(match.group("n")), first_sentence(match.group("text"))))
    return {k: v for k, v in found.items() if v.rows or v.excluded or v.parts}


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _fill_rows(entry: _Documented, table: list[str]) -> None:
    header = [c.lower() for c in _cells(table[0])]
    if not header or header[0] != "num" or not any("observation" in h for h in header):
        return
    meaning_col = next(i for i, h in enumerate(header) if "observation" in h)
    name_cols = [i for i, h in enumerate(header) if "name" in h]
    unit_col = next((i for i, h in enumerate(header) if "unit" in h), None)
    for line in table[1:]:
        cells = _cells(line)
        if len(cells) < 2 or set(cells[0]) <= set("-: "):
            continue
        name = next((cells[i] for i in name_cols if i < len(cells) and cells[i].lower() not in _BLANK_NAMES), "")
        unit = cells[unit_col] if unit_col is not None and unit_col < len(cells) else ""
        row = {"name": name, "meaning": _clean(cells[meaning_col]) if meaning_col < len(cells) else "",
               "unit": _unit(unit)}
        if cells[0].isdigit():
            entry.rows.setdefault(int(cells[0]), row)
        elif cells[0].lower() == "excluded":
            entry.excluded.append(row)


def _clean(text: str) -> str:
    """Markdown to plain text: tags and backticks dropped, links reduced to their text."""
    text = _LINK.sub(r"\1", _TAGS.sub("", text)).replace("`", "")
    return " ".join(text.replace("**", "").split())


def _unit(text: str) -> str:
    """``position (m)`` -> ``m``; ``unitless`` -> ''; ``m`` -> ``m``."""
    text = _clean(text)
    if match := _PARENS.search(text):
        return match.group(1).strip()
    return "" if text.lower() in ("unitless", "-", "") else text


def first_sentence(text: str) -> str:
    text = _clean(text)
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    return match.group(1) if match else text


def observation_layout(env: gym.Env) -> list[ObsField]:
    """One :class:`ObsField` per observation element (every index of every dict key), documented where possible.

    Indices the docs leave out are named from the parts list (``cfrc_ext[12]``: external force on body
    ``front_left_leg``) or, when nothing documents them, ``obs[i]`` with a generic meaning.
    """
    unwrapped = env.unwrapped
    documented = parse_observation_doc(class_doc(type(unwrapped)))
    space = env.observation_space
    if isinstance(space, spaces.Dict):
        fields: list[ObsField] = []
        for key, sub in space.spaces.items():
            fields.extend(_fields(unwrapped, key, sub, documented.get(key)))
        return fields
    return _fields(unwrapped, None, space, documented.get(None))


def _fields(unwrapped: Any, key: str | None, space: spaces.Space, doc: _Documented | None) -> list[ObsField]:
    label = key or "obs"
    if not isinstance(space, spaces.Box):  # Text (a mission), Discrete (a direction), ...: one field
        return [ObsField(key, 0, label, f"{label} ({type(space).__name__})", "")]
    size = int(np.prod(space.shape))
    doc = doc or _Documented({}, [], [])
    # With exclude_current_positions_from_observation=False the documented "excluded" positions come first.
    shift = len(doc.excluded) if getattr(unwrapped, "_exclude_current_positions_from_observation", True) is False else 0
    parts = _part_ranges(doc.parts, shift)
    fields = []
    for i in range(size):
        index = i if len(space.shape) == 1 else ",".join(map(str, np.unravel_index(i, space.shape)))
        ref = f"{label}[{index}]"
        row = doc.excluded[i] if i < shift else doc.rows.get(i - shift)
        if row is not None:
            fields.append(ObsField(key, i, row["name"] or _slug(row["meaning"]) or ref, row["meaning"] or ref,
                                   row["unit"]))
            continue
        part = next(((name, start, text) for name, start, end, text in parts if start <= i < end), None)
        if part is not None:
            name, start, text = part
            fields.append(ObsField(key, i, f"{name}[{i - start}]", _part_meaning(unwrapped, name, i - start,
                                                                              _part_size(parts, name), text), ""))
        else:
            fields.append(ObsField(key, i, ref, f"element {ref} of the observation (undocumented)", ""))
    return _contact_force_tail(unwrapped, fields)


def _contact_force_tail(unwrapped: Any, fields: list[ObsField]) -> list[ObsField]:
    """Name an undocumented tail of (bodies x 6) elements as MuJoCo contact forces (AntMaze's ``cfrc_ext``)."""
    undocumented = [f for f in fields if f.meaning.endswith("(undocumented)")]
    robot = getattr(unwrapped, "ant_env", unwrapped)
    model = getattr(robot, "model", None)
    if not undocumented or model is None or len(undocumented) != (int(model.nbody) - 1) * 6:
        return fields
    start = undocumented[0].index
    if [f.index for f in undocumented] != list(range(start, start + len(undocumented))):
        return fields
    text = "center of mass based external (contact) force on a body part (torque x, y, z, force x, y, z)."
    return fields[:fields.index(undocumented[0])] + [
        ObsField(f.key, f.index, f"cfrc_ext[{f.index - start}]",
                 _part_meaning(robot, "cfrc_ext", f.index - start, len(undocumented), text), "")
        for f in undocumented]


def _slug(meaning: str, words: int = 5) -> str:
    """'Cart Position' -> 'cart_position': a name for rows the env documents without an identifier."""
    return "_".join(re.findall(r"[a-z0-9]+", meaning.lower())[:words])


def _part_ranges(parts: list[tuple[str, int, str]], shift: int) -> list[tuple[str, int, int, str]]:
    out, start = [], 0
    for j, (name, n, text) in enumerate(parts):
        n = n + shift if j == 0 else n  # the documented qpos count assumes the default exclusion
        out.append((name, start, start + n, text))
        start += n
    return out


def _part_size(parts: list[tuple[str, int, int, str]], name: str) -> int:
    return next(end - start for n, start, end, _ in parts if n == name)


def _part_meaning(unwrapped: Any, part: str, j: int, size: int, text: str) -> str:
    """Per-body or per-joint detail for MuJoCo arrays (cinert, cvel, cfrc_ext: one row per body; qfrc_*: per dof)."""
    model = getattr(unwrapped, "model", None)
    detail = ""
    if model is not None and hasattr(model, "nbody"):
        bodies = int(model.nbody) - 1  # worldbody is left out
        if bodies > 0 and size % bodies == 0 and part.startswith("c"):
            per = size // bodies
            body = j // per + 1
            detail = f"body '{model.body(body).name or body}', component {j % per} of {per}"
        elif part.startswith("qfrc") and size <= int(model.nv):
            dof = int(model.nv) - size + j
            detail = f"degree of freedom {dof} (joint '{model.joint(int(model.dof_jntid[dof])).name}')"
    return f"{part}: {text}" + (f" [{detail}]" if detail else "")
