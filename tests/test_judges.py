"""The shared judges: both-order averaging, chain of thought, 1-10 scoring with a two-token "10", probability checks."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pytest

from llm_reward.feedback.judges import (PairwiseJudge, PointwiseScorer, ScoreJudge, bradley_terry_labels,
                                        expected_score, rescale_score)
from llm_reward.feedback.labelers import LLMPreferenceLabeler
from llm_reward.feedback.prompts import PairPrompt
from llm_reward.feedback.text_prompts import PairExample, ResponsePairPrompt, ResponseScorePrompt
from llm_reward.llm.errors import LLMCapabilityError, LLMOutputError
from llm_reward.llm.local import _sequence_mass
from llm_reward.llm.remote import choice_probs_from_top_logprobs


@dataclass
class FakeLLM:
    """Prefers the answer with more exclamation marks; ``bias`` is extra P("1") whatever is shown."""

    bias: float = 0.0
    name: str = "fake"
    cache: object = None
    seen: list = field(default_factory=list)
    completions: list = field(default_factory=list)
    score_probs: dict | None = None
    fail: Exception | None = None

    def choice_probs_batch(self, conversations, choices):
        if self.fail is not None:
            raise self.fail
        self.seen += [(c, tuple(choices)) for c in conversations]
        out = []
        for messages in conversations:
            if len(choices) == 10:
                out.append(self.score_probs)
                continue
            text = "\n".join(m["content"] for m in messages)
            first, second = re.findall(r"Answer \d: (.*?)\n", text)[-2:]
            p1 = 0.9 if first.count("!") > second.count("!") else 0.1
            p1 = min(1.0, p1 + self.bias)
            out.append({"1": p1, "2": 1 - p1})
        return out

    def complete_batch(self, conversations, **sampling):
        self.completions += conversations
        return ["Answer 1 is louder." for _ in conversations]


def test_both_orders_average_cancels_position_bias_and_reports_consistency():
    llm = FakeLLM(bias=0.3)
    judge = PairwiseJudge(llm, ResponsePairPrompt())
    batch = judge.label([("Go!!", "go"), ("go", "Go!!")], contexts=["q1", "q2"])
    # Forward: 0.9 + 0.3 -> 1.0 and 0.1 + 0.3 = 0.4; swapped: 0.4 -> 1 - 0.4 = 0.6 and 1.0 -> 0.0.
    np.testing.assert_allclose(batch.forward, [1.0, 0.4], atol=1e-6)
    np.testing.assert_allclose(batch.reverse, [0.6, 0.0], atol=1e-6)
    np.testing.assert_allclose(batch.label, [0.8, 0.2], atol=1e-6)
    assert batch.llm_prompts == 4 and batch.position_consistency == 1.0
    contexts = [m[-1]["content"].split("Question: ")[1].split("\n")[0] for m, _ in llm.seen]
    assert contexts == ["q1", "q2", "q1", "q2"]  # each ordered pair keeps its own prompt
    one_way = PairwiseJudge(FakeLLM(bias=0.3), ResponsePairPrompt(), both_orders=False).label([("go", "Go!!")])
    assert math.isclose(float(one_way.label[0]), 0.4, abs_tol=1e-6) and np.isnan(one_way.reverse[0])


def test_identical_answers_tie_without_asking():
    llm = FakeLLM()
    batch = PairwiseJudge(llm, ResponsePairPrompt()).label([("same", "same")])
    assert batch.label[0] == 0.5 and llm.seen == []


def test_chain_of_thought_reads_the_verdict_after_the_rationale():
    llm = FakeLLM()
    judge = PairwiseJudge(llm, ResponsePairPrompt(few_shot=(PairExample("q", "a!", "b", 1),)), chain_of_thought=True)
    batch = judge.label([("Go!!", "go")], contexts=["What now?"])
    assert batch.label[0] == pytest.approx(0.9)
    assert len(llm.completions) == 2 and "Do not state a final verdict" in llm.completions[0][-1]["content"]
    verdict_chat = llm.seen[0][0]
    assert [m["role"] for m in verdict_chat] == ["user", "assistant", "user"]
    assert verdict_chat[1]["content"] == "Answer 1 is louder." and "digit only" in verdict_chat[2]["content"]
    assert "Better: 1" in verdict_chat[0]["content"]  # the few-shot example


def test_caption_labeler_is_the_shared_judge_with_unchanged_prompts():
    """The Motif labeler's rlaif path sends exactly PairPrompt.rlaif messages with choices 1/2 (cache keys stable)."""
    calls = []

    class Recorder:
        name, cache = "rec", None

        def choice_probs_batch(self, conversations, choices):
            calls.append((conversations, choices))
            return [{"1": 0.7, "2": 0.3} for _ in conversations]

    prompt = PairPrompt("nethack", None)
    labels = LLMPreferenceLabeler(Recorder(), prompt, mode="rlaif").label([("a", "b")])
    assert calls == [([prompt.rlaif("a", "b"), prompt.rlaif("b", "a")], ["1", "2"])]
    assert labels.label[0] == pytest.approx(0.5)  # 0.7 forward, 1 - 0.7 swapped


def test_pointwise_scorer_asks_each_item_once_and_bradley_terry():
    class Yes:
        name, cache, seen = "yes", None, []

        def choice_probs_batch(self, conversations, choices):
            self.seen += conversations
            return [{"1": 0.8 if "gold" in m[0]["content"] else 0.5, "2": 0.0} for m in conversations]

    llm = Yes()
    scorer = PointwiseScorer(llm, lambda item: [{"role": "user", "content": item}])
    np.testing.assert_allclose(scorer.yes_probs(["gold", "wall", "gold"]), [0.8, 0.5, 0.8])
    assert len(llm.seen) == 2 and scorer.prompts_sent == 2
    assert bradley_terry_labels(np.array([0.8]), np.array([0.5]))[0] == pytest.approx(0.8, abs=1e-6)


