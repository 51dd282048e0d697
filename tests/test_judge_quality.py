"""Judge-quality strategies (difference captions, calibration, few-shot, ensembles), the stored pair sets and the
benchmark's cell plumbing, on a scripted judge; one small test on a real embedded model."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from llm_reward.feedback import calibration
from llm_reward.feedback.caption_diff import difference_pair, round_numbers, total_steps
from llm_reward.feedback.judges import LabelBatch
from llm_reward.feedback.strategies import (EXEMPLARS, STRATEGIES, DifferencePairPrompt, ReferencePairPrompt,
                                            judging_spec, make_strategy)

ROOT = Path(__file__).resolve().parents[1]
PAIRSETS = ROOT / "benchmarks" / "pairsets"


@dataclass
class _Stats:
    cache_hits: int = 0
    cache_misses: int = 0


@dataclass
class GoldJudge:
    """Prefers the description with more gold; ``bias`` is added to the logit of answering "1" whatever is shown."""

    bias: float = 0.0
    name: str = "gold-judge"
    stats: _Stats = field(default_factory=_Stats)
    seen: list = field(default_factory=list)
    copy_bias: float = 0.5  # pairwise_copy: extra logit of copying the description shown last, whatever is asked

    @staticmethod
    def _gold(text: str) -> int:
        return int(m.group(1)) if (m := re.search(r"(\d+) gold", text)) else 0

    def choice_probs_batch(self, conversations, choices):
        self.seen += conversations
        self.stats.cache_misses += len(conversations)
        out = []
        for messages in conversations:
            if not all(c.isdigit() for c in choices):  # pairwise_copy: the reply is a copy of a description
                first, second = choices
                shown_last = messages[-1]["content"].rsplit("Description:\n", 1)[1]
                strength = (self.copy_bias if shown_last == second else -self.copy_bias) + (
                    0.0 if "more progress" not in messages[-1]["content"] else np.sign(
                        self._gold(first) - self._gold(second)))
                p1 = float(calibration.sigmoid(strength))
                out.append({first: p1, second: 1 - p1})
                continue
            pair_turns = [m["content"] for m in messages if m["role"] == "user" and "Description 1:" in m["content"]]
            text = pair_turns[-1] if pair_turns else messages[-1]["content"]  # after a rationale: the pair turn
            if choices == ["1", "2"] and "Description 1:" in text:
                first, second = re.findall(r"Description \d:\n(.*?)(?:\n\n|$)", text, re.S)[:2]
                strength = np.sign(self._gold(first) - self._gold(second)) * 2.0
            elif choices == ["1", "2"] and "Reference moment:" in text:  # pairwise_ref: the described vs reference
                reference, described = re.findall(r"(?:Reference moment|Description):\n(.*?)(?:\n\n|$)", text, re.S)
                strength = np.sign(self._gold(described) - self._gold(reference)) * 2.0 + 0.5  # leans to "yes"
            elif choices == ["1", "2"] and "bad for the player" in text:  # pointwise_harm's second question
                strength = -2.0 + self._gold(text.split("Description:\n")[-1]) / 100.0
            elif choices == ["1", "2"]:  # pointwise: "1" = yes
                strength = self._gold(text.split("Description:\n")[-1]) / 5.0 - 1.0
            else:  # 1..10 rating
                score = min(10, 1 + self._gold(text))
                out.append({c: float(c == str(score)) for c in choices})
                continue
            p1 = float(calibration.sigmoid(strength + self.bias))
            out.append({"1": p1, "2": 1 - p1})
        return out

    def complete_batch(self, conversations, **sampling):  # chain of thought: a rationale that says nothing new
        self.stats.cache_misses += len(conversations)
        return ["Both moments look similar."] * len(conversations)


PAIRS = [("You see 9 gold pieces.", "It's a wall."), ("It's a wall.", "You see 3 gold pieces."),
         ("You see 2 gold pieces.", "You see 7 gold pieces.")]
TRUTH = np.array([1.0, 0.0, 0.0])


def test_difference_pair_keeps_only_what_differs_and_the_mission_once():
    pair = difference_pair("Mission: pick up the red box. You see a wall 1 step left, a red box 2 steps forward.",
                           "Mission: pick up the red box. You see a wall 1 step left. You carry a red box.")
    assert pair.mission == "pick up the red box"
    assert pair.first == "You see a red box 2 steps forward." and pair.second == "You carry a red box."
    status = difference_pair("You kill the newt! (Dlvl 1, gold 0, HP 14/14)", "It's a wall. (Dlvl 1, gold 5, HP 14/14)")
    assert (status.first, status.second) == ("You kill the newt! (gold 0)", "It's a wall. (gold 5)")
    assert difference_pair("Mission: a. X.", "Mission: b. X.").mission is None  # different missions stay put
    assert difference_pair("You see a wall 1 step left.", "You see a wall 1 step left.").same
    assert round_numbers("at 0.4837 m and 3 steps") == "at 0.5 m and 3 steps"
    assert total_steps("a key 2 steps forward and 1 step left") == "a key 3 steps away"


def test_calibration_removes_a_constant_position_bias():
    biased = make_strategy("pairwise", GoldJudge(bias=3.0), domain="nethack", goal=None).label(PAIRS)
    assert np.all(biased.forward > 0.5) and biased.position_consistency < 1.0  # always "1": position bias
    for name in ("pairwise_cf", "pairwise_bc"):
        judge = GoldJudge(bias=3.0)
        batch = make_strategy(name, judge, domain="nethack", goal=None).label(PAIRS)
        assert batch.position_consistency == 1.0, name
        assert np.array_equal(batch.label > 0.5, TRUTH > 0.5), name
    # content-free prompts: both descriptions are filler
    assert any("N/A" in m[-1]["content"] for m in judge.seen) is False  # batch calibration asks nothing extra
    prior = calibration.content_free_prior(GoldJudge(bias=3.0), lambda a, b: [{"role": "user", "content":
                                           f"Description 1:\n{a}\n\nDescription 2:\n{b}"}])
    assert prior == pytest.approx(3.0, abs=1e-6)


def test_calibrate_keeps_unknowns_and_identical_ties():
    batch = LabelBatch(label=np.array([0.5, np.nan], "f4"), forward=np.array([np.nan, np.nan], "f4"),
                       reverse=np.array([np.nan, np.nan], "f4"))
    out = calibration.calibrate(batch, 1.0)
    assert out.label[0] == 0.5 and np.isnan(out.label[1])
    with pytest.raises(ValueError, match="finite"):
        calibration.calibrate(batch, float("nan"))


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_strategy_ranks_gold(name):
    batch = make_strategy(name, GoldJudge(), domain="nethack", goal="The goal is gold.").label(PAIRS + [("a", "a")])
    assert np.array_equal(batch.label[:3] > 0.5, TRUTH > 0.5), name
    assert batch.label[3] == 0.5 and batch.llm_prompts > 0


def test_copy_answers_lose_the_position_bias_with_pmi():
    strong = GoldJudge(copy_bias=1.5)  # the description shown last is copied whatever it says
    raw = make_strategy("pairwise_copy", strong, domain="nethack", goal=None).label(PAIRS)
    assert raw.position_consistency == 0.0
    pmi = make_strategy("pairwise_copy_pmi", strong, domain="nethack", goal=None).label(PAIRS)
    assert pmi.position_consistency == 1.0 and np.array_equal(pmi.label > 0.5, TRUTH > 0.5)
    assert pmi.llm_prompts == 4 * len(PAIRS) and raw.llm_prompts == 2 * len(PAIRS)
    texts = [m[-1]["content"] for m in strong.seen]
    assert not any("Description 1" in t for t in texts) and sum("more progress" in t for t in texts) == 3 * 2 * 2


def test_copy_answers_refuse_a_provider_without_sequence_probabilities():
    @dataclass
    class Provider:
        backend: str = "litellm"
        name: str = "gpt"

    with pytest.raises(ValueError, match="local backend"):
        make_strategy("pairwise_copy", Provider(), domain="nethack", goal=None)


def test_fewshot_and_difference_prompts():
    judge = GoldJudge()
    make_strategy("pairwise_fewshot", judge, domain="minigrid", goal="The goal is to open the door.").label(PAIRS[:1])
    messages = judge.seen[0]
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    assert len(answers) == len(EXEMPLARS["minigrid"]) and sorted(set(answers)) == ["1", "2"]
    assert messages[0]["role"] == "system" and "9 gold" in messages[-1]["content"]
    from llm_reward.feedback.prompts import PairPrompt

    text = DifferencePairPrompt(PairPrompt("minigrid", "The goal is X.")).verdict("A.", "B.", "pick up the box")
    assert text[-1]["content"].count("pick up the box") == 1 and "Only what differs" in text[-1]["content"]
    reference = ReferencePairPrompt(PairPrompt("nethack", "The goal is gold.")).verdict("Gold!", "A wall.")[-1]
    assert reference["content"].index("A wall.") < reference["content"].index("Gold!")  # the reference comes first
    assert "more progress towards the goal than the reference" in reference["content"]
    with pytest.raises(ValueError, match="unknown judge strategy"):
        make_strategy("pairwise_magic", judge, domain="nethack", goal=None)


def _pairset(family: str) -> list[dict]:
    return [json.loads(line) for line in (PAIRSETS / f"{family}.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("family", ["minigrid", "nethack"])
def test_stored_pair_sets_are_consistent(family):
    rows = _pairset(family)
    assert [r["pair_id"] for r in rows] == list(range(len(rows)))
    quick = [r for r in rows if r["quick"]]
    assert 8 <= len(quick) < len(rows) and rows[: len(quick)] == quick  # quick pairs come first
    for r in rows:
        assert r["caption_a"] != r["caption_b"] and r["class_a"] != r["class_b"]
        assert r["oracle"] == (1.0 if r["class_a"] > r["class_b"] else 0.0)
    oracle = np.array([r["oracle"] for r in rows])
    assert 0.3 < oracle.mean() < 0.7  # the better side is first about half of the time
    if family == "nethack":
        assert all(r["status_caption_a"].startswith(r["caption_a"]) for r in rows)


def test_benchmark_cell_on_a_scripted_judge(monkeypatch):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import judge_quality

    rows = [{"pair_id": i, "env_id": "NetHackScore-v0", "env_goal": None, "caption_a": a, "caption_b": b,
             "oracle": t} for i, ((a, b), t) in enumerate(zip(PAIRS * 4, np.tile(TRUTH, 4), strict=True))]
    cell = judge_quality.run_cell("pairwise", "nethack", rows, GoldJudge(bias=3.0), cot_pairs=2)
    assert set(cell["cf_prior"]) == {"NetHackScore-v0"}
    metrics = judge_quality.measure(cell, rows)
    assert metrics["oracle_agreement"] == 1.0 and metrics["position_consistency"] < 1.0
    calibrated = judge_quality.measure(judge_quality.derive(cell, rows, "cf"), rows)
    assert calibrated["position_consistency"] == 1.0 and calibrated["llm_calls"] == 0
    # the reward model fitted on the judge's labels predicts its held-out labels; on labels that contradict
    # themselves (each pair answered both ways across its copies) it cannot, so the measure does discriminate
    assert metrics["rm_heldout_accuracy"] == 1.0
    contradictory = {**cell, "label": np.tile([1.0, 0.0], len(rows) // 2).tolist()}
    assert judge_quality.measure(contradictory, rows)["rm_heldout_accuracy"] < 0.5
    # Copy answers name no position: no content-free prior, only the batch calibration.
    copy = judge_quality.run_cell("pairwise_copy", "nethack", rows, GoldJudge(copy_bias=1.5), cot_pairs=2)
    assert copy["cf_prior"] == {} and judge_quality.derive(copy, rows, "cf") is None
    assert judge_quality.measure(judge_quality.derive(copy, rows, "bc"), rows)["position_consistency"] == 1.0
    # A pointwise cell keeps the judge's caption scores, and its reward model is also measured with dense pairs.
    pointwise = judge_quality.run_cell("pointwise", "nethack", rows, GoldJudge(), cot_pairs=2)
    assert set(pointwise["caption_scores"]["NetHackScore-v0"]) == {c for pair in PAIRS for c in pair}
    assert judge_quality.measure(pointwise, rows)["rm_heldout_accuracy_dense"] == 1.0
    # Paired difference against the default on the same pairs: right on 12 pairs vs wrong on the same 12.
    wrong = {**pointwise, "label": (1.0 - np.array(pointwise["label"])).tolist()}
    versus = judge_quality.paired_difference(pointwise, wrong, rows)
    assert versus["difference"] == 1.0 and versus["ci95"] == [1.0, 1.0] and versus["n_pairs"] == 12


def test_benchmark_defaults_are_the_library_defaults():
    """The strategy and dense pairs the benchmark's headline keys report are what a run of each family uses."""
    from hydra import compose, initialize_config_module

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import judge_quality

    envs = {"minigrid": "minigrid/doorkey_8x8", "nethack": "nethack/score", "robotics": "robotics/fetch_reach"}
    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        for family, env in envs.items():
            cfg = compose("train", overrides=[f"env={env}"])
            assert judging_spec(cfg.feedback.strategy).name == judge_quality.DEFAULTS[family], family
            assert cfg.reward_model.dense_pairs == judge_quality.DENSE_PAIRS, family


