"""Aggregate a suite's finished cells into ``benchmarks/results/<suite>/``: summary.json, summary.md and PNGs.

Per task and reward: IQM with a 95 % stratified-bootstrap interval, mean, the probability of improvement over
each control that has cells (extrinsic-only ``none``, the ``count`` bonus, ``shuffled`` labels), and where the
cells recorded them LLM calls, cache hits, wall time and env steps per second.

A row (one task) is computed by one code version: the version most of its cells carry (:func:`row_version`).
Cells of another version, or with none (recorded before cells were stamped), are *stale*: they are listed under
``stale_cells`` and left out of the statistics, so a row never mixes versions and every cell it counts names its
code. A row whose cells are all stale is marked ``stale: true`` and shows no estimate until it is rerun.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from omegaconf import DictConfig

from benchmarks._common import version_label
from benchmarks.suite import plots
from benchmarks.suite.cells import all_rows, table
from benchmarks.suite.config import out_dir, reward_available, reward_names, task_names
from benchmarks.suite.stats import performance_profile, reward_stats
from llm_reward.jsonio import json_safe

CELL_FIELDS = ("seed", "score", "code_version", "llm_calls", "llm_cache_hits", "wall_time_s", "steps_per_s",
               "source")


def row_version(cells: list[dict[str, Any]]) -> str | None:
    """The code version a row reports: the one most of its stamped cells carry (ties: the later-listed cell's,
    i.e. the more recent record); None when no cell is stamped.

    Example:
        >>> a, b = {"commit": "a" * 40, "dirty": False}, {"commit": "b" * 40, "dirty": False}
        >>> row_version([{"code_version": a}, {"code_version": b}, {"code_version": b}, {}])
        'bbbbbbbbbbbb'
    """
    counts: dict[str, int] = {}
    for cell in cells:
        if (label := version_label(cell.get("code_version"))) is not None:
            counts[label] = counts.get(label, 0) + 1
    if not counts:
        return None
    best = max(counts.values())
    return [label for label in counts if counts[label] == best][-1]


def split_stale(cells: list[dict[str, Any]], version: str | None) -> tuple[list[dict], list[dict]]:
    """``(current, stale)``: the cells of ``version``, and the others (all of them when ``version`` is None)."""
    if version is None:
        return [], list(cells)
    current = [c for c in cells if version_label(c.get("code_version")) == version]
    return current, [c for c in cells if version_label(c.get("code_version")) != version]


def summarize(cfg: DictConfig) -> dict[str, Any]:
    """The suite's summary (what summary.json holds), from every finished cell found."""
    rewards = [r for r in reward_names(cfg) if cfg.runner == "script" or reward_available(cfg, r)]
    missing = [r for r in reward_names(cfg) if r not in rewards]
    rows = table(cfg, all_rows(cfg), rewards)
    summary: dict[str, Any] = {
        "suite": cfg.name, "title": cfg.title, "description": cfg.description, "metric": cfg.metric,
        "metric_label": cfg.metric_label, "metric_range": list(cfg.metric_range) if cfg.metric_range else None,
        "curve_column": cfg.curve_column, "secondary_metrics": dict(cfg.get("secondary_metrics") or {}),
        "rewards": rewards, "controls": [c for c in cfg.controls if c in rewards],
        "unavailable_rewards": missing, "headline": cfg.headline, "bootstrap_reps": cfg.bootstrap_reps,
        "confidence": 0.95, "generated": time.strftime("%Y-%m-%d %H:%M:%S"), "tasks": {},
    }
    for task in task_names(cfg):
        spec = cfg.tasks[task]
        version = row_version([row for cells in rows[task].values() for row in cells])
        by_reward, stale = {}, {}
        for reward, cells in rows[task].items():
            by_reward[reward], stale[reward] = split_stale(cells, version)
        controls = {c: [row["score"] for row in by_reward[c]] for c in summary["controls"]}
        entry = {"env": spec.get("env"), "steps": int(spec.get("steps", 0)), "code_version": version,
                 "stale": version is None and any(rows[task].values()), "rewards": {}}
        for reward in rewards:
            cells = by_reward[reward]
            versus = {c: scores for c, scores in controls.items() if c != reward}  # a control vs itself is noise
            stats = reward_stats([row["score"] for row in cells], versus, reps=cfg.bootstrap_reps)
            for c in controls.keys() - versus.keys():
                stats[f"prob_improvement_vs_{c}"] = stats[f"prob_improvement_vs_{c}_ci"] = None
                stats[f"verdict_vs_{c}"] = None
            stats["prob_improvement_ci"] = stats.get("prob_improvement_vs_none_ci")
            stats.update(seeds=[row["seed"] for row in cells], **_costs(cells),
                         cells=[_cell_fields(row) for row in cells],
                         stale_cells=[_cell_fields(row) for row in stale[reward]],
                         secondary=_secondary(cfg, cells))
            entry["rewards"][reward] = stats
        entry["n_seeds"] = {r: entry["rewards"][r]["n_seeds"] for r in rewards}
        entry["stale_cells"] = sum(len(entry["rewards"][r]["stale_cells"]) for r in rewards)
        head = entry["rewards"].get(cfg.headline) or {}  # the row's headline comparison, as the README shows it
        entry["prob_improvement_vs_none"] = head.get("prob_improvement_vs_none")
        entry["prob_improvement_ci"] = head.get("prob_improvement_ci")
        entry["verdict_vs_none"] = head.get("verdict_vs_none")
        summary["tasks"][task] = entry
    summary["performance_profile"] = _profile(cfg, summary)
    summary["n_cells"] = sum(r["n_seeds"] for t in summary["tasks"].values() for r in t["rewards"].values())
    summary["n_stale_cells"] = sum(t["stale_cells"] for t in summary["tasks"].values())
    return summary


