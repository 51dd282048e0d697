"""The search loop with a scripted LLM: extraction, smoke test, reflection, selection, resume, HNS arithmetic."""

from __future__ import annotations

import json
import textwrap

import pytest

from llm_reward.eureka.allowlist import CodeRejected, check_code
from llm_reward.eureka.context import EnvContext, env_context
from llm_reward.eureka.executors import ExecutorError, check_executor
from llm_reward.eureka.extract import ExtractionError, extract_reward_code
from llm_reward.eureka.prompts import (PROMPTS_DIGEST, TIPS, failure_feedback, feedback_messages,
                                       initial_messages)
from llm_reward.eureka.reflection import fitness, hns, reflection_text, tiebreak
from llm_reward.eureka.search import EurekaSearch, SearchConfig, hns_summary, sample_seed

ENV_ID = "MiniGrid-DoorKey-5x5-v0"

GOOD = textwrap.dedent("""\
    Here is a reward:
    ```python
    import numpy as np

    def compute_reward(obs, action, next_obs, info):
        def key_visible(o):
            return float(np.any(o[:, :, 0] == 5))

        def door_visible(o):
            return float(np.any(o[:, :, 0] == 4))

        key = key_visible(next_obs)
        door = door_visible(next_obs)
        return 0.1 * key + 0.1 * door, {"key_visible": key, "door_visible": door}
    ```
    """)
BUGGY = "```python\ndef compute_reward(obs, action, next_obs, info):\n    return undefined_name * 2, {}\n```"
HOSTILE = ("```python\nimport os\ndef compute_reward(obs, action, next_obs, info):\n    os.system('id')\n"
           "    return 0.0, {}\n```")
NO_FUNCTION = "I would reward the agent for reaching the goal."


class ScriptedLLM:
    """Answers from a fixed list (cycled), recording every call's messages and sampling parameters."""

    name = "scripted"

    def __init__(self, replies):
        self.replies, self.calls = list(replies), []

    def complete(self, messages, **sampling):
        self.calls.append({"messages": messages, **sampling})
        return self.replies[(len(self.calls) - 1) % len(self.replies)]


def tiny_config(**overrides) -> SearchConfig:
    settings = dict(samples=4, iterations=2, total_timesteps=512, n_envs=2, n_points=2, eval_episodes=0,
                    final_seeds=1, final_eval_episodes=3, baselines=True, workers=2, smoke_steps=20, timeout_s=300,
                    memory_mb=4096, repairs=0, prescreen_steps=200)
    return SearchConfig(**{**settings, **overrides})


# -- extraction ------------------------------------------------------------------------------------------------
def test_extraction_keeps_nested_and_sibling_helpers():
    reply = ("```python\nimport numpy as np\nSCALE = 0.5\ndef helper(x):\n    return x * SCALE\n"
             "def compute_reward(obs, action, next_obs, info):\n    def inner(y):\n        return helper(y)\n"
             "    return inner(1.0), {'a': inner(1.0)}\n\ndef unrelated():\n    pass\nprint('demo')\n```")
    code = extract_reward_code(reply)
    assert "def inner" in code and "def helper" in code and "SCALE = 0.5" in code
    assert "print('demo')" not in code  # module-level demo code is dropped
    assert code.rstrip().endswith("pass")  # the last def does not truncate anything before it


def test_extraction_picks_the_last_block_defining_the_function():
    reply = ("```python\ndef compute_reward(obs, action, next_obs, info):\n    return 0.0, {}\n```\nBetter:\n"
             "```python\ndef compute_reward(obs, action, next_obs, info):\n    return 1.0, {'v': 1.0}\n```")
    assert "return 1.0" in extract_reward_code(reply)


def test_extraction_errors_are_one_line_reasons():
    for reply, fragment in [(NO_FUNCTION, "no function named compute_reward"),
                            ("```python\ndef compute_reward(obs):\n    return 0.0, {}\n```", "four arguments"),
                            ("```python\ndef compute_reward(obs, action, next_obs, info)\n    return 1\n```",
                             "syntax error")]:
        with pytest.raises(ExtractionError, match=fragment) as info:
            extract_reward_code(reply)
        assert "\n" not in str(info.value)


