"""Text RLAIF on CPU: SmolLM2-135M trained from the embedded Qwen2.5-Coder-1.5B judge, direct and distilled modes.

Each cell is one ``llm-reward-rlaif`` run (same config, composed in-process) on the shipped prompts; evaluation is
the win rate of the trained policy against its start on the held-out prompts, judged in both orders by the
training judge and by Qwen2.5-Coder-0.5B (a different model), with a length-controlled win rate and the judges'
preference for longer answers beside it, and the KL to the start. Also reported: where the time goes (policy
answers/s, judge prompts/s, optimizer steps/s).

    python benchmarks/rlaif_text.py --quick          # one short direct run (<= 10 min here)
    nice -n 10 python benchmarks/rlaif_text.py       # direct + distilled, 2 seeds (<= 60 min here); resumable

Finished cells are kept in ``results/rlaif_text_cells.jsonl`` and skipped on rerun; an interrupted cell resumes
from its checkpoint. The last stdout line is the JSON summary (headline = direct mode).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from hydra import compose, initialize_config_module  # noqa: E402

from benchmarks._common import RESULTS, CellLog, emit, machine  # noqa: E402

RUNS = Path(__file__).resolve().parent / "runs" / "rlaif_text"
HEADLINE = ("win_rate_vs_start", "win_rate_heldout_judge", "length_controlled_win_rate",
            "length_controlled_win_rate_heldout_judge", "judge_longer_preference", "kl_to_start",
            "judge_position_consistency", "heldout_judge_position_consistency", "final_reward", "first_reward")

# Sized for a shared 2-core machine: the judge (Qwen2.5-Coder-1.5B) dominates, so direct mode gets fewer steps
# than distilled (whose reward model costs nothing per step after its labels).
COMMON = ["train.prompts_per_step=2", "train.samples_per_prompt=2", "train.max_new_tokens=16", "train.lr=5e-5",
          "+judge.options.n_threads=1", "+heldout_judge.options.n_threads=1"]
FULL = {"direct": COMMON + ["train.steps=4", "train.checkpoint_every=2", "eval.max_prompts=8"],
        "distilled": COMMON + ["train.steps=8", "train.checkpoint_every=4", "distilled.pairs=16",
                               "eval.max_prompts=8"]}
QUICK = {"direct": COMMON + ["train.steps=2", "train.max_new_tokens=12", "train.checkpoint_every=2",
                             "eval.max_prompts=4"]}


def run_cell(mode: str, seed: int, overrides: list[str], tag: str) -> dict:
    from llm_reward.rlaif.pipeline import run_rlaif

    out_dir = RUNS / f"{tag}_{mode}_seed{seed}"
    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        cfg = compose("rlaif", overrides=[f"mode={mode}", f"seed={seed}", "threads=1", "progress=false",
                                          f"out_dir={out_dir}", *overrides])
    start = time.perf_counter()
    metrics = run_rlaif(cfg)
    metrics["wall_s"] = time.perf_counter() - start
    return metrics


PROBE = [  # (question, a clearly useful answer, a useless one)
    ("I am playing NetHack. HP:2(12). What should I do?",
     "Drink a healing potion or pray: at 2 HP you are about to die.", "System: True"),
    ("A gridworld agent sees a yellow key and a locked yellow door. What next?",
     "Pick up the yellow key, then go to the door and toggle it.", "I like the color of the sky."),
    ("How do I boil an egg so the yolk stays soft?", "Put the egg in boiling water for about 6 minutes, then cool it.",
     "\U0001F468\U0001F468"),
    ("How do bees help plants?", "Bees carry pollen between flowers, which fertilises them.",
     "The answer is 42 42 42 42."),
]


def probe_judges(specs: tuple[str, ...] = ("local", "local:small")) -> dict:
    """The pairwise answer prompt on clear-cut pairs, both orders: is the judge more than position bias?"""
    from llm_reward.feedback.judges import PairwiseJudge
    from llm_reward.feedback.text_prompts import ResponsePairPrompt
    from llm_reward.llm import make_llm

    out = {}
    for spec in specs:
        judge = PairwiseJudge(make_llm(spec, n_threads=1), ResponsePairPrompt())
        batch = judge.label([(good, bad) for _, good, bad in PROBE], contexts=[q for q, _, _ in PROBE])
        out[spec] = {"right": float(np.mean(batch.label > 0.5)), "labels": batch.label.tolist(),
                     "first_order_p1": batch.forward.tolist(), "position_consistency": batch.position_consistency}
    return {"pairs": len(PROBE), "judges": out, "machine": machine()}


class _ShortAnswers:
    """A free reward (shorter is better), so the comparison times the trainers, not a judge."""

    def score(self, prompts, completions):
        return np.array([-len(c) / 100 for c in completions])


def compare_trl(steps: int = 2, prompts_per_step: int = 2, k: int = 4, max_new_tokens: int = 24) -> dict:
    """Seconds per step of TRL's GRPOTrainer and of our loop, same policy, batch, answer length and reward."""
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from llm_reward.rlaif import as_reward_funcs, load_prompts
    from llm_reward.rlaif.policy import load_policy
    from llm_reward.rlaif.trainer import RLAIFTrainer, TrainSettings

    torch.set_num_threads(1)
    prompts = list(load_prompts().train[: prompts_per_step * steps])
    policy = load_policy()
    trainer = RLAIFTrainer(policy, _ShortAnswers(), prompts,
                           TrainSettings(steps=steps, prompts_per_step=prompts_per_step, samples_per_prompt=k,
                                         max_new_tokens=max_new_tokens, lr=3e-5, checkpoint_every=10**6),
                           RUNS / "compare_trl_ours")
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    ours = (time.perf_counter() - start) / steps
    policy = load_policy()
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": p}]} for p in prompts])
    args = GRPOConfig(output_dir=str(RUNS / "compare_trl_trl"), per_device_train_batch_size=prompts_per_step * k,
                      num_generations=k, max_completion_length=max_new_tokens, max_steps=steps, learning_rate=3e-5,
                      beta=0.05, temperature=0.9, report_to=[], use_cpu=True, save_strategy="no", bf16=False)
    trl = GRPOTrainer(model=policy.model, reward_funcs=as_reward_funcs(_ShortAnswers()), args=args,
                      train_dataset=data, processing_class=policy.tokenizer)
    start = time.perf_counter()
    trl.train()
    theirs = (time.perf_counter() - start) / steps
    return {"ours_s_per_step": ours, "trl_grpo_s_per_step": theirs, "steps": steps,
            "answers_per_step": prompts_per_step * k, "max_new_tokens": max_new_tokens, "machine": machine()}


