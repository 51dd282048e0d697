"""Prompts, verdict parsing, labelers, pair sampling and the resumable label store (scripted fake judge)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from llm_reward.feedback.annotate import annotate, sample_pairs
from llm_reward.feedback.labelers import LLMPreferenceLabeler, agreement, oracle_labels, position_consistency
from llm_reward.feedback.prompts import PairPrompt, goal_sentence, parse_verdict
from llm_reward.feedback.store import LabelStore, StoreMismatchError


@dataclass
class _Stats:
    cache_hits: int = 0
    cache_misses: int = 0


@dataclass
class ScriptedJudge:
    """Prefers the description with more gold; ``bias`` adds probability to answer "1" whatever is shown."""

    bias: float = 0.0
    answers: list[str] = field(default_factory=list)  # scripted free-text answers, consumed in order
    name: str = "scripted"
    stats: _Stats = field(default_factory=_Stats)
    prompts: list = field(default_factory=list)

    @staticmethod
    def _gold(messages, index):
        text = messages[-1]["content"] if index is None else messages[index]["content"]
        first, second = re.findall(r"Description \d:\n(.*?)\n", text + "\n")[:2]
        count = lambda s: int(m.group(1)) if (m := re.search(r"(\d+) gold", s)) else 0
        return count(first), count(second)

    def choice_probs_batch(self, batch, choices):
        self.prompts += batch
        self.stats.cache_misses += len(batch)
        out = []
        for messages in batch:
            a, b = self._gold(messages, 1)
            p1 = 0.9 if a > b else 0.1
            p1 = min(1.0, p1 + self.bias)
            out.append({"1": p1, "2": 1 - p1})
        return out

    def complete_batch(self, batch, **kw):
        self.prompts += batch
        self.stats.cache_misses += len(batch)
        return [self.answers.pop(0) for _ in batch]


def test_goal_variants():
    assert "gold" in goal_sentence("nethack", "gold")
    assert goal_sentence("nethack", "zero_knowledge") is None
    assert goal_sentence("minigrid", "default", env_goal="open the door") == "The goal is to open the door."
    assert goal_sentence("minigrid", "text:Find the ball.") == "Find the ball."
    with pytest.raises(ValueError, match="unknown goal variant 'golf'"):
        goal_sentence("nethack", "golf")
    with pytest.raises(ValueError, match="no default goal"):
        goal_sentence("minigrid", "default")


def test_prompt_contains_both_captions_in_order_and_goal():
    prompt = PairPrompt("nethack", goal=goal_sentence("nethack", "gold"), chain_of_thought=True)
    text = prompt.motif("You see 3 gold pieces.", "It is dark.")[-1]["content"]
    assert text.index("You see 3 gold pieces.") < text.index("It is dark.")
    assert "collect as much gold" in text and "Verdict: none" in text
    assert "single digit" in prompt.rlaif("a", "b")[-1]["content"]


@pytest.mark.parametrize("answer, expected", [
    ("Verdict: 1", 1.0), ("verdict: 2", 0.0), ("**Verdict:** none", 0.5), ("Verdict - 2", 0.0),
    ("Description 1 has gold. Verdict: 1 would be wrong... final Verdict: 2", 0.0),  # last match wins
    ("I think the first one.", None), ("", None), ("Verdict: 12", None),
])
def test_parse_verdict(answer, expected):
    assert parse_verdict(answer) == expected


def test_rlaif_both_orders_cancels_position_bias():
    pairs = [("You have 5 gold.", "You have 1 gold."), ("You have 0 gold.", "You have 9 gold.")]
    biased = ScriptedJudge(bias=0.3)
    one_way = LLMPreferenceLabeler(biased, PairPrompt("nethack", None), mode="rlaif", both_orders=False).label(pairs)
    both = LLMPreferenceLabeler(ScriptedJudge(bias=0.3), PairPrompt("nethack", None), mode="rlaif").label(pairs)
    # One order: the bias pushes the second pair's label up from 0.1 to 0.4.
    np.testing.assert_allclose(one_way.label, [1.0, 0.4], atol=1e-6)
    # Both orders: pair 0 is (1.0 + (1 - 0.4)) / 2, pair 1 is (0.4 + (1 - 1.0)) / 2: the bias no longer decides.
    np.testing.assert_allclose(both.label, [0.8, 0.2], atol=1e-6)
    assert both.llm_prompts == 4
    assert position_consistency(both.forward, both.reverse) == 1.0


class PointwiseJudge:
    """P(yes) = gold / 10 for the one description it is shown, plus a constant ``bias`` towards "yes"."""

    name, bias = "pointwise-scripted", 0.05

    def __init__(self):
        self.stats, self.prompts = _Stats(), []

    def choice_probs_batch(self, batch, choices):
        self.prompts += batch
        out = []
        for messages in batch:
            text = messages[-1]["content"]
            assert "Description 2" not in text  # one caption per prompt
            gold = int(m.group(1)) if (m := re.search(r"(\d+) gold", text)) else 0
            yes = min(0.99, gold / 10 + self.bias)
            out.append({"1": yes, "2": 1 - yes})
        return out


def test_pointwise_mode_asks_each_caption_once_and_labels_by_bradley_terry():
    judge = PointwiseJudge()
    labeler = LLMPreferenceLabeler(judge, PairPrompt("nethack", None), mode="pointwise")
    pairs = [("You have 5 gold.", "You have 1 gold."), ("You have 1 gold.", "You have 9 gold."),
             ("You have 5 gold.", "You have 9 gold."), ("same", "same")]
    out = labeler.label(pairs)
    assert len(judge.prompts) == 3 and out.llm_prompts == 3  # three distinct captions; the tie asks nothing
    logit = lambda p: np.log(p / (1 - p))
    expected = 1 / (1 + np.exp(-(logit(0.55) - logit(0.15))))
    np.testing.assert_allclose(out.label[0], expected, rtol=1e-5)
    assert out.label[1] < 0.5 < out.label[0] and out.label[2] < 0.5 and out.label[3] == 0.5
    assert np.isnan(out.reverse).all()
    assert labeler.fingerprint["mode"] == "pointwise" and "both_orders" not in labeler.fingerprint
    with pytest.raises(ValueError, match="pointwise"):
        LLMPreferenceLabeler(judge, PairPrompt("nethack", None), mode="pairwise")


def test_pointwise_caption_scores_are_stored_and_shuffled_with_the_labels(tmp_path):
    """The scores behind pointwise labels reach the store and the fit stage; the shuffled control permutes them."""
    from llm_reward.motif.stages import annotate_stage, shuffle_labels

    labeler = LLMPreferenceLabeler(PointwiseJudge(), PairPrompt("nethack", None), mode="pointwise")
    pairs = sample_pairs(_rollouts(), 32, seed=0)
    labelled, _ = annotate_stage(pairs, labeler, store_path=tmp_path / "labels.sqlite", batch_size=8,
                                 progress=False)
    scores = labelled.attrs["caption_scores"]
    assert set(scores) == {c for a, b in zip(pairs.caption_a, pairs.caption_b) if a != b for c in (a, b)}
    for row in labelled.itertuples():  # every label is the Bradley-Terry of the two stored scores
        if row.caption_a != row.caption_b:
            np.testing.assert_allclose(row.label, 1 / (1 + np.exp(scores[row.caption_b] - scores[row.caption_a])),
                                       rtol=1e-4)
    store = LabelStore(tmp_path / "labels.sqlite", labeler.fingerprint)
    assert store.caption_scores() == pytest.approx(scores)
    store.close()
    shuffled = shuffle_labels(labelled, seed=1).attrs["caption_scores"]
    assert set(shuffled) == set(scores) and sorted(shuffled.values()) == pytest.approx(sorted(scores.values()))
    assert shuffled != pytest.approx(scores)


def test_identical_captions_are_ties_without_llm_calls():
    judge = ScriptedJudge()
    labeler = LLMPreferenceLabeler(judge, PairPrompt("nethack", None), mode="rlaif")
    out = labeler.label([("same", "same"), ("You have 2 gold.", "You have 1 gold.")])
    assert out.label[0] == 0.5 and out.label[1] > 0.5
    assert len(judge.prompts) == 2  # only the distinct pair, in two orders


def test_motif_mode_retries_then_unknown():
    answers = ["Analysis... Verdict: 1", "no verdict here", "Verdict: 2", "still nothing"]
    # Pair 0 forward -> 1; pair 0 reverse -> unparseable, retry -> "Verdict: 2" (swapped: first preferred).
    # Pair 1 (single order) is scripted below.
    judge = ScriptedJudge(answers=answers[:2] + answers[2:3])
    labeler = LLMPreferenceLabeler(judge, PairPrompt("nethack", None), mode="motif")
    out = labeler.label([("A", "B")])
    assert out.label[0] == 1.0 and out.retries == 1
    judge = ScriptedJudge(answers=["garbage", "more garbage"])
    out = LLMPreferenceLabeler(judge, PairPrompt("nethack", None), mode="motif", both_orders=False).label([("A", "B")])
    assert np.isnan(out.label[0]) and out.retries == 1


def test_oracle_labels_and_agreement():
    labels = oracle_labels([3, 1, 2], [1, 3, 2])
    np.testing.assert_array_equal(labels, [1.0, 0.0, 0.5])
    assert agreement(np.array([0.9, 0.2, 0.5], np.float32), labels) == 1.0
    assert agreement(np.array([0.1, 0.2, 0.5], np.float32), labels) == 0.5
    with pytest.raises(ValueError, match="NaN"):
        oracle_labels([np.nan], [1.0])


def _rollouts(n=50):
    return pd.DataFrame({"caption": [f"You have {i % 10} gold." for i in range(n)],
                         "progress": [i % 10 for i in range(n)]})


def test_sample_pairs_deterministic_and_distinct_observations():
    a = sample_pairs(_rollouts(), 200, seed=3)
    b = sample_pairs(_rollouts(), 200, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["pair_id", "caption_a", "caption_b", "progress_a", "progress_b"]
    unique = sample_pairs(_rollouts(), 100, unique_captions=True)
    assert (unique["caption_a"] != unique["caption_b"]).all()  # 10 distinct captions, never paired with itself
    with pytest.raises(ValueError, match="at least 2"):
        sample_pairs(_rollouts(1), 5)
    with pytest.raises(ValueError, match="'caption' column"):
        sample_pairs(pd.DataFrame({"text": ["a", "b"]}), 5)


def test_store_resumes_after_crash_and_refuses_other_config(tmp_path):
    pairs = sample_pairs(_rollouts(), 64, seed=0)
    path = tmp_path / "labels.sqlite"

    class Crash(ScriptedJudge):
        calls = 0

        def choice_probs_batch(self, batch, choices):
            Crash.calls += 1
            if Crash.calls == 3:
                raise KeyboardInterrupt
            return super().choice_probs_batch(batch, choices)

    labeler = LLMPreferenceLabeler(Crash(), PairPrompt("nethack", None), mode="rlaif")
    store = LabelStore(path, labeler.fingerprint)
    with pytest.raises(KeyboardInterrupt):
        annotate(pairs, labeler, store, batch_size=16, progress=False)
    assert len(store) == 32  # two committed batches survive
    store.close()

    fresh = ScriptedJudge()
    labeler = LLMPreferenceLabeler(fresh, PairPrompt("nethack", None), mode="rlaif")
    store = LabelStore(path, labeler.fingerprint)
    report = annotate(pairs, labeler, store, batch_size=16, progress=False)
    assert len(store) == 64 and report.pairs_new == 32
    assert report.pairs_labelled == 64 and report.unknown_rate == 0.0
    assert report.oracle_agreement == 1.0  # the scripted judge prefers more gold, like the oracle
    assert report.identical_ties == int((pairs.iloc[32:]["caption_a"] == pairs.iloc[32:]["caption_b"]).sum())
    store.close()

    other = LLMPreferenceLabeler(ScriptedJudge(), PairPrompt("nethack", "Collect gold."), mode="rlaif")
    with pytest.raises(StoreMismatchError, match="goal"):
        LabelStore(path, other.fingerprint)
    store = LabelStore(path, labeler.fingerprint)
    with pytest.raises(StoreMismatchError, match="different pair sample"):
        store.missing(sample_pairs(_rollouts(), 64, seed=1))


def test_each_goal_variant_gets_its_own_label_store_and_reward_model():
    """A goal sweep (Motif's goal variants) must not reopen the default goal's store, which would refuse it."""
    from hydra import compose, initialize_config_module

    from llm_reward.conf import goal_tag

    sentence = "text:The goal is to fight: kill, then descend."
    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        configs = {goal: compose("train", overrides=["env=nethack/score", "reward=motif", f"feedback.goal='{goal}'"])
                   for goal in ("default", "gold", "zero_knowledge", sentence)}
    for kind in ("labels", "reward_model"):
        assert len({str(cfg.paths[kind]) for cfg in configs.values()}) == 4, kind
    # reward=oracle swaps the labeler part of the path for "oracle": it must be there whatever the goal.
    assert all(f"_{cfg.paths.labeler}_" in cfg.paths.reward_model for cfg in configs.values())
    assert goal_tag("default") == "" and "_pointwise_pointwise_fewshot_local_" in configs["default"].paths.labels
    assert goal_tag("gold") == "_goal-gold" and "_fewshot_goal-gold_local_" in configs["gold"].paths.reward_model
    assert goal_tag(sentence).startswith("_goal-") and goal_tag(sentence) != goal_tag(sentence + " Fast.")


def test_feedback_strategy_key_builds_that_strategy_and_keys_its_own_store():
    """``feedback.strategy`` swaps the labeler for a measured prompting strategy; pointwise feedback defaults to the
    few-shot one, and null asks the plain question. Labels asked another way never share a store."""
    from hydra import compose, initialize_config_module

    from llm_reward.apps._common import labeler_from_config
    from llm_reward.feedback.strategies import PairwiseStrategy, PointwiseStrategy

    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        default = compose("train", overrides=["env=minigrid/doorkey_5x5"])
        plain = compose("train", overrides=["env=minigrid/doorkey_5x5", "feedback.strategy=null"])
        chosen = compose("train", overrides=["env=minigrid/doorkey_5x5", "feedback.strategy=pairwise_diff_bc"])
        robot = compose("train", overrides=["env=robotics/fetch_reach"])
        robot_plain = compose("train", overrides=["env=robotics/fetch_reach", "feedback.strategy=null"])
        typo = compose("train", overrides=["env=minigrid/doorkey_5x5", "feedback.strategy=pointwise_fewshoot"])
    assert plain.feedback.strategy is None
    from llm_reward.feedback.strategies import PointwiseQuestion, judging_spec

    # the default is a structured config (_target_), the same questions as the measured "pointwise_fewshot"
    assert judging_spec(default.feedback.strategy) == judging_spec(robot.feedback.strategy) == PointwiseQuestion(
        exemplars=True)
    assert judging_spec(default.feedback.strategy).name == "pointwise_fewshot"
    assert "_pointwise_pointwise_fewshot_local_" in default.paths.labels
    assert "_pointwise_local_" in plain.paths.labels and "_pointwise_pairwise_diff_bc_local_" in chosen.paths.labels
    assert "_pointwise_pointwise_fewshot_local_" in robot.paths.reward_model
    assert robot_plain.paths.labels != robot.paths.labels

    judge = ScriptedJudge()
    assert isinstance(labeler_from_config(plain, judge), LLMPreferenceLabeler)
    assert isinstance(labeler_from_config(default, judge), PointwiseStrategy)
    pairwise = labeler_from_config(chosen, judge)
    assert isinstance(pairwise, PairwiseStrategy) and pairwise.calibration == "batch"
    labels = pairwise([("You see 3 gold.", "You see 1 gold."), ("You see 1 gold.", "You see 5 gold.")])
    assert labels.shape == (2,) and labels[0] > 0.5 > labels[1]
    assert isinstance(labeler_from_config(robot, judge), PointwiseStrategy)
    from llm_reward.apps._common import ConfigError

    with pytest.raises(ConfigError, match="feedback.strategy: unknown judge strategy 'pointwise_fewshoot'"):
        labeler_from_config(typo, judge)


def test_hard_and_soft_targets():
    from llm_reward.motif.stages import to_targets

    label = np.array([0.52, 0.48, 0.5, np.nan], dtype=np.float32)
    np.testing.assert_array_equal(to_targets(label, "hard")[:3], [1.0, 0.0, 0.5])
    assert np.isnan(to_targets(label, "hard")[3])
    np.testing.assert_array_equal(to_targets(label, "soft")[:3], label[:3])
    with pytest.raises(ValueError, match="targets"):
        to_targets(label, "fuzzy")