def test_allowlist_accepts_plain_numpy_and_rejects_escapes():
    check_code(extract_reward_code(GOOD))
    with pytest.raises(CodeRejected, match="os"):
        check_code(extract_reward_code(HOSTILE))


# -- reflection, fitness, HNS ----------------------------------------------------------------------------------
CURVE = [{"timestep": 100 * (i + 1), "episodes": 3, "success_rate": s, "env_return": r, "reward_mean": 0.2,
          "components": {"dist": -1.0 + 0.1 * i, "ctrl": -0.01}} for i, (s, r) in
         enumerate([(0.0, 1.0), (0.5, 2.0), (0.25, 3.0), (None, None)])]


def test_reflection_lists_every_component_with_max_mean_min():
    text = reflection_text(CURVE, evaluation=0.4)
    lines = text.splitlines()
    assert lines[1] == "task_score: [0, 0.5, 0.25], max 0.5, mean 0.25, min 0"
    assert "'dist': [-1, -0.9, -0.8, -0.7], max -0.7, mean -0.85, min -1" in text
    assert "'ctrl': [-0.01, -0.01, -0.01, -0.01]" in text
    assert "final policy on fresh episodes: 0.4" in text
    assert "Write a new, complete compute_reward" in text


def test_fitness_modes():
    assert fitness(CURVE, mode="max") == 0.5
    assert fitness(CURVE, mode="max", evaluation=0.9) == 0.5  # training fitness: never mixed with an evaluation
    assert fitness(CURVE, mode="final") == 0.25
    assert fitness(CURVE, mode="final", evaluation=0.9) == 0.9
    assert fitness([], mode="max") == 0.0
    # training's short last window (3 episodes after ten of ~33) joins the window before it instead of being read
    # as a success rate of its own (it was 0.67 beside 0.24: the selected DoorKey reward then evaluated 0.00)
    doorkey = [{"timestep": 20_000 * (i + 1), "episodes": 33, "success_rate": s, "env_return": s}
               for i, s in enumerate([0.1, 0.12, 0.24, 0.24])] + [
        {"timestep": 80_704, "episodes": 3, "success_rate": 2 / 3, "env_return": 2 / 3}]
    assert fitness(doorkey, mode="max") == pytest.approx((0.24 * 33 + 2) / 36, abs=1e-6)
    assert fitness(doorkey, mode="final") == fitness(doorkey, mode="max")
    assert tiebreak(doorkey) == pytest.approx((0.24 * 33 + 2) / 36, abs=1e-6)
    assert fitness(doorkey[:-1] + [{**doorkey[-1], "episodes": 20}], mode="max") == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="search.fitness"):
        fitness(CURVE, mode="mean")


def test_hns_arithmetic():
    assert hns(0.8, human=0.8, sparse=0.2) == pytest.approx(1.0)
    assert hns(0.2, human=0.8, sparse=0.2) == pytest.approx(0.0)
    assert hns(1.0, human=0.5, sparse=0.0) == pytest.approx(2.0)
    assert hns(0.0, human=0.2, sparse=0.6) == pytest.approx(-1.5)  # |human - sparse| in the denominator
    assert hns(0.5, human=0.3, sparse=0.3) is None
    summary = hns_summary({"eureka": [0.6, 1.0], "env": [0.6, 0.5], "sparse": [0.2, 0.0]})
    assert summary["per_seed"] == pytest.approx([1.0, 2.0])
    assert summary["mean"] == pytest.approx(1.5) and summary["std"] == pytest.approx(0.5)
    assert summary["of_means"] == pytest.approx((0.8 - 0.1) / 0.45)


def test_samples_get_distinct_seeds():
    seeds = {sample_seed(0, it, k) for it in range(5) for k in range(16)}
    assert len(seeds) == 80


def test_only_the_last_round_of_feedback_stays_in_context():
    ctx = EnvContext(ENV_ID, "Open the door.", "obs: image", "Discrete(7)", "terminated and reward > 0")
    messages = feedback_messages(ctx, "def compute_reward(o, a, n, i):\n    return 0.0, {}", "feedback 2")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[:2] == initial_messages(ctx)
    assert messages[-1]["content"] == "feedback 2"