def _cell_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in CELL_FIELDS}  # code_version None: recorded before cells were stamped


def _secondary(cfg: DictConfig, cells: list[dict]) -> dict[str, dict[str, Any]]:
    """IQM and interval of each ``secondary_metrics`` field over the cells whose run recorded it (finite)."""
    out = {}
    for field in cfg.get("secondary_metrics") or {}:
        values = [v for row in cells if (v := (row.get("eval") or {}).get(field)) is not None and np.isfinite(v)]
        out[field] = reward_stats(values, {}, reps=cfg.bootstrap_reps)
    return out


def _costs(cells: list[dict]) -> dict[str, float | None]:
    """Mean per cell of what the cells recorded (None where no cell has it: cells imported from older scripts
    kept only steps/s)."""
    out = {}
    for key in ("llm_calls", "llm_cache_hits", "wall_time_s", "steps_per_s"):
        values = [row[key] for row in cells if row.get(key) is not None]
        out[f"{key}_per_cell" if key != "steps_per_s" else key] = float(np.mean(values)) if values else None
    return out


def _profile(cfg: DictConfig, summary: dict[str, Any]) -> dict[str, Any]:
    """Performance profiles over the tasks where the controls with cells and the headline reward all have runs;
    any other reward is drawn if it has runs on each of those tasks too."""
    tasks = summary["tasks"]
    has = {r: {t for t, row in tasks.items() if row["rewards"][r]["n_seeds"]} for r in summary["rewards"]}
    core = [r for r in summary["controls"] if has[r]] + ([cfg.headline] if has.get(cfg.headline) else [])
    if not core:
        return {}
    chosen = [t for t in tasks if all(t in has[r] for r in core)]
    drawn = [r for r in summary["rewards"] if chosen and all(t in has[r] for t in chosen)]
    if not chosen:
        return {}
    if summary["metric_range"]:
        taus = np.linspace(*summary["metric_range"], 101)
    else:
        every = [s for t in chosen for r in drawn for s in tasks[t]["rewards"][r]["scores"]]
        taus = np.linspace(min(every), max(every), 101)
    out: dict[str, Any] = {"tasks": chosen, "taus": taus.tolist(), "rewards": {}}
    for reward in drawn:
        profile, ci = performance_profile([tasks[t]["rewards"][reward]["scores"] for t in chosen], taus,
                                          reps=min(cfg.bootstrap_reps, 2000))
        out["rewards"][reward] = {"profile": profile.tolist(), "ci_low": ci[0].tolist(), "ci_high": ci[1].tolist()}
    return out


