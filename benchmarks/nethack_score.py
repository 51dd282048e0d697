"""NetHackScore: extrinsic-only vs intrinsic-only vs combined (Motif coefficients), several seeds.

    python benchmarks/nethack_score.py --quick           # tiny budget, one seed, same code path
    python benchmarks/nethack_score.py --steps 2000000   # the full comparison (hours on 2 cores);
                                                         # summary: results/nethack_score_2000000.json
    python benchmarks/nethack_score.py --steps 200000 --arms extrinsic &   # one core each:
    python benchmarks/nethack_score.py --steps 200000 --arms intrinsic combined --llm-threads 1
    python benchmarks/nethack_score.py --steps 500000 --report   # table + training-score curves, run nothing

The intrinsic reward is a reward model distilled from the embedded judge's preferences over NetHack messages
(Motif). Arms: ``extrinsic`` (reward=none), ``intrinsic`` (alpha_ext=0), ``combined`` (alpha_ext=0.1,
alpha_int=1 as Motif's score experiments weight them). The metric (``score`` in a cell) is the NLE task return
on evaluation episodes: NLE's score reward with its step penalty, which can be negative and is not the in-game
score; the in-game score at each evaluation episode's end is kept beside it (``in_game_score``), with every
episode's outcome (``episodes``). Cells are resumable (``results/nethack_score[_quick]_cells.jsonl``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PLAIN_RECIPE, RESULTS, CellLog, emit, machine, plot_seed_curves, read_episodes, stamp  # noqa: E402
from _hydra import run_cell  # noqa: E402

ARMS = {
    "extrinsic": ["reward=none"],
    "intrinsic": ["reward=motif", "reward.shaping.alpha_ext=0.0", "reward.shaping.alpha_int=1.0"],
    "combined": ["reward=motif", "reward.shaping.alpha_ext=0.1", "reward.shaping.alpha_int=1.0"],
}


def run_dir(name: str, arm: str, seed: int, steps: int, quick: bool) -> Path:
    budget = "" if quick else f"_{steps}"  # runs at different budgets never overwrite each other
    return RESULTS / f"{name}_runs" / f"{arm}_seed{seed}{budget}"


def train_score(run: Path, last: int = 100) -> float | None:
    """Mean NLE task return of the agent's last ``last`` training episodes (``None`` when the run dir is gone)."""
    episodes = read_episodes(run)
    return float(episodes["return"].tail(last).mean()) if len(episodes) else None