def _stats(values: list[float]) -> dict[str, float]:
    v = np.array([x for x in values if x is not None and not np.isnan(x)], dtype=np.float64)
    if v.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    out = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size),
           "values": v.tolist()}
    try:  # IQM with a bootstrap CI (rliable); with two seeds the IQM is the mean
        from rliable import library as rly
        from rliable import metrics as rlm

        iqm = lambda x: np.array([rlm.aggregate_iqm(x)])  # noqa: E731
        point, ci = rly.get_interval_estimates({"m": v[:, None]}, iqm, reps=2000)
        out.update(iqm=float(point["m"][0]), iqm_ci=[float(ci["m"][0][0]), float(ci["m"][1][0])])
    except Exception:  # rliable not installed (or too few runs for a CI)
        pass
    return out


def summarise(rows: list[dict]) -> dict:
    summary = {}
    for key in HEADLINE:
        summary[key] = _stats([r.get(key, float("nan")) for r in rows])
    timing = [r["timing"] for r in rows if r.get("timing")]
    summary["timing"] = {k: float(np.mean([t[k] for t in timing])) for k in timing[0]} if timing else {}
    evals = [r["eval"] for r in rows if r.get("eval")]
    summary["judge_prompts_per_s"] = float(np.mean([
        (e["judge"]["judge_prompts"] + e.get("heldout_judge", {}).get("judge_prompts", 0)) / max(e["eval_s"], 1e-9)
        for e in evals])) if evals else float("nan")
    summary["mean_length"] = _stats([r["eval"]["mean_length"] for r in rows if r.get("eval")])
    summary["start_mean_length"] = _stats([r["eval"]["start_mean_length"] for r in rows if r.get("eval")])
    summary["wall_s"] = _stats([r.get("wall_s", float("nan")) for r in rows])
    summary["seeds"] = [r["seed"] for r in rows]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short direct-mode run (<= 10 min)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--modes", nargs="+", default=None, choices=["direct", "distilled"])
    parser.add_argument("--compare-trl", action="store_true",
                        help="only time TRL's GRPOTrainer against our loop (same model, batch and reward)")
    parser.add_argument("--probe-judges", action="store_true",
                        help="only check the judges on clear-cut answer pairs (both orders)")
    parser.add_argument("overrides", nargs="*", help="extra llm-reward-rlaif overrides, e.g. train.lr=1e-4")
    args = parser.parse_args()
    if args.probe_judges:
        emit("rlaif_text_probe_judges", probe_judges())
        return
    if args.compare_trl:
        emit("rlaif_text_compare_trl", compare_trl())
        return
    quick = args.quick
    modes = args.modes or (["direct"] if quick else ["direct", "distilled"])
    seeds = args.seeds or ([0] if quick else [0, 1])
    tag = "quick" if quick else "full"
    settings = {mode: (QUICK if quick else FULL).get(mode, FULL[mode]) + list(args.overrides) for mode in modes}
    cells = CellLog(RESULTS / f"rlaif_text{'_quick' if quick else ''}_cells.jsonl")
    started = time.perf_counter()
    key = lambda mode, seed: f"{tag}|{mode}|seed{seed}|{' '.join(settings[mode])}"  # noqa: E731
    for seed in seeds:  # seed-major: an interrupted sweep still has every mode on its first seed
        for mode in modes:
            with cells.claim(key(mode, seed)) as mine:
                if not mine:
                    continue
                metrics = run_cell(mode, seed, settings[mode], tag)
                cells.add(key(mode, seed), {"mode": mode, "seed": seed, **metrics})
                print(f"{mode} seed {seed}: win rate {metrics.get('win_rate_vs_start'):.3f} (training judge), "
                      f"{metrics.get('win_rate_heldout_judge'):.3f} (held-out judge), "
                      f"KL {metrics.get('kl_to_start'):.3f}, {metrics['wall_s']:.0f} s", flush=True)
    per_mode = {}
    for mode in modes:
        rows = [cells.cells[key(mode, seed)] for seed in seeds if key(mode, seed) in cells.cells]
        if rows:
            per_mode[mode] = summarise(rows)
    head_mode = "direct" if "direct" in per_mode else next(iter(per_mode))
    head = per_mode[head_mode]
    result = {
        "mode": head_mode, **{k: head[k]["mean"] for k in HEADLINE},
        "win_rate_heldout_judge_std": head["win_rate_heldout_judge"]["std"],
        "win_rate_vs_start_std": head["win_rate_vs_start"]["std"],
        "goal_heldout_win_rate": 0.60, "goal_met": bool(head["win_rate_heldout_judge"]["mean"] >= 0.60),
        "per_mode": per_mode, "overrides": settings, "seeds": seeds, "quick": quick,
        "judges": {"training": "qwen2.5-coder-1.5b-instruct (local)", "heldout": "qwen2.5-coder-0.5b-instruct"},
        "policy": "smollm2-135m-instruct (full fine-tune)", "machine": machine(),
        "wall_s_this_invocation": time.perf_counter() - started,
    }
    emit("rlaif_text_quick" if quick else "rlaif_text", result)


if __name__ == "__main__":
    main()
