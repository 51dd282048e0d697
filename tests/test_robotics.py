"""Robotic sims on real envs: task specs (layouts, criteria), captions, success flags, wrappers, agents, learning."""

from __future__ import annotations

import json
import pickle
import re
import warnings

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("gymnasium_robotics")

from llm_reward.agents import agent_defaults, evaluate_success, make_agent, validate_algo  # noqa: E402
from llm_reward.envs import (InfoCriterion, captioner_name, get_adapter, make_env, make_vec_env, robotics,  # noqa: E402
                             robotics_tasks, task_spec)
from llm_reward.envs.task_layout import observation_layout  # noqa: E402

#: One id per family and kind of task; their docs document every index.
DOCUMENTED = ["HalfCheetah-v5", "Hopper-v5", "Ant-v5", "Humanoid-v5", "Reacher-v5", "Pusher-v5",
              "InvertedDoublePendulum-v5", "FetchReach-v4", "FetchPush-v4", "AdroitHandDoor-v1",
              "AdroitHandPen-v1", "PointMaze_UMaze-v3", "AntMaze_UMaze-v5"]


def run_episode(env, policy=None, seed=0):
    """Step to the episode's end; returns every step's info."""
    obs, info = env.reset(seed=seed)
    infos = [info]
    env.action_space.seed(seed)
    while True:
        action = policy(obs) if policy is not None else env.action_space.sample()
        obs, _, terminated, truncated, info = env.step(action)
        infos.append(info)
        if terminated or truncated:
            return infos


@pytest.mark.parametrize("env_id", DOCUMENTED)
def test_layout_documents_every_index(env_id):
    spec = task_spec(env_id)
    env = gym.make(env_id)
    space = env.observation_space
    sizes = ({k: int(np.prod(s.shape)) for k, s in space.spaces.items()} if isinstance(space, gym.spaces.Dict)
             else {None: int(np.prod(space.shape))})
    for key, size in sizes.items():
        fields = [f for f in spec.observation_layout if f.key == key]
        assert [f.index for f in fields] == list(range(size)), key
        assert not [f for f in fields if "undocumented" in f.meaning], key
    json.dumps(spec.as_dict())  # plain data
    assert spec.description.endswith(".") and "\n" not in spec.description
    assert spec.family in robotics_tasks.ROBOT_FAMILIES
    assert "def _get_obs" in spec.observation_source


def test_layout_reads_the_docs_and_the_exclusion_flag():
    cheetah = task_spec("HalfCheetah-v5")
    assert (cheetah.observation_layout[0].name, cheetah.observation_layout[0].unit) == ("rootz", "m")
    assert cheetah.observation_layout[8].meaning == "velocity of the x-coordinate of front tip"
    assert cheetah.observation_layout[16].unit == "rad/s"
    assert cheetah.reward_terms == ["reward_ctrl", "reward_forward"]
    assert cheetah.observation_shape == "Box(17,)" and "(6,)" in cheetah.action_space
    with_x = observation_layout(gym.make("HalfCheetah-v5", exclude_current_positions_from_observation=False))
    assert len(with_x) == 18 and with_x[0].name == "rootx" and with_x[1].name == "rootz"
    ant = {f.index: f for f in task_spec("Ant-v5").observation_layout}
    assert "front_left_leg" in ant[27 + 6].meaning  # contact forces of body 2, named from the MuJoCo model
    fetch = task_spec("FetchPush-v4")
    assert fetch.observation_shape.startswith("Dict(") and fetch.success_criterion.startswith("is_success")
    assert [f.meaning for f in fetch.observation_layout if f.key == "desired_goal"][0].startswith("Final goal")


def test_task_spec_for_any_gymnasium_id():
    cartpole = task_spec("CartPole-v1")
    assert [f.name for f in cartpole.observation_layout] == ["cart_position", "cart_velocity", "pole_angle",
                                                             "pole_angular_velocity"]
    assert cartpole.family == "classic" and cartpole.success_criterion.startswith("not terminated")
    pendulum = task_spec("Pendulum-v1")
    assert pendulum.success_criterion.startswith("none") and pendulum.observation_source.startswith("def _get_obs")
    assert task_spec("Pendulum-v1", success="reward > -1").success_criterion.startswith("reward > -1")
    doorkey = task_spec("MiniGrid-DoorKey-5x5-v0")
    assert doorkey.family == "minigrid" and len(doorkey.observation_layout) == 7 * 7 * 3 + 2
    with pytest.raises(ValueError, match="unknown env id"):
        task_spec("NoSuchRobot-v0")
    with pytest.raises(ValueError, match="does not report"):
        task_spec("Swimmer-v5", success="height >= 1")


