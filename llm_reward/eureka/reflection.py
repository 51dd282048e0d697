"""Reward reflection, fitness and the human-normalized score.

A trained candidate's curve is a list of progress points (one per ~tenth of training): the mean of each reward
component over that stretch, the success rate of the episodes that ended in it (``task_score``) and their mean
env return. Reflection turns that into text for the LLM; fitness turns it into one number for selection.

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

FITNESS_MODES = ("max", "final")


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _series(name: str, values: Sequence[float]) -> str:
    if not values:
        return f"{name}: no data"
    joined = ", ".join(_fmt(v) for v in values)
    return (f"{name}: [{joined}], max {_fmt(max(values))}, mean {_fmt(sum(values) / len(values))}, "
            f"min {_fmt(min(values))}")


def diagnosis_text(curve: list[dict[str, Any]], reference: Mapping[str, float] | None = None) -> str | None:
    """Where the training episodes ended: the best value of the env's progress oracle per episode (hidden from the
    reward code; higher is closer to success) and the share of episodes that ran out of time, beside what a random
    policy reaches (``reference``: ``median`` and ``max`` of the oracle over stored random rollouts).

    >>> print(diagnosis_text([{"progress_best_mean": -0.5, "progress_best_max": -0.2, "time_limit_rate": 1.0}],
    ...                      {"median": -0.5, "max": -0.3}))  # doctest: +NORMALIZE_WHITESPACE
    Where episodes ended (progress: the env's own measure of how close the agent got to success, higher is closer):
    best progress per episode (mean over episodes): [-0.5], max -0.5, mean -0.5, min -0.5
    best progress of any episode: [-0.2], max -0.2, mean -0.2, min -0.2
    share of episodes that ran out of time: [1], max 1, mean 1, min 1
    a random policy's progress: median -0.5, max -0.3 (the trained policy got further than random play)
    """
    lines = []
    for key, name in (("progress_best_mean", "best progress per episode (mean over episodes)"),
                      ("progress_best_max", "best progress of any episode"),
                      ("time_limit_rate", "share of episodes that ran out of time")):
        values = [p[key] for p in curve if p.get(key) is not None]
        if values:
            lines.append(_series(name, values))
    if not lines:
        return None
    head = ("Where episodes ended (progress: the env's own measure of how close the agent got to success, higher "
            "is closer):")
    if reference:
        best = max((p["progress_best_max"] for p in curve if p.get("progress_best_max") is not None), default=None)
        verdict = ("" if best is None else " (the trained policy got further than random play)" if best > reference[
            "max"] else " (the trained policy never got further than random play: the reward does not lead it on)")
        lines.append(f"a random policy's progress: median {_fmt(reference['median'])}, max "
                     f"{_fmt(reference['max'])}{verdict}")
    return "\n".join([head, *lines])


def reflection_text(curve: list[dict[str, Any]], *, evaluation: float | None = None,
                    reference: Mapping[str, float] | None = None) -> str:
    """Each component's values at the progress points with max/mean/min, plus the task score and env return, and
    where episodes ended (:func:`diagnosis_text`) when the training runner reported it."""
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
    diagnosis = diagnosis_text(curve, reference)
    if diagnosis:
        lines += ["", diagnosis]
    return "\n".join(lines) + "\n\n" + TIPS


def fitness(curve: list[dict[str, Any]], *, mode: str = "max", evaluation: float | None = None) -> float:
    """A candidate's training fitness, the search's selection signal: ``max``, the best training-window success
    rate (Eureka's); ``final``, the last window's, or the evaluation's if the candidate was evaluated.

    It is not the reported result: that is the success of the retrained final policies on fresh episodes. A curve
    with no finished episode scores 0.
    """
    if mode not in FITNESS_MODES:
        raise ValueError(f"search.fitness must be one of {FITNESS_MODES}, got {mode!r}")
    rates = [p["success_rate"] for p in curve if p.get("success_rate") is not None]
    if mode == "final":
        if evaluation is not None:
            return float(evaluation)
        return float(rates[-1]) if rates else 0.0
    return float(max(rates)) if rates else 0.0


def tiebreak(curve: list[dict[str, Any]]) -> float | None:
    """Second selection key when success rates tie (often all 0 on short budgets): the best mean env return."""
    returns = [p["env_return"] for p in curve if p.get("env_return") is not None]
    return float(max(returns)) if returns else None


def hns(method: float, *, human: float, sparse: float) -> float | None:
    """Human-normalized score ``(method - sparse) / |human - sparse|``; ``None`` when human equals sparse."""
    gap = abs(human - sparse)
    if gap < 1e-12:
        return None
    return (method - sparse) / gap
