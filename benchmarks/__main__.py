"""Benchmark suites: one command from sweep to table and plots.

    python -m benchmarks run suite=smoke                   # run the suite's unfinished cells, then report
    python -m benchmarks run suite=minigrid only_tasks=[doorkey_8x8] seeds=[0,1] launcher=basic
    python -m benchmarks report suite=minigrid             # aggregate finished cells only (seconds)
    python -m benchmarks list                              # the suites and their tasks
    python -m benchmarks docs                              # rewrite every generated block of README.md and docs/

Suites live in benchmarks/suites/<name>.yaml; any of their keys can be overridden Hydra style (key=value).
Results: benchmarks/results/<suite>/summary.json, summary.md, final_scores.png, learning_curves.png,
performance_profile.png; the results block of README.md and docs/results.md is rewritten from the summaries.
`docs` rewrites every generated block (benchmarks/suite/docs_blocks.py) from the stored results, no run needed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchmarks.suite import docs_blocks, results_block
from benchmarks.suite.config import RESULTS_DIR, available_suites, load_suite, out_dir
from benchmarks.suite.report import write_report

COMMANDS = ("run", "report", "list", "docs")


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    if command == "list":
        for name in available_suites():
            cfg = load_suite(name)
            tasks, rewards = ", ".join(cfg.tasks), ", ".join(cfg.rewards)
            print(f"{name:10s} {cfg.title}: tasks {tasks}; rewards {rewards}")
        return 0
    if command == "docs":
        for notice in docs_blocks.update():
            print(f"notice: {notice}", file=sys.stderr)
        return 0
    suites = [a.split("=", 1)[1] for a in rest if a.startswith("suite=")]
    if len(suites) != 1:
        print(f"{command} needs exactly one suite=<name>; choose one of {available_suites()}", file=sys.stderr)
        return 2
    try:
        cfg = load_suite(suites[0], [a for a in rest if not a.startswith("suite=")])
    except (ValueError, HydraException, OmegaConfBaseException) as err:  # Hydra's own message, without the trace
        print(f"error: {err}", file=sys.stderr)
        return 2
    failed: list[str] = []
    if command == "run":
        started = time.perf_counter()
        try:
            failed, n_run = run_script(cfg) if cfg.runner == "script" else run_train_cells(cfg)
        except (HydraException, OmegaConfBaseException) as err:  # a cell's override: nothing has started
            print(f"error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # finished cells are recorded; the next run starts the others again
            print(f"interrupted: the finished cells are in {out_dir(cfg) / 'cells.jsonl'}; rerun to go on",
                  file=sys.stderr)
            return 130
        if n_run:
            record_run(cfg, n_run, len(failed), time.perf_counter() - started)
    start = time.perf_counter()
    # only_tasks / only_rewards choose what to run; the suite's summary and the docs always cover all of it, so a
    # partial run never replaces them with its subset.
    summary = write_report(OmegaConf.merge(cfg, {"only_tasks": None, "only_rewards": None}))
    if Path(cfg.results_dir) == RESULTS_DIR:  # a suite reported elsewhere (results_dir=...) leaves the docs alone
        for notice in results_block.update(RESULTS_DIR):
            print(f"notice: {notice}", file=sys.stderr)
    print(results_block.block([summary], all_rewards=True))
    seconds = time.perf_counter() - start
    print(f"{summary['n_cells']} cells aggregated in {seconds:.1f} s -> {out_dir(cfg) / 'summary.json'}")
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failed else 0


def record_run(cfg, n_run: int, n_failed: int, seconds: float) -> None:
    """``<suite>/last_run.json``: how long the last ``run`` took for how many cells (the suite's time budget, say
    smoke's 20 minutes, is read from here), and what ran it."""
    import json

    from benchmarks._common import machine

    print(f"ran {n_run} cells ({n_failed} failed) in {seconds / 60:.1f} min", flush=True)
    out_dir(cfg).mkdir(parents=True, exist_ok=True)
    (out_dir(cfg) / "last_run.json").write_text(json.dumps({
        "suite": cfg.name, "cells_run": n_run, "cells_failed": n_failed, "wall_time_s": round(seconds, 1),
        "launcher": cfg.launcher, **machine()}, indent=2) + "\n")


def run_train_cells(cfg) -> tuple[list[str], int]:
    from benchmarks.suite.config import expand
    from benchmarks.suite.runner import check_overrides, pending_cells, run_cells, run_root

    every, pending = expand(cfg, run_root(cfg)), pending_cells(cfg)
    check_overrides(pending)
    print(f"suite {cfg.name}: {len(every)} cells, {len(every) - len(pending)} finished (stored or run before), "
          f"{len(pending)} to run", flush=True)
    failed = run_cells(cfg, pending) if pending else []
    return [f"{cell.key}: {error} (job log under {out_dir(cfg) / 'hydra'})" for cell, error in failed], len(pending)


def run_script(cfg) -> tuple[list[str], int]:
    """A track's own benchmark script, which appends its cells to ``script_cells``; the suite reports them."""
    script = Path(__file__).resolve().parent / cfg.script
    if not script.is_file():
        return [f"{cfg.script}: not in benchmarks/ yet, so suite {cfg.name} has no cells to run"], 0
    done = subprocess.run([sys.executable, str(script), *cfg.script_args])
    return [] if done.returncode == 0 else [f"{cfg.script} exited with code {done.returncode}"], 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
