"""The per-family agent defaults of conf/agent/*.yaml: the same constructor keywords as the Python table they
replaced (tests/data/agent_defaults.json, recorded from it), and SB3 agents built with them."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv

from llm_reward.agents import agent_defaults, make_agent
from llm_reward.agents.policies import NETHACK_KEYS

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

RECORDED = json.loads((Path(__file__).parent / "data" / "agent_defaults.json").read_text())
OBSERVATIONS = {
    "minigrid": spaces.Box(0, 255, (7, 7, 3), np.uint8),
    "nethack": spaces.Dict({k: spaces.Box(0, 255, (4,), np.int64) for k in NETHACK_KEYS}),
    "vector": spaces.Box(-1, 1, (5,), np.float32),
    "goal": spaces.Dict({k: spaces.Box(-1, 1, (3,), np.float32)
                         for k in ("observation", "achieved_goal", "desired_goal")}),
}
ACTIONS = {"discrete": spaces.Discrete(4), "box": spaces.Box(-1, 1, (2,), np.float32)}


def plain(value):
    """Classes as ``class:module.Name`` and action noise by its parameters, as the recording wrote them."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, type):
        return f"class:{value.__module__}.{value.__qualname__}"
    if hasattr(value, "_mu"):
        return f"{type(value).__name__}(mu={value._mu.tolist()}, sigma={value._sigma.tolist()})"
    return value


def spaces_of(key: str):
    family, action, n_envs, algo = key.split("|")
    return algo, OBSERVATIONS[family], ACTIONS[action], int(n_envs)


@pytest.mark.parametrize("key", sorted(RECORDED))
def test_defaults_equal_the_recorded_table(key):
    algo, observation_space, action_space, n_envs = spaces_of(key)
    assert plain(agent_defaults(algo, observation_space, action_space, n_envs=n_envs)) == RECORDED[key]


class _SpacesEnv(gym.Env):
    """Zeros of the given spaces: enough to build an agent (no stepping)."""

    def __init__(self, observation_space, action_space):
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed=None, options=None):
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}

    def compute_reward(self, achieved_goal, desired_goal, info):  # HerReplayBuffer asks the env for it
        return np.zeros(len(achieved_goal))


def _attribute(model, key: str):
    value = getattr(model, key)
    if key == "train_freq":
        return value.frequency
    if callable(value) and key in ("clip_range", "learning_rate"):
        return value(1.0)
    return value


@pytest.mark.parametrize("key", ["minigrid|discrete|8|ppo", "minigrid|discrete|8|dqn", "minigrid|discrete|8|a2c",
                                 "vector|box|8|sac", "vector|box|8|td3", "vector|discrete|1|ppo",
                                 "goal|box|8|sac_her", "goal|box|8|ppo"])
def test_built_agent_has_the_recorded_hyperparameters(key):
    algo, observation_space, action_space, n_envs = spaces_of(key)
    venv = DummyVecEnv([lambda: _SpacesEnv(observation_space, action_space)] * n_envs)
    model = make_agent(algo, venv, seed=0, buffer_size=1_000) if algo in ("sac", "td3", "sac_her", "dqn") else \
        make_agent(algo, venv, seed=0)
    recorded = dict(RECORDED[key])
    assert type(model.policy) is model.policy_aliases[recorded.pop("policy")]
    for name, value in plain(model.policy_kwargs).items():  # SB3 adds its own (use_sde), checked are the table's
        if name in recorded.get("policy_kwargs", {}):
            assert value == recorded["policy_kwargs"][name], name
    recorded.pop("policy_kwargs", None)
    recorded.pop("buffer_size", None)  # overridden above to keep the test small
    for name, value in recorded.items():
        assert plain(_attribute(model, name)) == value, name
    venv.close()