def test_the_format_example_follows_the_action_space_and_names_no_task():
    """A small coder copies the example's terms: an effort penalty on a discrete action (an index) taught the
    DoorKey coder to charge for high action ids, so only continuous actions get it; the teaching names no task."""
    ctx = env_context(ENV_ID)
    blind = EnvContext("(not given)", "(not given)", ctx.observation.splitlines()[0], ctx.action, None)
    discrete = initial_messages(blind)[0]["content"]
    assert "effort" not in discrete and "np.square(action)" not in discrete and "discrete" in discrete
    box = EnvContext("Car-v0", "Drive up the hill.", "obs[0] position", "Box(-1.0, 1.0, (1,), float32)", "top")
    continuous = initial_messages(box)[0]["content"]
    assert "effort = -0.01 * float(np.sum(np.square(action)))" in continuous
    for system in (discrete, continuous):
        assert "pays the agent not to finish" in system and "bonus for success" in system
        # a context without info keys (the blind control's) gets a system message naming no task's objects,
        # keys or ids
        assert not any(word in system.lower() for word in ("key", "door", "agent_x", "minigrid", "cell"))
        assert "np.exp(-distance" not in system
    assert "not a count of cells" in TIPS


def test_an_info_described_context_gets_an_example_reading_info_and_the_blind_one_does_not():
    """The DoorKey coder copied the observation example's ``obs[0:2]`` into a 7x7x3 image of ids and subtracted
    tuples of info values: where info keys are described, the example builds arrays from info numbers, the context
    says what an info value and the image are, and the blind control (no info keys) keeps the observation example."""
    ctx = env_context(ENV_ID)
    system, task = (m["content"] for m in initial_messages(ctx))
    # the example reads the task's own position keys (another task's keys were copied into a KeyError)
    assert 'np.array([info["agent_x"], info["agent_y"]], dtype=float)' in system and "next_obs[0:2]" not in system
    assert 'np.array([info["key_x"], info["key_y"]], dtype=float)' in system and "hand_x" not in system
    assert "one plain Python number" in task and "not coordinates" in task and "np.array([info['a_x']" in task
    blind = EnvContext("(not given)", "(not given)", ctx.observation.splitlines()[0], ctx.action, None)
    assert "next_obs[0:2]" in initial_messages(blind)[0]["content"]
    feedback = failure_feedback("TypeError: unsupported operand type(s) for -: 'tuple' and 'tuple' (line 3 of the "
                                "reward code)")
    assert "tuples cannot be subtracted" in feedback and "np.array([x, y])" in feedback
    assert "That is:" not in failure_feedback("NameError: name 'foo' is not defined")
    rejected = "line 1: import of 'scipy' is not allowed (only math, numpy)"
    assert "only `import numpy as np`" in failure_feedback(rejected)


def test_a_run_dir_written_with_other_prompts_is_refused(tmp_path):
    from llm_reward.eureka.rundir import RunDirMismatch, check_run_dir, search_identity

    identity = search_identity(ENV_ID, "scripted", {"seed": 0}, None)
    assert identity["prompts"] == PROMPTS_DIGEST
    (tmp_path / "config.json").write_text(json.dumps({"env_id": ENV_ID, "llm": "scripted", "search": {"seed": 0}}))
    with pytest.raises(RunDirMismatch, match=r"prompts \(the prompt texts\): stored None"):
        check_run_dir(tmp_path, identity)  # written before the prompts were part of the identity
    (tmp_path / "config.json").write_text(json.dumps({"env_id": ENV_ID, "llm": "scripted", "prompts": PROMPTS_DIGEST,
                                                      "search": {"seed": 0}}))
    check_run_dir(tmp_path, identity)


# -- bad input ---------------------------------------------------------------------------------------------------
def test_bad_config_fails_naming_the_key():
    with pytest.raises(ValueError, match="search.samples"):
        SearchConfig(samples=0)
    with pytest.raises(ValueError, match="search.temperature"):
        SearchConfig(temperature=0.0)
    with pytest.raises(ExecutorError, match="search.executor"):
        check_executor("slurm")


