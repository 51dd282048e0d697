"""The LLM layer: interface, cache, errors, litellm plumbing (scripted, offline) and the real embedded models."""

from __future__ import annotations

import multiprocessing as mp
import random
from typing import Iterator

import numpy as np
import pytest

from llm_reward.llm import (LLM, LLMCallError, LLMCapabilityError, LLMConfigError, LLMOutputError, ResultCache,
                            make_llm)
from llm_reward.llm.base import Sampling
from llm_reward.llm.remote import LiteLLM, choice_probs_from_top_logprobs


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


class ScriptedLLM(LLM):
    """Answers by rule, yields results out of order, and counts what reached the 'model'."""

    backend = "scripted"

    def __init__(self, cache: ResultCache | None = None, empty: bool = False):
        super().__init__("scripted-v1", cache=cache)
        self.calls = 0
        self.empty = empty

    def _complete(self, conversations, sampling: Sampling) -> Iterator[tuple[int, str]]:
        for i in reversed(range(len(conversations))):
            self.calls += 1
            yield i, "" if self.empty else conversations[i][-1]["content"].upper()

    def _choice_probs(self, conversations, choices) -> Iterator[tuple[int, dict[str, float]]]:
        for i in reversed(range(len(conversations))):
            self.calls += 1
            first = "first" in conversations[i][-1]["content"]
            yield i, {choices[0]: 0.8 if first else 0.2, choices[1]: 0.2 if first else 0.8}


def test_batch_results_in_order_and_single_forms():
    llm = ScriptedLLM()
    assert llm.complete_batch([chat("a"), chat("b"), chat("c")]) == ["A", "B", "C"]
    assert llm.complete(chat("x"), max_tokens=3) == "X"
    probs = llm.choice_probs_batch([chat("first"), chat("second")], ["1", "2"])
    assert probs == [{"1": 0.8, "2": 0.2}, {"1": 0.2, "2": 0.8}]
    assert llm.choice_probs(chat("first"), ["1", "2"])["1"] == 0.8


def test_cache_serves_reruns_across_instances(tmp_path):
    path = tmp_path / "cache.sqlite"
    first = ScriptedLLM(ResultCache(path))
    prompts = [chat(f"p{i}") for i in range(10)]
    assert first.complete_batch(prompts) == [f"P{i}" for i in range(10)]
    assert (first.calls, first.stats.cache_misses, first.stats.cache_hits) == (10, 10, 0)

    second = ScriptedLLM(ResultCache(path))
    assert second.complete_batch(prompts) == [f"P{i}" for i in range(10)]
    assert second.calls == 0 and second.stats.cache_hits == 10
    # Different sampling parameters are a different request.
    second.complete_batch(prompts[:2], temperature=0.7)
    assert second.calls == 2


def test_duplicates_within_a_batch_are_answered_once():
    llm = ScriptedLLM()
    assert llm.complete_batch([chat("a"), chat("a"), chat("b")]) == ["A", "A", "B"]
    assert llm.calls == 2 and llm.stats.prompts == 3 and llm.stats.cache_hits == 1


def _write_many(path: str, offset: int) -> None:
    cache = ResultCache(path)
    for i in range(200):
        cache.put(f"key{offset + i}", {"value": offset + i})


