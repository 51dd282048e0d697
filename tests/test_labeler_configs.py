"""Every ``conf/feedback`` style labels through the same question objects: its fingerprint, the prompts it sends and
its store paths are pinned in ``tests/data/labeler_configs.json`` (a scripted judge, three fixed caption pairs).

Regenerate (only when a prompt or fingerprint is meant to change): ``LLM_REWARD_WRITE_LABELER_CONFIGS=1 pytest
tests/test_labeler_configs.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from llm_reward.apps._common import labeler_from_config

EXPECTED = Path(__file__).parent / "data" / "labeler_configs.json"
PAIRS = [("You see a red key 2 steps forward.", "You see a wall 1 step forward."),
         ("You carry a red key. You see a locked red door 1 step left.", "You see a red key 2 steps forward."),
         ("You see a wall 1 step forward.", "You see a wall 1 step forward.")]
CASES = {
    "motif": ["feedback=motif"],
    "motif_no_cot_one_order": ["feedback=motif", "feedback.chain_of_thought=false", "feedback.both_orders=false"],
    "pointwise": ["feedback=pointwise"],
    "pointwise_mode": ["feedback=pointwise", "feedback.strategy=null"],
    "pointwise_mode_nethack": ["feedback=pointwise", "feedback.strategy=null", "env=nethack/score"],
    "rlaif": ["feedback=rlaif"],
    "rlaif_one_order": ["feedback=rlaif", "feedback.both_orders=false", "feedback.chain_of_thought=true"],
    "rlaif_strategy": ["feedback=rlaif", "feedback.strategy=pairwise_copy_pmi_bc"],
}


@dataclass
class _Stats:
    cache_hits: int = 0
    cache_misses: int = 0


@dataclass
class HashJudge:
    """Answers as a fixed function of the prompt: probabilities and verdicts from its hash (some with no verdict)."""

    name: str = "hash-judge"
    backend: str = "local"
    cache: object = None
    stats: _Stats = field(default_factory=_Stats)
    sent: list = field(default_factory=list)

    @staticmethod
    def _h(messages, i: int = 0) -> int:
        return int(hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[8 * i: 8 * i + 8], 16)

    def choice_probs_batch(self, batch, choices):
        self.sent += [{"call": "choice_probs", "choices": list(choices), "messages": m} for m in batch]
        out = []
        for messages in batch:
            raw = [self._h(messages, i) % 7 + 1 for i in range(len(choices))]
            out.append({c: r / sum(raw) for c, r in zip(choices, raw)})
        return out

    def complete_batch(self, batch, **kw):
        self.sent += [{"call": "complete", "options": kw, "messages": m} for m in batch]
        return [["I cannot tell.", "Verdict: 1", "Verdict: 2", "Verdict: none"][self._h(m) % 4] for m in batch]


def _record(overrides: list[str]) -> dict:
    cfg = compose("train", overrides=["env=minigrid/doorkey_5x5", *overrides])
    judge = HashJudge()
    labeler = labeler_from_config(cfg, judge)
    batch = labeler.label(PAIRS)
    return {"fingerprint": json.loads(json.dumps(labeler.fingerprint)), "prompts": judge.sent,
            "paths": {k: str(cfg.paths[k]) for k in ("labeler", "labels", "reward_model")},
            "label": [round(float(x), 6) for x in batch.label], "llm_prompts": int(batch.llm_prompts),
            "retries": int(batch.retries)}


def test_feedback_configs_fingerprints_prompts_and_paths_are_pinned():
    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        recorded = {name: _record(overrides) for name, overrides in CASES.items()}
    recorded = json.loads(json.dumps(recorded))  # NaN/tuples as the stored JSON has them
    if os.environ.get("LLM_REWARD_WRITE_LABELER_CONFIGS"):
        EXPECTED.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
    expected = json.loads(EXPECTED.read_text())
    assert sorted(recorded) == sorted(expected)
    for name in CASES:
        for key in expected[name]:
            assert recorded[name][key] == expected[name][key], f"{name}: {key} changed"


def test_a_mode_and_its_question_as_strategy_send_the_same_prompts():
    """``feedback.mode`` only picks a question: the same question given as ``feedback.strategy`` asks alike."""
    question = "{_target_:llm_reward.feedback.strategies.VerdictQuestion,chain_of_thought:true}"
    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        by_mode, by_strategy = _record(["feedback=motif"]), _record(["feedback=motif", f"feedback.strategy={question}"])
    assert by_strategy["prompts"] == by_mode["prompts"] and by_strategy["label"] == by_mode["label"]
    assert by_strategy["fingerprint"]["kind"] == "verdict"
    assert by_strategy["paths"]["labeler"] == "motif_verdict_cot_local"


def test_every_feedback_config_is_pinned():
    confs = {p.stem for p in (Path(__file__).parents[1] / "conf" / "feedback").glob("*.yaml")}
    assert confs <= set(CASES), f"add {sorted(confs - set(CASES))} to CASES"


if __name__ == "__main__":
    pytest.main([__file__])
