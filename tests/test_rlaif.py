"""Text RLAIF: prompt files, RLOO/KL math, win-rate statistics, the TRL adapter, and real steps on SmolLM2."""

from __future__ import annotations

import inspect
import json
import math

import numpy as np
import pytest
import torch

from llm_reward.feedback.judges import PairwiseJudge, ScoreJudge
from llm_reward.feedback.text_prompts import ResponsePairPrompt, ResponseScorePrompt
from llm_reward.rlaif import as_reward_funcs, exact_kl, load_prompts, penalised_advantages, rloo_advantages, sampled_kl
from llm_reward.rlaif.constraints import ConstraintError, checker_success, parse_constraint
from llm_reward.rlaif.data import PromptFileError
from llm_reward.rlaif.evaluate import Answers, judge_answers, length_controlled_win_rate
from llm_reward.rlaif.judging import (CHECKLIST_TEMPLATE, HELPFUL, ChecklistJudge, JudgeProbeError, PositionFreeJudge,
                                     instruction_question, load_probe_pairs, probe_judge, require_probe)
from llm_reward.rlaif.rloo import RunningBaseline, policy_gradient_loss


# -- prompts ---------------------------------------------------------------------------------------------------

def test_shipped_prompts_split_without_overlap():
    prompts = load_prompts("shipped")
    assert 90 <= len(prompts.train) and 25 <= len(prompts.heldout)
    assert not set(prompts.train) & set(prompts.heldout)
    assert any("NetHack" in p for p in prompts.heldout) and any("gridworld" in p for p in prompts.heldout)


@pytest.mark.parametrize("content, message", [
    ("", "holds no prompts"),
    ('{"prompt": "a"}\nnot json\n', ":2 is not valid JSON"),
    ('{"text": "a"}\n', 'non-empty string "prompt"'),
    ('{"prompt": "a", "split": "test"}\n', "has split 'test'"),
    ('{"prompt": "a", "split": "train"}\n', "needs both train and held-out"),
])
def test_bad_prompt_files_fail_with_the_config_key(tmp_path, content, message):
    path = tmp_path / "p.jsonl"
    path.write_text(content)
    with pytest.raises(PromptFileError, match="data.prompts") as err:
        load_prompts(path)
    assert message in str(err.value)
    with pytest.raises(PromptFileError, match="not found"):
        load_prompts(tmp_path / "missing.jsonl")


def test_file_without_splits_is_split_by_seed(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"q{i}"}) + "\n" for i in range(8)))
    a, b = load_prompts(path, heldout_fraction=0.25, seed=3), load_prompts(path, heldout_fraction=0.25, seed=3)
    assert a == b and len(a.heldout) == 2 and len(a.train) == 6


# -- verifiable instructions and their checker ----------------------------------------------------------------

@pytest.mark.parametrize("spec, meets, breaks", [
    ("max_words:4", "Drink the potion now.", "Drink the healing potion right now."),
    ("min_words:3", "Go down the stairs.", "Descend."),
    ("include_word:key", "Pick up the Key first.", "Pick up the keys first."),
    ("bullets:2", "- Eat.\n- Rest.", "- Eat.\n- Rest.\n- Pray."),
    ("end_question", "Pray now. Did it work?", "Pray now? Then rest."),
    ("no_commas", "Eat and rest.", "Eat, rest."),
    ("lowercase", "eat the apple.", "Eat the apple."),
    ("one_sentence", "Eat the apple now.", "Eat the apple. Then rest."),
])
def test_checker_tells_met_from_broken(spec, meets, breaks):
    rule = parse_constraint(spec)
    assert rule.check(meets) and not rule.check(breaks) and not rule.check("   ")
    assert rule.spec == spec and rule.instruction.endswith(".")


@pytest.mark.parametrize("spec, message", [
    ("shout", "unknown constraint 'shout'"), ("max_words:lots", "positive whole number"),
    ("include_word:two words", "one word"), ("lowercase:yes", "takes no argument"), ("", "non-empty")])
def test_bad_constraints_fail_naming_the_key(spec, message):
    with pytest.raises(ConstraintError, match="constraints") as err:
        parse_constraint(spec)
    assert message in str(err.value)


def test_prompt_file_constraints_checked_before_anything_runs(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "a", "split": "train", "constraints": ["no_commas"]}\n'
                    '{"prompt": "b", "split": "heldout", "constraints": ["rhyme"]}\n')
    with pytest.raises(PromptFileError, match=r"data.prompts .*:2.*unknown constraint 'rhyme'"):
        load_prompts(path)
    path.write_text('{"prompt": "a", "split": "train", "constraints": ["no_commas"]}\n'
                    '{"prompt": "b", "split": "heldout", "constraints": ["max_words:3"]}\n')
    prompts = load_prompts(path)
    assert prompts.train == ("a\n\nDo not use any commas.",)
    assert [c.spec for c in prompts.constraints_of(prompts.heldout[0])] == ["max_words:3"]


