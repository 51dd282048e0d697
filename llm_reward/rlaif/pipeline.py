"""One RLAIF run from a config: check everything, build judges, policy and reward, train, evaluate, report.

Every check that can fail (prompt file, policy, judges' probabilities, settings, context length) runs before the
first sample is drawn, and names the config key at fault.
"""

from __future__ import annotations

import copy
import hashlib
import json
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
from llm_reward.llm import LLMError, make_llm
from llm_reward.reward_model import RewardModel
from llm_reward.rlaif.data import load_prompts
from llm_reward.rlaif.evaluate import evaluate, generate_answers
from llm_reward.rlaif.policy import LoraSettings, Policy, load_policy
from llm_reward.rlaif.rewards import DirectReward, DistilledReward, TextReward, fit_distilled_reward
from llm_reward.rlaif.trainer import RLAIFTrainer, TrainSettings, plot_curve, timing_summary

log = logging.getLogger(__name__)
MODES = ("direct", "distilled")


def _plain(value: Any) -> Any:
    """A config node as plain Python (dicts, lists), anything else unchanged."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _constitution(value: Any) -> str | None:
    return DEFAULT_CONSTITUTION if value == "default" else (value or None)


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


def run_key(cfg: DictConfig) -> str:
    """The run directory's name: everything that decides the result except ``train.steps`` (so more steps resume)."""
    decided = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("policy", "judge", "data", "distilled")}
    decided["train"] = {k: v for k, v in OmegaConf.to_container(cfg.train, resolve=True).items() if k != "steps"}
    digest = hashlib.sha256(json.dumps(decided, sort_keys=True).encode()).hexdigest()[:10]
    return f"{cfg.mode}_{cfg.policy.name}_{cfg.judge.name}_seed{cfg.seed}_{digest}"


def run_rlaif(cfg: DictConfig) -> dict[str, Any]:
    """Train and evaluate as ``cfg`` says; returns the metrics (also written to ``<out_dir>/metrics.json``)."""
    if cfg.mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {cfg.mode!r}")
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    settings = TrainSettings(**{**OmegaConf.to_container(cfg.train, resolve=True), "seed": int(cfg.seed)})
    settings.check()
    prompts = load_prompts(cfg.data.prompts, heldout_fraction=cfg.data.heldout_fraction, seed=int(cfg.seed))
    out_dir = Path(cfg.out_dir) if cfg.get("out_dir") else Path(cfg.data_dir) / "rlaif" / run_key(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)

    pairwise, scorer = build_judges(cfg.judge, "judge")
    heldout = build_judges(cfg.heldout_judge, "heldout_judge")[0] if cfg.get("heldout_judge") else None
    for name, judge in (("judge", pairwise), ("judge", scorer), ("heldout_judge", heldout)):
        if judge is not None:
            try:
                judge.check()
            except LLMError as err:
                raise ValueError(f"{name}.spec={judge.llm.name!r} cannot give choice probabilities: {err}") from err

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
    if cfg.mode == "direct":
        reward = DirectReward(scorer)
    else:
        reward, extra = _distilled(cfg, policy, pairwise, prompts.train, out_dir)

    trainer = RLAIFTrainer(policy, reward, prompts.train, settings, out_dir, fingerprint=fingerprint,
                           start_model=start_model)
    trainer.train(progress=bool(cfg.progress))
    plot_curve(trainer.history, out_dir / "curve.png", title=f"RLAIF {cfg.mode}: {policy.name} / {pairwise.llm.name}")

    metrics: dict[str, Any] = {"mode": cfg.mode, "steps": trainer.step, "out_dir": str(out_dir),
                               "policy_load_s": load_s, "timing": timing_summary(trainer.history),
                               "final_reward": float(np.mean([h["reward"] for h in trainer.history[-5:]])),
                               "first_reward": float(np.mean([h["reward"] for h in trainer.history[:5]])), **extra}
    if cfg.eval.enabled:
        eval_prompts = list(prompts.heldout)[: cfg.eval.max_prompts or None]
        judges = {"judge": pairwise, **({"heldout_judge": heldout} if heldout is not None else {})}
        t1 = time.perf_counter()
        result, _ = evaluate(policy, start_model, eval_prompts, judges,
                             samples_per_prompt=int(cfg.eval.samples_per_prompt),
                             max_new_tokens=settings.max_new_tokens, temperature=float(cfg.eval.temperature),
                             seed=int(cfg.eval.seed))
        result["eval_s"] = time.perf_counter() - t1
        metrics["eval"] = result
        metrics.update(_headline(result))
    metrics["judge_llm_stats"] = pairwise.llm.stats.as_dict()
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    log.info("rlaif %s: %s", cfg.mode, {k: v for k, v in metrics.items() if not isinstance(v, dict)})
    return metrics


def _headline(result: dict[str, Any]) -> dict[str, Any]:
    judge = result["judge"]
    out = {"win_rate_vs_start": judge["win_rate"], "length_controlled_win_rate": judge["length_controlled_win_rate"],
           "judge_longer_preference": judge["longer_preference"],
           "judge_position_consistency": judge["position_consistency"], "kl_to_start": result["kl_to_start"]}
    if "heldout_judge" in result:
        held = result["heldout_judge"]
        out.update(win_rate_heldout_judge=held["win_rate"],
                   length_controlled_win_rate_heldout_judge=held["length_controlled_win_rate"],
                   heldout_judge_position_consistency=held["position_consistency"])
    else:
        out["win_rate_heldout_judge"] = float("nan")
    return out


def _distilled(cfg: DictConfig, policy: Policy, judge: PairwiseJudge, train_prompts: tuple[str, ...],
               out_dir: Path) -> tuple[DistilledReward, dict[str, Any]]:
    """Fit (or reload) the reward model distilled from the pairwise judge's labels on the start policy's answers."""
    path = out_dir / "reward_model.pt"
    if path.exists():
        saved = torch.load(path, weights_only=False)
        model = RewardModel.from_config(saved["config"])
        model.load_state_dict(saved["state"])
        return DistilledReward(model, saved["mean"], saved["std"], saved["metrics"]), {"distilled": saved["metrics"]}
    d = cfg.distilled
    n = int(d.pairs)
    if n < 4:
        raise ValueError(f"distilled.pairs must be >= 4, got {n}")
    prompts = [train_prompts[i % len(train_prompts)] for i in range(n)]
    t0 = time.perf_counter()
    answers, _ = generate_answers(policy, prompts, samples_per_prompt=2, max_new_tokens=int(cfg.train.max_new_tokens),
                                  temperature=float(d.temperature), seed=int(cfg.seed) + 7)
    t1 = time.perf_counter()
    reward = fit_distilled_reward(judge, prompts, answers.texts[0::2], answers.texts[1::2], encoder=d.encoder,
                                  epochs=int(d.epochs), seed=int(cfg.seed), progress=False)
    reward.metrics.update(sample_s=t1 - t0, label_and_fit_s=time.perf_counter() - t1, pairs=n)
    torch.save({"config": reward.model.config, "state": reward.model.state_dict(), "mean": reward.mean,
                "std": reward.std, "metrics": reward.metrics}, path)
    return reward, {"distilled": reward.metrics}
