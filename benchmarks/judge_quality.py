"""Judge quality: how often each way of asking the embedded judge agrees with a ground truth, on fixed pair sets.

    python benchmarks/judge_quality.py --quick    # the quick subset of every pair set, <= 10 minutes
    python benchmarks/judge_quality.py            # all pairs; resumable (finished cells are skipped on rerun)
    python benchmarks/judge_quality.py --report --max-pairs 30   # stored cells only, no LLM call

Results: ``results/judge_quality.json`` (every strategy's stored cells on every pair; strategies not run yet are
listed under ``skipped``), ``judge_quality_quick.json``, and for a slice (``--max-pairs``, ``--families`` or
``--strategies``) a file named after it (:func:`slice_suffix`).

Pair sets are committed files under ``benchmarks/pairsets/`` (built by ``benchmarks/pairsets/build.py``): caption
pairs with an oracle label (MiniGrid/BabyAI: milestone of the task-progress oracle; NetHack: whether the step
behind the message raised score/depth, was neutral, or cost hit points). Each (strategy, family) cell measures
agreement with the oracle (decided pairs, with a bootstrap 95 % interval), the first-order-only agreement of
pairwise strategies (the position-bias control), position consistency, unknown rate, prompts, LLM calls, prompts/s,
and a char-CNN reward model fitted on the strategy's labels (5-fold: held-out accuracy against those labels and
against the oracle); for pointwise strategies also with the library's ``reward_model.dense_pairs`` (``_dense``: extra
pairs among each training fold's captions, labelled by the judge's own scores). The same reward model fitted on the
oracle's own labels is the control ("what these captions and this many pairs allow").

The last stdout line is one JSON object: ``oracle_agreement`` / ``rm_heldout_accuracy`` (the default recipe, with
dense pairs) / ``rm_heldout_accuracy_plain`` (family -> value for the family's default strategy),
``position_consistency``
(family -> value for its default pairwise strategy), ``strategies`` (strategy -> family -> agreement),
``prompts_per_s``, and every cell's detail under ``cells``.
A time budget (``--budget-s``; quick default 420 s) keeps the quick run inside ten minutes: the headline cells (each
family's defaults) run first and always; other cells that would not fit are listed under ``skipped``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, CellLog, emit, machine  # noqa: E402
from suite.stats import mean_ci  # noqa: E402

from llm_reward.feedback import calibration  # noqa: E402
from llm_reward.feedback.judges import LabelBatch, position_consistency  # noqa: E402
from llm_reward.feedback.labelers import agreement  # noqa: E402
from llm_reward.feedback.prompts import goal_sentence  # noqa: E402
from llm_reward.feedback.strategies import PairwiseStrategy, make_strategy  # noqa: E402
from llm_reward.llm import make_llm  # noqa: E402

PAIRSETS = Path(__file__).resolve().parent / "pairsets"
FAMILIES = ("minigrid", "nethack", "robotics")  # a family is measured when its pair set file exists

#: The strategy each family's labels should come from, chosen on the full run (docs/judge_quality.md; recorded in
#: conf/feedback/pointwise.yaml): exemplar answers before the pointwise question, ahead of the plain question on every
#: family. And the pairwise strategy measured on all pairs that agrees best with the oracle among those keeping their
#: side in both orders on >= 70 % of pairs, else the one that agrees best: copy answers, batch-calibrated, on NetHack;
#: the same after exemplar pairs and with the neutral question divided out on robotics; none is consistent enough on
#: MiniGrid, where digit answers agree best.
DEFAULTS = {"minigrid": "pointwise_fewshot", "nethack": "pointwise_fewshot", "robotics": "pointwise_fewshot"}  # tested
PAIRWISE_DEFAULTS = {"minigrid": "pairwise_bc", "nethack": "pairwise_copy_bc",
                     "robotics": "pairwise_copy_fewshot_pmi_bc"}

#: Benchmark strategy -> (library strategy of llm_reward.feedback.strategies, caption columns, families or None=all).
#: Ordered by priority: when the time budget runs out, the later ones are skipped.
STRATEGIES: dict[str, tuple[str, str, tuple[str, ...] | None]] = {
    "pointwise": ("pointwise", "caption", None),
    "pairwise_diff": ("pairwise_diff", "caption", None),
    "pointwise_status": ("pointwise", "status_caption", ("nethack",)),
    "score10": ("score10", "caption", None),
    "pointwise_harm": ("pointwise_harm", "caption", None),
    "pointwise_compact": ("pointwise_compact", "caption", ("minigrid",)),
    "pointwise_fewshot": ("pointwise_fewshot", "caption", None),
    "pairwise": ("pairwise", "caption", None),
    "pairwise_cot": ("pairwise_cot", "caption", None),
    "pairwise_diff_status": ("pairwise_diff", "status_caption", ("nethack",)),
    "pointwise_ensemble": ("pointwise_ensemble", "caption", None),
    "pairwise_fewshot": ("pairwise_fewshot", "caption", None),
    "pairwise_ref": ("pairwise_ref", "caption", None),
    "pairwise_copy": ("pairwise_copy", "caption", None),
    "pairwise_copy_pmi": ("pairwise_copy_pmi", "caption", None),
    "pairwise_copy_fewshot": ("pairwise_copy_fewshot", "caption", None),
    "pairwise_copy_fewshot_pmi": ("pairwise_copy_fewshot_pmi", "caption", None),
}
#: reward_model.dense_pairs of the dense reward-model measurement on pointwise strategies' labels: the library's
#: default for pointwise feedback (conf/feedback/pointwise.yaml).
DENSE_PAIRS = 2000  # tested against the config
#: Pairwise cells also yield calibrated variants at (almost) no cost: "<name>_cf" divides out the judge's answer to
#: content-free pairs (3 extra prompts per env), "<name>_bc" the batch's own mean answer (no extra prompt).
#: Copy answers have no position label to give a content-free pair, so only "_bc".
CALIBRATED = ("pairwise", "pairwise_diff", "pairwise_diff_status", "pairwise_fewshot", "pairwise_cot", "pairwise_ref",
              "pairwise_copy", "pairwise_copy_pmi", "pairwise_copy_fewshot", "pairwise_copy_fewshot_pmi")


def load_pairsets(quick: bool, max_pairs: int | None) -> dict[str, list[dict]]:
    sets = {}
    for family in FAMILIES:
        path = PAIRSETS / f"{family}.jsonl"
        if path.exists():
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            rows = [r for r in rows if r["quick"]] if quick else rows
            sets[family] = rows[:max_pairs] if max_pairs else rows
    return sets


def bootstrap_ci(hits: np.ndarray, n_boot: int = 2000, seed: int = 0) -> list[float]:
    """Percentile bootstrap 95 % interval of an agreement rate (the benchmarks' one home for it: suite.stats)."""
    if len(hits) == 0:
        return [float("nan"), float("nan")]
    return list(mean_ci(hits, reps=n_boot, seed=seed))


def paired_difference(cell: dict, default: dict, rows: list[dict], n_boot: int = 2000, seed: int = 0) -> dict:
    """Agreement of ``cell`` minus that of ``default`` (the library's plain pointwise) on the same pairs (both
    decided), with a paired bootstrap 95 % interval: a strategy is better when the interval is above zero."""
    truth = np.array([r["oracle"] for r in rows[: cell["n_pairs"]]])
    oracle = truth > 0.5
    x, y = (np.array(c["label"], dtype=np.float64) for c in (cell, default))
    both = ~np.isnan(x) & ~np.isnan(y) & (x != 0.5) & (y != 0.5) & (truth != 0.5)
    diff = (((x > 0.5) == oracle).astype(float) - ((y > 0.5) == oracle).astype(float))[both]
    if len(diff) == 0:
        return {"difference": float("nan"), "ci95": [float("nan")] * 2, "n_pairs": 0}
    return {"difference": float(diff.mean()), "ci95": list(mean_ci(diff, reps=n_boot, seed=seed)),
            "n_pairs": int(len(diff))}


def reward_model_cv(rows: list[dict], labels: np.ndarray, column: str, *, folds: int = 5, epochs: int = 30,
                    seed: int = 0, caption_scores: dict[str, float] | None = None,
                    dense_pairs: int = 0) -> dict[str, float]:
    """k-fold char-CNN reward model on ``labels`` (hard targets): held-out accuracy vs the labels and vs the oracle.
    With ``caption_scores`` and ``dense_pairs`` the library's ``reward_model.dense_pairs`` recipe: extra pairs among
    each training fold's captions, labelled by the judge's scores; no test-fold pair is drawn (in either order), but
    a test pair's captions may each have been compared with others. The scores of a family's envs share one pool
    (each a logit of P(yes) under its env's goal), so some dense pairs compare captions of two envs."""
    import torch

    from llm_reward.reward_model import fit_reward_model

    torch.set_num_threads(1)
    a = np.array([r[f"{column}_a"] for r in rows], dtype=object)
    b = np.array([r[f"{column}_b"] for r in rows], dtype=object)
    y = np.where(labels > 0.5, 1.0, np.where(labels < 0.5, 0.0, labels))
    oracle = np.array([r["oracle"] for r in rows])
    order = np.random.default_rng(seed).permutation(len(rows))
    margin = np.full(len(rows), np.nan)
    for k in range(folds):
        test = order[k::folds]
        train = np.setdiff1d(order, test)
        decided = train[~np.isnan(y[train]) & (y[train] != 0.5)]
        if len(test) == 0 or len(decided) == 0:
            continue
        model, _ = fit_reward_model(list(a[train]), list(b[train]), y[train], epochs=epochs, seed=seed,
                                    progress=False, val_fraction=0.0, patience=None, caption_scores=caption_scores,
                                    dense_pairs=dense_pairs if caption_scores else 0,
                                    exclude_pairs=list(zip(a[test], b[test])))
        margin[test] = model(list(a[test])) - model(list(b[test]))
    known = ~np.isnan(margin) & ~np.isnan(y) & (y != 0.5)
    rm_labels = np.where(np.isnan(margin), np.nan, (margin > 0).astype(float))
    return {"rm_heldout_accuracy": float(np.mean((margin[known] > 0) == (y[known] > 0.5))) if known.any() else np.nan,
            "rm_oracle_agreement": agreement(rm_labels, oracle)}


def run_cell(name: str, family: str, rows: list[dict], llm, *, cot_pairs: int) -> dict:
    """Label ``rows`` with strategy ``name`` (grouped by env: each env has its own goal) and measure it."""
    library_name, column, _ = STRATEGIES[name]
    if library_name == "pairwise_cot":
        rows = rows[:cot_pairs]
    n = len(rows)
    label, forward, reverse = (np.full(n, np.nan, dtype=np.float32) for _ in range(3))
    prompts, calls_before, start = 0, llm.stats.cache_misses, time.perf_counter()
    priors: dict[str, float] = {}
    scores: dict[str, dict[str, float]] = {}  # pointwise strategies: env -> caption -> the judge's score
    for env_id in dict.fromkeys(r["env_id"] for r in rows):
        index = [i for i, r in enumerate(rows) if r["env_id"] == env_id]
        domain = rows[index[0]].get("domain", family)  # robotics: the adapter's family (fetch, mujoco)
        goal = goal_sentence(domain, "default", env_goal=rows[index[0]]["env_goal"])
        strategy = make_strategy(library_name, llm, domain=domain, goal=goal)
        batch = strategy.label([(rows[i][f"{column}_a"], rows[i][f"{column}_b"]) for i in index])
        label[index], forward[index], reverse[index] = batch.label, batch.forward, batch.reverse
        prompts += batch.llm_prompts
        if batch.caption_scores:
            scores[env_id] = batch.caption_scores
        # a CoT verdict follows a rationale, a copy answer names no position: no content-free prior for either
        if name in CALIBRATED and library_name != "pairwise_cot" and isinstance(strategy, PairwiseStrategy):
            priors[env_id] = calibration.content_free_prior(llm, strategy.judge.template.verdict)
            prompts += len(calibration.CONTENT_FREE)
    seconds = time.perf_counter() - start
    calls = llm.stats.cache_misses - calls_before
    return {"strategy": name, "family": family, "column": column, "label": label.tolist(),
            "forward": forward.tolist(), "reverse": reverse.tolist(), "llm_prompts": prompts, "llm_calls": calls,
            "seconds": seconds, "prompts_per_s": calls / seconds if calls else float("nan"), "n_pairs": n,
            "cf_prior": priors, "caption_scores": scores}


def measure(cell: dict, rows: list[dict], *, dense: bool = True, dense_pairs: int = DENSE_PAIRS) -> dict:
    """Agreement and friends from a cell's stored labels (recomputed on every run: cheap, no LLM)."""
    rows = rows[: cell["n_pairs"]]
    label, forward, reverse = (np.array(cell[k], dtype=np.float64) for k in ("label", "forward", "reverse"))
    oracle = np.array([r["oracle"] for r in rows])
    decided = ~np.isnan(label) & (label != 0.5)
    hits = ((label > 0.5) == (oracle > 0.5))[decided].astype(float)
    both = ~np.isnan(forward) & ~np.isnan(reverse)

    out = {k: cell[k] for k in ("llm_prompts", "llm_calls", "seconds", "prompts_per_s", "n_pairs")}
    out.update({
        "oracle_agreement": agreement(label.astype(np.float32), oracle.astype(np.float32)),
        "oracle_agreement_ci95": bootstrap_ci(hits),
        "unknown_rate": float(np.isnan(label).mean()), "tie_rate": float((label == 0.5).mean()),
        "position_consistency": position_consistency(forward, reverse) if both.any() else float("nan"),
        "first_order_agreement": agreement(forward.astype(np.float32), oracle.astype(np.float32))
        if both.any() else float("nan"),
        "first_position_rate": float(np.mean(forward[both] > 0.5)) if both.any() else float("nan"),
    })
    out.update(reward_model_cv(rows, label, cell["column"]))
    if dense and cell.get("caption_scores"):  # a caption judged under several envs' goals: the mean of its scores
        merged: dict[str, list[float]] = {}
        for by_caption in cell["caption_scores"].values():
            for caption, score in by_caption.items():
                if np.isfinite(score):
                    merged.setdefault(caption, []).append(score)
        dense = reward_model_cv(rows, label, cell["column"], caption_scores={c: float(np.mean(s)) for c, s in
                                                                             merged.items()}, dense_pairs=dense_pairs)
        out.update({f"{k}_dense": v for k, v in dense.items()})
    return out


def derive(cell: dict, rows: list[dict], kind: str) -> dict | None:
    """A calibrated copy of a pairwise cell, env by env: ``cf`` with its content-free priors, ``bc`` batch."""
    arrays = {k: np.array(cell[k], dtype=np.float32) for k in ("label", "forward", "reverse")}
    out = {k: v.copy() for k, v in arrays.items()}
    priors = {}
    for env_id in dict.fromkeys(r["env_id"] for r in rows[: cell["n_pairs"]]):
        index = [i for i, r in enumerate(rows[: cell["n_pairs"]]) if r["env_id"] == env_id]
        batch = LabelBatch(**{k: v[index] for k, v in arrays.items()})
        prior = cell["cf_prior"].get(env_id) if kind == "cf" else calibration.batch_prior(batch)
        if prior is None:
            return None
        priors[env_id] = prior
        if np.isfinite(prior):
            calibrated = calibration.calibrate(batch, prior)
            for k in out:
                out[k][index] = getattr(calibrated, k)
    return {**cell, **{k: v.tolist() for k, v in out.items()}, "llm_prompts": 0, "llm_calls": 0, "seconds": 0.0,
            "prompts_per_s": float("nan"), "prior_logit": priors}


def estimated_prompts(name: str, rows: list[dict], column: str, cot_pairs: int) -> int:
    library_name = STRATEGIES[name][0]
    if library_name.startswith("pointwise") or library_name == "score10":
        per = {"pointwise_ensemble": 3, "pointwise_harm": 2}.get(library_name, 1)
        return per * len({r[f"{column}_{s}"] for r in rows for s in "ab"})
    if library_name == "pairwise_cot":
        return 2 * min(cot_pairs, len(rows)) * 25  # a 96-token rationale costs about 25 choice prompts
    if library_name.startswith("pairwise_copy"):  # a whole description scored per prompt: ~4 choice prompts' time
        return 2 * len(rows) * 4 * (2 if library_name.endswith("pmi") else 1)
    return 2 * len(rows) + (len(calibration.CONTENT_FREE) if name in CALIBRATED else 0)


def slice_suffix(args: argparse.Namespace) -> str:
    """``""`` for every strategy on every pair of every family; else what the slice is, so slices never overwrite
    the full run's file or each other's: ``_30pairs``, ``_allpairs_nethack``, ``_30pairs_3strategies-1a2b3c``."""
    suffix = f"_{args.max_pairs}pairs" if args.max_pairs else ""
    if args.families and set(args.families) != set(FAMILIES):
        suffix += "_" + "-".join(sorted(args.families))
    if set(args.strategies) != set(STRATEGIES):
        digest = hashlib.sha256(",".join(sorted(args.strategies)).encode()).hexdigest()[:6]
        suffix += f"_{len(args.strategies)}strategies-{digest}"
    if args.dense_pairs != DENSE_PAIRS:
        suffix += f"_dense{args.dense_pairs}"
    return suffix if not suffix or args.max_pairs else "_allpairs" + suffix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the pair sets' quick subsets, within --budget-s")
    parser.add_argument("--llm", default="local", help="model spec (default: the embedded judge)")
    parser.add_argument("--llm-threads", type=int, default=1, help="llama.cpp threads (default 1: on a shared "
                        "machine two threads ran the judge 6x slower than one)")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    parser.add_argument("--max-pairs", type=int, default=None, help="first N pairs of each family's set")
    parser.add_argument("--families", nargs="+", default=None, choices=FAMILIES, help="only these pair sets")
    parser.add_argument("--cot-pairs", type=int, default=None, help="pairs judged with chain of thought "
                        "(default: 2 quick, 4 full)")
    parser.add_argument("--budget-s", type=float, default=None, help="stop starting cells after this many seconds "
                        "(default: 420 quick, none full)")
    parser.add_argument("--dense-pairs", type=int, default=DENSE_PAIRS, help="reward_model.dense_pairs of the _dense "
                        f"reward-model measurement (default {DENSE_PAIRS}, the library's)")
    parser.add_argument("--report", action="store_true", help="summarise the stored cells only (no LLM calls)")
    args = parser.parse_args()
    start = time.perf_counter()
    cot_pairs = args.cot_pairs or (2 if args.quick else 4)
    budget = args.budget_s if args.budget_s is not None else (420.0 if args.quick else float("inf"))
    sets = {f: rows for f, rows in load_pairsets(args.quick, args.max_pairs).items()
            if args.families is None or f in args.families}
    if not sets:
        sys.exit(f"no pair sets under {PAIRSETS}: run benchmarks/pairsets/build.py")
    name = "judge_quality_quick" if args.quick else "judge_quality"
    # --quick measures from scratch (fresh LLM cache, no stored cells); the full run resumes from both.
    data = Path(tempfile.mkdtemp(prefix="llm_reward_judge_quality_")) if args.quick else RESULTS / f"{name}_data"
    log = CellLog((data if args.quick else RESULTS) / f"{name}_cells.jsonl")
    llm = make_llm(args.llm, cache=data / "llm_cache.sqlite", n_threads=args.llm_threads)
    rate = 1.0  # estimated prompts (estimated_prompts) per second, a guess until the first cell has measured one
    cells, skipped = {}, []
    todo = [(s, f) for s in args.strategies for f in sets if STRATEGIES[s][2] is None or f in STRATEGIES[s][2]]
    # The headline cells (each family's defaults) run first and whatever the budget: the rest fills what is left.
    headline = {(DEFAULTS[f], f) for f in sets} | {(PAIRWISE_DEFAULTS[f].removesuffix("_cf").removesuffix("_bc"), f)
                                                    for f in sets}
    todo.sort(key=lambda cell: cell not in headline)
    for strategy, family in todo:
        # keyed on the pairs actually judged: chain of thought judges only the first --cot-pairs of the set (every
        # slice of a set starts with the same pairs; --quick keeps its cells apart)
        judged = min(cot_pairs, len(sets[family])) if STRATEGIES[strategy][0] == "pairwise_cot" else len(sets[family])
        key = f"{strategy}|{family}|{judged}|{llm.name}"
        rows = sets[family]
        if key not in log:
            need = estimated_prompts(strategy, rows, STRATEGIES[strategy][1], cot_pairs) / rate
            left = budget - (time.perf_counter() - start)
            if args.report:
                skipped.append({"strategy": strategy, "family": family, "reason": "not run yet"})
                continue
            if need > left and (strategy, family) not in headline:
                skipped.append({"strategy": strategy, "family": family, "reason": f"needs ~{need:.0f}s, {left:.0f}s "
                                "of the time budget left"})
                continue
            print(f"{strategy} on {family} ({len(rows)} pairs)...", file=sys.stderr, flush=True)
            cell = run_cell(strategy, family, rows, llm, cot_pairs=cot_pairs)
            log.add(key, cell)
            if cell["llm_calls"] > 3 and cell["seconds"] > 1:  # in the estimate's units, which weigh copy answers
                rate = estimated_prompts(strategy, rows, STRATEGIES[strategy][1], cot_pairs) / cell["seconds"]
        cells.setdefault(strategy, {})[family] = log.cells[key]
    for source in CALIBRATED:
        for family, cell in list(cells.get(source, {}).items()):
            for kind in ("cf", "bc"):
                if (calibrated := derive(cell, sets[family], kind)) is not None:
                    cells.setdefault(f"{source}_{kind}", {})[family] = calibrated
    # --quick fits the dense reward model (~40 s a cell) for the defaults only, to stay inside ten minutes.
    detail = {s: {f: measure(c, sets[f], dense=not args.quick or s == DEFAULTS[f], dense_pairs=args.dense_pairs)
                  for f, c in by_family.items()} for s, by_family in cells.items()}
    for strategy, by_family in cells.items():
        for family, cell in by_family.items():
            plain = cells.get("pointwise", {}).get(family)
            if plain is not None and strategy != "pointwise" and plain["n_pairs"] == cell["n_pairs"]:
                detail[strategy][family]["vs_pointwise"] = paired_difference(cell, plain, sets[family])
    for strategy in detail:
        for family, metrics in detail[strategy].items():
            print(f"{strategy:>26} {family:>9}: agree {metrics['oracle_agreement']:.2f} "
                  f"pc {metrics['position_consistency']:.2f} rm {metrics['rm_heldout_accuracy']:.2f} "
                  f"dense {metrics.get('rm_heldout_accuracy_dense', float('nan')):.2f} "
                  f"calls {metrics['llm_calls']}", file=sys.stderr)
    control = {f: reward_model_cv(rows, np.array([r["oracle"] for r in rows]), "caption") for f, rows in sets.items()}
    made = [c for by_family in cells.values() for c in by_family.values() if c["llm_calls"]]
    calls, seconds = sum(c["llm_calls"] for c in made), sum(c["seconds"] for c in made)

    def pick(table: dict[str, str], key: str) -> dict[str, float]:
        return {f: detail.get(table[f], {}).get(f, {}).get(key, float("nan")) for f in sets}

    result = {
        "oracle_agreement": pick(DEFAULTS, "oracle_agreement"),
        # the default recipe fits with dense pairs; _plain: the same labels without them
        "rm_heldout_accuracy": pick(DEFAULTS, "rm_heldout_accuracy_dense"),
        "rm_heldout_accuracy_plain": pick(DEFAULTS, "rm_heldout_accuracy"),
        "position_consistency": pick(PAIRWISE_DEFAULTS, "position_consistency"),
        "pairwise_oracle_agreement": pick(PAIRWISE_DEFAULTS, "oracle_agreement"),
        "strategies": {s: {f: m["oracle_agreement"] for f, m in by_family.items()} for s, by_family in detail.items()},
        "prompts_per_s": calls / seconds if seconds else float("nan"),
        "defaults": {f: DEFAULTS[f] for f in sets}, "pairwise_defaults": {f: PAIRWISE_DEFAULTS[f] for f in sets},
        "rm_on_oracle_labels": control, "n_pairs": {f: len(rows) for f, rows in sets.items()},
        "cot_pairs": cot_pairs, "cells": detail, "skipped": skipped, "llm": llm.name, "llm_calls": calls,
        "elapsed_s": time.perf_counter() - start, "machine": machine(), "load_average": os.getloadavg(),
        "quick": args.quick,
    }
    emit(name + slice_suffix(args), result)


if __name__ == "__main__":
    main()