def test_shipped_instruction_prompts_carry_two_checkable_constraints():
    plain, ruled = load_prompts("shipped"), load_prompts("shipped_instructions")
    assert len(ruled.train) == len(plain.train) and len(ruled.heldout) == len(plain.heldout)
    for prompt in ruled.heldout:
        rules = ruled.constraints_of(prompt)
        assert len(rules) == 2 and len({r.kind for r in rules}) == 2
        assert all(r.instruction in prompt for r in rules)
    assert not plain.constraints and checker_success("x", ()) != checker_success("x", ())  # NaN without rules
    kinds = {r.kind for rules in ruled.constraints.values() for r in rules}
    assert kinds == {"max_words", "include_word", "end_question", "no_commas", "lowercase", "one_sentence"}


# -- judges checked before they are trusted -------------------------------------------------------------------

class FirstAlways:
    """A scripted judge LLM that answers "1" (and scores 7) whatever it reads: pure position bias."""

    name, cache = "first-always", None

    def choice_probs_batch(self, conversations, choices):
        return [{c: (0.8 if c in ("1", "7") else 0.2 / (len(choices) - 1)) for c in choices} for _ in conversations]


def checklist_item(text):
    """(answer, question) of a checklist prompt, or None for another judge's prompt."""
    if not text.endswith("Reply Yes or No."):
        return None
    answer, rest = text.split("\n\n<answer>\n", 1)[1].split("\n</answer>\n\n", 1)
    return answer, rest[: -len(" Reply Yes or No.")]


def yes_keeps(pairs):
    """Which reply means "met" for each checklist question the probe's constraints raise (helpfulness: yes)."""
    questions = [instruction_question(parse_constraint(s)) for p in pairs for s in p.constraints]
    return {"Is this answer helpful and relevant to the question?": True, **{q.text: q.yes_keeps for q in questions}}


class Prefers:
    """A scripted judge LLM that prefers the answers in ``good`` (pairwise: that side; scores: 9 vs 2; checklist: says
    a good answer meets every item, ``keeps`` telling which reply that is for each question)."""

    cache = None

    def __init__(self, good, keeps=None):
        self.name, self.good, self.keeps = "prefers", {" ".join(g.split()) for g in good}, keeps or {}

    def choice_probs_batch(self, conversations, choices):
        out = []
        for messages in conversations:
            text = messages[-1]["content"]
            if checklist_item(text):  # the checklist: one yes/no question per item
                answer, question = checklist_item(text)
                met = 0.9 if " ".join(answer.split()) in self.good else 0.2
                yes = met if self.keeps[question] else 1 - met
                out.append({"Yes": yes, "No": 1 - yes})
            elif "Answer 1: " in text:
                first = text.rsplit("Answer 1: ", 1)[1].split("\n")[0]
                p1 = 0.9 if " ".join(first.split()) in self.good else 0.1
                out.append({"1": p1, "2": 1 - p1})
            else:
                answer = text.rsplit("Answer:\n", 1)[1].split("\n\nReply")[0]
                best = "9" if " ".join(answer.split()) in self.good else "2"
                out.append({c: (1.0 if c == best else 0.0) for c in choices})
        return out


def test_probe_pairs_are_clear_cut_and_refuse_a_position_only_judge():
    pairs = load_probe_pairs()
    assert len(pairs) >= 30 and {p.kind for p in pairs} == {"quality", "constraint"}
    assert sum(p.kind == "constraint" for p in pairs) >= 10
    biased = probe_judge(PairwiseJudge(FirstAlways(), ResponsePairPrompt()), pairs, name="local:small")
    assert biased.accuracy == 0.0 and biased.position_consistency == 0.0 and biased.first_order_accuracy == 0.5
    assert biased.prompts == 2 * len(pairs) and not biased.passed
    with pytest.raises(JudgeProbeError, match=r"heldout_judge.spec='local:small' \(form pairwise\).* 0% right, "
                                              r"0% position-consistent"):
        require_probe(biased, "heldout_judge")
    good = [p.better for p in pairs]
    checklist = ChecklistJudge(Prefers(good, yes_keeps(pairs)))
    for judge in (PairwiseJudge(Prefers(good), ResponsePairPrompt()),
                  PositionFreeJudge(ScoreJudge(Prefers(good), ResponseScorePrompt())), checklist):
        result = probe_judge(judge, pairs)
        assert result.accuracy == 1.0 and result.position_consistency == 1.0 and result.constraint_accuracy == 1.0
        require_probe(result, "heldout_judge")
    # The checklist asks one question per instruction of the probe's prompts, plus one for helpfulness.
    assert result.form == "checklist" and result.prompts == sum(2 * (1 + len(p.constraints)) for p in pairs)
    # Position-free scoring of a position-only judge: every answer gets the same score, so every pair is a tie.
    flat = probe_judge(PositionFreeJudge(ScoreJudge(FirstAlways(), ResponseScorePrompt())), pairs)
    assert flat.accuracy == 0.0 and not flat.passed


