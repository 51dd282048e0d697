"""A suite's figures: final-score intervals, learning curves with shaded intervals, performance profiles.

Each is one PNG with a title, labelled axes and a legend (or labelled rows), readable without the report beside it.
Controls are drawn in grey shades so the rewards under test stand out.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.suite.stats import curve_band  # noqa: E402

CONTROL_COLORS = {"none": "#555555", "count": "#999999", "shuffled": "#bbbbbb"}
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b"]


def colors(rewards: list[str]) -> dict[str, str]:
    others = iter(PALETTE)
    return {r: CONTROL_COLORS[r] if r in CONTROL_COLORS else next(others, "#000000") for r in rewards}


def _grid(n: int) -> tuple[int, int]:
    cols = min(3, n)
    return math.ceil(n / cols), cols


def _tick(reward: str, stats: dict[str, Any]) -> str:
    n = stats.get("n_seeds", 0)
    return f"{reward} (n={n}, mean)" if n and stats.get("estimator") == "mean" else f"{reward} (n={n})"


def final_scores(summary: dict[str, Any], path: Path) -> bool:
    """One panel per task: each reward's IQM (dot), 95 % interval (bar) and runs (small marks). False when no
    task has a finished cell (nothing drawn)."""
    tasks = [t for t, row in summary["tasks"].items() if any(r["n_seeds"] for r in row["rewards"].values())]
    if not tasks:
        return False
    rewards = summary["rewards"]
    palette = colors(rewards)
    rows, cols = _grid(len(tasks))
    fig, axes = plt.subplots(rows, cols, figsize=(max(6.4, 4.6 * cols), (0.45 * len(rewards) + 1.6) * rows + 0.6),
                             squeeze=False)
    lo, hi = summary.get("metric_range") or (None, None)
    for ax, task in zip(axes.flat, tasks):
        row = summary["tasks"][task]
        for y, reward in enumerate(reversed(rewards)):
            stats = row["rewards"].get(reward, {"n_seeds": 0})
            if not stats["n_seeds"]:
                ax.text(0.02, y, "no cells", va="center", fontsize=7, color="#888888",
                        transform=ax.get_yaxis_transform())  # x in axes fractions: inside whatever the data range
                continue
            # the table's estimate: the IQM with five seeds or more, else the mean (a trimmed mean of 3 is the mean)
            low, high = stats.get("point_ci") or (stats["ci_low"], stats["ci_high"])
            ax.plot([low, high], [y, y], color=palette[reward], lw=5, alpha=0.45, solid_capstyle="butt")
            ax.plot(stats.get("point", stats["iqm"]), y, "o", color=palette[reward], ms=7)
            ax.plot(stats["scores"], [y + 0.22] * stats["n_seeds"], "|", color=palette[reward], ms=7)
        ax.set_yticks(range(len(rewards)), [_tick(r, row["rewards"].get(r, {})) for r in reversed(rewards)],
                      fontsize=8)
        ax.set_ylim(-0.6, len(rewards) - 0.4)
        ax.set_title(f"{task} ({row['steps']:,} steps)", fontsize=9)
        ax.set_xlabel(summary["metric_label"], fontsize=8)
        if lo is not None:
            ax.set_xlim(lo - 0.03 * (hi - lo), hi + 0.03 * (hi - lo))
        ax.grid(axis="x", alpha=0.3)
    for ax in axes.flat[len(tasks):]:
        ax.axis("off")
    fig.suptitle(f"{summary['title']}\nIQM (dot; the mean under five seeds, marked) with 95 % stratified-bootstrap "
                 "CI (bar); ticks are single seeds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def learning_curves(summary: dict[str, Any], curves: dict[str, dict[str, list[dict]]], path: Path, *,
                    reps: int) -> bool:
    """One panel per task with stored training curves: IQM over seeds of the training metric (rolling mean of
    100 episodes) against env steps, shaded 95 % bootstrap interval. False when no cell stores a curve."""
    drawable = {task: {r: c for r, c in by_reward.items() if c} for task, by_reward in curves.items()}
    drawable = {task: by_reward for task, by_reward in drawable.items() if by_reward}
    if not drawable:
        return False
    palette = colors(summary["rewards"])
    rows, cols = _grid(len(drawable))
    fig, axes = plt.subplots(rows, cols, figsize=(max(6.4, 5.0 * cols), 3.6 * rows + 0.6), squeeze=False)
    for ax, (task, by_reward) in zip(axes.flat, drawable.items()):
        for reward, runs in by_reward.items():
            steps = np.asarray(runs[0]["steps"], float)
            values = np.array([[np.nan if v is None else v for v in run["values"]] for run in runs], float)
            known = ~np.isnan(values).any(axis=0)  # points where every seed has a reading
            if not known.any():
                continue
            point, low, high = curve_band(values[:, known], reps=reps)
            ax.plot(steps[known], point, color=palette[reward], label=f"{reward} ({len(runs)} seeds)")
            ax.fill_between(steps[known], low, high, color=palette[reward], alpha=0.2)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("environment steps", fontsize=8)
        ax.set_ylabel(f"training {summary['curve_column']} (last 100 episodes)", fontsize=8)
        if summary.get("metric_range"):
            ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(drawable):]:
        ax.axis("off")
    fig.suptitle(f"{summary['title']}\ntraining curves: IQM over seeds, shaded 95 % bootstrap CI", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def performance_profiles(profile: dict[str, Any], summary: dict[str, Any], path: Path) -> bool:
    """Fraction of runs above each score threshold, over the tasks where every drawn reward has runs."""
    if not profile or not profile.get("rewards"):
        return False
    palette = colors(summary["rewards"])
    taus = np.asarray(profile["taus"])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for reward, data in profile["rewards"].items():
        ax.plot(taus, data["profile"], color=palette[reward], label=reward, lw=2)
        ax.fill_between(taus, data["ci_low"], data["ci_high"], color=palette[reward], alpha=0.15)
    ax.set(xlabel=f"threshold τ on the {summary['metric_label']}", ylabel="fraction of runs with score > τ",
           ylim=(-0.02, 1.02))
    tasks = ", ".join(profile["tasks"])
    ax.set_title(f"{summary['title']}: performance profiles\n(tasks: {tasks})", fontsize=9, wrap=True)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