def test_score_weighting_and_rescaling():
    assert expected_score(np.array([[0.0] * 9 + [1.0]]))[0] == 10.0
    np.testing.assert_allclose(rescale_score(np.array([1.0, 5.5, 10.0])), [-1.0, 0.0, 1.0])
    probs = {str(i): 0.0 for i in range(1, 11)}
    probs.update({"7": 0.5, "10": 0.5})
    llm = FakeLLM(score_probs=probs)
    judge = ScoreJudge(llm, ResponseScorePrompt())
    assert judge.expected_scores(["ok"], contexts=["q"])[0] == pytest.approx(8.5)
    assert judge.scores(["ok"])[0] == pytest.approx(2 * 7.5 / 9 - 1)
    assert llm.seen[0][1] == tuple(str(i) for i in range(1, 11))


def test_multi_token_ten_splits_the_mass_of_its_first_token():
    """"1" and "10" share the token "1": P("1") = P(1)(1 - P(0|1)), P("10") = P(1) P(0|1)."""
    vocab = {"1": 0, "0": 1, "2": 2, "x": 3}
    after = {(): np.array([0.5, 0.0, 0.3, 0.2]), (0,): np.array([0.1, 0.6, 0.1, 0.2])}
    spelled = {"1": [0], "2": [2], "10": [0, 1]}
    mass = _sequence_mass(lambda prefix: after[tuple(prefix)], spelled)
    assert mass == pytest.approx({"1": 0.5 * 0.4, "2": 0.3, "10": 0.5 * 0.6})
    assert vocab  # the spelling above: ids of a digit-splitting tokenizer


def test_remote_splits_ten_from_the_second_position():
    top = [("1", math.log(0.6)), ("2", math.log(0.3)), ("x", math.log(0.1))]
    probs = choice_probs_from_top_logprobs(top, ["1", "2", "10"], continuation=("1", [("0", math.log(0.5))]))
    assert probs == pytest.approx({"1": 0.3 / 0.9, "2": 0.3 / 0.9, "10": 0.3 / 0.9})
    single = choice_probs_from_top_logprobs([("10", math.log(0.8)), ("1", math.log(0.2))], ["1", "10"])
    assert single == pytest.approx({"1": 0.2, "10": 0.8})  # a tokenizer with "10" as one token


def test_judge_without_probabilities_fails_its_check():
    judge = ScoreJudge(FakeLLM(fail=LLMOutputError("no probability on any of ...")), ResponseScorePrompt())
    with pytest.raises(LLMCapabilityError, match="no usable probabilities"):
        judge.check()
    judge = PairwiseJudge(FakeLLM(fail=LLMCapabilityError("returned no log-probs")), ResponsePairPrompt())
    with pytest.raises(LLMCapabilityError, match="log-probs"):
        judge.check()


#: How far one probability of the embedded models moves between two decode paths (the prompt decoded in one batch,
#: or its last token decoded alone onto the cached prefix) and across CPUs: up to 0.0035 here with one thread
#: (``benchmarks/results/judge_reproducibility_tiny.json``, ``python benchmarks/judge_reproducibility.py
#: --tiny-only``), 0.016 on an AVX2-only
#: EPYC machine (0.4929 against 0.5092). The tolerance is three times the larger; a wrong formula for a two-token
#: answer moves the probability by P(1) * P(0 | 1), 0.15 on the test's prompt.
PATH_TOLERANCE = 0.05


@pytest.mark.slow
def test_tiny_model_ten_is_two_tokens_and_scored_exactly():
    """On the real SmolLM2 GGUF, P("10") equals P(1) * P(0 | 1) read from the model's own logits, up to how far
    llama.cpp's logits move between decode paths (:data:`PATH_TOLERANCE`)."""
    from llm_reward.llm import make_llm

    llm = make_llm("local:tiny", cache=False)
    model = llm.model
    one, zero = (model.tokenize(t.encode(), add_bos=False, special=False) for t in ("1", "0"))
    assert len(one) == 1 and model.tokenize(b"10", add_bos=False, special=False) == one + zero
    # a response the model rates 10 often (P("10") ~ 0.3): the wrong formula's error, P(1) * P(0 | 1), is then
    # about three times PATH_TOLERANCE on any CPU; on an ordinary response it is a few hundredths, inside the noise
    messages = ResponseScorePrompt().score("10", context="Say ten.")
    choices = [str(i) for i in range(1, 11)]
    probs = llm.choice_probs(messages, choices)
    assert sum(probs.values()) == pytest.approx(1.0)
    tokens = llm.tokens(messages)
    first = llm._next_token_probs(tokens)
    then = llm._next_token_probs(tokens + one)
    digits = [model.tokenize(c.encode(), add_bos=False, special=False)[0] for c in choices[:9]]
    raw = {c: first[t] for c, t in zip(choices[:9], digits)}
    raw["10"] = first[one[0]] * then[zero[0]]
    raw["1"] = first[one[0]] * (1 - then[zero[0]])
    total = sum(raw.values())
    for c in choices:
        assert probs[c] == pytest.approx(raw[c] / total, abs=PATH_TOLERANCE)
    # the formula matters more than the tolerance: without P(0 | 1) taken out of P("1") the answer moves by more
    wrong = {**raw, "1": first[one[0]]}
    assert max(abs(probs[c] - wrong[c] / sum(wrong.values())) for c in choices) > PATH_TOLERANCE
