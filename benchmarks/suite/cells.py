"""Finished cells: the suite's own log, cells imported from the older benchmark scripts, and rows read from runs.

Every row, whatever its source, is normalized to the same fields: ``env``, ``label`` (reward, or reward:variant),
``seed``, ``steps``, ``score`` (the suite's metric), ``code_version`` (None for a cell stamped before cells carried
one: a stale cell), and where the source has them ``llm_calls``,
``llm_cache_hits``, ``wall_time_s``, ``steps_per_s`` and ``curve`` (the training curve on a 51-point step grid).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from benchmarks._common import CellLog, read_episodes, stamp
from benchmarks.suite.config import Cell, cell_key, out_dir, reward_label, task_names

CURVE_POINTS = 51


def cell_log(cfg: DictConfig) -> CellLog:
    """The suite's own cells (``benchmarks/results/<suite>/cells.jsonl``), appended as each cell finishes."""
    return CellLog(out_dir(cfg) / "cells.jsonl")


def imported_rows(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """Rows of the stored results named in ``imports``, keyed like the suite's cells. A file that is not there
    imports nothing.

    ``kind: cells`` (default): a JSON-lines cell log (``benchmarks/_common.CellLog``) where each row keeps its env
    (``env_field``, or one ``env`` for the whole file), its reward (``reward_field``, renamed through ``rename``),
    its seed, its budget (``steps``, or one ``steps`` for the file) and its score (``score_field``); with
    ``cell_prefix`` only the rows whose ``cell`` starts with it.
    ``kind: final_scores``: a script's JSON result holding ``tasks.<name>.final_scores.<arm>`` (one score per seed
    of ``final_seeds``), as ``benchmarks/eureka.py`` writes it.
    """
    rows: dict[str, dict[str, Any]] = {}
    for spec in cfg.imports:
        path = Path(cfg.results_dir) / spec.file
        if not path.is_file():
            continue
        rename = spec.get("rename") or {}
        found = _final_scores(path, rename) if spec.get("kind") == "final_scores" else []
        for row in CellLog(path).cells.values() if spec.get("kind", "cells") == "cells" else []:
            if spec.get("cell_prefix") and not str(row.get("cell", "")).startswith(spec.cell_prefix):
                continue  # another sweep's cell in the same log (e.g. a tagged variant of the script's runs)
            env = row[spec.env_field] if spec.get("env_field") else spec.env
            steps = int(row["steps"]) if "steps" in row else int(spec.steps)
            found.append({"env": env, "label": rename.get(row[spec.reward_field], row[spec.reward_field]),
                          "seed": int(row["seed"]), "steps": steps, "score": row.get(spec.score_field),
                          "steps_per_s": row.get("steps_per_s"), "wall_time_s": row.get("wall_s"),
                          "code_version": row.get("code_version")})
        for row in found:  # the last record of a cell wins, as in the scripts
            rows[cell_key(row["env"], row["label"], row["seed"], row["steps"])] = {**row, "source": spec.file}
    return rows


def _final_scores(path: Path, rename: dict[str, str]) -> list[dict[str, Any]]:
    """Rows of a script's JSON result; their code version is the task's ``code_version``, else the file's."""
    result = json.loads(path.read_text())
    rows = []
    for task in result.get("tasks", {}).values():
        version = task.get("code_version", result.get("code_version"))
        for arm, scores in task.get("final_scores", {}).items():
            for seed, score in zip(task["final_seeds"], scores):
                if score is not None:
                    rows.append({"env": task["task"], "label": rename.get(arm, arm), "seed": int(seed),
                                 "steps": int(task["total_timesteps"]), "score": float(score),
                                 "code_version": version})
    return rows


def all_rows(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """Imported rows, then the suite's own (which win where both have a cell)."""
    return {**imported_rows(cfg), **{key: {**row, "source": "cells.jsonl"} for key, row in cell_log(cfg).cells.items()}}


def table(cfg: DictConfig, rows: dict[str, dict[str, Any]], rewards: list[str]) -> dict[str, dict[str, list[dict]]]:
    """``{task: {reward: [row, ...]}}`` for the suite's tasks, each reward's rows sorted by seed (every seed found,
    not only the suite's: a cell measured on seed 3 counts even when the suite now runs 0-2)."""
    out: dict[str, dict[str, list[dict]]] = {}
    for task in task_names(cfg):
        spec = cfg.tasks[task]
        for reward in rewards:
            label = reward_label(cfg, task, reward)
            found = [row for row in rows.values() if row["env"] == spec.env and row["label"] == label
                     and int(row["steps"]) == int(spec.steps) and row.get("score") is not None]
            out.setdefault(task, {})[reward] = sorted(found, key=lambda row: row["seed"])
    return out


def row_from_run(cell: Cell, run_dir: Path, *, metric: str, curve_column: str) -> dict[str, Any] | None:
    """The cell's row from its finished run directory (``metrics.json`` with ``completed: true``), else None."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    if not metrics.get("completed") or not metrics.get("runs"):
        return None
    run = next(iter(metrics["runs"].values()))
    evaluation = dict(run["eval"])
    episodes = evaluation.pop("per_episode", None)  # the raw outcomes go to the cell's ``episodes``
    config = run_dir / "config.yaml"
    annotation, online = metrics.get("annotation") or {}, (run.get("online_feedback") or {}).get("llm") or {}
    llm_calls = annotation.get("llm_calls", 0) + online.get("cache_misses", 0)
    cache_hits = annotation.get("cache_hits", 0) + online.get("cache_hits", 0)
    return {"task": cell.task, "reward": cell.reward, "env": cell.env, "label": cell.label, "seed": cell.seed,
            "steps": cell.steps, "score": run["eval"][metric], "success_rate": run["eval"]["success_rate"],
            "mean_return": run["eval"]["mean_return"], "train_success_last100": run.get("train_success_last100"),
            "steps_per_s": run.get("steps_per_s"), "wall_time_s": metrics.get("wall_time_s"),
            "llm_calls": llm_calls, "llm_cache_hits": cache_hits, "eval": evaluation,
            "reward_model_calls": (run.get("reward_cache") or {}).get("model_calls"),
            "curve": training_curve(run_dir, column=curve_column, steps=cell.steps), "run_dir": str(run_dir),
            **stamp(config=config if config.is_file() else None, episodes=episodes)}


def training_curve(run_dir: Path, *, column: str, steps: int, window: int = 100,
                   min_episodes: int = 20) -> dict[str, list] | None:
    """``column`` of the run's training episodes, rolling mean over ``window`` episodes (counted from
    ``min_episodes`` on: one lucky first episode is not a rate), on a grid of steps; null before the first reading."""
    episodes = read_episodes(run_dir)
    if not len(episodes) or column not in episodes:
        return None
    values = episodes[column].rolling(window, min_periods=min_episodes).mean().dropna()
    if not len(values):
        return None
    grid = np.linspace(0, steps, CURVE_POINTS)
    curve = np.interp(grid, episodes["timestep"][values.index], values, left=np.nan)
    return {"steps": grid.astype(int).tolist(), "values": [None if np.isnan(v) else float(v) for v in curve]}