def test_win_rate_of_a_position_only_judge_is_half_and_a_preferring_judge_is_above():
    trained = Answers(["q1", "q2", "q3"], ["Drink it.", "Pray.", "Same."], np.array([2.0, 1.0, 1.0]))
    start = Answers(["q1", "q2", "q3"], ["Run away.", "Eat the lichen corpse.", "Same."], np.array([2.0, 4.0, 1.0]))
    biased = judge_answers(PairwiseJudge(FirstAlways(), ResponsePairPrompt()), trained, start)
    assert biased["win_rate"] == 0.5 and biased["position_consistency"] == 0.0 and biased["identical_pairs"] == 1
    for judge in (PairwiseJudge(Prefers(trained.texts), ResponsePairPrompt()),
                  PositionFreeJudge(ScoreJudge(Prefers(trained.texts), ResponseScorePrompt()))):
        out = judge_answers(judge, trained, start)
        assert out["win_rate"] == pytest.approx((0.9 + 0.9 + 0.5) / 3 if isinstance(judge, PairwiseJudge)
                                                else (1 + 1 + 0.5) / 3, abs=1e-6)
        assert out["win_rate_ci"][0] > 0.5 - 1e-9 and out["position_consistency"] == 1.0


class ReadsOneInstruction:
    """A scripted judge LLM that reads one instruction at a time (checklist: answers each instruction's question
    right, so P(met) is 0.9 where the answer keeps it) but, asked for a holistic 1-10 score, rates the longer answer
    higher (the measured failure)."""

    name, cache = "reads-one-instruction", None

    def __init__(self, rules):
        self.rules = {instruction_question(r).text: r for r in rules}
        self.asked = []

    def choice_probs_batch(self, conversations, choices):
        out = []
        for messages in conversations:
            text = messages[-1]["content"]
            self.asked.append(text)
            if checklist_item(text):
                answer, question = checklist_item(text)
                rule = self.rules.get(question)
                met = 0.6 if rule is None else (0.9 if checker_success(answer, [rule]) == 1 else 0.1)
                yes = met if rule is None or instruction_question(rule).yes_keeps else 1 - met
                out.append({"Yes": yes, "No": 1 - yes})
            else:
                answer = text.rsplit("Answer:\n", 1)[1].rsplit("\n\nReply", 1)[0]
                best = "9" if len(answer.split()) > 6 else "3"
                out.append({c: (1.0 if c == best else 0.0) for c in choices})
        return out


def test_checklist_reward_ranks_the_answer_that_keeps_the_instructions_above_one_that_breaks_them(tmp_path):
    from llm_reward.rlaif.pipeline import direct_reward

    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "How do I cure food poisoning in NetHack?", "split": "train", '
                    '"constraints": ["no_commas", "lowercase"]}\n{"prompt": "b", "split": "heldout"}\n')
    prompts = load_prompts(path)
    prompt, rules = prompts.train[0], prompts.constraints_of(prompts.train[0])
    keeps, breaks = "pray or eat a lizard corpse.", "Pray, or eat a lizard corpse, or quaff holy water."
    assert checker_success(keeps, rules) == 1.0 and checker_success(breaks, rules) == 0.0
    llm = ReadsOneInstruction(rules)
    pairwise, scorer = PairwiseJudge(llm, ResponsePairPrompt()), ScoreJudge(llm, ResponseScorePrompt())
    score_form = direct_reward("score", pairwise, scorer, prompts).score([prompt] * 2, [keeps, breaks])
    assert score_form[0] < score_form[1]  # the holistic score prefers the longer answer that breaks both rules
    llm.asked.clear()
    checklist = direct_reward("checklist", pairwise, scorer, prompts).score([prompt] * 2, [keeps, breaks])
    # Mean P(yes) over helpful + 2 instructions, rescaled to [-1, 1]: (0.6 + 0.9 + 0.9) / 3 vs (0.6 + 0.1 + 0.1) / 3.
    np.testing.assert_allclose(checklist, [2 * 2.4 / 3 - 1, 2 * 0.8 / 3 - 1], atol=1e-9)
    # One question per item, each naming the instruction as the user reads it; the checker's specs never shown.
    assert len(llm.asked) == 2 * (1 + len(rules))
    assert all(r.instruction in "".join(llm.asked) for r in rules)
    assert not any("no_commas" in text for text in llm.asked)
    # The instructions form leaves out the helpfulness question: (0.9 + 0.9) / 2 vs (0.1 + 0.1) / 2.
    llm.asked.clear()
    instructions = direct_reward("instructions", pairwise, scorer, prompts).score([prompt] * 2, [keeps, breaks])
    np.testing.assert_allclose(instructions, [0.8, -0.8], atol=1e-9)
    assert len(llm.asked) == 2 * len(rules)
    with pytest.raises(ValueError, match="judge.reward_form must be one of"):
        direct_reward("vote", pairwise, scorer, prompts)


