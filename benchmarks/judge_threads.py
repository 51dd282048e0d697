"""How many CPU threads the embedded judge should use when it shares the machine with training.

    python benchmarks/judge_threads.py --quick    # fewer prompts, shorter online runs
    python benchmarks/judge_threads.py            # summary: results/judge_threads.json

For each thread count in ``--threads`` (default: 1 and all cores):

* prompts/s of the default judge on distinct pair prompts (RLAIF mode, ``choice_probs_batch``), first on an idle
  machine, then with one core held busy by another process (a pure-Python loop, as a training process would);
* online feedback (``llm-reward-train env=minigrid/doorkey_8x8 reward=oni``, ``--oni-steps`` PPO steps, empty LLM
  result cache): the learner's steps/s and how many captions the judge thread labelled meanwhile. There the judge
  shares the machine with the learner in its own process.

llama.cpp splits each matrix product across its threads and waits for the slowest, so a thread that loses its core
to another process holds all the others back. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, train_from_cold  # noqa: E402
from llm_throughput import captions  # noqa: E402

from llm_reward.feedback.prompts import PairPrompt, goal_sentence  # noqa: E402
from llm_reward.llm import make_llm  # noqa: E402

BUSY_LOOP = "while True: pass"


def prompts_per_s(n_threads: int, pairs: list[tuple[str, str]]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        llm = make_llm("local", cache=Path(tmp) / "cache.sqlite", n_threads=n_threads)
        llm.model  # load outside the timed part
        prompt = PairPrompt(domain="nethack", goal=goal_sentence("nethack", "default"))
        llm.choice_probs_batch([prompt.rlaif(*pairs[0])], ["1", "2"])  # warm-up: first-call allocations
        start = time.perf_counter()
        llm.choice_probs_batch([prompt.rlaif(a, b) for a, b in pairs[1:]], ["1", "2"])
        return (len(pairs) - 1) / (time.perf_counter() - start)


def online_run(n_threads: int, steps: int) -> dict[str, float]:
    """One short ``reward=oni`` training run with the judge on ``n_threads`` threads, from an empty result cache."""
    with tempfile.TemporaryDirectory() as tmp:
        _, run_dir, _ = train_from_cold(["env=minigrid/doorkey_8x8", "reward=oni", "llm=local",
                                         f"+llm.options.n_threads={n_threads}", f"train.total_timesteps={steps}",
                                         "train.baseline=false", "train.eval_episodes=10", "progress=false"], Path(tmp))
        shaped = json.loads((run_dir / "metrics.json").read_text())["runs"]["shaped"]
    feedback = shaped["online_feedback"]
    return {"steps_per_s": shaped["steps_per_s"], "labelled_captions": feedback["labelled_captions"],
            "labelled_per_1k_steps": 1000 * feedback["labelled_captions"] / shaped["timesteps"],
            "llm_prompts": feedback["llm_prompts"], "success_rate": shaped["eval"]["success_rate"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer prompts, shorter online runs")
    parser.add_argument("--threads", type=int, nargs="+", default=sorted({1, os.cpu_count() or 1}))
    parser.add_argument("--oni-steps", type=int, default=None,
                        help="PPO steps of each online run (default 300000, 30000 with --quick; 0 skips them)")
    args = parser.parse_args()
    if any(t < 1 for t in args.threads):
        parser.error("--threads must be positive")
    oni_steps = args.oni_steps if args.oni_steps is not None else (30_000 if args.quick else 300_000)
    if oni_steps < 0:
        parser.error("--oni-steps must be >= 0")
    n_prompts = 16 if args.quick else 48
    caps = captions(2 * n_prompts * 2 * len(args.threads))
    pairs = list(zip(caps[0::2], caps[1::2]))
    batches = iter([pairs[i:i + n_prompts] for i in range(0, len(pairs), n_prompts)])  # every run: new prompts

    rows = {}
    for load in ("idle", "one_core_busy"):
        busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if load == "one_core_busy" else None
        try:
            for n_threads in args.threads:
                rate = prompts_per_s(n_threads, next(batches))
                rows[f"{load}_threads{n_threads}"] = rate
                print(f"{load:14s} n_threads={n_threads}: {rate:.2f} prompts/s", file=sys.stderr, flush=True)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    online = {}
    for n_threads in args.threads if oni_steps else []:
        online[f"threads{n_threads}"] = online_run(n_threads, oni_steps)
        print(f"online n_threads={n_threads}: {online[f'threads{n_threads}']}", file=sys.stderr, flush=True)
    top = max(args.threads)
    result = {"prompts_per_s": rows, "online": online, "oni_steps": oni_steps, "threads": args.threads,
              "prompts_per_run": n_prompts - 1, "machine": machine(), "quick": args.quick}
    if 1 in args.threads and top > 1:
        result["busy_speedup_threads1_vs_all"] = rows["one_core_busy_threads1"] / rows[f"one_core_busy_threads{top}"]
        result["idle_speedup_all_vs_threads1"] = rows[f"idle_threads{top}"] / rows["idle_threads1"]
        if online:
            result["online_labels_ratio_threads1_vs_all"] = (online["threads1"]["labelled_captions"]
                                                             / max(online[f"threads{top}"]["labelled_captions"], 1))
            result["online_sps_ratio_threads1_vs_all"] = (online["threads1"]["steps_per_s"]
                                                          / online[f"threads{top}"]["steps_per_s"])
    emit("judge_threads_quick" if args.quick else "judge_threads", result)


if __name__ == "__main__":
    main()
