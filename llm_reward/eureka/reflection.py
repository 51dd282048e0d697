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

from typing import Any, Sequence

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


def reflection_text(curve: list[dict[str, Any]], *, evaluation: float | None = None) -> str:
    """Each component's values at the progress points with max/mean/min, plus the task score and env return."""
    steps = [int(p["timestep"]) for p in curve]
    lines = [f"We trained a policy with this reward function and tracked its values at {len(curve)} points of "
             f"training (up to step {steps[-1] if steps else 0}):"]
    lines.append(_series("task_score", [p["success_rate"] for p in curve if p.get("success_rate") is not None]))
    names: dict[str, None] = {}
    for point in curve:
        names.update(dict.fromkeys(point.get("components", {})))
    for name in names:
        lines.append(_series(name, [p["components"][name] for p in curve if name in p.get("components", {})]))
    lines.append(_series("total_reward (mean per step)",
                         [p["reward_mean"] for p in curve if p.get("reward_mean") is not None]))
    lines.append(_series("episode_return (the env's own reward, for reference)",
                         [p["env_return"] for p in curve if p.get("env_return") is not None]))
    if evaluation is not None:
        lines.append(f"task_score of the final policy on fresh episodes: {_fmt(evaluation)}")
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
