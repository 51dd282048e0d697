"""The result tables of the hand-written docs pages read what the stored results hold: each table cell is parsed and
compared, at the precision shown, with the result file the page names. A number typed by hand, or left behind when
a result was rerun, fails here. (The generated results block of README.md and docs/results.md is written by
``python -m benchmarks report`` and is not hand-written at all.)"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FAMILIES = ("minigrid", "nethack", "robotics")


def table_rows(page: str, header: str) -> dict[str, list[str]]:
    """The rows of the first table of ``page`` after the line ``header``: first cell (backticks off) -> the others."""
    lines = (ROOT / page).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows, inside = {}, False
    for line in lines[start:]:
        if line.startswith("|"):
            inside = True
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not cells[0].startswith(("---", "strategy", "task")):
                rows[cells[0].strip("`")] = cells[1:]
        elif inside:
            break
    return rows


def pct(value: float) -> str:
    return f"{100 * value:.0f}"


def points(value: float) -> str:
    return f"{100 * value:+.1f}".replace("+0.0", "0.0").replace("-0.0", "0.0")


def test_judge_quality_pointwise_table_reads_the_stored_cells() -> None:
    cells = json.loads((RESULTS / "judge_quality.json").read_text())["cells"]
    rows = table_rows("docs/judge_quality.md", "### Every pair: the pointwise strategies")
    assert set(rows) == {"pointwise", "pointwise_fewshot", "pointwise_harm"}
    for strategy, shown in rows.items():
        for family, text in zip(FAMILIES, shown, strict=True):
            cell = cells[strategy][family]
            low, high = cell["oracle_agreement_ci95"]
            expected = f"{pct(cell['oracle_agreement'])} [{pct(low)}–{pct(high)}]"
            if strategy != "pointwise":
                versus = cell["vs_pointwise"]
                expected += (f", {points(versus['difference'])} [{points(versus['ci95'][0])}, "
                             f"{points(versus['ci95'][1])}]")
            expected += f"; RM {pct(cell['rm_heldout_accuracy'])} / {pct(cell['rm_heldout_accuracy_dense'])}"
            assert text == expected, (strategy, family)


def test_judge_quality_copy_answer_table_reads_the_stored_cells() -> None:
    cells = json.loads((RESULTS / "judge_quality.json").read_text())["cells"]
    rows = table_rows("docs/judge_quality.md", "| `pairwise` / `_bc`, for reference")
    checked = 0
    for name, shown in rows.items():
        strategy = name.split(" ")[0].strip("`")
        for family, text in zip(FAMILIES, shown, strict=True):
            if text == "–":
                continue
            answered, calibrated = cells[strategy][family], cells[f"{strategy}_bc"][family]
            low, high = answered["oracle_agreement_ci95"]
            expected = (f"{pct(answered['oracle_agreement'])} [{pct(low)}–{pct(high)}] / "
                        f"{pct(answered['position_consistency'])} → {pct(calibrated['position_consistency'])}")
            if strategy != "pairwise":
                versus = answered["vs_pointwise"]
                expected += (f"; {points(versus['difference'])} [{points(versus['ci95'][0])}, "
                             f"{points(versus['ci95'][1])}]")
            assert text == expected, (strategy, family)
            checked += 1
    assert checked >= 10


def test_robotics_table_reads_the_stored_summaries() -> None:
    summary = json.loads((RESULTS / "robot_motif" / "summary.json").read_text())["tasks"]
    longer = json.loads((RESULTS / "robot_motif" / "summary_5000_halfcheetah.json").read_text())["tasks"]
    rows = table_rows("docs/robotics.md", "| task, budget |")

    def shown(arm: dict, key: str, digits: int) -> str:
        low, high = arm[f"{key}_ci95"]
        return f"{arm[f'{key}_iqm']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"

    fetch = summary["fetch_reach"]["arms"]
    arms = ("motif", "sparse", "sparse_her", "dense")
    assert rows["FetchReach-v4, 2,500 steps: success rate"] == [shown(fetch[a], "success_rate", 2) for a in arms]
    returns = rows["FetchReach-v4, 2,500 steps: sparse return"]
    assert returns[:3] == [shown(fetch[a], "mean_return", 1) for a in arms[:3]]
    assert returns[3] == f"(dense reward: {fetch['dense']['mean_return_iqm']:.1f})"
    for label, tasks in (("1,500", summary), ("5,000", longer)):
        arms_ = tasks["halfcheetah"]["arms"]
        row = rows[f"HalfCheetah-v5 (200-step episodes), {label} steps: env return"]
        assert [row[0], row[3]] == [shown(arms_["motif"], "mean_return", 1), shown(arms_["dense"], "mean_return", 1)]


def test_judge_quality_reproducibility_numbers_are_the_measured_ones() -> None:
    tiny = json.loads((RESULTS / "judge_reproducibility_tiny.json").read_text())["tiny_two_token_answer"]["threads_1"]
    text = (ROOT / "docs" / "judge_quality.md").read_text().split("## Reproducibility across machines")[1]
    assert f"over {['no', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight'][tiny['prompts']]} prompts" \
        in text
    assert f"is {tiny['max_abs_diff']:.4f} with one thread" in text
