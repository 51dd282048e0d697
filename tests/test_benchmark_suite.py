"""Benchmark suites: definitions compose into valid llm-reward-train jobs, stored cells are imported and aggregated
with rliable's statistics, the results block is rewritten between its markers only, and a real suite runs its
cells as Hydra jobs and skips them when run again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError
from rliable import metrics

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.suite import results_block  # noqa: E402
from benchmarks.suite.config import available_suites, expand, load_suite  # noqa: E402
from benchmarks.suite.report import write_report  # noqa: E402
from benchmarks.suite.runner import pending_cells, run_root  # noqa: E402


@pytest.mark.parametrize("name", [s for s in available_suites()])
def test_every_suite_composes_and_each_cell_is_a_valid_train_job(name: str) -> None:
    cfg = load_suite(name)
    assert cfg.title and set(cfg.controls) <= set(cfg.rewards), "every suite runs its controls"
    if cfg.runner == "script":  # a track's own benchmark script, its results imported
        assert (ROOT / "benchmarks" / cfg.script).is_file() and cfg.imports
        return
    if name != "nethack_gold":  # the steering suite's control is the same judge asked about the default goal
        assert {"none", "count"} <= set(cfg.controls)
    cells = expand(cfg, Path("/tmp/runs"))
    assert len({c.key for c in cells}) == len(cells)
    # every task once and every reward once is enough to catch a bad override (unknown option, typo in a key)
    tasks, rewards = set(), set()
    for cell in cells:
        if cell.task in tasks and cell.reward in rewards:
            continue
        tasks.add(cell.task), rewards.add(cell.reward)
        with initialize_config_module("llm_reward.conf", version_base="1.3"):
            job = compose("train", overrides=list(cell.overrides))
        assert job.train.total_timesteps == cell.steps and job.seed == cell.seed


def test_bad_suite_input_fails_with_a_message_naming_it() -> None:
    with pytest.raises(ValueError, match="unknown suite='nope'.*minigrid"):
        load_suite("nope")
    with pytest.raises(ValueError, match="only_tasks=\\['doorkey_99'\\]"):
        load_suite("minigrid", ["only_tasks=[doorkey_99]"])
    with pytest.raises((ConfigCompositionException, ConfigKeyError), match="sedes"):
        load_suite("minigrid", ["sedes=[0]"])
    done = subprocess.run([sys.executable, "-m", "benchmarks", "report", "suite=minigrid", "sedes=[0]"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: Could not override 'sedes'")


#: A cell's code version, as CellLog stamps it (two versions: a row counts the cells of one).
STAMP = {"code_version": {"commit": "a" * 40, "dirty": False}}
OLDER = {"code_version": {"commit": "b" * 40, "dirty": False}}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_report_imports_stored_cells_and_matches_rliable(tmp_path: Path) -> None:
    scores = {"none": [0.02, 0.04, 0.0, 0.0, 0.02], "count": [0.0, 1.0, 1.0, 0.14, 1.0],
              "motif": [0.04, 1.0, 1.0, 1.0, 0.52]}
    stored = [{"cell": f"minigrid/doorkey_8x8|{r}:fewshot_dense|{s}|300000", "task": "minigrid/doorkey_8x8",
               "reward": f"{r}:fewshot_dense", "seed": s, "steps": 300000, "success_rate": v, "steps_per_s": 900.0,
               **STAMP} for r, values in scores.items() for s, v in enumerate(values)]
    # the same cell at another budget is another task's
    stored.append({**stored[0], "seed": 0, "steps": 600000, "cell": "minigrid/doorkey_8x8|none:fewshot_dense|0|600000"})
    # cells of older code, and cells recorded before cells named their code, are stale: listed, not counted
    stored += [{**stored[0], "seed": 7, "cell": "minigrid/doorkey_8x8|none:fewshot_dense|7|300000", **OLDER},
               {**{k: v for k, v in stored[0].items() if k != "code_version"}, "seed": 8,
                "cell": "minigrid/doorkey_8x8|none:fewshot_dense|8|300000", "success_rate": 1.0}]
    _write_jsonl(tmp_path / "minigrid_sparse_cells.jsonl", stored)
    # a cell the suite ran itself wins over the stored one and brings its LLM counters
    _write_jsonl(tmp_path / "minigrid" / "cells.jsonl", [
        {"cell": "minigrid/doorkey_8x8|motif:fewshot_dense|4|300000", "env": "minigrid/doorkey_8x8",
         "label": "motif:fewshot_dense", "seed": 4, "steps": 300000, "score": 0.6, "llm_calls": 120,
         "llm_cache_hits": 30, "wall_time_s": 600.0, **STAMP,
         "curve": {"steps": [0, 150000, 300000], "values": [None, 0.2, 0.6]}}])
    scores["motif"][4] = 0.6
    cfg = load_suite("minigrid", [f"results_dir={tmp_path}", "only_tasks=[doorkey_8x8,unlockpickup]",
                                  "bootstrap_reps=2000"])
    summary = write_report(cfg)

    saved = json.loads((tmp_path / "minigrid" / "summary.json").read_text())
    motif = saved["tasks"]["doorkey_8x8"]["rewards"]["motif"]
    for key in ("iqm", "ci_low", "ci_high", "n_seeds", "prob_improvement_vs_none", "prob_improvement_ci",
                "stale_cells"):
        assert key in motif
    assert motif["n_seeds"] == 5 and motif["seeds"] == [0, 1, 2, 3, 4]
    row = saved["tasks"]["doorkey_8x8"]
    assert row["code_version"] == "a" * 12 and not row["stale"] and row["stale_cells"] == 2
    assert row["n_seeds"]["none"] == 5 and [c["seed"] for c in row["rewards"]["none"]["stale_cells"]] == [7, 8]
    assert row["prob_improvement_ci"] == motif["prob_improvement_ci"] and row["verdict_vs_none"] == "ahead"
    assert all(cell["code_version"]["commit"] == "a" * 40 for r in row["rewards"].values() for cell in r["cells"])
    x, y = np.array(scores["motif"])[:, None], np.array(scores["none"])[:, None]
    assert motif["iqm"] == pytest.approx(metrics.aggregate_iqm(x))
    assert motif["prob_improvement_vs_none"] == pytest.approx(metrics.probability_of_improvement(x, y))
    # P(motif > none) is clearly above 0.5 here: its interval must exclude 0.5 and the verdict say so; the count
    # bonus, as good as motif on these seeds, is level with it (an interval that contains 0.5)
    assert motif["prob_improvement_ci"] == motif["prob_improvement_vs_none_ci"]
    assert 0.5 < motif["prob_improvement_ci"][0] <= motif["prob_improvement_vs_none"] <= motif["prob_improvement_ci"][1]
    assert motif["verdict_vs_none"] == "ahead" and motif["verdict_vs_count"] == "level with"
    assert motif["prob_improvement_vs_count_ci"][0] < 0.5 < motif["prob_improvement_vs_count_ci"][1]
    assert motif["prob_improvement_vs_count"] == pytest.approx(
        metrics.probability_of_improvement(x, np.array(scores["count"])[:, None]))
    assert motif["llm_calls_per_cell"] == 120 and motif["mean"] == pytest.approx(np.mean(scores["motif"]))
    assert saved["tasks"]["doorkey_8x8"]["rewards"]["none"]["n_seeds"] == 5  # the 600k cell is another budget
    assert saved["tasks"]["unlockpickup"]["rewards"]["motif"]["n_seeds"] == 0
    assert saved["tasks"]["unlockpickup"]["rewards"]["motif"]["iqm"] is None
    assert set(summary["figures"]) == {"final_scores", "learning_curves", "performance_profile"}
    for name in summary["figures"].values():
        assert (tmp_path / "minigrid" / name).stat().st_size > 10_000
    table = (tmp_path / "minigrid" / "summary.md").read_text()
    assert f"| motif | {motif['iqm']:.2f} [{motif['ci_low']:.2f}, {motif['ci_high']:.2f}] (n=5)" in table
    p, (low, high) = motif["prob_improvement_vs_none"], motif["prob_improvement_ci"]
    assert f"{p:.2f} [{low:.2f}, {high:.2f}] ahead" in table and "code version aaaaaaaaaaaa" in table
    lines = table.splitlines()
    for header, rule in zip(lines, lines[1:]):
        if rule.startswith("|---"):  # a markdown table renders only when both rows have the same cells
            assert rule.count("|") == header.count("|"), header


def test_nethack_cells_are_imported_under_the_suite_names(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "nethack_score_cells.jsonl", [
        {"cell": f"{arm}|{s}|2000000", "arm": arm, "seed": s, "steps": 2000000,
         "score": 20.0 + s + 10 * (arm != "extrinsic"), **STAMP}
        for arm in ("extrinsic", "intrinsic") for s in range(3)])
    summary = write_report(load_suite("nethack", [f"results_dir={tmp_path}", "bootstrap_reps=500"]))
    row = summary["tasks"]["score_2m"]["rewards"]
    assert row["none"]["scores"] == [20.0, 21.0, 22.0] and row["intrinsic"]["prob_improvement_vs_none"] == 1.0
    assert row["combined"]["n_seeds"] == 0


def test_results_block_rewrites_only_between_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nkept\n\n{results_block.START}\nold numbers\n{results_block.END}\n\nalso kept\n")
    assert results_block.rewrite(readme, "| new | table |\n")
    text = readme.read_text()
    assert "old numbers" not in text and "| new | table |" in text
    assert text.startswith("# title\n\nkept\n\n") and text.endswith(f"{results_block.END}\n\nalso kept\n")
    untouched = tmp_path / "other.md"
    untouched.write_text("no markers\n")
    assert not results_block.rewrite(untouched, "x") and untouched.read_text() == "no markers\n"


def test_results_block_from_a_summary(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "minigrid_sparse_cells.jsonl", [
        {"cell": f"minigrid/doorkey_8x8|{r}:fewshot_dense|{s}|300000", "task": "minigrid/doorkey_8x8",
         "reward": f"{r}:fewshot_dense", "seed": s, "steps": 300000, "success_rate": v, **STAMP}
        for r, v in (("none", 0.0), ("count", 0.5), ("motif", 1.0)) for s in range(3)]
        + [{"cell": "minigrid/unlockpickup|none|0|300000", "task": "minigrid/unlockpickup", "reward": "none",
            "seed": 0, "steps": 300000, "success_rate": 0.3}])  # unstamped: its row reads stale
    write_report(load_suite("minigrid", [f"results_dir={tmp_path}", "bootstrap_reps=200"]))
    text = results_block.block(results_block.load_summaries(tmp_path), all_rewards=False)
    assert "| task | steps | none | count | motif | P(motif > none) |" in text
    # three seeds: the mean, labelled; P(motif > none) with its interval and verdict
    row = ("| doorkey_8x8 | 300k | 0.00 [0.00, 0.00] (3, mean) | 0.50 [0.50, 0.50] (3, mean) | "
           "1.00 [1.00, 1.00] (3, mean) | 1.00 [1.00, 1.00] ahead |")
    assert row in text
    assert "| unlockpickup (stale) | 300k | stale | – | – | – |" in text
    assert "redbluedoors_8x8" not in text  # tasks without cells are left out of the headline


def test_main_job_line_comes_from_the_main_job_cells(tmp_path: Path) -> None:
    from benchmarks.main_job import summarize

    rows = [{"seed": s, "env": "MiniGrid-DoorKey-8x8-v0", "wall_time_s": 600.0 + 60 * s, "prints_run_dir_last": True,
             "success_shaped": shaped, "success_extrinsic": 0.0, **STAMP}
            for s, shaped in enumerate([1.0, 1.0, 0.0, 0.52, 1.0])]
    rows.append({**rows[0], "seed": 5, **OLDER})  # another code version: listed, not counted
    summary = summarize(rows, smoke=False)
    assert summary["seeds_shaped_ahead"] == 4 and summary["within_wall_target"] and summary["stale_seeds"] == [5]
    assert [r["seed"] for r in summary["per_seed"]] == [0, 1, 2, 3, 4]
    p = summary["prob_improvement"]
    assert p["shaped_vs_extrinsic"] == pytest.approx(0.9) and p["ci"][0] < 0.9 <= p["ci"][1]
    assert p["verdict"] == "ahead" and p["ci"][0] > 0.5  # seed 2's failure widens the interval, not past 0.5
    summary["suite_row"] = {"task": "doorkey_8x8", "rewards": {
        r: {"n_seeds": 5, "estimator": "iqm", "point": v, "point_ci": [v - 0.1, v]}
        for r, v in (("count", 0.71), ("shuffled", 0.09))}}
    readme = tmp_path / "README.md"
    readme.write_text(f"```bash\nllm-reward-train\n```\n\n{results_block.MAIN_JOB[0]}\n{results_block.MAIN_JOB[1]}\n")
    assert results_block.rewrite(readme, results_block.main_job_text(summary), results_block.MAIN_JOB)
    text = readme.read_text()
    assert "cold start on 5 seeds" in text and "10–14 min per run" in text
    assert "ranges 0.00–1.00 for the shaped agent" in text and "P(shaped > extrinsic) = 0.90 [" in text
    assert "ahead on 4 of 5 seeds" in text and "(the shaped agent is ahead of the baseline)" in text
    assert "IQM 0.71 [0.61, 0.71] (5 seeds) with the count bonus" in text and "0.09 [-0.01, 0.09]" in text


@pytest.mark.slow
def test_a_suite_runs_its_cells_as_hydra_jobs_and_skips_them_when_run_again(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "benchmarks", "run", "suite=smoke", "seeds=[0,1]", "only_rewards=[none]",
            "tasks.doorkey_5x5.steps=1024", "launcher=joblib", f"results_dir={tmp_path}",
            'common=["experiment=smoke","llm=tiny","train.baseline=false","progress=false","train.eval_episodes=2"]']
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "2 to run" in first.stdout
    rows = [json.loads(line) for line in (tmp_path / "smoke" / "cells.jsonl").read_text().splitlines()]
    assert sorted(row["seed"] for row in rows) == [0, 1]
    assert len({row["run_dir"] for row in rows}) == 2 and all(row["llm_calls"] == 0 for row in rows)
    summary = json.loads((tmp_path / "smoke" / "summary.json").read_text())
    assert summary["tasks"]["doorkey_5x5"]["rewards"]["none"]["n_seeds"] == 2
    last_run = json.loads((tmp_path / "smoke" / "last_run.json").read_text())
    assert last_run["cells_run"] == 2 and last_run["cells_failed"] == 0 and last_run["wall_time_s"] > 0

    again = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 finished (stored or run before), 0 to run" in again.stdout
    assert pending_cells(load_suite("smoke", [f"results_dir={tmp_path}", "seeds=[0,1]", "only_rewards=[none]",
                                              "tasks.doorkey_5x5.steps=1024"])) == []
    assert run_root(load_suite("smoke", [f"results_dir={tmp_path}"])).is_dir()


def test_track_scripts_results_are_imported(tmp_path: Path) -> None:
    (tmp_path / "eureka.json").write_text(json.dumps({**STAMP, "tasks": {"mountaincar_continuous": {
        "task": "MountainCarContinuous-v0", "total_timesteps": 50000, "final_seeds": [100, 101, 102],
        "final_scores": {"eureka": [0.9, 1.0, 0.8], "env": [1.0, 1.0, 1.0], "sparse": [0.1, None, 0.0]}}}}))
    summary = write_report(load_suite("eureka", [f"results_dir={tmp_path}", "bootstrap_reps=200"]))
    row = summary["tasks"]["mountaincar_continuous"]["rewards"]
    assert row["eureka"]["seeds"] == [100, 101, 102] and row["none"]["scores"] == [0.1, 0.0]
    assert row["human"]["n_seeds"] == 3 and row["eureka"]["prob_improvement_vs_none"] == 1.0
    _write_jsonl(tmp_path / "rlaif_text_cells.jsonl", [
        {"cell": f"full|{mode}|seed{s}|x", "mode": mode, "seed": s, "steps": 24,
         "checker_success_difference": 0.5 + 0.1 * s, **STAMP}
        for mode in ("direct", "distilled") for s in (0, 1)])
    with (tmp_path / "rlaif_text_cells.jsonl").open("a") as f:  # a tagged variant's cell is another experiment
        f.write(json.dumps({"cell": "checklist|direct|seed0|x", "mode": "direct", "seed": 0, "steps": 24,
                            "checker_success_difference": -1.0, **STAMP}) + "\n")
    summary = write_report(load_suite("rlaif", [f"results_dir={tmp_path}", "bootstrap_reps=200"]))
    assert summary["tasks"]["shipped_prompts"]["rewards"]["direct"]["scores"] == [0.5, 0.6]


def test_a_run_dir_without_a_record_is_run_again_and_a_recorded_cell_names_its_code(tmp_path: Path) -> None:
    import pandas as pd

    from benchmarks._common import code_version
    from benchmarks.suite.cells import row_from_run
    from benchmarks.suite.runner import _interrupted, _run_dir, _set_aside_partial

    cfg = load_suite("smoke", [f"results_dir={tmp_path}", "seeds=[0,1]", "only_rewards=[none]"])
    done, stopped = expand(cfg, run_root(cfg))
    for cell, completed in ((done, True), (stopped, False)):
        run = _run_dir(cell)
        run.mkdir(parents=True)
        eval_ = {"success_rate": 0.5, "mean_return": 0.4,
                 "per_episode": {"success": [True, False], "return": [0.8, 0.0], "length": [3, 9]}}
        (run / "metrics.json").write_text(json.dumps({"completed": completed, "wall_time_s": 60.0, "runs": {
            "extrinsic": {"eval": eval_, "steps_per_s": 900.0, "interrupted": not completed}}}))
        (run / "config.yaml").write_text(f"env: minigrid\nseed: {cell.seed}\nrun_dir: {run}\n")
        pd.DataFrame({"timestep": np.arange(1, 201) * 100, "success": np.tile([0, 1], 100),
                      "return": 0.5, "length": 10}).to_csv(run / "episodes_extrinsic.csv", index=False)
    # nothing says which code wrote a run dir that has no record: both run again
    assert pending_cells(cfg) == [done, stopped]
    row = row_from_run(done, _run_dir(done), metric=cfg.metric, curve_column=cfg.curve_column)
    assert row_from_run(stopped, _run_dir(stopped), metric=cfg.metric, curve_column=cfg.curve_column) is None
    assert row["score"] == 0.5 and row["llm_calls"] == 0 and row["wall_time_s"] == 60.0
    assert row["code_version"] == code_version() and row["code_version"]["commit"]
    assert row["episodes"] == {"success": [True, False], "return": [0.8, 0.0], "length": [3, 9]}
    assert "per_episode" not in row["eval"] and row["machine"]["cpus"] and len(row["machine"]["load"]) == 3
    # the seeds of one arm share a config hash (seed and paths are left out)
    other = row_from_run(stopped, _run_dir(done), metric=cfg.metric, curve_column=cfg.curve_column)
    assert other["config_hash"] == row["config_hash"]
    assert len(row["curve"]["steps"]) == 51 and row["curve"]["values"][-1] == pytest.approx(0.5)
    assert _interrupted(_run_dir(stopped)) and not _interrupted(_run_dir(done))
    _set_aside_partial(_run_dir(stopped))
    assert not _run_dir(stopped).exists()
    assert [p.name.split(".partial-")[0] for p in _run_dir(stopped).parent.glob("*.partial-*")] == ["none_seed1"]


def test_a_partial_run_or_report_keeps_the_whole_suite_in_its_summary(tmp_path: Path) -> None:
    """only_tasks / only_rewards choose what runs; summary.json still covers every task and reward."""
    from benchmarks.__main__ import main

    _write_jsonl(tmp_path / "minigrid" / "cells.jsonl", [
        {"cell": "minigrid/doorkey_8x8|motif:fewshot_dense|0|300000", "env": "minigrid/doorkey_8x8",
         "label": "motif:fewshot_dense", "seed": 0,
         "steps": 300000, "score": 0.6, **STAMP}])
    assert main(["report", "suite=minigrid", f"results_dir={tmp_path}", "only_tasks=[unlockpickup]",
                 "only_rewards=[none]", "bootstrap_reps=200"]) == 0
    saved = json.loads((tmp_path / "minigrid" / "summary.json").read_text())
    assert set(saved["tasks"]) == set(load_suite("minigrid").tasks) and "motif" in saved["rewards"]
    assert saved["tasks"]["doorkey_8x8"]["rewards"]["motif"]["n_seeds"] == 1


def test_one_seed_shows_its_value_without_an_interval() -> None:
    from benchmarks.suite.report import interval
    from benchmarks.suite.results_block import _cell

    one = {"n_seeds": 1, "point": -0.1875, "point_ci": [-0.1875, -0.1875], "estimator": "mean"}
    assert interval(one) == "-0.19 (n=1, no interval)" and _cell(one, 2) == "-0.19 (1, no interval)"
    two = {**one, "n_seeds": 2, "point_ci": [-0.3, 0.0]}
    assert interval(two) == "-0.19 [-0.30, 0.00] (n=2, mean)"
