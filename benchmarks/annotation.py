"""Motif pipeline quality and speed on real rollouts: judge vs oracle, position bias, reward-model distillation.

    python benchmarks/annotation.py --quick     # embedded judge, small sample, <= 3 minutes
    python benchmarks/annotation.py             # more pairs per env

For each env (MiniGrid DoorKey, NetHackScore): random-policy captions -> pairs -> the embedded judge in RLAIF mode
(both orders) into a resumable store -> agreement with the ground-truth oracle, with both-order debiasing on
(averaged) and off (first order only), and in pointwise mode (one "does this show progress?" per caption,
Bradley-Terry on the answers) on the same pairs -> a reward model fitted on the judge's labels (held-out accuracy
against those labels, and agreement with the oracle). Training speed is measured on a larger oracle-labelled pair set,
since a few dozen pairs train in milliseconds. The full run keeps its stores under
``benchmarks/results/annotation_data`` (a rerun makes zero new LLM calls); ``--quick`` always starts from scratch.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, emit, machine  # noqa: E402

from llm_reward.feedback.labelers import agreement, oracle_labels  # noqa: E402
from llm_reward.llm import make_llm  # noqa: E402
from llm_reward.motif.stages import annotate_stage, collect_stage, make_labeler, sample_pairs, to_targets  # noqa: E402

ENVS = {"minigrid": ("MiniGrid-DoorKey-5x5-v0", 100), "nethack": ("NetHackScore-v0", 400)}


def run_env(family: str, llm, *, n_steps: int, n_pairs: int, data: Path, seed: int, modes: list[str]) -> dict:
    from llm_reward.reward_model import fit_reward_model

    env_id, max_steps = ENVS[family]
    rollouts = collect_stage(env_id, n_steps=n_steps, n_envs=2, seed=seed, max_episode_steps=max_steps,
                             path=data / f"{family}_rollouts_{n_steps}.parquet", progress=False)
    # Uniform over distinct captions: random-policy data is dominated by a few captions, which are ties.
    pairs = sample_pairs(rollouts, n_pairs, unique_captions=True, seed=seed)
    oracle = oracle_labels(pairs["progress_a"], pairs["progress_b"])
    result: dict = {"env": env_id, "rollout_steps": len(rollouts),
                    "distinct_captions": int(rollouts["caption"].nunique()), "oracle_ties": int(np.sum(oracle == 0.5))}
    for mode in modes:
        labeler = make_labeler(llm, env_id=env_id, mode=mode, both_orders=True, goal="default")
        store = data / f"{family}_labels_{mode}_{llm.name}_{n_steps}.sqlite"
        calls_before = llm.stats.cache_misses
        labelled, report = annotate_stage(pairs, labeler, store_path=store, batch_size=8, progress=False)
        labelled = pairs[["pair_id"]].merge(labelled.drop(columns=["progress_a", "progress_b"], errors="ignore"),
                                            on="pair_id")
        label = labelled["label"].to_numpy(dtype=np.float32)
        forward = labelled["forward"].to_numpy(dtype=np.float32)
        # Distillation on the judge's own labels, with the pipeline's default (hard) targets.
        _, rm = fit_reward_model(labelled["caption_a"].tolist(), labelled["caption_b"].tolist(), to_targets(label),
                                 epochs=40, seed=seed, progress=False, oracle_labels=oracle)
        result[mode] = {
            **report.as_dict(), "llm_calls_this_run": llm.stats.cache_misses - calls_before,
            "oracle_agreement_first_order_only": agreement(forward, oracle),
            "rm_heldout_accuracy": rm["heldout_accuracy"], "rm_oracle_agreement": rm["oracle_agreement"],
        }
    # Training speed on a realistic amount of data: oracle labels over many rollout pairs.
    big = sample_pairs(rollouts, 5000, seed=seed + 1)
    start = time.perf_counter()
    _, speed = fit_reward_model(big["caption_a"].tolist(), big["caption_b"].tolist(),
                                oracle_labels(big["progress_a"], big["progress_b"]), epochs=5, seed=seed,
                                progress=False)
    return {**result, "rm_train_pairs_per_s": speed["train_pairs_per_s"],
            "rm_train_5k_pairs_5_epochs_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sample (<= 3 minutes)")
    parser.add_argument("--llm", default="local", help="model spec (default: the embedded judge)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", nargs="+", default=["rlaif", "pointwise"],
                        help="judge modes compared on the same pairs")
    args = parser.parse_args()
    n_steps, n_pairs = (1500, 24) if args.quick else (6000, 200)
    # --quick measures from scratch every time; the full run resumes from its stores and cache.
    data = Path(tempfile.mkdtemp(prefix="llm_reward_annotation_")) if args.quick else RESULTS / "annotation_data"
    llm = make_llm(args.llm, cache=data / "llm_cache.sqlite")
    per_env = {}
    for family in ENVS:
        per_env[family] = run_env(family, llm, n_steps=n_steps, n_pairs=n_pairs, data=data, seed=args.seed,
                                  modes=args.modes)
        print(family, per_env[family], file=sys.stderr, flush=True)

    def mean(mode: str, key: str) -> float:
        values = [r[mode][key] for r in per_env.values() if r[mode][key] is not None and np.isfinite(r[mode][key])]
        return float(np.mean(values)) if values else float("nan")

    by_mode = {}
    for mode in args.modes:
        new_pairs = sum(r[mode]["pairs_new"] for r in per_env.values())
        annotate_s = sum(r[mode]["pairs_new"] / r[mode]["pairs_per_s"] for r in per_env.values()
                         if r[mode]["pairs_per_s"])
        by_mode[mode] = {
            "pairs_per_s": new_pairs / annotate_s if annotate_s else float("nan"),
            "llm_prompts": sum(r[mode]["llm_prompts"] for r in per_env.values()),
            **{k: mean(mode, k) for k in ("unknown_rate", "position_consistency", "oracle_agreement",
                                          "oracle_agreement_first_order_only", "rm_heldout_accuracy",
                                          "rm_oracle_agreement")},
        }
    result = {**by_mode, "rm_train_pairs_per_s": float(np.mean([r["rm_train_pairs_per_s"] for r in per_env.values()])),
              "llm": llm.name, "per_env": per_env, "machine": machine(), "quick": args.quick}
    emit("annotation_quick" if args.quick else "annotation", result)


if __name__ == "__main__":
    main()