def test_context_errors_name_the_key():
    with pytest.raises(ValueError, match="unknown env id"):
        env_context("NoSuchEnv-v0")
    ctx = env_context(ENV_ID)
    # MiniGrid: the coder is pointed at the grid's state in info, each key with its meaning, not at the egocentric ids
    text = ctx.as_text()
    assert "info['agent_x']: column of the agent (x = 0 is the left wall" in text
    assert "info['key_x']: column of the key (-1 while carried)" in text and "object ids" not in text
    assert "prefer these keys over indexing the observation" in text and "3 pick up" in text
    assert not set(ctx.info_meanings) & set(ctx.hidden_info_keys) and "info_meanings" in ctx.as_dict()
    with pytest.raises(ValueError, match="context.descripton"):
        ctx.with_overrides({"descripton": "typo"})
    from llm_reward.eureka.context import check_context

    with pytest.raises(ValueError, match="context.description"):
        check_context(ctx.with_overrides({"description": " "}))


# -- the whole loop --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_search(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("search")
    llm = ScriptedLLM([GOOD, BUGGY, HOSTILE, NO_FUNCTION])
    summary = EurekaSearch(ENV_ID, llm, tiny_config(), run_dir, progress=False).run()
    return run_dir, llm, summary


def test_search_records_every_stage_of_every_candidate(finished_search):
    run_dir, llm, summary = finished_search
    assert summary["candidates"] == 8 and summary["task"] == ENV_ID
    assert summary["execute_rate_per_iteration"] == [0.25, 0.25]
    assert summary["failures_by_stage"] == {"smoke": 2, "allowlist": 2, "extract": 2}
    first = json.loads((run_dir / "iter_00" / "cand_01" / "result.json").read_text())
    assert first["stage"] == "smoke" and "NameError" in first["reason"] and "undefined_name" in first["reason"]
    for name in ("config.json", "context.json", "context.txt", "summary.json", "best_reward.py",
                 "iter_00/prompt.json", "iter_00/cand_00/response.md", "iter_00/cand_00/code.py",
                 "iter_00/cand_00/train.log", "iter_00/summary.json", "final/eureka_seed0.json",
                 "final/env_seed0.json", "final/sparse_seed0.json"):
        assert (run_dir / name).exists(), name
    good = json.loads((run_dir / "iter_00" / "cand_00" / "result.json").read_text())
    assert good["status"] == "ok" and good["curve"] and set(good["curve"][0]["components"]) == {
        "key_visible", "door_visible"}
    assert summary["hns"]["per_seed"] and summary["final"]["eureka"]["seeds"] == [100]
    # the reported metric: each final policy on fresh episodes, beside the training fitness that selected the code
    assert summary["eval_episodes"] == 3 and set(summary["eval_success"]) == {"eureka", "env", "sparse"}
    final = json.loads((run_dir / "final" / "env_seed0.json").read_text())
    assert final["eval_episodes"] == 3 and final["eval_success"] in (0.0, 1 / 3, 2 / 3, 1.0)
    assert summary["final"]["env"]["eval_success"] == [final["eval_success"]]
    assert summary["final"]["env"]["training_fitness"] == [final["fitness"]]
    assert summary["execute_rate"] == summary["execute_rate_first_try"] == 0.25  # no repairs asked for
    assert good["prescreen_score"] is not None and summary["prescreen_pairs"] == 2


def test_samples_of_one_prompt_use_distinct_seeds_and_temperature(finished_search):
    _, llm, _ = finished_search
    seeds = [call["seed"] for call in llm.calls]
    assert len(set(seeds)) == len(seeds) == 8  # repairs=0: one call per sample
    assert all(call["temperature"] > 0 for call in llm.calls)


def test_best_candidate_reflection_feeds_the_next_prompt(finished_search):
    run_dir, llm, _ = finished_search
    second = json.loads((run_dir / "iter_01" / "prompt.json").read_text())
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert "key_visible" in second[2]["content"]  # the selected (only working) code
    assert "task_score" in second[3]["content"] and "'key_visible': [" in second[3]["content"]
    # failure diagnosis from the training runner's view of the progress oracle, beside a random policy's
    assert "Where episodes ended" in second[3]["content"] and "a random policy's progress" in second[3]["content"]
    assert "share of episodes that ran out of time" in second[3]["content"]
    # and, DoorKey having milestones, how many episodes reached each (none of that in the first prompt)
    assert ("share of episodes that reached each milestone (first to last point): picked up the key ["
            in second[3]["content"]) and "], opened the door [" in second[3]["content"]  # the env's order
    assert not any(name in m["content"] for m in second[:2] for name in ("picked up the key", "opened the door"))
    assert json.loads((run_dir / "config.json").read_text())["diagnosis"]
    assert llm.calls[4]["messages"] == second


