"""The README's main-job command (and the smoke experiment), timed from a cold start as a fresh machine runs it,
on several seeds.

    python benchmarks/main_job.py                    # llm-reward-train, seeds 0-4 (target: <= 15 min each, the
                                                     # shaped agent ahead of the extrinsic-only one on >= 4 of 5)
    python benchmarks/main_job.py --seeds 0          # one seed
    python benchmarks/main_job.py --smoke            # llm-reward-train experiment=smoke (target <= 3 min)
    python benchmarks/main_job.py --report           # the summary of the finished seeds, running nothing

Cold means a fresh data dir (no rollouts, labels or reward model) and an empty LLM result cache for every seed; the
assembled GGUF judge is reused (linked into the temporary cache), since assembling it is a one-off install step.
Each seed is one ``llm-reward-train seed=<s>`` run, exactly what a user types (the seed also picks the rollouts
the judge labels): the shaped agent and its extrinsic-only baseline train side by side and play the same
evaluation episodes. Finished seeds are cells of ``results/main_job[_smoke]_cells.jsonl`` and are skipped on
rerun; run directories stay in ``results/main_job[_smoke]_runs/``. The summary (``results/main_job[_smoke].json``,
also the last stdout line) has each seed's results (``per_seed``), both agents' success with a 95 % bootstrap
interval, P(shaped > extrinsic) with its interval (``prob_improvement``), and the MiniGrid suite's row of the same
task (``suite_row``: what the count bonus and shuffled labels reach on the same budget). A run of the README's
command (no overrides) rewrites the marked line under it in README.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _common import RESULTS, CellLog, emit, machine, stamp, train_from_cold  # noqa: E402
from suite.stats import prob_improvement, prob_improvement_ci, reward_stats, verdict  # noqa: E402

from benchmarks.suite.report import row_version, split_stale  # noqa: E402
from benchmarks.suite.results_block import MAIN_JOB, ROOT, main_job_text, rewrite  # noqa: E402

WALL_TARGET_S = {False: 15 * 60, True: 3 * 60}
#: The MiniGrid suite's task that runs the README command's env and recipe (its count / shuffled controls are
#: printed beside the main job's result).
SUITE_TASK = "doorkey_8x8"


def run_seed(seed: int, smoke: bool, overrides: list[str], runs: Path) -> dict:
    run_dir = runs / f"seed{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)  # a half-written run of an interrupted earlier attempt
    command = [*(["experiment=smoke"] if smoke else []), f"seed={seed}", "progress=false", *overrides]
    with tempfile.TemporaryDirectory() as tmp:
        done, run_dir, wall = train_from_cold(command, Path(tmp), run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    runs_ = metrics["runs"]
    shaped, extrinsic = runs_["shaped"]["eval"], runs_.get("extrinsic", {}).get("eval", {})
    episodes = {name: run["eval"].get("per_episode") for name, run in runs_.items()}
    return {"seed": seed, **stamp(config=run_dir / "config.yaml", wall_time_s=wall, episodes=episodes),
            "env": metrics["env"],
            "prints_run_dir_last": done.stdout.strip().splitlines()[-1] == str(run_dir),
            "success_shaped": shaped["success_rate"], "success_extrinsic": extrinsic.get("success_rate"),
            "mean_length_shaped": shaped.get("mean_length"), "mean_length_extrinsic": extrinsic.get("mean_length"),
            "timesteps": runs_["shaped"]["timesteps"], "llm_calls": metrics.get("annotation", {}).get("llm_calls"),
            "run_dir": str(run_dir), "overrides": command}


def summarize(rows: list[dict], smoke: bool) -> dict:
    """The finished seeds' summary: ``per_seed`` (each seed's success of both agents, wall time, code version),
    both agents' IQM (mean under five seeds) with its interval, and ``prob_improvement``: P(shaped > extrinsic)
    with its interval and verdict. Only cells of one code version are counted (the version most seeds carry);
    the others, and cells recorded before cells named their code, are listed as ``stale_seeds``."""
    rows = sorted(rows, key=lambda r: r["seed"])
    version = row_version(rows)
    rows, stale = split_stale(rows, version)
    shaped = [r["success_shaped"] for r in rows]
    extrinsic = [r["success_extrinsic"] for r in rows if r["success_extrinsic"] is not None]
    walls = [r["wall_time_s"] for r in rows]
    out: dict = {"command": "llm-reward-train" + (" experiment=smoke" if smoke else ""),
                 "seeds": [r["seed"] for r in rows], "env": rows[0]["env"] if rows else None, "wall_time_s": walls,
                 "code_version": version, "stale_seeds": [r["seed"] for r in stale],
                 "per_seed": [{"seed": r["seed"], "success_shaped": r["success_shaped"],
                               "success_extrinsic": r["success_extrinsic"], "wall_time_s": r["wall_time_s"],
                               "llm_calls": r.get("llm_calls"), "machine": r.get("machine")} for r in rows],
                 "wall_time_max_s": max(walls, default=None), "wall_target_s": WALL_TARGET_S[smoke],
                 "within_wall_target": bool(walls) and max(walls) <= WALL_TARGET_S[smoke],
                 "success_shaped": shaped, "success_extrinsic": extrinsic,
                 "prints_run_dir_last": all(r["prints_run_dir_last"] for r in rows), "machine": machine()}
    for name, scores in (("shaped", shaped), ("extrinsic", extrinsic)):
        if scores:
            stats = reward_stats(scores, {}, reps=20_000)
            out[f"{name}_estimate"] = {k: stats[k] for k in ("estimator", "point", "point_ci", "n_seeds")}
            out[f"spread_{name}"] = [min(scores), max(scores)]
    if len(extrinsic) == len(shaped) and shaped:
        out["seeds_shaped_ahead"] = sum(s > e for s, e in zip(shaped, extrinsic))
        ci = list(prob_improvement_ci(shaped, extrinsic))
        out["prob_improvement"] = {"shaped_vs_extrinsic": prob_improvement(shaped, extrinsic), "ci": ci,
                                   "verdict": verdict(ci)}
    if not smoke:
        out["suite_row"] = suite_row()
    return out


def suite_row(task: str = SUITE_TASK) -> dict | None:
    """The MiniGrid suite's row of the same task and recipe (``benchmarks/results/minigrid/summary.json``): what
    the count bonus and shuffled labels reach on the same budget, so the main job's gain can be read against novelty
    alone and against the judge's labels permuted. None before the suite has reported."""
    path = RESULTS / "minigrid" / "summary.json"
    if not path.is_file():
        return None
    row = json.loads(path.read_text())["tasks"].get(task)
    if row is None:
        return None
    keep = ("n_seeds", "estimator", "point", "point_ci", "prob_improvement_vs_none", "prob_improvement_vs_none_ci",
            "verdict_vs_none")
    return {"task": task, "code_version": row.get("code_version"), "steps": row["steps"],
            "rewards": {r: {k: row["rewards"][r].get(k) for k in keep}
                        for r in ("none", "count", "shuffled", "motif") if r in row["rewards"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="time experiment=smoke instead of the default job")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--report", action="store_true", help="summarize the finished seeds; run nothing")
    parser.add_argument("overrides", nargs="*", help="extra llm-reward-train overrides (part of the cell key)")
    args = parser.parse_args()
    name = "main_job_smoke" if args.smoke else "main_job"
    cells, runs = CellLog(RESULTS / f"{name}_cells.jsonl"), RESULTS / f"{name}_runs"
    key = "|".join(args.overrides)
    for seed in [] if args.report else args.seeds:
        cell = f"{key}|{seed}"
        with cells.claim(cell) as mine:
            if mine:
                row = run_seed(seed, args.smoke, args.overrides, runs)
                cells.add(cell, row)
                print(f"seed {seed}: {row['wall_time_s']:.0f} s, shaped {row['success_shaped']:.2f} vs "
                      f"extrinsic {row['success_extrinsic']}", flush=True)
    rows = [row for cell, row in cells.cells.items() if cell.rsplit("|", 1)[0] == key and row["seed"] in args.seeds]
    summary = summarize(rows, args.smoke)
    if not args.smoke and not args.overrides:  # the README's own command
        rewrite(ROOT / "README.md", main_job_text(summary), MAIN_JOB)
    print(main_job_text(summary), flush=True)
    emit(name, summary)


if __name__ == "__main__":
    main()