def test_info_criterion():
    rule = InfoCriterion("not terminated and mean_forward_velocity >= 2")
    assert rule(None, 0.0, False, True, {"mean_forward_velocity": 2.0})
    assert not rule(None, 0.0, True, False, {"mean_forward_velocity": 3.0})
    assert InfoCriterion("is_success")(None, 0.0, False, True, {"is_success": 1.0})
    assert pickle.loads(pickle.dumps(rule)).keys == ["terminated", "mean_forward_velocity"]
    with pytest.raises(ValueError, match="env.success"):
        InfoCriterion("speed >>= 3")
    with pytest.raises(ValueError, match="does not report"):
        rule(None, 0.0, False, True, {})


@pytest.mark.parametrize("env_id", ["HalfCheetah-v5", "FetchReach-v4"])
def test_caption_every_step_and_success_at_the_end(env_id):
    env = make_env(env_id, seed=0, max_episode_steps=40)
    infos = run_episode(env)
    assert all(isinstance(i["caption"], str) and 0 < len(i["caption"]) <= 100 for i in infos)
    assert all(isinstance(i["progress"], float) for i in infos)
    assert isinstance(infos[-1]["is_success"], bool) and not infos[-1]["is_success"]  # random actions fail
    assert len({i["caption"] for i in infos}) > len(infos) // 4  # the state shows in the caption


def test_locomotion_caption_numbers_and_criterion():
    env = make_env("HalfCheetah-v5", seed=0, max_episode_steps=100)
    infos = run_episode(env)
    caption = infos[-1]["caption"]
    height, distance = re.match(r"torso (\S+) m high, .*, (\S+) m from the start$", caption).groups()
    assert float(height) == pytest.approx(infos[-1]["torso_height"], abs=0.051)
    assert float(distance) == pytest.approx(infos[-1]["distance_travelled"], abs=0.051)
    assert "-0.0" not in caption
    assert any("not moving" in i["caption"] for i in infos[:1]) and any("m/s" in i["caption"] for i in infos)
    assert infos[-1]["progress"] == pytest.approx(infos[-1]["distance_travelled"])
    assert infos[-1]["mean_forward_velocity"] == pytest.approx(infos[-1]["distance_travelled"] / (100 * 0.05))
    easy = make_env("HalfCheetah-v5", seed=0, max_episode_steps=20, success="distance_travelled >= -100")
    assert run_episode(easy)[-1]["is_success"]
    # A hopper that falls over says so, and falling is never a success.
    hopper = run_episode(make_env("Hopper-v5", seed=0))
    assert "fallen over" in hopper[-1]["caption"] and not hopper[-1]["is_success"]


def test_fetch_scripted_reach_succeeds_and_captions_follow_the_gripper():
    env = make_env("FetchReach-v4", seed=1)

    def toward_goal(obs):
        return np.append(np.clip(10 * (obs["desired_goal"] - obs["achieved_goal"]), -1, 1), 0.0)

    infos = run_episode(env, toward_goal, seed=1)
    assert infos[-1]["is_success"]
    distances = [int(i["caption"].split()[1]) for i in infos if i["caption"].endswith("cm from the target")]
    assert distances[0] > 5 >= distances[-1]
    assert infos[-1]["progress"] > infos[0]["progress"]


def test_push_and_maze_and_adroit_captions():
    push = make_env("FetchPush-v4", seed=0).reset(seed=0)[1]["caption"]
    assert push.startswith("gripper ") and "from the block, block " in push and push.endswith("from the target")
    maze = make_env("PointMaze_UMaze-v3", seed=0).reset(seed=0)[1]["caption"]
    assert maze.startswith("ball ") and maze.endswith("from the goal")
    door = make_env("AdroitHandDoor-v1", seed=0).reset(seed=0)[1]["caption"]
    assert "from the door handle" in door and "door opened 0 degrees" in door
    assert captioner_name("FetchPush-v4") == "robot-state-v1-fetch"


