"""The frames a sandbox runner reports, as typed records checked on the library's side of the pipe.

A runner's process shares a machine with reward code, so nothing it writes is trusted: :func:`parse_frame` turns a
decoded frame into one of these records only if the frame type is expected in the job's mode, every field the
record has is present with the right type and within bounds (finite numbers, bounded component dicts with valid
names, a flattened reason), and no other field is there.

    >>> parse_frame("train", {"type": "result", "timesteps": 64, "eval_success": 0.5, "eval_return": None})
    TrainResult(timesteps=64, eval_success=0.5, eval_return=None)
    >>> parse_frame("train", {"type": "result", "timesteps": 64, "eval_success": 0.5, "eval_return": None,
    ...                       "extra": 1})
    Traceback (most recent call last):
    ...
    llm_reward.eureka.channel.ChannelError: unexpected fields ['extra'] in a 'result' frame
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Sequence, Union

from llm_reward.eureka import channel
from llm_reward.eureka.channel import ChannelError


@dataclass(frozen=True)
class ErrorFrame:
    """The runner's one-line failure reason (its traceback is in the log)."""

    reason: str

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> ErrorFrame:
        return cls(reason=channel.reason_text(frame["reason"]))


@dataclass(frozen=True)
class ProgressFrame:
    """One training chunk: the episodes that ended in it, the reward code's mean total and components, and the
    failure diagnosis the reflection reads (best progress of each episode, time-limit rate and, where the job named
    the env's milestones, the share of those episodes that reached each: :func:`milestone_shares`)."""

    point: int
    timestep: int
    episodes: int
    success_rate: float | None
    env_return: float | None
    reward_mean: float | None
    components: dict[str, float]
    progress_best_mean: float | None
    progress_best_max: float | None
    time_limit_rate: float | None
    milestones: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_frame(cls, frame: dict[str, Any], milestones: Sequence[str] = ()) -> ProgressFrame:
        counts = {key: int(channel.finite_number(frame[key], key)) for key in ("point", "timestep", "episodes")}
        optional = {key: channel.optional_number(frame[key], key)
                    for key in ("success_rate", "env_return", "reward_mean", "progress_best_mean",
                                "progress_best_max", "time_limit_rate")}
        return cls(**counts, **optional, components=channel.component_means(frame["components"]),
                   milestones=milestone_shares(frame.get("milestones"), milestones))


def milestone_shares(value: Any, known: Sequence[str]) -> dict[str, float]:
    """The shares a progress frame reports for the job's ``known`` milestone names, in their order: only known
    names with a finite number in [0, 1] are kept; anything else (another name, a bool, a string, NaN, 1.5, a
    list instead of a dict) is dropped, so the reflection prompt only ever shows the library's own names.

        >>> milestone_shares({"opened the door": 0.25, "picked up the key": 0.5, "forged": 1.0,
        ...                   "reached the goal": float("nan")}, ["picked up the key", "opened the door",
        ...                   "reached the goal"])
        {'picked up the key': 0.5, 'opened the door': 0.25}
        >>> milestone_shares([0.5], ["picked up the key"]), milestone_shares({"picked up the key": True},
        ...                                                                  ["picked up the key"])
        ({}, {})
    """
    if not isinstance(value, dict):
        return {}
    shares = {}
    for name in known:
        share = value.get(name)
        if isinstance(share, (int, float)) and not isinstance(share, bool) and math.isfinite(share) and \
                0.0 <= share <= 1.0:
            shares[name] = float(share)
    return shares


@dataclass(frozen=True)
class SmokeResult:
    """A smoke test's outcome: steps run, and (mean, min, max) of the total and of each component."""

    steps: int
    total: list[float]
    components: dict[str, list[float]]

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> SmokeResult:
        components = frame["components"]
        if not isinstance(components, dict) or len(components) > channel.MAX_COMPONENTS:
            raise ChannelError(f"smoke components must be a dict of at most {channel.MAX_COMPONENTS} entries")
        stats = {}
        for name, values in components.items():
            channel.component_means({name: 0.0})  # the name check
            stats[name] = channel.number_list(values, f"components[{name!r}]", max_len=3)
        return cls(steps=int(channel.finite_number(frame["steps"], "steps")),
                   total=channel.number_list(frame["total"], "total", max_len=3), components=stats)


@dataclass(frozen=True)
class TrainResult:
    """A training run's end: timesteps trained and, if asked for, the final policy's evaluation."""

    timesteps: int
    eval_success: float | None
    eval_return: float | None

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> TrainResult:
        return cls(timesteps=int(channel.finite_number(frame["timesteps"], "timesteps")),
                   eval_success=channel.optional_number(frame["eval_success"], "eval_success"),
                   eval_return=channel.optional_number(frame["eval_return"], "eval_return"))


Frame = Union[ErrorFrame, ProgressFrame, SmokeResult, TrainResult]

#: (frame type, job mode) -> its record; ``None``: any mode.
_RECORDS: dict[tuple[str, str | None], type] = {("error", None): ErrorFrame, ("progress", "train"): ProgressFrame,
                                                ("result", "smoke"): SmokeResult, ("result", "train"): TrainResult}


def parse_frame(mode: str, frame: dict[str, Any], milestones: Sequence[str] = ()) -> Frame:
    """The record a decoded ``frame`` of a ``mode`` job (``smoke`` or ``train``) stands for.

    Args:
        mode: the job's mode, which decides which frame types may arrive.
        frame: a frame body as :func:`~llm_reward.eureka.channel.decode_payload` returns it.
        milestones: the milestone names the job asked the runner to report (a progress frame's other names and
            malformed shares are dropped: :func:`milestone_shares`).

    Returns:
        An :class:`ErrorFrame`, :class:`ProgressFrame`, :class:`SmokeResult` or :class:`TrainResult`.

    Raises:
        ChannelError: an unexpected type for the mode, a missing or unknown field, or a field of the wrong type or
            out of bounds.

    Example:
        >>> parse_frame("smoke", {"type": "error", "reason": "NameError:\\n  x"})
        ErrorFrame(reason='NameError: x')
    """
    kind = frame.get("type")
    record = _RECORDS.get((kind, None)) or _RECORDS.get((kind, mode))
    if record is None:
        raise ChannelError(f"unexpected frame type {str(kind)[:40]!r} in mode {mode!r}")
    fields = dataclasses.fields(record)
    expected = {f.name for f in fields}
    required = {f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    given = set(frame) - {"type"}
    if unknown := sorted(str(key)[:40] for key in given - expected):
        raise ChannelError(f"unexpected fields {unknown} in a {kind!r} frame")
    if missing := sorted(required - given):
        raise ChannelError(f"missing fields {missing} in a {kind!r} frame")
    return record.from_frame(frame, milestones) if record is ProgressFrame else record.from_frame(frame)
