"""One RLAIF run from a config: check everything, probe the judges, build policy and reward, train, evaluate, report.

Every check that can fail (prompt file and its constraints, settings, judges' probabilities, the held-out judge's
probe, policy, context length) runs before the first sample is drawn, and names the config key at fault.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from llm_reward.feedback.judges import PairwiseJudge, ScoreJudge
from llm_reward.feedback.text_prompts import DEFAULT_CONSTITUTION, PairExample, ResponsePairPrompt, \
    ResponseScorePrompt, ScoreExample
from llm_reward.identity import digest
from llm_reward.jsonio import write_json
from llm_reward.llm import LLMError, make_llm
from llm_reward.rlaif.constraints import checker_success
from llm_reward.rlaif.data import PromptSet, load_prompts
from llm_reward.rlaif.evaluate import evaluate, generate_answers
from llm_reward.rlaif.judging import (CHECKLIST_TEMPLATE, FORMS, ChecklistJudge, PositionFreeJudge, comparing_judge,
                                     probe_judge, require_probe)
from llm_reward.rlaif.policy import LoraSettings, Policy, check_policy, load_policy
from llm_reward.rlaif.rewards import DirectReward, DistilledReward, TextReward, checker_labels, fit_distilled_reward
from llm_reward.rlaif.trainer import RLAIFTrainer, TrainSettings, plot_curve, timing_summary

log = logging.getLogger(__name__)
MODES = ("direct", "distilled")
REWARD_FORMS = ("score", "checklist", "instructions")  # judge.reward_form: how direct mode's judge rewards one answer


def _plain(value: Any) -> Any:
    """A config node as plain Python (dicts, lists), anything else unchanged."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


INSTRUCTIONS_CONSTITUTION = (
    "A good answer is helpful (it actually tells the user what to do) and follows every instruction in the prompt "
    "exactly: its length limit, the words it must use, its format, punctuation and letter case. An answer that "
    "breaks an instruction is worse than one that keeps it, however good its content."
)


def _constitution(value: Any) -> str | None:
    """``default`` (helpful, correct, concise), ``instructions`` (helpful and following the instructions), or text."""
    named = {"default": DEFAULT_CONSTITUTION, "instructions": INSTRUCTIONS_CONSTITUTION}
    return named.get(value, value or None)


def build_judges(judge_cfg: DictConfig, key: str) -> tuple[PairwiseJudge, ScoreJudge]:
    """The pairwise and 1-10 judges of one ``judge`` config group entry (one LLM, two prompts)."""
    options = _plain(judge_cfg.get("options")) or {}
    try:
        llm = make_llm(judge_cfg.spec, **options)
    except LLMError as err:
        raise ValueError(f"{key}.spec={judge_cfg.spec!r}: {err}") from err
    constitution = _constitution(judge_cfg.get("constitution", "default"))
    shots = _plain(judge_cfg.get("few_shot")) or []
    try:
        pair_shots = tuple(PairExample(**s) for s in shots if "better" in s)
        score_shots = tuple(ScoreExample(**s) for s in shots if "score" in s)
    except TypeError as err:
        raise ValueError(f"{key}.few_shot: each example needs prompt, first, second, better (pairwise) or "
                         f"prompt, response, score (1-10): {err}") from None
    pairwise = PairwiseJudge(llm, ResponsePairPrompt(constitution, pair_shots),
                             chain_of_thought=bool(judge_cfg.get("chain_of_thought", False)))
    return pairwise, ScoreJudge(llm, ResponseScorePrompt(constitution, score_shots))


def direct_reward(form: str, pairwise: PairwiseJudge, scorer: ScoreJudge, prompts: PromptSet) -> DirectReward:
    """Direct mode's reward of one ``judge.reward_form``, in [-1, 1] either way.

    ``score``: the judge's expected 1-10 score of the answer. ``checklist``: the same judge's mean P(yes) over
    "helpful and relevant?" and one question per instruction of the prompt (:class:`ChecklistJudge`; the
    instructions' text as the user reads it, never the checker). ``instructions``: the checklist without the
    helpfulness question on prompts that carry instructions.

    Example:
        >>> prompts = load_prompts("shipped_instructions")
        >>> reward = direct_reward("checklist", pairwise, scorer, prompts)  # doctest: +SKIP
        >>> reward.score([prompt, prompt], ["keeps the rules", "Breaks, them."])  # doctest: +SKIP
        array([ 0.62, -0.35])
    """
    if form not in REWARD_FORMS:
        raise ValueError(f"judge.reward_form must be one of {list(REWARD_FORMS)}, got {form!r}")
    if form in ("checklist", "instructions"):
        return DirectReward(ChecklistJudge(pairwise.llm, dict(prompts.constraints), ask_helpful=form == "checklist"))
    return DirectReward(scorer)