@pytest.mark.parametrize("env_id", ["HalfCheetah-v5", "FetchReach-v4", "AdroitHandDoor-v1"])
def test_check_env_on_the_wrapped_env(env_id):
    """SB3's checker on the whole stack as agents see it (Gymnasium's re-creates envs from their spec, which
    Monitor does not support), and Gymnasium's on the raw env."""
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env

    env = make_env(env_id, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float64 observations, unbounded boxes: SB3's advice, not errors
        check_env(env, warn=False)
        gym_check_env(env.unwrapped, skip_render_check=True)


def test_adapter_is_found_by_class_module_and_pickles():
    adapter = get_adapter("Walker2d-v5")
    assert adapter.family == "mujoco" and adapter.goal.startswith("make a 2-D two-legged walker")
    assert get_adapter("AdroitHandHammer-v1").family == "adroit"
    for part in (adapter.make_captioner(), adapter.progress, adapter.success):
        pickle.loads(pickle.dumps(part))  # SubprocVecEnv workers build their own envs from these


def test_missing_success_criterion_is_a_clear_error(monkeypatch):
    monkeypatch.delitem(robotics_tasks.DEFAULT_SUCCESS, "ReacherEnv")
    robotics.adapter.cache_clear()
    try:
        with pytest.raises(ValueError, match="no success flag.*env.success"):
            make_env("Reacher-v5")
        env = make_env("Reacher-v5", seed=0, success="goal_distance <= 0.5")
        assert run_episode(env)[-1]["is_success"]  # the arm never leaves a 50 cm radius
    finally:
        robotics.adapter.cache_clear()


def test_agents_for_robots():
    with pytest.raises(ValueError, match="needs a Discrete action space"):
        validate_algo("dqn", "HalfCheetah-v5")
    with pytest.raises(ValueError, match="needs a Discrete action space"):
        validate_algo("dqn", "FetchReach-v4")
    venv = make_vec_env("FetchReach-v4", n_envs=2, seed=0)
    try:
        her = make_agent("sac_her", venv, seed=0)
        assert type(her.replay_buffer).__name__ == "HerReplayBuffer" and her.gamma == 0.95
        assert type(make_agent("sac", venv, seed=0).replay_buffer).__name__ == "DictReplayBuffer"
    finally:
        venv.close()
    box = gym.spaces.Box(-1, 1, (17,))
    with pytest.raises(ValueError, match="sac_her.*goal-conditioned"):
        agent_defaults("sac_her", box, gym.spaces.Box(-1, 1, (6,)))
    assert agent_defaults("td3", box, gym.spaces.Box(-1, 1, (6,)))["policy"] == "MlpPolicy"


@pytest.mark.slow
def test_short_sac_run_learns_to_balance(one_torch_thread):
    """InvertedPendulum: random actions drop the pole within ~10 steps; a few thousand SAC steps balance it."""
    def env_fn():
        return make_env("InvertedPendulum-v5", max_episode_steps=200)

    venv = make_vec_env("InvertedPendulum-v5", n_envs=1, seed=0, max_episode_steps=200)
    try:
        model = make_agent("sac", venv, seed=0, learning_starts=300, batch_size=64,
                           policy_kwargs={"net_arch": [64, 64]})
        before = evaluate_success(model, env_fn, n_episodes=5, seed=100, deterministic=True)
        model.learn(2500)
        after = evaluate_success(model, env_fn, n_episodes=5, seed=100, deterministic=True)
    finally:
        venv.close()
    assert before["mean_length"] < 30
    assert after["mean_length"] > 3 * before["mean_length"] and after["mean_length"] >= 60


def test_config_env_success_is_validated_and_used(tmp_path):
    from hydra import compose, initialize_config_module

    from llm_reward.apps._common import ConfigError, run_context
    from llm_reward.apps.experiment import validate

    def config(*overrides):
        with initialize_config_module("llm_reward.conf", version_base="1.3"):
            return compose("train", overrides=["env=robotics/reacher", "agent=sac", "reward=none",
                                               f"data_dir={tmp_path}", *overrides])

    with pytest.raises(ConfigError, match="env.success"):
        validate(config("env.success='goal_distance >'"))
    cfg = config("env.success='goal_distance <= 0.5'")
    validate(cfg)
    assert run_episode(run_context(cfg).make_env(seed=0))[-1]["is_success"]  # within 50 cm: always


def test_docs_page_snippets_run(tmp_path):
    """docs/robotics.md: its Python blocks run as written and its llm-reward-train lines compose."""
    import test_docs  # tests/ is on sys.path (pytest's rootdir-relative import)

    for where, code, compile_only in test_docs.blocks("python", ["docs/robotics.md"]):
        test_docs.test_python_snippet_runs(where, code, compile_only, tmp_path)
    apps = [(where, words) for where, words in test_docs.commands(["docs/robotics.md"]) if words[0] in test_docs.APPS]
    assert len(apps) >= 3
    for where, words in apps:
        test_docs.test_app_command_composes(where, words)


@pytest.mark.parametrize("module", ["llm_reward.envs.task", "llm_reward.envs.robotics",
                                    "llm_reward.envs.robotics_info"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
