"""Every generated block of README.md and docs/: its page, its marker and the function that writes it from the stored
results. ``python -m benchmarks docs`` rewrites them all; ``tests/test_docs_numbers.py`` fails when a page's block is
not what its function writes from the files in ``benchmarks/results/`` now.

A block sits between ``<!-- <name>:start -->`` and ``<!-- <name>:end -->``; the text between is replaced whole.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.suite import results_block

ROOT = results_block.ROOT
RESULTS = ROOT / "benchmarks" / "results"
FAMILIES = ("minigrid", "nethack", "robotics")


def _load(name: str) -> dict[str, Any]:
    return json.loads((RESULTS / name).read_text())


def pct(value: float) -> str:
    """A fraction as a whole percentage: ``0.867 -> "87"``."""
    return f"{100 * value:.0f}"


def points(value: float) -> str:
    """A difference of fractions in percentage points, signed: ``0.073 -> "+7.3"``, ``0 -> "0.0"``."""
    return f"{100 * value:+.1f}".replace("+0.0", "0.0").replace("-0.0", "0.0")


def _agreement(cell: dict[str, Any]) -> str:
    low, high = cell["oracle_agreement_ci95"]
    return f"{pct(cell['oracle_agreement'])} [{pct(low)}–{pct(high)}]"


def _versus(cell: dict[str, Any]) -> str:
    versus = cell["vs_pointwise"]
    low, high = versus["ci95"]
    return f"{points(versus['difference'])} [{points(low)}, {points(high)}]"


# The rows of the 30-pair table, in the order a reader compares them: pointwise variants, then each pairwise
# strategy with its calibrated variants.
SLICE_ORDER = (
    "pointwise", "pointwise_status", "pointwise_harm", "pointwise_fewshot", "pointwise_compact", "pointwise_ensemble",
    "score10", "pairwise", "pairwise_cf", "pairwise_bc", "pairwise_diff", "pairwise_diff_cf", "pairwise_diff_bc",
    "pairwise_diff_status", "pairwise_diff_status_cf", "pairwise_diff_status_bc", "pairwise_fewshot",
    "pairwise_fewshot_cf", "pairwise_fewshot_bc", "pairwise_ref", "pairwise_ref_cf", "pairwise_ref_bc",
    "pairwise_cot", "pairwise_cot_bc", "pairwise_copy", "pairwise_copy_bc", "pairwise_copy_pmi",
    "pairwise_copy_pmi_bc", "pairwise_copy_fewshot", "pairwise_copy_fewshot_bc", "pairwise_copy_fewshot_pmi",
    "pairwise_copy_fewshot_pmi_bc")


def judge_quality_slice() -> str:
    """Every strategy on the first 30 pairs of each family (``judge_quality_30pairs.json``): agreement with the
    oracle [95 % CI] / position consistency / reward-model held-out accuracy on the strategy's labels / prompts;
    then the reward model on the oracle's own labels, the control."""
    result = _load("judge_quality_30pairs.json")
    cells = result["cells"]
    header = " | ".join(f"{f}: agree % [95 % CI] / pos. cons. % / RM % / prompts" for f in FAMILIES)
    lines = [f"| strategy | {header} |", "|---" * 4 + "|"]
    for name in [n for n in SLICE_ORDER if n in cells] + sorted(set(cells) - set(SLICE_ORDER)):
        shown = []
        for family in FAMILIES:
            cell = cells[name].get(family)
            if cell is None:
                shown.append("–")
                continue
            consistency = "–" if cell["position_consistency"] is None else pct(cell["position_consistency"])
            shown.append(f"{_agreement(cell)} / {consistency} / {pct(cell['rm_heldout_accuracy'])} / "
                         f"{cell['llm_prompts']}")
        lines.append(f"| `{name}` | " + " | ".join(shown) + " |")
    oracle = result["rm_on_oracle_labels"]
    lines += ["", "The control: the same reward model trained on the **oracle's** labels of these pairs reaches "
              f"{pct(oracle['minigrid']['rm_heldout_accuracy'])} % (MiniGrid), "
              f"{pct(oracle['nethack']['rm_heldout_accuracy'])} % (NetHack) and "
              f"{pct(oracle['robotics']['rm_heldout_accuracy'])} % (robotics) held-out: what these captions and "
              "the training pairs of each fold allow."]
    return "\n".join(lines) + "\n"


