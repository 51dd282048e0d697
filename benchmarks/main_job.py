"""The README's main-job command (and the smoke experiment), timed from a cold start as a fresh machine runs it.

    python benchmarks/main_job.py            # llm-reward-train: DoorKey-8x8, embedded judge (target <= 15 min)
    python benchmarks/main_job.py --smoke    # llm-reward-train experiment=smoke (target <= 3 min)

Cold means a fresh data dir (no rollouts, labels or reward model) and an empty LLM result cache; the assembled GGUF
judge is reused (linked into the temporary cache), since assembling it is a one-off install step. Prints the wall
time and the shaped and extrinsic-only success rates; saves ``results/main_job[_smoke].json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, train_from_cold  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="time experiment=smoke instead of the default job")
    parser.add_argument("overrides", nargs="*", help="extra llm-reward-train overrides")
    args = parser.parse_args()
    command = ["llm-reward-train", *(["experiment=smoke"] if args.smoke else [])]
    with tempfile.TemporaryDirectory() as tmp:
        done, run_dir, wall = train_from_cold([*command[1:], "progress=false", *args.overrides], Path(tmp))
        metrics = json.loads((run_dir / "metrics.json").read_text())
        last_line = done.stdout.strip().splitlines()[-1]
    runs = metrics["runs"]
    emit("main_job_smoke" if args.smoke else "main_job", {
        "command": " ".join(command), "wall_time_s": wall,
        "prints_run_dir_last": last_line == str(run_dir), "env": metrics["env"],
        "success_shaped": runs["shaped"]["eval"]["success_rate"],
        "success_extrinsic": runs.get("extrinsic", {}).get("eval", {}).get("success_rate"),
        "timesteps": runs["shaped"]["timesteps"], "llm_calls": metrics.get("annotation", {}).get("llm_calls"),
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
