"""Motif on robots: SAC with the state captioner + embedded judge -> reward model, against the usual baselines.

    python benchmarks/robot_motif.py                 # 2 tasks x their arms x 3 seeds (~40 min of one idle core)
    python benchmarks/robot_motif.py --quick         # same code path, tiny budget, one seed
    python benchmarks/robot_motif.py --tasks halfcheetah --steps 5000   # another budget: its own cells and summary
    python benchmarks/robot_motif.py --report        # tabulate the finished cells, run nothing

Tasks and arms (same SAC, same budget, same seeds within a task):

* ``fetch_reach`` (FetchReach-v4, sparse reward -1/0, success = ``info["is_success"]`` at the end):
  ``motif`` (sparse reward + potential shaping from the judge's reward model), ``sparse`` (SAC on the sparse
  reward), ``sparse_her`` (SAC + HER, the usual baseline), ``dense`` (FetchReachDense-v4: minus the distance).
* ``halfcheetah`` (HalfCheetah-v5, 200-step episodes): ``motif`` (the judge's reward model *instead of* the env
  reward: ``alpha_ext=0``, Motif's count-decayed bonus), ``dense`` (the env's own reward: forward velocity minus
  control cost). Score: the true env return of evaluation episodes (success, >= 2 m/s on average, is reported too).

Each cell is one ``llm-reward-train`` run (``train.baseline=false``), composed from ``conf/`` in this process;
finished cells land in ``results/robot_motif/cells.jsonl`` and are skipped on rerun. All seeds of a task share one
reward model (``data_seed=0``: the same random-action captions and judged pairs). The summary (per arm the IQM
over seeds with five seeds or more, else the mean, with a 95 % bootstrap interval; P(motif > arm) with its
interval) is ``results/robot_motif/summary.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PLAIN_RECIPE, RESULTS, CellLog, emit, machine  # noqa: E402
from _hydra import run_cell  # noqa: E402
from suite.stats import prob_improvement, prob_improvement_ci, reward_stats, verdict  # noqa: E402

OUT = RESULTS / "robot_motif"
SAC_SMALL = ["+agent.kwargs.learning_starts=500", "+agent.kwargs.policy_kwargs={net_arch:[64,64]}"]
TASKS = {
    "fetch_reach": {
        "metric": "success_rate", "steps": 2500,
        "arms": {
            "motif": ["env=robotics/fetch_reach", "agent=sac", "reward=motif"],
            "sparse": ["env=robotics/fetch_reach", "agent=sac", "reward=none"],
            "sparse_her": ["env=robotics/fetch_reach", "agent=sac_her", "reward=none"],
            "dense": ["env=robotics/fetch_reach_dense", "agent=sac", "reward=none"],
        },
    },
    "halfcheetah": {
        "metric": "mean_return", "steps": 1500,
        "arms": {
            "motif": ["env=robotics/halfcheetah", "agent=sac", "reward=motif", "reward.shaping.alpha_ext=0.0",
                      "env.max_episode_steps=200"],
            "dense": ["env=robotics/halfcheetah", "agent=sac", "reward=none", "env.max_episode_steps=200"],
        },
    },
}
#: Every cell: the embedded judge, small stage sizes (the judge is the slow part on 2 cores), 2 envs, one thread,
#: and the plain recipe the stored cells were measured with.
COMMON = ["llm=local", "data_seed=0", "train.baseline=false", "progress=false", "train.n_envs=2",
          "train.eval_episodes=10", "rollouts.n_steps=1000", "rollouts.n_envs=2", "pairs.n=12",
          "reward_model.epochs=30", *PLAIN_RECIPE, *SAC_SMALL]
QUICK = ["rollouts.n_steps=200", "pairs.n=4", "reward_model.epochs=5", "train.eval_episodes=2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny budget, one seed")
    parser.add_argument("--steps", type=int, default=None, help="SAC steps per cell (default: each task's own)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=sorted(TASKS))
    parser.add_argument("--report", action="store_true", help="run nothing: summarise the finished cells")
    args = parser.parse_args()
    name = "robot_motif_quick" if args.quick else "robot_motif"
    seeds = [0] if args.quick else args.seeds
    out = RESULTS / name
    cells = CellLog(out / "cells.jsonl")
    for task in args.tasks:
        spec = TASKS[task]
        steps = 600 if args.quick else (args.steps or spec["steps"])
        for seed in seeds:  # seed-major: an interrupted sweep has every arm at its first seeds
            for arm, overrides in spec["arms"].items():
                cell = f"{task}|{arm}|{seed}|{steps}"
                if args.report:
                    continue
                with cells.claim(cell) as mine:
                    if not mine:
                        continue
                    run_dir = out / "runs" / task / f"{arm}_seed{seed}_{steps}"
                    cfg = [*overrides, f"seed={seed}", f"train.total_timesteps={steps}", *COMMON,
                           *(QUICK if args.quick else []), f"data_dir={(out / 'data').resolve()}"]
                    metrics = run_cell(cfg, run_dir)
                    run = next(iter(metrics["runs"].values()))
                    cells.add(cell, {"task": task, "arm": arm, "seed": seed, "steps": steps,
                                     "success_rate": run["eval"]["success_rate"],
                                     "mean_return": run["eval"]["mean_return"],
                                     "train_success_last100": run["train_success_last100"],
                                     "steps_per_s": run["steps_per_s"], "wall_time_s": metrics["wall_time_s"],
                                     "reward_model": metrics.get("reward_model"), "run_dir": str(run_dir)})
                    print(cell, run["eval"]["success_rate"], run["eval"]["mean_return"], file=sys.stderr, flush=True)
    # Another budget or task subset gets its own summary (the cells log is shared: each cell records its budget).
    suffix = f"_{args.steps}" if args.steps else ""
    suffix += "" if args.tasks == sorted(TASKS) else "_" + "_".join(args.tasks)
    emit(f"{name}/summary{suffix}", summarise(cells, args, seeds))


def summarise(cells: CellLog, args: argparse.Namespace, seeds: list[int]) -> dict:
    """Per task and arm: the point estimate of each metric over seeds with its 95 % bootstrap interval (the IQM
    with five seeds or more, else the mean, as ``estimator`` says), and P(motif > arm) with its interval and
    verdict."""
    summary: dict = {"machine": machine(), "seeds": seeds, "tasks": {}}
    for task in args.tasks:
        spec = TASKS[task]
        steps = 600 if args.quick else (args.steps or spec["steps"])
        rows: dict = {}
        for arm in spec["arms"]:
            done = [cells.cells[c] for s in seeds if (c := f"{task}|{arm}|{s}|{steps}") in cells]
            # cells recorded before cells named their code version cannot show they share one: stale
            entry: dict = {"seeds": [row["seed"] for row in done],
                           "stale_cells": sum("code_version" not in row for row in done)}
            for metric in ("success_rate", "mean_return"):
                values = [float(row[metric]) for row in done]
                stats = reward_stats(values, {}, reps=20_000)
                entry[metric] = values
                entry[f"{metric}_point"] = stats["point"]
                entry[f"{metric}_point_ci"] = stats["point_ci"] if len(values) > 1 else None
                entry[f"{metric}_estimator"] = stats["estimator"]
            entry["steps_per_s"] = float(np.mean([row["steps_per_s"] for row in done])) if done else float("nan")
            rows[arm] = entry
        metric = spec["metric"]
        motif = rows["motif"][metric]
        versus = {}
        for arm, entry in rows.items():  # P(a motif seed scores above a seed of arm), with its interval
            if arm != "motif" and motif and entry[metric]:
                ci = list(prob_improvement_ci(motif, entry[metric]))
                versus[arm] = {"p": prob_improvement(motif, entry[metric]), "ci": ci, "verdict": verdict(ci)}
        summary["tasks"][task] = {"metric": metric, "steps": steps, "arms": rows, "p_motif_better": versus}
        print(f"{task} ({steps} SAC steps, {spec['metric']} over seeds, [95% CI]):", file=sys.stderr)
        for arm, entry in rows.items():
            low, high = entry[f"{metric}_point_ci"] or (float("nan"), float("nan"))
            print(f"  {arm:11s} {entry[metric + '_point']:8.2f} [{low:.2f}, {high:.2f}]  "
                  f"n={len(entry['seeds'])} ({entry[metric + '_estimator']})", file=sys.stderr)
    return summary


if __name__ == "__main__":
    main()