class SaysYes:
    """A scripted judge LLM that answers "Yes" with probability ``p`` to every question, and records what it read."""

    name, cache = "says-yes", None

    def __init__(self, p):
        self.p, self.asked = p, []

    def choice_probs_batch(self, conversations, choices):
        self.asked += conversations
        assert list(choices) == ["Yes", "No"]
        return [{"Yes": self.p, "No": 1 - self.p} for _ in conversations]


def test_checklist_asks_one_concrete_question_per_instruction_kind_and_maps_the_reply_to_met():
    from llm_reward.rlaif.constraints import KINDS, render_prompt

    specs = {"max_words": "max_words:12", "min_words": "min_words:30", "include_word": "include_word:kettle",
             "bullets": "bullets:3", "end_question": "end_question", "no_commas": "no_commas",
             "lowercase": "lowercase", "one_sentence": "one_sentence"}
    assert set(specs) == set(KINDS)
    questions = {k: instruction_question(parse_constraint(s)) for k, s in specs.items()}
    assert len({q.text for q in questions.values()}) == len(KINDS)  # one wording per kind
    assert all(q.text.endswith("?") for q in questions.values())
    assert "12" in questions["max_words"].text and "30" in questions["min_words"].text
    assert '"kettle"' in questions["include_word"].text and "3" in questions["bullets"].text
    # A question asked the other way round ("does it contain a comma?") counts a "No" as the instruction kept.
    assert not questions["no_commas"].yes_keeps and questions["include_word"].yes_keeps
    rules = (parse_constraint("no_commas"), parse_constraint("include_word:kettle"))
    prompt = render_prompt("How do I make tea?", rules)
    llm = SaysYes(0.8)
    judge = ChecklistJudge(llm, {prompt: rules})
    np.testing.assert_allclose(judge.item_scores(["Boil water, then steep."], [prompt])[0], [0.8, 0.2, 0.8])
    np.testing.assert_allclose(judge.score([prompt], ["Boil water, then steep."]), [1.8 / 3])
    # What the judge reads: a system line, the prompt as the user wrote it, the answer between markers, one question;
    # never the checker's spec. Its fingerprint names the template, so v1 labels are not reused.
    system, user = llm.asked[1]
    assert system["role"] == "system" and user["role"] == "user"
    assert user["content"].startswith(f"Question: {prompt}\n\n<answer>\nBoil water, then steep.\n</answer>\n\n")
    assert questions["no_commas"].text in user["content"] and "no_commas" not in str(llm.asked)
    assert judge.fingerprint == {"llm": "says-yes", "kind": "checklist", "template": CHECKLIST_TEMPLATE}
    assert CHECKLIST_TEMPLATE != "checklist-v1"
    # A judge that says "Yes" to everything cannot tell a pair apart by its instructions alone.
    flat = judge.label([("Boil water in a kettle.", "Boil water, then steep.")], [prompt])
    assert flat.label[0] == 0.5
    # Without the helpfulness question: the instructions only, and helpfulness still where a prompt has none.
    bare = ChecklistJudge(llm, {prompt: rules}, ask_helpful=False)
    assert [q.text for q in bare.questions(prompt)] == [instruction_question(r).text for r in rules]
    assert [q.text for q in bare.questions("Open question?")] == [HELPFUL]
    assert bare.fingerprint["helpful"] is False