def test_rerun_resumes_without_calling_the_llm_or_retraining(finished_search):
    run_dir, _, summary = finished_search
    llm = ScriptedLLM([NO_FUNCTION])
    again = EurekaSearch(ENV_ID, llm, tiny_config(), run_dir, progress=False).run()
    assert llm.calls == []
    assert again["best_training_fitness_per_iteration"] == summary["best_training_fitness_per_iteration"]
    assert again["final"] == summary["final"]


def test_a_final_run_of_code_that_is_no_longer_the_best_is_trained_again(finished_search, tmp_path):
    import shutil

    run_dir = tmp_path / "search"
    shutil.copytree(finished_search[0], run_dir)
    stale = json.loads((run_dir / "final" / "eureka_seed0.json").read_text())
    assert stale["code"] == (run_dir / "best_reward.py").read_text()  # each final run names the code it trained
    # as if an earlier, shorter search had picked other code and its final runs were kept
    (run_dir / "final" / "eureka_seed0.json").write_text(json.dumps({**stale, "code": "def compute_reward(): ..."}))
    kept = (run_dir / "final" / "env_seed0.json").stat().st_mtime_ns
    EurekaSearch(ENV_ID, ScriptedLLM([NO_FUNCTION]), tiny_config(), run_dir, progress=False).run()
    again = json.loads((run_dir / "final" / "eureka_seed0.json").read_text())
    assert again["code"] == (run_dir / "best_reward.py").read_text()  # retrained on the best code
    assert (run_dir / "final" / "env_seed0.json").stat().st_mtime_ns == kept  # a baseline's run stays


def test_minigrid_final_policies_sample_actions_and_argmax_records_are_evaluated_again(finished_search, tmp_path):
    import shutil

    # MiniGrid policies are scored on sampled actions (an argmax policy can turn against a wall forever);
    # continuous control keeps SB3's argmax
    assert tiny_config().job(ENV_ID, [], reward="env", seed=0).train.eval_deterministic is False
    assert tiny_config().job("MountainCarContinuous-v0", [], reward="env", seed=0).train.eval_deterministic is True
    run_dir = tmp_path / "search"
    shutil.copytree(finished_search[0], run_dir)
    assert finished_search[2]["eval_actions"] == "sampled"
    stored = json.loads((run_dir / "final" / "eureka_seed0.json").read_text())
    assert stored["eval_deterministic"] is False
    # a record from before the key: evaluated on argmax actions, so not this search's metric
    (run_dir / "final" / "eureka_seed0.json").write_text(json.dumps(
        {k: v for k, v in stored.items() if k != "eval_deterministic"}))
    kept = (run_dir / "final" / "env_seed0.json").stat().st_mtime_ns
    EurekaSearch(ENV_ID, ScriptedLLM([NO_FUNCTION]), tiny_config(), run_dir, progress=False).run()
    assert json.loads((run_dir / "final" / "eureka_seed0.json").read_text())["eval_deterministic"] is False
    assert (run_dir / "final" / "env_seed0.json").stat().st_mtime_ns == kept


def test_a_reference_arm_trains_beside_the_final_arms_and_is_never_selected(finished_search, tmp_path):
    import shutil

    run_dir = tmp_path / "search"
    shutil.copytree(finished_search[0], run_dir)
    best = (run_dir / "best_reward.py").read_text()
    reference = ("def compute_reward(obs, action, next_obs, info):\n    cost = -0.01\n"
                 "    return cost, {'cost': cost}\n")
    llm = ScriptedLLM([NO_FUNCTION])
    summary = EurekaSearch(ENV_ID, llm, tiny_config(), run_dir, progress=False,
                           references={"reference": reference}).run()
    assert llm.calls == [] and (run_dir / "best_reward.py").read_text() == best
    stored = json.loads((run_dir / "final" / "reference_seed0.json").read_text())
    assert stored["status"] == "ok" and stored["code"].strip() == reference.strip()
    assert set(summary["eval_success"]) == {"eureka", "env", "sparse", "reference"}
    assert summary["final"]["reference"]["seeds"] == [100]
    with pytest.raises(ValueError, match="reference arm 'hand'"):  # checked like a candidate, before any LLM call
        EurekaSearch(ENV_ID, llm, tiny_config(), tmp_path / "other", references={"hand": "import os\n" + reference})
    for name in ("eureka", "../escape"):
        with pytest.raises(ValueError, match="identifiers not taken"):
            EurekaSearch(ENV_ID, llm, tiny_config(), tmp_path / "other", references={name: reference})


