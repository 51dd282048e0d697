"""Is a task's Eureka budget enough for a *good* reward? The hand-written reference reward of a task
(``benchmarks/eureka_reference/``) trained through the final-run path of ``benchmarks/eureka.py`` -- the same
:class:`~llm_reward.eureka.search.SearchConfig` settings (algo, agent defaults, ``n_envs``, episode limit,
observation wrapper), the same sandboxed reward server as a candidate, the same seeds (search seed + 100 + s) and
``--eval-episodes`` fresh episodes -- one seed at a time.

    nice -n 10 python benchmarks/eureka_reference_budget.py --tasks doorkey_8x8 --seeds 2
    nice -n 10 python benchmarks/eureka_reference_budget.py --tasks doorkey_8x8 --seeds 1 --total-timesteps 400000

If the reference reaches a high fresh-episode success at the search's budget, a search that does not is held back
by its coder, not by the budget. Each run lives in ``results/eureka_reference_runs/<task>_<steps>_seed<s>/`` and is
kept: a rerun reports it without training again. The last stdout line is the JSON result (also
``results/eureka_reference_budget.json``, which keeps the runs of every task and budget measured).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, emit, machine, stamp  # noqa: E402
from eureka import TASKS  # noqa: E402

from llm_reward.eureka.candidate import evaluate_candidate  # noqa: E402
from llm_reward.eureka.context import env_context  # noqa: E402
from llm_reward.eureka.search import SearchConfig  # noqa: E402

HERE = Path(__file__).resolve().parent


def run(name: str, steps: int, s: int, args: argparse.Namespace) -> dict[str, Any]:
    """One seed of the task's reference reward at ``steps``: its fresh-episode success, training curve and timing."""
    task = TASKS[name]
    run_dir = Path(args.runs) / f"{name}_{steps}_seed{s}"
    if (run_dir / "result.json").is_file():
        return json.loads((run_dir / "result.json").read_text())
    # benchmarks/eureka.py's run_task settings (the final runs: search seed + 100 + s, --eval-episodes fresh ones)
    config = SearchConfig(algo=task["algo"], total_timesteps=steps, n_envs=4, n_points=10, final_seeds=s + 1,
                          final_eval_episodes=args.eval_episodes, seed=args.seed, success=task["success"],
                          max_episode_steps=task["max_episode_steps"], timeout_s=4 * 3600)
    context = env_context(task["env_id"], task.get("context"), success=config.success, seed=config.seed)
    code = (HERE / task["reference"]).read_text()
    run_dir.mkdir(parents=True, exist_ok=True)
    job = config.job(task["env_id"], context.hidden_info_keys, reward="code", code=code, seed=config.seed + 100 + s,
                     log_dir=str(run_dir), eval_episodes=config.final_eval_episodes)
    start, load_start = time.monotonic(), [round(x, 2) for x in os.getloadavg()]
    result = evaluate_candidate(job)
    record = {"task": name, "env_id": task["env_id"], "reference": task["reference"], "steps": steps,
              "seed": job.seed, "status": result.status.value, "reason": result.reason,
              "eval_success": result.eval_success, "eval_return": result.eval_return,
              "eval_episodes": args.eval_episodes, "training_fitness": result.fitness,
              "training_success_curve": [[p["timestep"], p["success_rate"]] for p in result.curve],
              "wall_s": round(time.monotonic() - start), "load_start": load_start,
              **stamp(config={"task": name, "steps": steps, "seed": job.seed, "code": code})}
    (run_dir / "result.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    with_reference = [name for name, task in TASKS.items() if task.get("reference")]
    parser.add_argument("--tasks", nargs="+", default=with_reference, choices=with_reference)
    parser.add_argument("--seeds", type=int, default=2, help="training seeds (search seed + 100 + s)")
    parser.add_argument("--seed", type=int, default=0, help="the search seed the final runs derive from")
    parser.add_argument("--total-timesteps", type=int, default=None, help="training budget (the task's default)")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--runs", default=str(RESULTS / "eureka_reference_runs"))
    args = parser.parse_args()
    out = RESULTS / "eureka_reference_budget.json"
    stored = json.loads(out.read_text())["runs"] if out.is_file() else {}
    for name in args.tasks:
        steps = args.total_timesteps or TASKS[name]["total_timesteps"]
        for s in range(args.seeds):
            record = run(name, steps, s, args)
            stored[f"{name}_{steps}_seed{s}"] = record
            print(json.dumps({k: record[k] for k in ("task", "steps", "seed", "eval_success", "wall_s")}), flush=True)
    summary = {}  # task -> steps -> the success of each seed on fresh episodes
    for record in sorted(stored.values(), key=lambda r: (r["task"], r["steps"], r["seed"])):
        summary.setdefault(record["task"], {}).setdefault(str(record["steps"]), []).append(record["eval_success"])
    emit("eureka_reference_budget", {"eval_success": summary, "runs": stored, "machine": machine()})


if __name__ == "__main__":
    main()
