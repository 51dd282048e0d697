"""The benchmarks' resumable cell log: finished cells are skipped, running ones are claimed by one process only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _common import CellLog, code_version  # noqa: E402


def test_a_cell_runs_in_one_process_and_a_dead_owner_is_taken_over(tmp_path: Path) -> None:
    log = CellLog(tmp_path / "cells.jsonl")
    with log.claim("a|0") as mine:
        assert mine
        other = CellLog(tmp_path / "cells.jsonl")  # a second sweep sharing the file
        with other.claim("a|0") as theirs:
            assert not theirs  # held by a live process
        with other.claim("b|0") as theirs:
            assert theirs
        log.add("a|0", {"success_rate": 1.0})
    assert not list((tmp_path / "cells.jsonl.claims").iterdir())  # released on exit
    with CellLog(tmp_path / "cells.jsonl").claim("a|0") as mine:
        assert not mine  # finished
    # every cell names the code that computed it; a record without one (written before cells were stamped) is stale
    # and does not count as finished
    (record,) = [json.loads(line) for line in (tmp_path / "cells.jsonl").read_text().splitlines()]
    assert record["code_version"] == code_version() and len(record["code_version"]["commit"]) == 40
    assert record["machine"]["cpus"] == os.cpu_count() and len(record["machine"]["load"]) == 3
    with (tmp_path / "cells.jsonl").open("a") as fh:
        fh.write(json.dumps({"cell": "old|0", "success_rate": 1.0}) + "\n")
    stale = CellLog(tmp_path / "cells.jsonl")
    assert "old|0" in stale and not stale.finished("old|0") and stale.finished("a|0")
    with stale.claim("old|0") as mine:
        assert mine  # run again

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    claim_dir = tmp_path / "cells.jsonl.claims"
    with log.claim("c|0"):
        (claim_file,) = claim_dir.iterdir()
    claim_file.write_text(f"{dead.pid}\nc|0\n")  # left behind by a crashed sweep
    with log.claim("c|0") as mine:
        assert mine


def test_eureka_json_keeps_each_stored_task_with_the_code_version_that_searched_it(tmp_path: Path) -> None:
    from eureka import stored_tasks

    assert stored_tasks(tmp_path / "absent.json") == {}
    path = tmp_path / "eureka.json"
    path.write_text(json.dumps({"code_version": {"commit": "old", "dirty": False},
                                "tasks": {"a": {"final_scores": {"eureka": [1.0]}},
                                          "b": {"code_version": {"commit": "own", "dirty": False}}}}))
    tasks = stored_tasks(path)
    assert tasks["a"]["code_version"]["commit"] == "old"  # a task without its own version: the file's
    assert tasks["b"]["code_version"]["commit"] == "own"
    assert tasks["a"]["final_scores"] == {"eureka": [1.0]}


def test_a_probe_run_of_some_judges_keeps_the_other_judges_rows(tmp_path: Path) -> None:
    """`rlaif_text.py --probe-judges --probe-specs local:tiny` reports every stored probe, not only the asked one
    (it had rewritten the stored result with the asked spec's rows alone)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import rlaif_text
    from llm_reward.rlaif.judging import CHECKLIST_TEMPLATE

    log = CellLog(tmp_path / "probe_cells.jsonl")
    for spec in rlaif_text.PROBE_MODELS:
        for form in rlaif_text.PROBE_FORMS:
            key = f"probe|{spec}|{form}" + (f"|{CHECKLIST_TEMPLATE}" if form == "checklist" else "")
            log.add(key, {"judge": spec, "form": form, "passed": spec == "local" and form == "checklist"})
    log.add("probe|local|checklist", {"judge": "local", "form": "checklist", "passed": False})  # an older wording
    # every asked cell is finished, so nothing is measured (no model is loaded) and everything stored is reported
    out = rlaif_text.probe_judges(CellLog(tmp_path / "probe_cells.jsonl"), ("local:tiny",), ("score",))
    assert set(out["probes"]) == {f"{s}|{f}" for s in rlaif_text.PROBE_MODELS for f in rlaif_text.PROBE_FORMS}
    assert out["passing"] == ["local|checklist"]  # the current wording's cell, not the older one