def test_default_reward_form_keeps_the_run_key_and_checklist_gets_its_own():
    from hydra import compose, initialize_config_module
    from omegaconf import open_dict

    from llm_reward.rlaif.pipeline import run_key

    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        cfg = compose("rlaif")

    def key(mode="direct", reward_form=None):
        changed = cfg.copy()
        with open_dict(changed):
            changed.mode = mode
            if reward_form is None:  # the config as it was before judge.reward_form existed
                del changed.judge["reward_form"]
            else:
                changed.judge.reward_form = reward_form
        return run_key(changed)

    assert cfg.judge.reward_form == "score" and run_key(cfg) == key() == key(reward_form="score")
    assert key(reward_form="checklist") != key() != key(reward_form="instructions") != key(reward_form="checklist")
    # Distilled mode never reads the reward form: same run, same key.
    assert key("distilled", "checklist") == key("distilled")


# -- RLOO, KL ----------------------------------------------------------------------------------------------------

def test_rloo_advantages_match_hand_computed_values():
    rewards = torch.tensor([[1.0, 2.0, 6.0], [0.0, 0.0, 3.0]])
    # r_i - mean of the other two: 1 - 4, 2 - 3.5, 6 - 1.5; 0 - 1.5, 0 - 1.5, 3 - 0
    expected = torch.tensor([[-3.0, -1.5, 4.5], [-1.5, -1.5, 3.0]])
    torch.testing.assert_close(rloo_advantages(rewards), expected)
    kl = torch.tensor([0.0, 10.0, 0.0, 0.0, 0.0, 20.0])
    # beta = 0.1: penalised rewards [1, 1, 6] and [0, 0, 1] -> leave-one-out
    torch.testing.assert_close(penalised_advantages(rewards.reshape(-1), kl, 0.1, k=3),
                               torch.tensor([-2.5, -2.5, 5.0, -0.5, -0.5, 1.0]))
    with pytest.raises(ValueError, match="k >= 2"):
        rloo_advantages(torch.ones(2, 1))


def test_running_baseline_for_one_answer_per_prompt():
    baseline = RunningBaseline(decay=0.5)
    torch.testing.assert_close(baseline.advantages(torch.tensor([1.0, 3.0])), torch.tensor([1.0, 3.0]))
    assert baseline.value == 2.0
    torch.testing.assert_close(baseline.advantages(torch.tensor([4.0])), torch.tensor([2.0]))
    assert baseline.value == 3.0


def test_kl_exact_and_sampled_against_hand_computation():
    p, q = torch.tensor([0.75, 0.25]), torch.tensor([0.5, 0.5])
    logits, logits_start = p.log().view(1, 1, 2), q.log().view(1, 1, 2)
    by_hand = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert float(exact_kl(logits, logits_start, torch.ones(1, 1))) == pytest.approx(by_hand, rel=1e-6)
    # Two positions, the second masked out (after the answer's end): it must not count.
    two = torch.cat([logits, logits], dim=1), torch.cat([logits_start, logits_start], dim=1)
    assert float(exact_kl(*two, torch.tensor([[1.0, 0.0]]))) == pytest.approx(by_hand, rel=1e-6)
    logp, logp_start = torch.tensor([[-0.1, -0.2, -5.0]]), torch.tensor([[-0.3, -0.1, -1.0]])
    assert float(sampled_kl(logp, logp_start, torch.tensor([[1.0, 1.0, 0.0]]))) == pytest.approx(0.1)


def test_policy_gradient_loss_sign():
    logp = torch.tensor([[-1.0, -1.0], [-2.0, 0.0]], requires_grad=True)
    loss = policy_gradient_loss(logp, torch.ones(2, 2), torch.tensor([1.0, -1.0]))
    loss.backward()
    # Descending the loss raises log-probs of the positive-advantage answer and lowers the other's.
    assert (logp.grad[0] < 0).all() and (logp.grad[1] > 0).all()


def test_length_controlled_win_rate():
    gap = np.array([-10.0, -5.0, 5.0, 10.0])
    assert length_controlled_win_rate(np.array([0.1, 0.3, 0.7, 0.9]), gap) == pytest.approx(0.5, abs=1e-6)
    assert length_controlled_win_rate(np.array([0.8, 0.8, 0.8, 0.8]), gap) == pytest.approx(0.8, abs=1e-3)
    assert length_controlled_win_rate(np.array([0.7, 0.7]), np.zeros(2)) == pytest.approx(0.7, abs=1e-3)


# -- the TRL adapter ---------------------------------------------------------------------------------------------

class LengthReward:
    """A TextReward that prefers short answers (a stand-in for a judge in unit tests)."""

    def score(self, prompts, completions):
        return np.array([-len(c) / 10 for c in completions])


