"""PPO on sparse MiniGrid tasks with rewards {none, count, oracle, motif (embedded judge)} over several seeds.

    python benchmarks/minigrid_sparse.py --quick                # same code path, tiny budget, <= 5 minutes
    python benchmarks/minigrid_sparse.py                        # 3 tasks x 4 rewards x 3 seeds x 300k steps
    python benchmarks/minigrid_sparse.py --tasks minigrid/doorkey_8x8   # one task
    python benchmarks/minigrid_sparse.py --steps 1000000 --seeds 0 1 2 3 4   # summary: minigrid_sparse_1000000.json
    python benchmarks/minigrid_sparse.py --report               # tabulate the finished cells (pilots too), run nothing
    python benchmarks/minigrid_sparse.py --tasks minigrid/doorkey_16x16 --rewards motif oracle --steps 600000 \
        --rollouts-policy <run>/agent_shaped.zip --variant countdata   # reward data from a trained agent

Each cell is one ``llm-reward-train`` run (``train.baseline=false``; ``none`` is its own cell) composed from
``conf/``; finished cells are recorded in ``results/minigrid_sparse[_quick]_cells.jsonl`` and skipped on rerun.
Success is measured on fresh evaluation episodes with the true environment reward.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PLAIN_RECIPE, RESULTS, CellLog, emit, machine, plot_seed_curves, read_episodes  # noqa: E402
from _hydra import run_cell  # noqa: E402

TASKS = ["minigrid/doorkey_8x8", "minigrid/unlockpickup", "minigrid/multiroom_n4_s5"]
REWARDS = ["none", "count", "oracle", "motif"]
DEFAULT_STEPS = 300_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny budget, one seed (<= 5 minutes)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tasks", nargs="+", default=None, help=f"tasks to run (default: {' '.join(TASKS)}); the "
                        "table shows every task with finished cells, pilots included")
    parser.add_argument("--rewards", nargs="+", default=None, help=f"rewards to run (default: {' '.join(REWARDS)}); "
                        "the table also shows any other reward with finished cells, e.g. oni")
    parser.add_argument("--llm", default="local", help="llm config group (conf/llm/)")
    parser.add_argument("--data-dir", default="data", help="stage cache shared with llm-reward-train (full runs)")
    parser.add_argument("--rollouts-policy", default=None, help="a saved SB3 agent (.zip) that collects the reward "
                        "model's data instead of random actions (rollouts.policy); needs --variant")
    parser.add_argument("--variant", default=None, help="name the cells of this setting: rewards show as "
                        "<reward>:<variant>, e.g. motif:countdata")
    parser.add_argument("--override", nargs="+", default=[], metavar="KEY=VALUE",
                        help="extra llm-reward-train overrides, e.g. reward.shaping.terminal_potential=zero; needs "
                             "--variant")
    parser.add_argument("--report", action="store_true", help="run nothing: tabulate the cells finished so far")
    args = parser.parse_args()
    if args.rollouts_policy is not None and (args.variant is None or not Path(args.rollouts_policy).is_file()):
        parser.error("--rollouts-policy needs an existing .zip and a --variant name for its cells")
    if args.override and args.variant is None:
        parser.error("--override needs a --variant name for its cells")
    extra = [f"rollouts.policy={Path(args.rollouts_policy).resolve()}"] if args.rollouts_policy else []
    extra += args.override
    name = "minigrid_sparse_quick" if args.quick else "minigrid_sparse"
    steps, seeds = (2048, [0]) if args.quick else (args.steps, args.seeds)
    sizes = (["rollouts.n_steps=500", "pairs.n=8", "reward_model.epochs=10", "train.eval_episodes=2"] if args.quick
             else ["train.eval_episodes=50"])  # the main job's data sizes: its labels and reward models are reused
    data_dir = RESULTS / f"{name}_data" if args.quick else Path(args.data_dir)
    cells = CellLog(RESULTS / f"{name}_cells.jsonl")
    for task in args.tasks or TASKS:
        for reward in args.rewards or REWARDS:
            if args.rollouts_policy and reward not in ("oracle", "motif"):
                continue  # only these two are fitted on rollouts: the others would repeat finished cells
            label = f"{reward}:{args.variant}" if args.variant else reward
            for seed in seeds:
                cell = f"{task}|{label}|{seed}|{steps}"
                if args.report:
                    continue
                with cells.claim(cell) as mine:
                    if not mine:  # finished, or another process is running it
                        continue
                    overrides = [f"env={task}", f"reward={reward}", f"llm={args.llm}", f"seed={seed}", "data_seed=0",
                                 f"train.total_timesteps={steps}", "train.baseline=false", "progress=false", *sizes,
                                 f"data_dir={data_dir.resolve()}", *PLAIN_RECIPE, *extra]
                    budget = "" if steps == DEFAULT_STEPS or args.quick else f"_{steps}"  # runs never overwrite
                    run_name = f"{label.replace(':', '-')}_seed{seed}{budget}"
                    run_dir = RESULTS / f"{name}_runs" / task.replace("/", "_") / run_name
                    metrics = run_cell(overrides, run_dir)
                    run = next(iter(metrics["runs"].values()))
                    cells.add(cell, {"task": task, "reward": label, "seed": seed, "steps": steps,
                                     "success_rate": metrics["success_rate"], "mean_return": run["eval"]["mean_return"],
                                     "train_success_last100": run["train_success_last100"],
                                     "steps_per_s": run["steps_per_s"], "run_dir": str(run_dir),
                                     "failed_episode_median_length": _failed_length(run_dir)})
                    print(cell, metrics["success_rate"], file=sys.stderr, flush=True)
    # The table shows every finished cell at this budget, pilots on other tasks (and rewards such as oni) included.
    finished = [row for row in cells.cells.values() if row["steps"] == steps]
    tasks = _extend(args.tasks or TASKS, [row["task"] for row in finished])
    rewards = _extend(args.rewards or REWARDS, [row["reward"] for row in finished])
    # Another budget gets its own summary files (the cells log is shared: each cell records its budget).
    summary = name if args.quick or steps == DEFAULT_STEPS else f"{name}_{steps}"
    earlier = _earlier_failed_lengths(RESULTS / f"{summary}_detail.json")
    table: dict[str, dict[str, float]] = {}
    detail: dict[str, dict[str, dict[str, float]]] = {}
    for task in tasks:
        for reward in rewards:
            done = [s for s in seeds if f"{task}|{reward}|{s}|{steps}" in cells]
            values = [cells.cells[f"{task}|{reward}|{s}|{steps}"]["success_rate"] for s in done]
            mean = float(np.mean(values)) if values else float("nan")  # nan: not run yet (null in the JSON)
            table.setdefault(task, {})[reward] = mean
            detail.setdefault(task, {})[reward] = {
                "mean": mean, "std": float(np.std(values)) if values else mean, "seeds": done, "success": values,
                "failed_episode_median_length": [_cell_failed_length(cells.cells[f"{task}|{reward}|{s}|{steps}"],
                                                                     earlier.get((task, reward, s))) for s in done]}
    print(f"budget {steps} steps, seeds {seeds}; success mean ± std:", file=sys.stderr)
    for task, row in detail.items():
        print(f"  {task:28s} " + "  ".join(f"{r}={v['mean']:.2f}±{v['std']:.2f} (n={len(v['seeds'])})"
                                          for r, v in row.items()),
              file=sys.stderr)
    for task in tasks:
        runs = {reward: [Path(cells.cells[c]["run_dir"]) for seed in seeds
                         if (c := f"{task}|{reward}|{seed}|{steps}") in cells] for reward in rewards}
        if not all(run.is_dir() for group in runs.values() for run in group):  # curves need every run's episodes
            print(f"  {task}: some run directories are not on this machine; its curves are left as they were",
                  file=sys.stderr)
            continue
        plot_seed_curves(runs, RESULTS / f"{summary}_curves_{task.split('/')[-1]}.png", column="success", steps=steps,
                         title=f"{task}, PPO", ylabel="training success (last 100 episodes)", unit_range=True)
    (RESULTS / f"{summary}_detail.json").write_text(json.dumps(
        {"steps": steps, "seeds": seeds, "success": detail, "machine": machine()}, indent=2) + "\n")
    emit(summary, table)


def _cell_failed_length(row: dict, earlier: float | None) -> float | None:
    """The cell's own record, else its run directory, else what an earlier report on the machine that ran it wrote."""
    if "failed_episode_median_length" in row:
        return row["failed_episode_median_length"]
    return _failed_length(row["run_dir"]) if Path(row["run_dir"]).is_dir() else earlier


def _earlier_failed_lengths(path: Path) -> dict[tuple[str, str, int], float | None]:
    if not path.is_file():
        return {}
    success = json.loads(path.read_text())["success"]
    return {(task, reward, seed): length for task, row in success.items() for reward, cell in row.items()
            for seed, length in zip(cell["seeds"], cell.get("failed_episode_median_length", []))}


def _failed_length(run_dir: str | Path) -> float | None:
    """Median length of the failures among a run's last 100 training episodes (None: no failures, or the run
    directory is not on this machine). Short failures are the agent ending the episode itself (RedBlueDoors: the
    blue door opened first); failures at the time limit are an agent that stays."""
    last = read_episodes(Path(run_dir)).tail(100)
    failed = last[last["success"] == 0] if len(last) else last
    return float(failed["length"].median()) if len(failed) else None


def _extend(first: list[str], more: list[str]) -> list[str]:
    return list(dict.fromkeys([*first, *sorted(more)]))


if __name__ == "__main__":
    main()