def judge_quality_pointwise() -> str:
    """The pointwise strategies on every pair (``judge_quality.json``): agreement [95 % CI], the paired difference
    to plain pointwise, and the reward model's held-out agreement with the labels, plain / with dense pairs."""
    result = _load("judge_quality.json")
    cells = result["cells"]
    lines = ["| strategy | " + " | ".join(FAMILIES) + " |", "|---" * 4 + "|"]
    for name in ("pointwise", "pointwise_fewshot", "pointwise_harm"):
        shown = []
        for family in FAMILIES:
            cell = cells[name][family]
            text = _agreement(cell) + ("" if name == "pointwise" else f", {_versus(cell)}")
            shown.append(f"{text}; RM {pct(cell['rm_heldout_accuracy'])} / {pct(cell['rm_heldout_accuracy_dense'])}")
        lines.append(f"| `{name}` | " + " | ".join(shown) + " |")
    oracle = result["rm_on_oracle_labels"]
    lines += ["", "Control: the reward model on the oracle's own labels of these pairs, "
              + ", ".join(f"{pct(oracle[f]['rm_heldout_accuracy'])} % ({label})"
                          for f, label in zip(FAMILIES, ("MiniGrid", "NetHack", "robotics")))
              + " held-out."]
    return "\n".join(lines) + "\n"


def judge_quality_pairwise() -> str:
    """Plain pairwise on every pair, its calibrated variants, and its paired difference to plain pointwise."""
    cells = _load("judge_quality.json")["cells"]

    def row(label: str, show: Callable[[str], str], strategy: str) -> str:
        return f"| {label} | " + " | ".join(show(f) if f in cells[strategy] else "–" for f in FAMILIES) + " |"

    def consistency(strategy: str) -> Callable[[str], str]:
        return lambda f: (f"{pct(cells[strategy][f]['oracle_agreement'])} / "
                          f"{pct(cells[strategy][f]['position_consistency'])}")

    lines = ["| strategy | " + " | ".join(FAMILIES) + " |", "|---" * 4 + "|",
             row("`pairwise` agreement / position consistency",
                 lambda f: f"{_agreement(cells['pairwise'][f])} / {pct(cells['pairwise'][f]['position_consistency'])}",
                 "pairwise"),
             row("`pairwise_bc`", consistency("pairwise_bc"), "pairwise_bc"),
             row("`pairwise_cf`", consistency("pairwise_cf"), "pairwise_cf")]
    if "pairwise_fewshot" in cells:
        few, calibrated = cells["pairwise_fewshot"], cells["pairwise_fewshot_bc"]
        lines.append(row("`pairwise_fewshot`: agreement / position consistency as answered, batch-calibrated",
                         lambda f: f"{_agreement(few[f])} / {pct(few[f]['position_consistency'])}, "
                                   f"{pct(calibrated[f]['position_consistency'])}", "pairwise_fewshot"))
    lines.append(row("`pairwise` minus plain `pointwise`, points [paired 95 %]",
                     lambda f: _versus(cells["pairwise"][f]), "pairwise"))
    return "\n".join(lines) + "\n"


