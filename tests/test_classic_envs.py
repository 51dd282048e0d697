"""Classic-control tasks as an env family: named-field captions, built-in success criteria, Eureka's checks."""

from __future__ import annotations

import doctest

import pytest
from gymnasium.utils.env_checker import check_env

from llm_reward.envs import classic, get_adapter, make_env


def test_cartpole_captions_name_every_field_and_follow_the_state() -> None:
    env = make_env("CartPole-v1", seed=0)
    env.reset(seed=0)
    captions = []
    for _ in range(5):
        _, _, terminated, truncated, info = env.step(1)
        captions.append(info["caption"])
    assert all(c.startswith("cart position ") and "pole angular velocity" in c for c in captions)
    assert len(set(captions)) == len(captions)  # the state changes every step, so does the caption
    assert get_adapter("CartPole-v1").family == "classic"


def test_success_is_the_builtin_criterion_on_the_last_step() -> None:
    env = make_env("CartPole-v1", seed=0, max_episode_steps=5)
    env.reset(seed=0)
    for _ in range(5):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        if terminated or truncated:
            break
    assert info["is_success"] is (not terminated)  # balanced until the time limit


def test_a_task_without_a_criterion_fails_before_any_work_and_accepts_one() -> None:
    with pytest.raises(ValueError, match="success"):
        make_env("Pendulum-v1")
    env = make_env("Pendulum-v1", success="not terminated", max_episode_steps=3)
    env.reset(seed=0)
    for _ in range(3):
        *_, info = env.step(env.action_space.sample())
    assert info["is_success"] is True


def test_check_env_passes_and_the_docstring_example_runs() -> None:
    check_env(make_env("MountainCarContinuous-v0", seed=0).unwrapped)
    assert doctest.testmod(classic).failed == 0


def test_eureka_validates_reward_code_on_cartpole() -> None:
    from llm_reward.eureka import validate_reward_code

    good = ("import math\n"
            "def compute_reward(obs, action, next_obs, info):\n"
            "    upright = 1.0 - abs(float(next_obs[2])) / 0.21\n"
            "    return upright, {'upright': upright}\n")
    ok, reason = validate_reward_code(good, "CartPole-v1")
    assert ok, reason
    ok, reason = validate_reward_code(good.replace("next_obs[2]", "next_obs[9]"), "CartPole-v1")
    assert not ok and reason