def test_as_reward_funcs_signature_and_formats():
    from llm_reward.feedback.judges import PairwiseJudge, ScoreJudge
    from llm_reward.feedback.text_prompts import ResponsePairPrompt, ResponseScorePrompt

    func = as_reward_funcs(LengthReward())
    params = inspect.signature(func).parameters
    assert list(params)[:2] == ["prompts", "completions"] and params["kwargs"].kind is inspect.Parameter.VAR_KEYWORD
    assert func(["q", "q"], ["ab", "abcd"], completion_ids=None) == [-0.2, -0.4]
    chat = func([[{"role": "user", "content": "q"}]], [[{"role": "assistant", "content": "abc"}]])
    assert chat == [pytest.approx(-0.3)]

    class Scores:
        name, cache = "fake", None

        def choice_probs_batch(self, conversations, choices):
            return [{c: (1.0 if c == "10" else 0.0) for c in choices} for _ in conversations]

    assert as_reward_funcs(ScoreJudge(Scores(), ResponseScorePrompt()))(["q"], ["a"]) == [1.0]
    with pytest.raises(TypeError, match="pairwise judge"):
        as_reward_funcs(PairwiseJudge(Scores(), ResponsePairPrompt()))
    with pytest.raises(TypeError, match="score"):
        as_reward_funcs(object())


# -- the real policy (SmolLM2-135M from the shipped GGUF) ----------------------------------------------------------

@pytest.fixture(scope="module")
def policy(one_torch_thread):
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    from llm_reward.rlaif.policy import LoraSettings, load_policy

    return load_policy("smollm2", lora=LoraSettings(r=8, alpha=64))