def write_report(cfg: DictConfig) -> dict[str, Any]:
    """summary.json, summary.md and the PNGs; returns the summary."""
    summary = summarize(cfg)
    folder = out_dir(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    figures = {}
    if plots.final_scores(summary, folder / "final_scores.png"):
        figures["final_scores"] = "final_scores.png"
    curves = _curves(cfg, summary)
    if plots.learning_curves(summary, curves, folder / "learning_curves.png", reps=min(cfg.bootstrap_reps, 2000)):
        figures["learning_curves"] = "learning_curves.png"
    if plots.performance_profiles(summary["performance_profile"], summary, folder / "performance_profile.png"):
        figures["performance_profile"] = "performance_profile.png"
    summary["figures"] = figures
    (folder / "summary.json").write_text(json.dumps(json_safe(summary), indent=1) + "\n")
    (folder / "summary.md").write_text(markdown(summary))
    return summary


def _curves(cfg: DictConfig, summary: dict[str, Any]) -> dict[str, dict[str, list[dict]]]:
    rows = table(cfg, all_rows(cfg), summary["rewards"])
    return {task: {reward: [row["curve"] for row in cells if row.get("curve")]
                   for reward, cells in by_reward.items()} for task, by_reward in rows.items()}


def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def interval(stats: dict[str, Any], digits: int = 2) -> str:
    """``0.84 [0.20, 1.00] (n=5)`` (IQM), ``0.67 [0.00, 1.00] (n=3, mean)`` under five seeds, ``0.50 (n=1, no
    interval)`` for one seed, ``stale (3 cells)`` when only stale cells exist, or ``no cells``."""
    if not stats["n_seeds"]:
        n_stale = len(stats.get("stale_cells") or [])
        return f"stale ({n_stale} cell{'s' * (n_stale != 1)})" if n_stale else "no cells"
    if stats["n_seeds"] == 1:  # one run has no spread to resample: an interval would be the point twice
        return f"{fmt(stats['point'], digits)} (n=1, no interval)"
    low, high = stats["point_ci"]
    label = f"n={stats['n_seeds']}" + (", mean" if stats["estimator"] == "mean" else "")
    return f"{fmt(stats['point'], digits)} [{fmt(low, digits)}, {fmt(high, digits)}] ({label})"


def comparison(stats: dict[str, Any], control: str) -> str:
    """``0.98 [0.80, 1.00] ahead``: P(reward > control) with its interval and EVIDENCE.md's verb; ``–`` without."""
    p, ci = stats.get(f"prob_improvement_vs_{control}"), stats.get(f"prob_improvement_vs_{control}_ci")
    if p is None or ci is None:
        return "–"
    return f"{p:.2f} [{ci[0]:.2f}, {ci[1]:.2f}] {stats[f'verdict_vs_{control}']}"


def markdown(summary: dict[str, Any]) -> str:
    """summary.md: one table per task, each reward a row."""
    digits = 2 if summary["metric_range"] else 1
    lines = [f"# {summary['title']}", "", summary["description"], "",
             f"Metric: {summary['metric_label']}. IQM over seeds with a 95 % stratified-bootstrap interval "
             f"({summary['bootstrap_reps']:,} resamples); with fewer than five seeds the mean and its bootstrap "
             "interval, marked `mean`. P(> c) is the probability that a run of the reward beats a run of control c "
             "(ties count half) with its interval, and the verdict it supports: ahead (interval above 0.5), "
             "level with (contains 0.5) or behind. A row counts only the cells of one code version (named under "
             "its table); other cells, and cells recorded before cells named their code, are stale and left out. "
             f"Generated by `python -m benchmarks report suite={summary['suite']}` from {summary['n_cells']} "
             f"current cells ({summary.get('n_stale_cells', 0)} stale).", ""]
    if summary["unavailable_rewards"]:
        lines += [f"Not available yet (no reward config): {', '.join(summary['unavailable_rewards'])}.", ""]
    if not summary["n_cells"]:
        lines += ["No current cells: run `python -m benchmarks run suite=" + summary["suite"] + "`.", ""]
    controls, secondary = summary["controls"], summary.get("secondary_metrics") or {}
    for task, row in summary["tasks"].items():
        columns = ["reward", "estimate [95 % CI] (n)", "mean", *(f"P(> {c})" for c in controls),
                   *secondary.values(), "stale cells", "LLM calls / cell", "cache hits / cell", "wall min / cell",
                   "steps/s"]
        version = f"code version {row['code_version']}" if row.get("code_version") else "stale: no current cells"
        lines += [f"## {task}", "", f"`{row['env']}`, {row['steps']:,} steps per cell; {version}.", "",
                  "| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
        for reward, stats in row["rewards"].items():
            probs = ["–" if reward == c else comparison(stats, c) for c in controls]
            wall = stats["wall_time_s_per_cell"]
            cells = [reward, interval(stats, digits), fmt(stats["mean"], digits), *probs,
                     *(interval(stats["secondary"][field], digits) for field in secondary),
                     str(len(stats["stale_cells"])), fmt(stats["llm_calls_per_cell"], 0),
                     fmt(stats["llm_cache_hits_per_cell"], 0), fmt(wall / 60 if wall else None, 1),
                     fmt(stats["steps_per_s"], 0)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if summary.get("figures"):
        lines += ["Figures: " + ", ".join(f"[{name}]({file})" for name, file in summary["figures"].items()) + ".", ""]
    return "\n".join(lines)