def judge_quality_copy() -> str:
    """The copy strategies on every pair: agreement [95 % CI] / position consistency as answered -> batch-calibrated;
    the paired difference to plain pointwise."""
    cells = _load("judge_quality.json")["cells"]
    lines = ["| strategy | " + " | ".join(FAMILIES) + " |", "|---" * 4 + "|"]
    for name in ("pairwise", "pairwise_copy", "pairwise_copy_pmi", "pairwise_copy_fewshot",
                 "pairwise_copy_fewshot_pmi"):
        if name not in cells:
            continue
        shown = []
        for family in FAMILIES:
            answered, calibrated = cells[name].get(family), cells[f"{name}_bc"].get(family)
            if answered is None:
                shown.append("–")
                continue
            text = (f"{_agreement(answered)} / {pct(answered['position_consistency'])} → "
                    f"{pct(calibrated['position_consistency'])}")
            shown.append(text if name == "pairwise" else f"{text}; {_versus(answered)}")
        label = "`pairwise` / `_bc`, for reference" if name == "pairwise" else f"`{name}` / `_bc`"
        lines.append(f"| {label} | " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


def robot_motif() -> str:
    """The robot runs (``robot_motif/summary*.json``): per task and budget each arm's estimate over seeds [95 %
    bootstrap interval] (seeds), P(motif > dense reward) with its interval and verdict on the task's metric, the SAC
    speed range of the runs, and whether the cells are stale."""
    summary = _load("robot_motif/summary.json")["tasks"]
    longer = _load("robot_motif/summary_5000_halfcheetah.json")["tasks"]

    def shown(arm: dict[str, Any], key: str, digits: int) -> str:
        low, high = arm[f"{key}_point_ci"]
        mean = ", mean" if arm[f"{key}_estimator"] == "mean" else ""
        return (f"{arm[f'{key}_point']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}] "
                f"({len(arm['seeds'])}{mean})")

    def versus(task: dict[str, Any]) -> str:
        p = task["p_motif_better"]["dense"]
        return f"{p['p']:.2f} [{p['ci'][0]:.2f}, {p['ci'][1]:.2f}] {p['verdict']}"

    def speeds(*tasks: dict[str, Any]) -> str:
        values = [arm["steps_per_s"] for task in tasks for arm in task["arms"].values()]
        return f"{min(values):.0f}–{max(values):.0f}"

    fetch, cheetah, cheetah_long = (summary["fetch_reach"], summary["halfcheetah"], longer["halfcheetah"])
    arms = ("motif", "sparse", "sparse_her", "dense")
    fa = fetch["arms"]
    lines = [f"Estimate [95 % bootstrap interval] (seeds). SAC ran at {speeds(fetch)} steps/s on FetchReach and "
             f"{speeds(cheetah, cheetah_long)} on HalfCheetah in these runs.", "",
             "| task, budget | motif | sparse SAC | sparse SAC + HER | dense reward | P(motif > dense reward) |",
             "|---|---|---|---|---|---|",
             f"| FetchReach-v4, {fetch['steps']:,} steps: success rate | "
             + " | ".join(shown(fa[a], "success_rate", 2) for a in arms) + f" | {versus(fetch)} |",
             f"| FetchReach-v4, {fetch['steps']:,} steps: sparse return | "
             + " | ".join(shown(fa[a], "mean_return", 1) for a in arms[:3])
             + f" | (dense reward: {fa['dense']['mean_return_point']:.1f}) | – |"]
    for task in (cheetah, cheetah_long):
        lines.append(f"| HalfCheetah-v5 (200-step episodes), {task['steps']:,} steps: env return | "
                     f"{shown(task['arms']['motif'], 'mean_return', 1)} | — | — | "
                     f"{shown(task['arms']['dense'], 'mean_return', 1)} | {versus(task)} |")
    if any(arm["stale_cells"] for task in (fetch, cheetah, cheetah_long) for arm in task["arms"].values()):
        lines += ["", "*Stale*: these cells were recorded before cells named their code version, so they cannot "
                  "show that one code computed them all; `python benchmarks/robot_motif.py` reruns them."]
    return "\n".join(lines) + "\n"


def rlaif() -> str:
    from benchmarks import rlaif_text  # a script with its own imports: loaded only when its block is written

    return rlaif_text.results_markdown() + "\n"


def main_job() -> str:
    return results_block.main_job_text(_load("main_job.json"))


def _results(all_rewards: bool) -> Callable[[], str]:
    return lambda: results_block.block(results_block.load_summaries(RESULTS), all_rewards=all_rewards)


#: page (relative to the repository) -> block name -> the function that writes the block.
BLOCKS: dict[str, dict[str, Callable[[], str]]] = {
    "README.md": {"results": _results(False), "main-job": main_job},
    "docs/results.md": {"results": _results(True)},
    "docs/judge_quality.md": {"judge-quality-slice": judge_quality_slice,
                              "judge-quality-pointwise": judge_quality_pointwise,
                              "judge-quality-pairwise": judge_quality_pairwise,
                              "judge-quality-copy": judge_quality_copy},
    "docs/robotics.md": {"robot-motif": robot_motif},
    "docs/rlaif.md": {"rlaif-results": rlaif},
}


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def update(root: Path = ROOT) -> list[str]:
    """Rewrite every block from the stored results; returns the blocks whose markers a page lacks."""
    missing = []
    for page, blocks in BLOCKS.items():
        for name, write in blocks.items():
            if not results_block.rewrite(root / page, write(), markers(name)):
                missing.append(f"{page}: no {' ... '.join(markers(name))} markers")
    return missing