def test_a_round_with_no_working_code_feeds_back_the_error(tmp_path):
    llm = ScriptedLLM([BUGGY])
    summary = EurekaSearch(ENV_ID, llm, tiny_config(samples=1, iterations=2, final_seeds=0), tmp_path,
                           progress=False).run()
    assert summary["execute_rate"] == 0.0 and summary["best_training_fitness"] is None
    feedback = llm.calls[1]["messages"][-1]["content"]
    assert "could not be used" in feedback and "NameError" in feedback


class InterruptingLLM(ScriptedLLM):
    """Good code twice; the third call waits until both candidates are written, then acts like a Ctrl-C."""

    def __init__(self, run_dir):
        super().__init__([GOOD])
        self.run_dir = run_dir

    def complete(self, messages, **sampling):
        import time

        if len(self.calls) == 2:
            done = [self.run_dir / "iter_00" / f"cand_{k:02d}" / "result.json" for k in range(2)]
            deadline = time.monotonic() + 600
            while not all(p.exists() for p in done) and time.monotonic() < deadline:
                time.sleep(0.5)
            raise KeyboardInterrupt
        return super().complete(messages, **sampling)


def test_ctrl_c_keeps_finished_candidates_and_a_rerun_continues(tmp_path):
    config = tiny_config(samples=3, iterations=1, final_seeds=0)
    with pytest.raises(KeyboardInterrupt):
        EurekaSearch(ENV_ID, InterruptingLLM(tmp_path), config, tmp_path, progress=False).run()
    kept = [json.loads((tmp_path / "iter_00" / f"cand_{k:02d}" / "result.json").read_text()) for k in range(2)]
    assert all(r["status"] == "ok" for r in kept)
    assert not (tmp_path / "iter_00" / "cand_02").exists()
    llm = ScriptedLLM([GOOD])
    summary = EurekaSearch(ENV_ID, llm, config, tmp_path, progress=False).run()
    assert len(llm.calls) == 1 and llm.calls[0]["seed"] == sample_seed(0, 0, 2)
    assert summary["candidates"] == 3 and summary["execute_rate"] == 1.0


# -- the run directory belongs to one search -------------------------------------------------------------------
def test_a_run_dir_of_another_env_coder_or_setting_is_refused_before_any_llm_call(finished_search):
    from llm_reward.eureka.rundir import RunDirMismatch

    run_dir, _, _ = finished_search
    llm = ScriptedLLM([GOOD])
    with pytest.raises(RunDirMismatch, match=r"env\.id: stored 'MiniGrid-DoorKey-5x5-v0', now "
                                             r"'MiniGrid-DoorKey-6x6-v0'.*Set run_dir"):
        EurekaSearch("MiniGrid-DoorKey-6x6-v0", llm, tiny_config(), run_dir, progress=False)
    other_coder = ScriptedLLM([GOOD])
    other_coder.name = "another-coder"
    with pytest.raises(RunDirMismatch, match="llm"):
        EurekaSearch(ENV_ID, other_coder, tiny_config(), run_dir, progress=False)
    with pytest.raises(RunDirMismatch, match=r"search\.total_timesteps: stored 512, now 1024"):
        EurekaSearch(ENV_ID, llm, tiny_config(total_timesteps=1024), run_dir, progress=False)
    assert llm.calls == [] and other_coder.calls == []
    # settings that only add or place work may change on resume
    EurekaSearch(ENV_ID, llm, tiny_config(samples=5, workers=1, final_seeds=2), run_dir, progress=False)


def test_default_run_dirs_differ_by_env_id_coder_and_search_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dirs = {EurekaSearch(env_id, ScriptedLLM([GOOD]), tiny_config(**cfg), progress=False).run_dir
            for env_id, cfg in [(ENV_ID, {}), ("MiniGrid-DoorKey-6x6-v0", {}), (ENV_ID, {"total_timesteps": 1024})]}
    assert len(dirs) == 3
    again = EurekaSearch(ENV_ID, ScriptedLLM([GOOD]), tiny_config(workers=1), progress=False).run_dir
    assert again in dirs and again.parts[:3] == ("runs", "eureka", ENV_ID)