@pytest.mark.slow
def test_policy_bad_inputs(policy, tmp_path):
    from llm_reward.rlaif.policy import PolicyError, load_policy

    with pytest.raises(PolicyError, match="policy.path: no model"):
        load_policy(str(tmp_path / "nope"))
    encoder = tmp_path / "encoder"
    encoder.mkdir()
    (encoder / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(PolicyError, match="not a causal LM"):
        load_policy(str(encoder))
    (encoder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(PolicyError, match="cannot load"):  # a causal LM config without weights
        load_policy(str(encoder))
    with pytest.raises(PolicyError, match="exceeds the policy's context"):
        policy.check_prompts(["word " * 9000], max_new_tokens=32)


@pytest.mark.slow
def test_real_steps_change_the_policy_and_resume(policy, tmp_path):
    """Three RLOO steps at a high learning rate on the real policy: its answers' log-probs move the way the
    advantages say, the KL to the start becomes positive, and an interrupted run resumes from its checkpoint."""
    from llm_reward.rlaif.trainer import RLAIFTrainer, TrainSettings

    prompts = list(load_prompts().train[:4])
    settings = TrainSettings(steps=2, prompts_per_step=2, samples_per_prompt=3, max_new_tokens=8, lr=2e-3,
                             checkpoint_every=1, sample_every=1)
    trainer = RLAIFTrainer(policy, LengthReward(), prompts, settings, tmp_path / "run",
                           checker=lambda asked, answers: [len(a) for a in answers])  # the reward's opposite
    fixed = policy.sample(prompts[:2], k=3, max_new_tokens=8, temperature=0.9, seed=5)
    with torch.no_grad():
        before = policy.token_logprobs(policy.logits(fixed, temperature=0.9), fixed).sum(-1)
    trainer.train(progress=False)
    with torch.no_grad():
        logits = policy.logits(fixed, temperature=0.9)
        after = policy.token_logprobs(logits, fixed).sum(-1)
        kl = exact_kl(logits, policy.logits(fixed, model=trainer.start_model, temperature=0.9), fixed.completion_mask)
    assert not torch.allclose(before, after) and float(kl.mean()) > 1e-4
    history = [h["step"] for h in trainer.history]
    assert history == [1, 2] and (tmp_path / "run" / "checkpoint" / "trainable.pt").exists()
    assert (tmp_path / "run" / "samples.jsonl").read_text().count('"step": 2') >= 1
    # the checker is logged beside the reward, never trained on: a checker opposite to the reward disagrees on every
    # within-prompt pair it tells apart
    assert all(h["checker_agreeing"] == 0 for h in trainer.history)
    assert sum(h["checker_pairs"] for h in trainer.history) > 0
    assert '"checker": ' in (tmp_path / "run" / "samples.jsonl").read_text()

    class Interrupting(LengthReward):
        def score(self, prompts, completions):
            raise KeyboardInterrupt

    more = TrainSettings(**{**settings.__dict__, "steps": 4})
    resumed = RLAIFTrainer(policy, Interrupting(), prompts, more, tmp_path / "run", start_model=trainer.start_model)
    with pytest.raises(KeyboardInterrupt):
        resumed.train(progress=False)
    assert resumed.step == 2  # resumed at the checkpoint; the interrupted step left it intact
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 2
    other = TrainSettings(**{**settings.__dict__, "lr": 1e-5})
    with pytest.raises(ValueError, match="another configuration"):
        RLAIFTrainer(policy, LengthReward(), prompts, other, tmp_path / "run",
                     start_model=trainer.start_model).train(progress=False)


@pytest.mark.slow
def test_evaluate_reads_half_under_a_position_only_judge_and_more_under_a_preferring_one(policy):
    """rlaif.evaluate on the real policy against a perturbed start: a judge that answers by position alone gives
    0.5 and zero position consistency (trained answers and null control alike); a judge that prefers the trained
    policy's answers gives more than 0.5; the checker scores both policies on the constrained prompts."""
    from llm_reward.rlaif.evaluate import checker_scores, evaluate, generate_answers

    prompts = load_prompts("shipped_instructions")
    held = list(prompts.heldout[:3])
    start = __import__("copy").deepcopy(policy.model).eval()
    with torch.no_grad():
        for p in start.parameters():
            p.add_(0.05 * torch.randn_like(p))
    settings = dict(samples_per_prompt=1, max_new_tokens=6, temperature=0.9, seed=11)
    trained, _ = generate_answers(policy, held, **settings)
    result, start_answers = evaluate(policy, start, held, {
        "biased": PairwiseJudge(FirstAlways(), ResponsePairPrompt()),
        "prefers": PairwiseJudge(Prefers(trained.texts), ResponsePairPrompt())},
        constraints=prompts.constraints, null_seed=12, **settings)
    assert trained.texts != start_answers.texts
    assert result["biased"]["win_rate"] == 0.5 and result["biased"]["position_consistency"] == 0.0
    assert result["null"]["biased"]["win_rate"] == 0.5
    assert result["prefers"]["win_rate"] > 0.5 and result["kl_to_start"] > 0
    checker = result["checker"]
    before, after = checker_scores(start_answers, prompts.constraints), checker_scores(trained, prompts.constraints)
    assert checker["checker_prompts"] == 3 and checker["checker_success_start"] == pytest.approx(before.mean())
    assert checker["differences"] == pytest.approx((after - before).tolist())


@pytest.mark.slow
def test_trl_grpo_trainer_takes_our_reward_funcs_and_win_rate_callback(policy, tmp_path):
    """TRL's own GRPOTrainer runs a step on the real policy with as_reward_funcs as its reward, and our
    WinRateCallback logs a win rate against the policy at train start."""
    trl = pytest.importorskip("trl")
    datasets = pytest.importorskip("datasets")
    from llm_reward.rlaif import WinRateCallback
    calls = []
    inner = as_reward_funcs(LengthReward())

    def reward(prompts, completions, **kwargs):
        calls.append((len(prompts), len(completions)))
        return inner(prompts, completions, **kwargs)

    data = datasets.Dataset.from_list([{"prompt": p} for p in load_prompts().train[:2]])
    args = trl.GRPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=2, num_generations=2,
                          max_completion_length=6, max_steps=1, learning_rate=1e-4, beta=0.05, report_to=[],
                          use_cpu=True, save_strategy="no", logging_steps=1, bf16=False)
    model = policy.model.get_base_model() if hasattr(policy.model, "get_base_model") else policy.model
    judge = PairwiseJudge(FirstAlways(), ResponsePairPrompt())
    callback = WinRateCallback(judge, list(load_prompts().heldout[:2]), max_new_tokens=4, every_n_steps=1)
    trainer = trl.GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=data,
                              processing_class=policy.tokenizer, callbacks=[callback])
    trainer.train()
    assert calls and calls[0] == (2, 2)
    assert [h["step"] for h in callback.history] == [1] and callback.history[0]["win_rate"] == 0.5
    assert any("eval_win_rate" in row for row in trainer.state.log_history)


