"""Reward reflection, fitness and the human-normalized score.

A trained candidate's curve is a list of progress points (one per ~tenth of training): the mean of each reward
component over that stretch, the success rate of the episodes that ended in it (``task_score``) and their mean
env return, and where those episodes ended (the progress oracle's best value, time-limit endings and the share of
them that reached each of the env adapter's milestones). Reflection turns that into text for the LLM; fitness
turns it into one number for selection.

    >>> curve = [{"timestep": 100 * i, "success_rate": i / 4, "env_return": 10.0 * i, "reward_mean": 1.0,
    ...           "components": {"speed": 0.5 * i}} for i in range(1, 5)]
    >>> fitness(curve, mode="max")
    1.0
    >>> print(reflection_text(curve).splitlines()[1])
    task_score: [0.25, 0.5, 0.75, 1], max 1, mean 0.625, min 0.25
    >>> round(hns(0.6, human=0.8, sparse=0.2), 4)
    0.6667
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from llm_reward.eureka.prompts import TIPS
from llm_reward.identity import digest

FITNESS_MODES = ("max", "final")
#: A milestone that fewer than this share of a chunk's episodes reached, at every point, is one most episodes never
#: reached (the diagnosis's verdict names the first such).
MOST = 0.5

_HEAD = ("Where episodes ended (progress: the env's own measure of how close the agent got to success, higher is "
         "closer):")
_PROGRESS = (("progress_best_mean", "best progress per episode (mean over episodes)"),
             ("progress_best_max", "best progress of any episode"),
             ("time_limit_rate", "share of episodes that ran out of time"))
_RANDOM = "a random policy's progress: median {median}, max {max}{verdict}"
_AHEAD = " (the trained policy got further than random play)"
_BEHIND = " (the trained policy never got further than random play: the reward does not lead it on)"
_MILESTONES = "share of episodes that reached each milestone (first to last point): {series}"
_MISSED = "most episodes never {name} (at most {share} of them at any point): reward that step"
#: A digest of the failure diagnosis's texts. The milestone lines name the task's stages, so a search on an env
#: with milestones keys its identity on these texts too (:func:`~llm_reward.eureka.rundir.search_identity`).
DIAGNOSIS_DIGEST = digest([_HEAD, [list(p) for p in _PROGRESS], _RANDOM, _AHEAD, _BEHIND, _MILESTONES, _MISSED,
                           MOST])


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _series(name: str, values: Sequence[float]) -> str:
    if not values:
        return f"{name}: no data"
    joined = ", ".join(_fmt(v) for v in values)
    return (f"{name}: [{joined}], max {_fmt(max(values))}, mean {_fmt(sum(values) / len(values))}, "
            f"min {_fmt(min(values))}")


def diagnosis_text(curve: list[dict[str, Any]], reference: Mapping[str, float] | None = None,
                   milestones: Sequence[str] | None = None) -> str | None:
    """Where the training episodes ended: the best value of the env's progress oracle per episode (hidden from the
    reward code; higher is closer to success), the share of episodes that ran out of time, beside what a random
    policy reaches (``reference``: ``median`` and ``max`` of the oracle over stored random rollouts), and the share
    of episodes that reached each of the env's milestones, with the first one most episodes never reach.

    ``milestones``: the env's milestone names in the order an episode reaches them (the search passes its context's);
    without it the curve's own order is used, which a stored ``result.json`` (keys sorted) does not keep.

    >>> print(diagnosis_text([{"progress_best_mean": -0.5, "progress_best_max": -0.2, "time_limit_rate": 1.0}],
    ...                      {"median": -0.5, "max": -0.3}))  # doctest: +NORMALIZE_WHITESPACE
    Where episodes ended (progress: the env's own measure of how close the agent got to success, higher is closer):
    best progress per episode (mean over episodes): [-0.5], max -0.5, mean -0.5, min -0.5
    best progress of any episode: [-0.2], max -0.2, mean -0.2, min -0.2
    share of episodes that ran out of time: [1], max 1, mean 1, min 1
    a random policy's progress: median -0.5, max -0.3 (the trained policy got further than random play)
    >>> shares = [{"picked up the key": 0.3, "opened the door": 0.0, "reached the goal": 0.0},
    ...           {"picked up the key": 0.5, "opened the door": 0.02, "reached the goal": 0.0}]
    >>> print(diagnosis_text([{"time_limit_rate": 1.0, "milestones": m} for m in shares],
    ...                      milestones=["picked up the key", "opened the door", "reached the goal"]))
    ... # doctest: +NORMALIZE_WHITESPACE
    Where episodes ended (progress: the env's own measure of how close the agent got to success, higher is closer):
    share of episodes that ran out of time: [1, 1], max 1, mean 1, min 1
    share of episodes that reached each milestone (first to last point): picked up the key [0.3, 0.5], opened the
    door [0, 0.02], reached the goal [0, 0]
    most episodes never opened the door (at most 0.02 of them at any point): reward that step
    """
    lines = []
    for key, name in _PROGRESS:
        values = [p[key] for p in curve if p.get(key) is not None]
        if values:
            lines.append(_series(name, values))
    milestones = _milestone_lines(curve, milestones or ())
    if not lines and not milestones:
        return None
    lines += milestones[:1]
    if reference:
        best = max((p["progress_best_max"] for p in curve if p.get("progress_best_max") is not None), default=None)
        verdict = "" if best is None else _AHEAD if best > reference["max"] else _BEHIND
        lines.append(_RANDOM.format(median=_fmt(reference["median"]), max=_fmt(reference["max"]), verdict=verdict))
    return "\n".join([_HEAD, *lines, *milestones[1:]])


def _milestone_lines(curve: list[dict[str, Any]], order: Sequence[str]) -> list[str]:
    """The milestone shares per point (names in ``order``, then any other in the curve's order) and the verdict on
    the first milestone that most episodes never reached at any point; ``[]`` without milestones."""
    names: dict[str, None] = {name: None for name in order if any(name in (p.get("milestones") or {}) for p in curve)}
    for point in curve:
        names.update(dict.fromkeys(point.get("milestones") or {}))
    if not names:
        return []
    series = {name: [p["milestones"][name] for p in curve if name in (p.get("milestones") or {})] for name in names}
    lines = [_MILESTONES.format(series=", ".join(f"{name} [{', '.join(_fmt(v) for v in values)}]"
                                                 for name, values in series.items()))]
    missed = next((name for name, values in series.items() if max(values) < MOST), None)
    if missed is not None:
        lines.append(_MISSED.format(name=missed, share=_fmt(max(series[missed]))))
    return lines


def reflection_text(curve: list[dict[str, Any]], *, evaluation: float | None = None,
                    reference: Mapping[str, float] | None = None, milestones: Sequence[str] | None = None) -> str:
    """Each component's values at the progress points with max/mean/min, plus the task score and env return, and
    where episodes ended (:func:`diagnosis_text`, ``milestones`` the env's in order) when the training runner
    reported it."""
    steps = [int(p["timestep"]) for p in curve]
    lines = [f"We trained a policy with this reward function and tracked its values at {len(curve)} points of "
             f"training (up to step {steps[-1] if steps else 0}):"]
    lines.append(_series("task_score", [p["success_rate"] for p in curve if p.get("success_rate") is not None]))
    names: dict[str, None] = {}
    for point in curve:
        names.update(dict.fromkeys(point.get("components", {})))
    for name in names:  # quoted: a name is the code's own text (checked: one line, 64 characters, no quotes)
        lines.append(_series(repr(name), [p["components"][name] for p in curve if name in p.get("components", {})]))
    lines.append(_series("total_reward (mean per step)",
                         [p["reward_mean"] for p in curve if p.get("reward_mean") is not None]))
    lines.append(_series("episode_return (the env's own reward, for reference)",
                         [p["env_return"] for p in curve if p.get("env_return") is not None]))
    if evaluation is not None:
        lines.append(f"task_score of the final policy on fresh episodes: {_fmt(evaluation)}")
    diagnosis = diagnosis_text(curve, reference, milestones)
    if diagnosis:
        lines += ["", diagnosis]
    return "\n".join(lines) + "\n\n" + TIPS


def pooled_windows(curve: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The curve with each short window pooled into the window before it (success rate and env return weighted by
    finished episodes): a window with fewer finished episodes than half the curve's median per window.

    Why: training's last report holds the episodes that ended after the last full window, often 2 or 3, and a
    window of 3 episodes with 2 successes read as a success rate of 0.67 beside windows of 33 at 0.24, which made
    ``max`` select it (DoorKey-8x8; its retrained policies then evaluated 0.00). Points without an episode count
    (older stored curves) stay as they are.

    >>> [(p["episodes"], round(p["success_rate"], 2)) for p in pooled_windows(
    ...     [{"episodes": 30, "success_rate": 0.2}, {"episodes": 30, "success_rate": 0.2},
    ...      {"episodes": 3, "success_rate": 2 / 3}])]  # the last window: 2 successes in 3 episodes
    [(30, 0.2), (33, 0.24)]
    """
    counts = sorted(int(p["episodes"]) for p in curve if p.get("episodes") and p.get("success_rate") is not None)
    if not counts:
        return [dict(p) for p in curve]
    floor = counts[len(counts) // 2] / 2
    out: list[dict[str, Any]] = []
    last: dict[str, Any] | None = None  # the latest window with episodes and a success rate: where a short one joins
    for point in curve:
        n = int(point.get("episodes") or 0)
        if last is not None and 0 < n < floor and point.get("success_rate") is not None:
            m = int(last["episodes"])
            for key in ("success_rate", "env_return"):
                if last.get(key) is not None and point.get(key) is not None:
                    last[key] = round((last[key] * m + point[key] * n) / (m + n), 6)
            last["episodes"] = m + n
            continue
        out.append(dict(point))
        if n and point.get("success_rate") is not None:
            last = out[-1]
    return out


def fitness(curve: list[dict[str, Any]], *, mode: str = "max", evaluation: float | None = None) -> float:
    """A candidate's training fitness, the search's selection signal: ``max``, the best training-window success
    rate (Eureka's); ``final``, the last window's, or the evaluation's if the candidate was evaluated. Windows are
    read after :func:`pooled_windows` (a short last window joins the one before it).

    It is not the reported result: that is the success of the retrained final policies on fresh episodes. A curve
    with no finished episode scores 0.
    """
    if mode not in FITNESS_MODES:
        raise ValueError(f"search.fitness must be one of {FITNESS_MODES}, got {mode!r}")
    rates = [p["success_rate"] for p in pooled_windows(curve) if p.get("success_rate") is not None]
    if mode == "final":
        if evaluation is not None:
            return float(evaluation)
        return float(rates[-1]) if rates else 0.0
    return float(max(rates)) if rates else 0.0


def tiebreak(curve: list[dict[str, Any]]) -> float | None:
    """Second selection key when success rates tie (often all 0 on short budgets): the best mean env return (of
    :func:`pooled_windows`)."""
    returns = [p["env_return"] for p in pooled_windows(curve) if p.get("env_return") is not None]
    return float(max(returns)) if returns else None


def hns(method: float, *, human: float, sparse: float) -> float | None:
    """Human-normalized score ``(method - sparse) / |human - sparse|``; ``None`` when human equals sparse."""
    gap = abs(human - sparse)
    if gap < 1e-12:
        return None
    return (method - sparse) / gap
