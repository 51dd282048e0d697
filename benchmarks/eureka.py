"""Eureka with the embedded coder (Qwen2.5-Coder-1.5B): execute rate, best fitness per iteration, HNS.

    python benchmarks/eureka.py --quick            # InvertedPendulum, 2 samples x 1 iteration, 1 seed: < 10 min
    nice -n 10 python benchmarks/eureka.py         # 3 tasks, 4 x 2, final retraining on 3 seeds (hours here)

Per task: the search's execute rate per iteration (candidates whose code passed extraction, the allow-list, the
smoke test and a training run), the best fitness (success rate, max over training) per iteration, wall time per
candidate; then the best reward retrained on ``--seeds`` seeds beside the same budget with the env's own dense
reward ("human") and with its success reward ("sparse"), and HNS = (eureka - sparse) / |human - sparse| per seed
(undefined when human equals sparse). IQM with 95 % bootstrap CIs (rliable's metrics) of the three arms.
Every search lives in ``benchmarks/results/eureka_runs/<task>/``: a rerun resumes (finished candidates, LLM
replies and final runs are kept). The last stdout line is the JSON result (also ``results/eureka[_quick].json``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, emit, machine  # noqa: E402

from llm_reward.eureka.search import EurekaSearch, SearchConfig  # noqa: E402
from llm_reward.llm import make_llm  # noqa: E402

#: name -> (env id, settings). Short episodes and success thresholds a few thousand steps can reach.
TASKS: dict[str, dict[str, Any]] = {
    # A pole on a cart, 100-step episodes; success: not fallen when time runs out.
    "inverted_pendulum": {"env_id": "InvertedPendulum-v5", "max_episode_steps": 100, "success": None,
                          "algo": "ppo", "total_timesteps": 6000},
    # Locomotion: 200-step episodes; success: mean forward velocity >= 0.5 m/s over the episode.
    "halfcheetah": {"env_id": "HalfCheetah-v5", "max_episode_steps": 200,
                    "success": "mean_forward_velocity >= 0.5", "algo": "ppo", "total_timesteps": 20000},
    # Manipulation: reach a 3-D target with the Fetch arm (50-step episodes); success: within 5 cm at the end.
    "fetch_reach": {"env_id": "FetchReach-v4", "max_episode_steps": None, "success": None, "algo": "ppo",
                    "total_timesteps": 20000},
}
QUICK = {"task": "inverted_pendulum", "samples": 2, "iterations": 1, "seeds": 1, "total_timesteps": 4000,
         "max_tokens": 380}


def iqm_summary(scores: list[float]) -> dict[str, float] | None:
    """IQM and its 95 % percentile-bootstrap CI over seeds (the suite's rliable-based statistics); None without
    rliable or scores."""
    try:
        from suite.stats import iqm, iqm_ci
    except ImportError:
        return None
    if not scores:
        return None
    low, high = iqm_ci(scores) if len(scores) > 1 else (scores[0], scores[0])
    return {"iqm": float(iqm(scores)), "ci_low": float(low), "ci_high": float(high), "n": len(scores)}


def run_task(name: str, args: argparse.Namespace, llm: Any) -> dict[str, Any]:
    task = TASKS[name]
    config = SearchConfig(samples=args.samples, iterations=args.iterations, algo=task["algo"],
                          total_timesteps=args.total_timesteps or task["total_timesteps"], n_envs=4, n_points=10,
                          eval_episodes=args.eval_episodes, final_seeds=args.seeds, baselines=True,
                          workers=args.workers, max_tokens=args.max_tokens, temperature=0.8, seed=args.seed,
                          success=task["success"], max_episode_steps=task["max_episode_steps"], timeout_s=3600)
    run_dir = Path(args.runs) / f"{name}_{config.samples}x{config.iterations}_{config.total_timesteps}_seed{args.seed}"
    start = time.monotonic()
    summary = EurekaSearch(task["env_id"], llm, config, run_dir, progress=not args.no_progress).run()
    final = summary["final"]
    return {
        "task": task["env_id"], "success": task["success"] or "the adapter's default",
        "max_episode_steps": task["max_episode_steps"], "algo": task["algo"],
        "total_timesteps": config.total_timesteps, "samples": config.samples, "iterations": config.iterations,
        "candidates": summary["candidates"], "execute_rate": summary["execute_rate"],
        "execute_rate_per_iteration": summary["execute_rate_per_iteration"],
        "best_fitness_per_iteration": summary["best_fitness_per_iteration"],
        "failures_by_stage": summary["failures_by_stage"],
        "wall_s_per_candidate": summary["wall_s_per_candidate"],
        "final_scores": final, "final_seeds": [config.seed + 100 + s for s in range(config.final_seeds)],
        "final_iqm": {arm: iqm_summary([v for v in vals if v is not None]) for arm, vals in final.items()},
        "hns": summary["hns"], "run_dir": str(run_dir), "wall_s": time.monotonic() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one task, 2 x 1, one seed, tiny budget (< 10 min)")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3, help="final retraining seeds per arm")
    parser.add_argument("--seed", type=int, default=0, help="search seed (LLM sampling seeds derive from it)")
    parser.add_argument("--total-timesteps", type=int, default=None, help="training budget per run (task default)")
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=500)
    parser.add_argument("--llm", default="local")
    parser.add_argument("--llm-threads", type=int, default=1,
                        help="threads of the embedded model (1: training workers use the other core)")
    parser.add_argument("--runs", default=str(RESULTS / "eureka_runs"))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.samples, args.iterations, args.seeds = [QUICK["task"]], QUICK["samples"], \
            QUICK["iterations"], QUICK["seeds"]
        args.total_timesteps, args.max_tokens, args.eval_episodes = QUICK["total_timesteps"], QUICK["max_tokens"], 3
    start = time.monotonic()
    llm = make_llm(args.llm, n_threads=args.llm_threads) if args.llm.startswith("local") else make_llm(args.llm)
    results = {name: run_task(name, args, llm) for name in args.tasks}
    first = results[args.tasks[0]]
    hns_means = [r["hns"]["mean"] for r in results.values() if r["hns"]["mean"] is not None]
    result: dict[str, Any] = {
        "task": first["task"] if len(results) == 1 else ",".join(r["task"] for r in results.values()),
        "candidates": sum(r["candidates"] for r in results.values()),
        "execute_rate": statistics.mean(r["execute_rate"] for r in results.values()),
        "execute_rate_per_iteration": first["execute_rate_per_iteration"] if len(results) == 1 else
        {name: r["execute_rate_per_iteration"] for name, r in results.items()},
        "best_fitness_per_iteration": first["best_fitness_per_iteration"],
        "hns": first["hns"] if len(results) == 1 else {
            "per_task_mean": {name: r["hns"]["mean"] for name, r in results.items()},
            "tasks_with_hns_at_least_1": sum(v >= 1 for v in hns_means), "tasks": len(results)},
        "tasks": results, "llm": llm.name, "llm_stats": llm.stats.as_dict(), "wall_s": time.monotonic() - start,
        "machine": machine(), "quick": args.quick,
    }
    emit("eureka_quick" if args.quick else "eureka", result)


if __name__ == "__main__":
    main()