def intrinsic_trend(run: Path, steps: int) -> tuple[float, float] | None:
    """Mean intrinsic return per episode over the first and the last tenth of training: whether PPO raised the
    reward it was given (``None`` without a run dir or an intrinsic reward)."""
    frame = read_episodes(run)
    if frame.empty or frame["return_intrinsic"].isna().all():
        return None
    first, last = frame[frame.timestep <= steps / 10], frame[frame.timestep > steps * 0.9]
    return float(first["return_intrinsic"].mean()), float(last["return_intrinsic"].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=2_000_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--llm", default="local")
    parser.add_argument("--llm-threads", type=int, default=None,
                        help="CPU threads of the embedded judge (default: all cores); 1 when another process runs "
                             "on the other core, since llama.cpp's threads wait on each other when one is starved")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS),
                        help="run these arms only (e.g. extrinsic in one process, the judge's arms in another)")
    parser.add_argument("--report", action="store_true",
                        help="run nothing: tabulate the finished cells and draw the training-score curves")
    args = parser.parse_args()
    name = "nethack_score_quick" if args.quick else "nethack_score"
    steps, seeds = (2048, [0]) if args.quick else (args.steps, args.seeds)
    sizes = (["rollouts.n_steps=1000", "pairs.n=16", "train.eval_episodes=2", "env.max_episode_steps=500"]
             if args.quick else ["rollouts.n_steps=20000", "pairs.n=2000", "train.eval_episodes=20"])
    cells = CellLog(RESULTS / f"{name}_cells.jsonl")
    for arm in [] if args.report else args.arms:
        for seed in seeds:
            cell = f"{arm}|{seed}|{steps}"
            with cells.claim(cell) as mine:
                if not mine:  # finished, or another process is running it
                    continue
                overrides = ["env=nethack/score", *ARMS[arm], f"llm={args.llm}", f"seed={seed}", "data_seed=0",
                             "agent=ppo", f"train.total_timesteps={steps}", "train.baseline=false", "progress=false",
                             *sizes, f"data_dir={RESULTS / (name + '_data')}", *PLAIN_RECIPE]
                if args.llm_threads is not None:
                    overrides.append(f"+llm.options.n_threads={args.llm_threads}")
                run_path = run_dir(name, arm, seed, steps, args.quick)
                metrics = run_cell(overrides, run_path)
                run = next(iter(metrics["runs"].values()))
                # The training readings go into the cell too: a report on another machine has no run dirs.
                cells.add(cell, {"arm": arm, "seed": seed, "steps": steps, "score": run["eval"]["mean_return"],
                                 "in_game_score": run["eval"].get("mean_score"),
                                 **stamp(config=run_path / "config.yaml", wall_time_s=metrics.get("wall_time_s"),
                                         episodes=run["eval"].get("per_episode")),
                                 "steps_per_s": run["steps_per_s"], "train_score_last100": train_score(run_path),
                                 "intrinsic_return_first_vs_last_tenth": intrinsic_trend(run_path, steps)})
                print(cell, run["eval"]["mean_return"], file=sys.stderr, flush=True)
    table, curves = {}, {}
    for arm in ARMS:  # every arm finished so far (another process may be running the others)
        done = [s for s in seeds if f"{arm}|{s}|{steps}" in cells]
        rows = [cells.cells[f"{arm}|{s}|{steps}"] for s in done]
        run_paths = [run_dir(name, arm, s, steps, args.quick) for s in done]
        curves[arm] = {s: run for s, run in zip(done, run_paths) if run.is_dir()}  # this machine's runs only
        scores = [row["score"] for row in rows]
        # 20 evaluation episodes leave a standard error of ~10 points (per-episode std ~30-50): the training
        # episodes' task return (Monitor innermost) over the last 100 is the steadier second reading.
        train = [row["train_score_last100"] if "train_score_last100" in row else train_score(run)
                 for row, run in zip(rows, run_paths)]
        known = [v for v in train if v is not None]
        # "score" in a cell is the NLE task return (its step penalty included), not the in-game score beside it
        table[arm] = {"mean_task_return": float(np.mean(scores)) if scores else None,  # None: not run yet
                      "std_task_return": float(np.std(scores)) if scores else None, "seeds": done,
                      "task_returns": scores, "in_game_scores": [row.get("in_game_score") for row in rows],
                      "train_task_return_last100": train,
                      "mean_train_task_return_last100": float(np.mean(known)) if known else None,
                      "intrinsic_return_first_vs_last_tenth": [
                          row["intrinsic_return_first_vs_last_tenth"] if "intrinsic_return_first_vs_last_tenth" in row
                          else intrinsic_trend(run, steps) for row, run in zip(rows, run_paths)]}
    summary = name if args.quick else f"{name}_{steps}"
    drawn = sorted({s for arm_runs in curves.values() for s in arm_runs})
    if drawn:  # the title names the seeds whose run dirs are on this machine
        plot_seed_curves({arm: list(arm_runs.values()) for arm, arm_runs in curves.items()},
                         RESULTS / f"{summary}_curves.png", column="return", steps=steps,
                         title=f"NetHackScore, PPO {steps:,} steps (seeds {', '.join(map(str, drawn))})",
                         ylabel="NLE task return (last 100 training episodes)")
    (RESULTS / f"{summary}_detail.json").write_text(json.dumps({"steps": steps, "table": table, "machine": machine()},
                                                            indent=2) + "\n")
    emit(summary, {arm: row["mean_task_return"] for arm, row in table.items()})


if __name__ == "__main__":
    main()