def test_cache_is_safe_with_concurrent_processes(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    ResultCache(path)
    procs = [mp.get_context("spawn").Process(target=_write_many, args=(path, k * 1000)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = ResultCache(path)
    assert len(cache) == 600
    assert cache.get_many(["key1005", "key2199"]) == {"key1005": {"value": 1005}, "key2199": {"value": 2199}}


@pytest.mark.parametrize("params, field", [
    ({"max_tokens": 0}, "max_tokens"), ({"temperature": -1}, "temperature"), ({"top_p": 0}, "top_p"),
    ({"temprature": 0.5}, "temprature"),
])
def test_bad_sampling_parameters_fail_before_any_call(params, field):
    llm = ScriptedLLM()
    with pytest.raises(LLMConfigError, match=field):
        llm.complete_batch([chat("a")], **params)
    assert llm.calls == 0


def test_bad_messages_and_choices():
    llm = ScriptedLLM()
    with pytest.raises(LLMConfigError, match="prompt 1"):
        llm.complete_batch([chat("a"), [{"role": "robot", "content": "x"}]])
    with pytest.raises(LLMConfigError, match="list of message lists"):
        llm.complete_batch(chat("a"))
    with pytest.raises(LLMConfigError, match="distinct"):
        llm.choice_probs(chat("a"), ["1", "1"])
    assert llm.calls == 0


def test_empty_output_is_a_typed_error():
    llm = ScriptedLLM(empty=True)
    with pytest.raises(LLMOutputError, match="empty"):
        llm.complete(chat("a"))
    assert llm.complete(chat("b"), allow_empty=True) == ""


def test_bad_specs_fail_fast(tmp_path, monkeypatch):
    with pytest.raises(LLMConfigError, match="not found"):
        make_llm(f"local:{tmp_path / 'missing.gguf'}", cache=False)
    with pytest.raises(LLMConfigError, match="non-empty"):
        make_llm("", cache=False)
    with pytest.raises(LLMConfigError, match="unknown option"):
        make_llm("local:tiny", cache=False, temperature=0.3)
    with pytest.raises(LLMConfigError, match="does not know"):
        make_llm("no-such-provider/some-model", cache=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(LLMConfigError, match="OPENAI_API_KEY"):
        make_llm("openai/gpt-4o-mini", cache=False)


class _Resp:
    """The parts of a litellm ModelResponse the backend reads."""

    def __init__(self, text: str = "", top=None):
        lp = None if top is None else {"content": [{"token": top[0][0], "logprob": top[0][1],
                                                    "top_logprobs": [{"token": t, "logprob": v} for t, v in top]}]}
        self.choices = [type("C", (), {"message": type("M", (), {"content": text})(), "logprobs": lp})()]
        self.usage = type("U", (), {"prompt_tokens": 10, "completion_tokens": 2})()


def test_litellm_backend_orders_caches_and_reports_failing_prompt(tmp_path, monkeypatch):
    llm = LiteLLM("openai/gpt-4o-mini", api_key="sk-test", max_concurrency=3, cache=ResultCache(tmp_path / "c.db"))
    seen = []

    def fake_call(messages, **params):
        text = messages[-1]["content"]
        seen.append(text)
        if text == "boom":
            raise ConnectionError("provider down")
        return _Resp(text=text * 2)

    monkeypatch.setattr(llm, "_call", fake_call)
    prompts = [chat(str(i)) for i in range(6)]
    assert llm.complete_batch(prompts) == [str(i) * 2 for i in range(6)]
    assert llm.stats.prompt_tokens == 60 and llm.stats.completion_tokens == 12
    llm.max_concurrency = 1  # deterministic: prompts 0 and 1 finish before prompt 2 fails
    with pytest.raises(LLMCallError, match="prompt 2") as err:
        llm.complete_batch([chat("a"), chat("b"), chat("boom")])
    assert err.value.index == 2
    seen.clear()
    assert llm.complete_batch([chat("a"), chat("b")]) == ["aa", "bb"]  # answered before the failure: cached
    assert seen == []


def test_litellm_choice_probs_from_logprobs(monkeypatch):
    llm = LiteLLM("openai/gpt-4o-mini", api_key="sk-test", cache=None)
    monkeypatch.setattr(llm, "_call", lambda m, **p: _Resp(top=[("1", -0.1), (" 2", -2.5), ("The", -4.0)]))
    probs = llm.choice_probs(chat("which?"), ["1", "2"])
    assert probs["1"] > 0.9 and abs(sum(probs.values()) - 1) < 1e-9
    monkeypatch.setattr(llm, "_call", lambda m, **p: _Resp(text="1"))
    with pytest.raises(LLMCapabilityError, match="motif"):
        llm.choice_probs(chat("which?"), ["1", "2"])
    with pytest.raises(LLMOutputError, match="no probability"):
        choice_probs_from_top_logprobs([("A", -0.1)], ["1", "2"])


def test_litellm_mock_response_end_to_end():
    """litellm's own mock transport: the real completion() path, no network."""
    llm = LiteLLM("openai/gpt-4o-mini", api_key="sk-test", cache=None)
    import litellm

    response = litellm.completion(model="openai/gpt-4o-mini", messages=chat("hi"), mock_response="Verdict: 2",
                                  api_key="sk-test")
    assert response.choices[0].message.content == "Verdict: 2"
    original = llm._call
    llm._call = lambda m, **p: original(m, mock_response="Verdict: 1", **p)
    assert llm.complete(chat("judge")) == "Verdict: 1"


# -- real embedded models ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_tiny_model_choice_probs_and_prefix_reuse_is_exact():
    llm = make_llm("local:tiny", cache=False)
    prompts = [chat(f"Pick a number. Context {i % 3}: is {i} even? Answer 1 for yes, 2 for no.") for i in range(6)]
    batched = llm.choice_probs_batch(prompts, ["1", "2"])
    for probs in batched:
        assert set(probs) == {"1", "2"} and abs(sum(probs.values()) - 1) < 1e-6
    # Reusing the KV cache across prompts must not change the answer beyond what llama.cpp's decode paths move it by
    # (a cold prompt is evaluated in other batch shapes than a reused prefix): 0.0064 apart on an AMX-capable Xeon with
    # llama-cpp-python 0.3.16, 0.016 on an AVX2 EPYC; the tolerance is test_judges.PATH_TOLERANCE's.
    random.seed(0)
    for i in random.sample(range(6), 3):
        llm.model.reset()
        cold = llm.choice_probs_batch([prompts[i]], ["1", "2"])[0]
        assert cold["1"] == pytest.approx(batched[i]["1"], abs=0.05)
    text = llm.complete(chat("Say hello."), max_tokens=8)
    assert isinstance(text, str) and text.strip()


EASY = [  # (better, worse) in an obvious sense
    ("You kill the jackal! You find 50 gold pieces.", "You die... Game over."),
    ("You picked up the key and opened the door.", "You are stuck facing a wall."),
    ("Score 500, dungeon level 4.", "Score 0, dungeon level 1."),
    ("You reached the goal.", "You walked into a wall."),
]


@pytest.mark.slow
def test_default_judge_prefers_the_obvious_side():
    from llm_reward.feedback.prompts import PairPrompt

    llm = make_llm("local", cache=False)
    prompt = PairPrompt(domain="nethack", goal="The goal is to make progress and stay alive.")
    forward = llm.choice_probs_batch([prompt.rlaif(a, b) for a, b in EASY], ["1", "2"])
    reverse = llm.choice_probs_batch([prompt.rlaif(b, a) for a, b in EASY], ["1", "2"])
    for probs in forward + reverse:
        assert abs(sum(probs.values()) - 1) < 1e-6 and all(0 <= p <= 1 for p in probs.values())
    debiased = [(f["1"] + r["2"]) / 2 for f, r in zip(forward, reverse)]
    right = sum(p > 0.5 for p in debiased)
    assert right > len(EASY) / 2, f"default judge right on {right}/{len(EASY)}: {debiased}"


DOORKEY_PAIRS = [  # (more progress, less) in DoorKey: carrying the key beats not having it
    ("You see a locked yellow door 1 step right, a wall 2 steps forward. You carry a yellow key.",
     "You see a wall 1 step right, a yellow key 1 step forward, a wall 2 steps left, a wall 4 steps forward."),
    ("You see a locked yellow door 2 steps left, a wall 2 steps right, a wall 6 steps forward. You carry a yellow "
     "key. You picked up the yellow key.", "You see a wall 1 step forward, a wall 2 steps right."),
    ("You see a wall 2 steps right, a wall 3 steps left, a wall 3 steps forward. You carry a yellow key.",
     "You see a wall 1 step right, a locked yellow door 3 steps forward and 1 step right, a wall 6 steps forward."),
    ("You see an open yellow door 1 step forward. You carry a yellow key. You unlocked the yellow door.",
     "You see a wall 2 steps forward, a wall 3 steps left."),
]


@pytest.mark.slow
def test_default_judge_pointwise_ranks_minigrid_scenes():
    from llm_reward.feedback.labelers import LLMPreferenceLabeler
    from llm_reward.feedback.prompts import PairPrompt

    goal = "The goal is to use the key to open the door and then get to the goal."
    judge = LLMPreferenceLabeler(make_llm("local", cache=False), PairPrompt("minigrid", goal), mode="pointwise")
    pairs = DOORKEY_PAIRS + [(b, a) for a, b in DOORKEY_PAIRS]  # order must not matter
    labels = judge(pairs)
    np.testing.assert_allclose(labels[:4], 1 - labels[4:], atol=1e-6)
    right = int(np.sum(labels[:4] > 0.5))
    assert right >= 3, f"pointwise judge right on {right}/4: {labels[:4]}"