def run_key(cfg: DictConfig) -> str:
    """The run directory's name: everything that decides the result except ``train.steps`` (so more steps resume).

    ``judge.reward_form`` counts only where it changes the reward (direct mode, not ``score``), so runs from before
    the key existed keep their directories; a checklist reward also counts its prompt version (``CHECKLIST_TEMPLATE``).
    """
    decided = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("policy", "judge", "data", "distilled")}
    if decided["judge"].get("reward_form", "score") == "score" or cfg.mode != "direct":
        decided["judge"].pop("reward_form", None)
    elif decided["judge"]["reward_form"] in ("checklist", "instructions"):  # a new wording is a new reward: new run
        decided["judge"]["checklist_template"] = CHECKLIST_TEMPLATE
    decided["distilled"] = decided["distilled"] if cfg.mode == "distilled" else None
    decided["train"] = {k: v for k, v in OmegaConf.to_container(cfg.train, resolve=True).items() if k != "steps"}
    return f"{cfg.mode}_{cfg.policy.name}_{cfg.judge.name}_seed{cfg.seed}_{digest(decided, length=10)}"


def check_config(cfg: DictConfig) -> tuple[TrainSettings, PromptSet]:
    """Every check that needs no model: mode, settings, prompt file and constraints, forms, distilled sizes."""
    if cfg.mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {cfg.mode!r}")
    settings = TrainSettings(**{**OmegaConf.to_container(cfg.train, resolve=True), "seed": int(cfg.seed)})
    settings.check()
    prompts = load_prompts(cfg.data.prompts, heldout_fraction=cfg.data.heldout_fraction, seed=int(cfg.seed))
    if cfg.get("heldout_judge"):
        form = cfg.heldout_judge.get("form", "pairwise")
        if form not in FORMS:
            raise ValueError(f"heldout_judge.form must be one of {list(FORMS)}, got {form!r}")
    if cfg.eval.get("judge_form", "score") not in FORMS:
        raise ValueError(f"eval.judge_form must be one of {list(FORMS)}, got {cfg.eval.judge_form!r}")
    reward_form = cfg.judge.get("reward_form", "score")
    if reward_form not in REWARD_FORMS:
        raise ValueError(f"judge.reward_form must be one of {list(REWARD_FORMS)}, got {reward_form!r}")
    if cfg.mode == "distilled" and int(cfg.distilled.pairs) < 4:
        raise ValueError(f"distilled.pairs must be >= 4, got {cfg.distilled.pairs}")
    check_policy(cfg.policy.path)
    return settings, prompts