# -- repair and pre-screening ----------------------------------------------------------------------------------
MOVING = GOOD.replace("0.1 * key + 0.1 * door", "0.2 * key - 0.1 * door")


def test_a_failed_reply_is_repaired_and_prescreening_picks_what_trains(tmp_path):
    llm = ScriptedLLM([BUGGY, GOOD, MOVING])
    config = tiny_config(samples=2, iterations=1, final_seeds=0, repairs=1, prescreen_top=1)
    summary = EurekaSearch(ENV_ID, llm, config, tmp_path, progress=False).run()
    assert len(llm.calls) == 3
    repair = llm.calls[1]["messages"]
    # the failed reply is not sent back (the small coder repeats a reply it is shown): its reason and failing line
    assert repair[:-1] == llm.calls[0]["messages"] and repair[-1]["role"] == "user"
    assert "could not be used" in repair[-1]["content"] and "NameError" in repair[-1]["content"]
    assert "The failing line: `return undefined_name * 2, {}`" in repair[-1]["content"]
    assert llm.calls[1]["seed"] != llm.calls[0]["seed"]  # a repair samples anew, not the failed reply's seed
    first = json.loads((tmp_path / "iter_00" / "cand_00" / "result.json").read_text())
    assert first["repairs"] == 1 and first["attempts"][0]["stage"] == "smoke"
    assert (tmp_path / "iter_00" / "cand_00" / "response_repair1.md").read_text() == GOOD
    records = [json.loads((tmp_path / "iter_00" / f"cand_{k:02d}" / "result.json").read_text()) for k in range(2)]
    assert sorted(r["status"] for r in records) == ["ok", "screened_out"]
    trained = next(r for r in records if r["status"] == "ok")
    assert trained["prescreen_score"] >= max(r["prescreen_score"] for r in records)
    assert summary["execute_rate"] == 1.0 and summary["execute_rate_first_try"] == 0.5


def test_spearman_and_prescreen_score_against_the_progress_oracle():
    from llm_reward.eureka.prescreen import collect_rollouts, prescreen_score, spearman

    assert spearman([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(0.8)
    assert spearman([1, 1, 2], [3, 3, 3]) is None
    rollouts = collect_rollouts("MountainCarContinuous-v0", n_steps=300, seed=0)
    forward = "def compute_reward(obs, action, next_obs, info):\n    return float(next_obs[0]), {}"
    assert prescreen_score(forward, rollouts) == pytest.approx(1.0)  # the oracle is the position after the step
    assert prescreen_score(forward.replace("float(next_obs[0])", "-float(next_obs[0])"), rollouts) == \
        pytest.approx(-1.0)
    with pytest.raises(ValueError, match="search.prescreen_steps"):
        collect_rollouts("CartPole-v1", n_steps=5)


def test_an_executor_that_cannot_start_is_an_error_naming_its_keys_before_any_llm_call(tmp_path, monkeypatch):
    from llm_reward.eureka import search as search_module

    def unreachable(*args, **kwargs):
        raise ConnectionError("could not connect to ray://10.0.0.1:10001")

    monkeypatch.setattr(search_module, "make_executor", unreachable)
    llm = ScriptedLLM([GOOD])
    with pytest.raises(ExecutorError, match=r"search\.executor=local could not start.*search\.ray_address"):
        EurekaSearch(ENV_ID, llm, tiny_config(), tmp_path, progress=False).run()
    assert llm.calls == []


def test_a_jail_that_cannot_start_is_an_error_naming_sandbox_isolation_before_any_llm_call(tmp_path, monkeypatch):
    from llm_reward.eureka import jail

    monkeypatch.setenv(jail.ISOLATION_ENV, "os")
    monkeypatch.setattr(jail, "isolation_status", lambda: "bubblewrap could not set up the namespaces: denied")
    llm = ScriptedLLM([GOOD])
    with pytest.raises(jail.SandboxUnavailable, match=r"sandbox\.isolation='os' cannot run here.*denied"):
        EurekaSearch(ENV_ID, llm, tiny_config(), tmp_path / "run", progress=False).run()
    assert llm.calls == [] and not (tmp_path / "run").exists()