def test_fewshot_without_exemplars_asks_the_plain_question_and_says_so(caplog):
    plain = make_strategy("pointwise", GoldJudge(), domain="adroit", goal="The goal is to open the door.")
    with caplog.at_level("WARNING"):
        fewshot = make_strategy("pointwise_fewshot", GoldJudge(), domain="adroit", goal="The goal is to open the door.")
    assert "no exemplars for 'adroit'" in caplog.text
    np.testing.assert_array_equal(fewshot(PAIRS), plain(PAIRS))


def test_slices_never_overwrite_the_full_run_or_each_other():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import argparse

    import judge_quality

    def suffix(**changes) -> str:
        args = {"max_pairs": None, "families": None, "strategies": list(judge_quality.STRATEGIES),
                "dense_pairs": judge_quality.DENSE_PAIRS, **changes}
        return judge_quality.slice_suffix(argparse.Namespace(**args))

    assert suffix() == ""
    assert suffix(max_pairs=30) == "_30pairs" and suffix(families=["nethack"]) == "_allpairs_nethack"
    assert suffix(dense_pairs=4000) == "_allpairs_dense4000"
    assert len({suffix(strategies=["pointwise"]), suffix(strategies=["pairwise"])}) == 2


@pytest.mark.slow
def test_strategies_on_the_embedded_tiny_model(tmp_path):
    from llm_reward.llm import make_llm

    llm = make_llm("local:tiny", cache=tmp_path / "cache.sqlite", n_threads=1)
    pairs = [("You kill the newt!", "It's a wall.")]
    for name in ("pointwise", "pairwise_diff_cf", "pairwise_copy_pmi"):
        batch = make_strategy(name, llm, domain="nethack", goal=None).label(pairs)
        assert np.isfinite(batch.label[0]) and np.isfinite(batch.forward[0]), name  # an answer, not "unknown"
    assert llm.stats.cache_misses == 2 + 2 + len(calibration.CONTENT_FREE) + 4


def test_every_named_strategy_is_a_combination_of_the_four_questions_and_a_node_builds_it():
    """The measured strategies are data (one of four question classes and its fields), named back to the same name:
    a ``_target_`` node and the name build the same labeler, with the same fingerprint (the label store's key)."""
    from omegaconf import OmegaConf

    for name, spec in STRATEGIES.items():
        assert spec.name == name
        node = OmegaConf.create({"_target_": f"{type(spec).__module__}.{type(spec).__name__}",
                                 **{k: getattr(spec, k) for k in spec.__dataclass_fields__}})
        assert judging_spec(node) == spec
        by_node = make_strategy(node, GoldJudge(), domain="nethack", goal=None)
        assert by_node.fingerprint == make_strategy(name, GoldJudge(), domain="nethack", goal=None).fingerprint
    with pytest.raises(ValueError, match="_target_"):
        judging_spec({"_target_": "os.system", "command": "true"})
    with pytest.raises(ValueError, match="PairQuestion"):
        judging_spec({"_target_": "llm_reward.feedback.strategies.PairQuestion", "exemplars": True})