def run_rlaif(cfg: DictConfig) -> dict[str, Any]:
    """Train and evaluate as ``cfg`` says; returns the metrics (also written to ``<out_dir>/metrics.json``)."""
    settings, prompts = check_config(cfg)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    out_dir = Path(cfg.out_dir) if cfg.get("out_dir") else Path(cfg.data_dir) / "rlaif" / run_key(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)

    pairwise, scorer = build_judges(cfg.judge, "judge")
    heldout = build_judges(cfg.heldout_judge, "heldout_judge") if cfg.get("heldout_judge") else None
    for name, judge in (("judge", pairwise), ("judge", scorer), *((("heldout_judge", j) for j in heldout or ()))):
        try:
            judge.check()
        except LLMError as err:
            raise ValueError(f"{name}.spec={judge.llm.name!r} cannot give choice probabilities: {err}") from err
    eval_form = cfg.eval.get("judge_form", "score")
    judges = {"judge": comparing_judge(pairwise, scorer, eval_form, "eval.judge_form", prompts.constraints)}
    probes: dict[str, Any] = {}
    if heldout is not None:
        judges["heldout_judge"] = comparing_judge(*heldout, cfg.heldout_judge.get("form", "pairwise"),
                                                  "heldout_judge.form", prompts.constraints)
    reward_form = cfg.judge.get("reward_form", "score")
    direct = direct_reward(reward_form, pairwise, scorer, prompts) if cfg.mode == "direct" else None
    if cfg.eval.get("probe", True):  # judges are checked before they are trusted (the training judge is reported)
        for name, comparing in judges.items():
            form = cfg.heldout_judge.get("form", "pairwise") if name == "heldout_judge" else eval_form
            result = probe_judge(comparing, name=str(cfg[name].spec), form=form)
            probes[name] = result.as_dict()
            log.info("probe %s: %s", name, probes[name])
            if name == "heldout_judge" and cfg.eval.get("require_heldout_probe", True):
                require_probe(result, "heldout_judge")
        if direct is not None:  # direct mode's reward in its own form, as it trains (distilled: its labels' judge)
            as_judge = direct.judge if isinstance(direct.judge, ChecklistJudge) else PositionFreeJudge(direct.judge)
            probes["reward"] = probes["judge"] if reward_form == eval_form else probe_judge(
                as_judge, name=str(cfg.judge.spec), form=reward_form).as_dict()

    lora = LoraSettings(**_plain(cfg.policy.lora)) if cfg.policy.get("lora") else None
    t0 = time.perf_counter()
    policy = load_policy(cfg.policy.path, lora=lora)
    load_s = time.perf_counter() - t0
    policy.check_prompts([*prompts.train, *prompts.heldout], settings.max_new_tokens)
    torch.manual_seed(int(cfg.seed))
    start_model = copy.deepcopy(policy.model).eval()
    fingerprint = {"mode": cfg.mode, "policy": policy.name, "judge": pairwise.fingerprint,
                   "prompts": prompts.source}
    reward: TextReward
    extra: dict[str, Any] = {}
    if direct is not None:
        reward = direct
        if reward_form != "score":  # the default keeps the fingerprint of existing checkpoints
            fingerprint["reward_form"] = reward_form
        extra["reward_form"] = reward_form
    else:
        reward, extra = _distilled(cfg, policy, pairwise, prompts, out_dir)
        fingerprint["shuffled_labels"] = bool(cfg.distilled.get("shuffle_labels", False))

    checker = None
    if prompts.constraints:  # logged beside the reward at every step, never trained on
        def checker(asked: list[str], answers: list[str]) -> list[float]:
            return [checker_success(a, prompts.constraints_of(p)) for p, a in zip(asked, answers)]
    trainer = RLAIFTrainer(policy, reward, prompts.train, settings, out_dir, fingerprint=fingerprint,
                           start_model=start_model, checker=checker)
    trainer.train(progress=bool(cfg.progress))
    plot_curve(trainer.history, out_dir / "curve.png", title=f"RLAIF {cfg.mode}: {policy.name} / {pairwise.llm.name}")

    metrics: dict[str, Any] = {"mode": cfg.mode, "steps": trainer.step, "out_dir": str(out_dir),
                               "policy_load_s": load_s, "timing": timing_summary(trainer.history),
                               "final_reward": float(np.mean([h["reward"] for h in trainer.history[-5:]])),
                               "first_reward": float(np.mean([h["reward"] for h in trainer.history[:5]])),
                               "probes": probes, **extra, **training_checker(trainer.history)}
    metrics["policy_tokens_per_s"] = metrics["timing"].get("policy_tokens_per_s", float("nan"))
    metrics["optimizer_steps_per_s"] = metrics["timing"].get("optimizer_steps_per_s", float("nan"))
    if cfg.eval.enabled:
        eval_prompts = list(prompts.heldout)[: cfg.eval.max_prompts or None]
        t1 = time.perf_counter()
        result, _ = evaluate(policy, start_model, eval_prompts, judges,
                             samples_per_prompt=int(cfg.eval.samples_per_prompt),
                             max_new_tokens=settings.max_new_tokens, temperature=float(cfg.eval.temperature),
                             seed=int(cfg.eval.seed), constraints=prompts.constraints,
                             null_seed=int(cfg.eval.seed) + 1 if cfg.eval.get("null_control", True) else None)
        result["eval_s"] = time.perf_counter() - t1
        judged = sum(r.get("judge_prompts", 0) for name, r in result.items() if name in judges)
        judged += sum(r.get("judge_prompts", 0) for name, r in result.get("null", {}).items() if name in judges)
        result["judge_prompts_per_s"] = judged / max(result["eval_s"], 1e-9)
        metrics["eval"] = result
        metrics.update(_headline(result, probes))
    metrics["judge_llm_stats"] = pairwise.llm.stats.as_dict()
    write_json(out_dir / "metrics.json", metrics)
    log.info("rlaif %s: %s", cfg.mode, {k: v for k, v in metrics.items() if not isinstance(v, dict)})
    return metrics