def test_distilled_reward_learns_the_judges_preference(tmp_path):
    """Pairwise labels (both orders) -> Bradley-Terry on MiniLM embeddings -> a reward that ranks like the judge."""
    pytest.importorskip("sentence_transformers")
    from llm_reward.feedback.judges import PairwiseJudge
    from llm_reward.feedback.text_prompts import ResponsePairPrompt
    from llm_reward.rlaif import fit_distilled_reward

    class PrefersPotions:
        name, cache = "potions", None

        def choice_probs_batch(self, conversations, choices):
            out = []
            for messages in conversations:
                first = messages[-1]["content"].split("Answer 1: ")[1].split("\n")[0]
                p1 = 0.9 if "potion" in first else 0.1
                out.append({"1": p1, "2": 1 - p1})
            return out

    good = [f"Drink the {c} potion now." for c in ("red", "blue", "green", "pink", "white", "black", "gold", "grey")]
    bad = [f"Look at the {c} wall." for c in ("red", "blue", "green", "pink", "white", "black", "gold", "grey")]
    prompts = ["HP 2/30. What now?"] * 8
    firsts = [g if i % 2 else b for i, (g, b) in enumerate(zip(good, bad))]
    seconds = [b if i % 2 else g for i, (g, b) in enumerate(zip(good, bad))]
    reward = fit_distilled_reward(PairwiseJudge(PrefersPotions(), ResponsePairPrompt()), prompts, firsts, seconds,
                                  epochs=60, seed=0)
    scores = reward.score(["HP 1/20. Help?"] * 2, ["Drink the purple potion now.", "Look at the purple wall."])
    assert scores[0] > scores[1]
    assert reward.metrics["judge_position_consistency"] == 1.0 and reward.metrics["judge_prompts"] == 16
    # Stored as a reward-model artifact (strict JSON + weights-only tensors), reloaded to the same scores.
    from llm_reward.rlaif.rewards import DistilledReward

    again = DistilledReward.load(reward.save(tmp_path / "rm"))
    np.testing.assert_allclose(again.score(["HP 1/20. Help?"] * 2, ["Drink the purple potion now.",
                                                                    "Look at the purple wall."]), scores, atol=1e-5)
    assert json.loads((tmp_path / "rm" / "config.json").read_text())["captioner"] == "rlaif_prompt_answer"


@pytest.mark.parametrize("override, message", [
    ("heldout_judge.form=vote", "heldout_judge.form must be one of"),
    ("eval.judge_form=vote", "eval.judge_form must be one of"),
    ("judge.reward_form=vote", "judge.reward_form must be one of"),
    ("mode=dpo", "mode must be one of"),
    ("distilled.pairs=2", "distilled.pairs must be >= 4"),
    ("train.max_new_tokens=0", "train.max_new_tokens must be a positive integer"),
    ("policy.path=/nowhere/model", "policy.path: no model at /nowhere/model"),
])
def test_bad_rlaif_settings_fail_before_any_model_loads(override, message):
    from hydra import compose, initialize_config_module

    from llm_reward.rlaif.pipeline import check_config

    overrides = [override] + (["mode=distilled"] if override.startswith("distilled") else [])
    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        cfg = compose("rlaif", overrides=overrides)
    with pytest.raises(ValueError, match=message):
        check_config(cfg)


def test_within_prompt_agreement_counts_only_pairs_the_truth_tells_apart_and_refuses_ragged_groups():
    from llm_reward.rlaif.evaluate import within_prompt_agreement
    from llm_reward.rlaif.pipeline import training_checker

    # prompt 1: the reward orders (a, b) right and ties (a, c); (b, c) has equal truth so it is not counted;
    # prompt 2: the reward orders both told-apart pairs the wrong way; pairs across prompts never count
    reward = [0.9, 0.1, 0.9, 0.2, 0.8, 0.5]
    truth = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0]
    assert within_prompt_agreement(reward, truth, k=3) == (1.0 + 0.5 + 0.0 + 0.0, 4)
    # NaN on either side skips the pair instead of counting it one way
    assert within_prompt_agreement([np.nan, 0.0], [0.0, 1.0], k=2) == within_prompt_agreement(
        [np.nan, 0.0], [1.0, 0.0], k=2) == (0.0, 0)
    assert within_prompt_agreement([0.3, 0.1], [np.nan, 1.0], k=2) == (0.0, 0)
    with pytest.raises(ValueError, match="groups of k=2"):
        within_prompt_agreement([1.0, 2.0, 3.0], [0.0, 1.0, 0.0], k=2)
    # pooled over the steps that logged the checker (a resumed run's older steps did not)
    history = [{"step": 1, "reward": 0.1}, {"step": 2, "checker": 0.5, "checker_agreeing": 1.5, "checker_pairs": 2},
               {"step": 3, "checker": np.nan, "checker_agreeing": 0.0, "checker_pairs": 0},
               {"step": 4, "checker": 1.0, "checker_agreeing": 0.0, "checker_pairs": 2}]
    out = training_checker(history)
    assert out["training_reward_checker_agreement"] == 1.5 / 4 and out["training_checker_steps"] == 3
    assert out["training_checker_first_10"] == 0.75 and training_checker(history[:1]) == {}