def _headline(result: dict[str, Any], probes: dict[str, Any]) -> dict[str, Any]:
    """The flat numbers of a run: win rates with intervals, the null control, checker success, KL."""
    judge = result["judge"]
    out: dict[str, Any] = {
        "win_rate_vs_start": judge["win_rate"], "win_rate_vs_start_ci": judge["win_rate_ci"],
        "length_controlled_win_rate": judge["length_controlled_win_rate"],
        "judge_longer_preference": judge["longer_preference"],
        "judge_position_consistency": judge["position_consistency"], "kl_to_start": result["kl_to_start"],
        "judge_prompts_per_s": result["judge_prompts_per_s"], "mean_length": result["mean_length"],
        "start_mean_length": result["start_mean_length"]}
    evaluator = "heldout_judge" if "heldout_judge" in result else None
    if evaluator:
        held = result[evaluator]
        out.update(win_rate_heldout_judge=held["win_rate"], win_rate_heldout_judge_ci=held["win_rate_ci"],
                   length_controlled_win_rate_heldout_judge=held["length_controlled_win_rate"],
                   heldout_judge_position_consistency=held["position_consistency"])
    else:
        out["win_rate_heldout_judge"] = float("nan")
    null = result.get("null", {})
    if null:
        reader = null.get(evaluator or "judge", {})
        out.update(null_win_rate=reader.get("win_rate", float("nan")),
                   null_win_rate_ci=reader.get("win_rate_ci", [float("nan")] * 2),
                   null_win_rate_training_judge=null.get("judge", {}).get("win_rate", float("nan")))
    checker = result.get("checker", {})
    for key in ("checker_success_start", "checker_success_trained", "checker_success_difference",
                "checker_success_difference_ci", "judge_checker_agreement", "checker_prompts"):
        if key in checker:
            out[key] = checker[key]
    if "heldout_judge" in probes:
        out["heldout_judge_probe"] = probes["heldout_judge"]
        out["heldout_judge_trusted"] = bool(probes["heldout_judge"]["passed"])
    if "judge" in probes:
        out["judge_probe"] = probes["judge"]
    if "reward" in probes:
        out["reward_probe"] = probes["reward"]
    return out


def training_checker(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The checker logged during training (on prompts with instructions): how often the reward ordered a prompt's
    answers as the checker did, pooled over the steps that logged it (``training_checker_steps``: a run resumed from
    a checkpoint written before the log existed has fewer), and the checker's mean over the first and last 10 of
    them."""
    logged = [h for h in history if "checker_pairs" in h]
    if not logged:
        return {}
    pairs = sum(h["checker_pairs"] for h in logged)
    mean = lambda rows: float(np.mean(v)) if (v := [h["checker"] for h in rows if not np.isnan(h["checker"])]) \
        else float("nan")  # noqa: E731
    return {"training_reward_checker_agreement": sum(h["checker_agreeing"] for h in logged) / pairs if pairs
            else float("nan"), "training_checker_pairs": pairs, "training_checker_steps": len(logged),
            "training_checker_first_10": mean(logged[:10]), "training_checker_last_10": mean(logged[-10:])}


def _distilled(cfg: DictConfig, policy: Policy, judge: PairwiseJudge, prompts: PromptSet,
               out_dir: Path) -> tuple[DistilledReward, dict[str, Any]]:
    """Fit (or reload) the reward model distilled from the pairwise judge's labels on the start policy's answers."""
    d = cfg.distilled
    shuffled = bool(d.get("shuffle_labels", False))
    path = out_dir / ("reward_model_shuffled" if shuffled else "reward_model")
    if (path / "config.json").is_file():
        reward = DistilledReward.load(path)
        return reward, {"distilled": reward.metrics}
    n = int(d.pairs)
    train_prompts = prompts.train
    rows = [train_prompts[i % len(train_prompts)] for i in range(n)]
    t0 = time.perf_counter()
    answers, _ = generate_answers(policy, rows, samples_per_prompt=2, max_new_tokens=int(cfg.train.max_new_tokens),
                                  temperature=float(d.temperature), seed=int(cfg.seed) + 7)
    first, second = answers.texts[0::2], answers.texts[1::2]
    t1 = time.perf_counter()
    checker = None
    if prompts.constraints:
        rules = [prompts.constraints_of(p) for p in rows]
        checker = checker_labels([checker_success(a, r) for a, r in zip(first, rules)],
                                 [checker_success(b, r) for b, r in zip(second, rules)])
    reward = fit_distilled_reward(judge, rows, first, second, encoder=d.encoder, epochs=int(d.epochs),
                                  seed=int(cfg.seed), progress=False, shuffle_labels=shuffled, checker=checker)
    reward.metrics.update(sample_s=t1 - t0, label_and_fit_s=time.perf_counter() - t1,
                          judge_prompts_per_s=reward.metrics["judge_prompts"] / max(time.perf_counter() - t1, 1e-9))
    reward.save(path)
    return reward, {"distilled": reward.metrics}
