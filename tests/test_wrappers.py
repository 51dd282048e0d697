"""Shaping math, LLMRewardWrapper / LLMRewardVecEnv / ShapedRewardLogger on a tiny captioned corridor and MiniGrid."""

from __future__ import annotations

import functools
import math
import pickle
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
from omegaconf import OmegaConf
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from llm_reward.shaping.captions import CaptionWrapper, FunctionCaptioner
from llm_reward.shaping.formula import (CachedReward, CaptionCounter, Shaper, ShapingConfig, potential_rewards,
                                shaped_rewards)
from llm_reward.shaping.wrappers import LLMRewardVecEnv, LLMRewardWrapper, ShapedRewardLogger

LEFT, RIGHT, STAY = 0, 1, 2


class Corridor(gym.Env):
    """Cells 0..length; start at 0; reward 1 and termination on reaching ``length``; truncation after max_steps."""

    metadata = {"render_modes": []}

    def __init__(self, length: int = 3, max_steps: int = 8):
        self.length, self.max_steps = length, max_steps
        self.observation_space = gym.spaces.Box(0, length, shape=(1,), dtype=np.int64)
        self.action_space = gym.spaces.Discrete(3)
        self.pos = self.steps = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.pos], dtype=np.int64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.steps = 0
        return self._obs(), {}

    def step(self, action):
        self.pos = int(np.clip(self.pos + {LEFT: -1, RIGHT: 1, STAY: 0}[int(action)], 0, self.length))
        self.steps += 1
        terminated = self.pos == self.length
        return self._obs(), float(terminated), terminated, self.steps >= self.max_steps and not terminated, {}


def corridor_caption(obs, info) -> str:
    """Cell k is captioned by k+1 'x's, so the length reward model scores it k+1."""
    return "x" * (int(obs[0]) + 1)


def corridor_captioner() -> FunctionCaptioner:
    return FunctionCaptioner(corridor_caption, name="corridor")


def make_corridor(length: int = 3, max_steps: int = 8) -> gym.Env:
    """Monitor innermost, then the captions: the order SB3's make_vec_env and the zoo produce."""
    return CaptionWrapper(Monitor(Corridor(length, max_steps)), corridor_captioner())


class LengthReward:
    """Reward = caption length; records every batch it is called on; optional threshold and captioner name."""

    def __init__(self, threshold: float | None = None, captioner: str | None = None):
        self._threshold, self.calls, self.quantiles = threshold, [], []
        if captioner is not None:
            self.captioner = captioner

    def __call__(self, captions):
        self.calls.append(list(captions))
        return np.array([len(c) for c in captions], dtype=np.float32)

    def threshold(self, quantile: float) -> float:
        self.quantiles.append(quantile)
        return -math.inf if self._threshold is None else self._threshold


def constant_reward(captions):
    return np.ones(len(captions), dtype=np.float32)


def shaped_corridor(seed: int = 0, **shaping) -> gym.Env:
    """The env factory a SubprocVecEnv worker unpickles: reward model, captioner and wrapper built inside."""
    env = LLMRewardWrapper(Monitor(Corridor()), reward_model=LengthReward(), captioner=corridor_captioner(),
                           **shaping)
    env.reset(seed=seed)
    return env


def rollout(env: gym.Env, actions: list[int]) -> list[tuple[float, bool, dict]]:
    env.reset(seed=0)
    out = []
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        out.append((reward, terminated or truncated, info))
        if terminated or truncated:
            env.reset()
    return out


# --- configuration -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, field", [
    ({"alpha_int": -0.1}, ValueError, "alpha_int"),
    ({"alpha_ext": "1.0"}, TypeError, "alpha_ext"),
    ({"beta": float("nan")}, ValueError, "beta"),
    ({"beta": True}, TypeError, "beta"),
    ({"threshold_quantile": 1.5}, ValueError, "threshold_quantile"),
    ({"threshold_quantile": "0.5"}, TypeError, "threshold_quantile"),
    ({"count_scope": "forever"}, ValueError, "count_scope"),
    ({"gama": 0.9}, TypeError, "gama"),
    ({"form": "linear"}, ValueError, "form"),
    ({"form": "potential", "gamma": 1.5}, ValueError, "gamma"),
    ({"form": "potential", "beta": 3.0}, ValueError, "beta"),
    ({"form": "potential", "terminal_potential": "drop"}, ValueError, "terminal_potential"),
    ({"alpha_int": float("inf")}, ValueError, "alpha_int"),
    ({"beta": float("nan")}, ValueError, "beta"),
])
def test_config_validation_names_field_and_value(kwargs, error, field):
    with pytest.raises(error, match=field):
        ShapingConfig.from_kwargs(kwargs)
    with pytest.raises(error, match=field):
        LLMRewardWrapper(make_corridor(), reward_model=LengthReward(), **kwargs)


def test_repository_reward_configs_are_valid():
    from hydra import compose, initialize_config_module

    conf = Path(__file__).parents[1] / "conf"
    envs = sorted(str(p.relative_to(conf / "env").with_suffix("")) for p in (conf / "env").rglob("*.yaml"))
    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        for reward in sorted(p.stem for p in (conf / "reward").glob("*.yaml")):
            for env in envs:
                cfg = compose("train", overrides=[f"reward={reward}", f"env={env}"])
                if "shaping" in cfg.reward:
                    shaping = OmegaConf.to_container(cfg.reward.shaping, resolve=True)
                    assert shaping.get("gamma", None) is None, (reward, env)  # null: the agent's discount
                    config = ShapingConfig(**{**shaping, "gamma": 0.99})
                    assert isinstance(config.beta, float), (reward, env)
                    if reward in ("motif", "oracle", "shuffled"):  # the env config recommends the form
                        assert config.form == cfg.env.shaping_form, (reward, env)
    assert ShapingConfig(alpha_ext=10, threshold_quantile=None).alpha_ext == 10.0


def test_potential_shaping_discounts_like_the_agent_unless_told_otherwise():
    from types import SimpleNamespace

    from hydra import compose, initialize_config_module

    from llm_reward.envs import make_env
    from llm_reward.apps.experiment import _shaping_kwargs

    def gamma(env: str, *overrides: str) -> float:
        with initialize_config_module("llm_reward.conf", version_base="1.3"):
            cfg = compose("train", overrides=[f"env={env}", "reward=motif", *overrides])
        spaces = make_env(cfg.env.id)
        return _shaping_kwargs(cfg, SimpleNamespace(observation_space=spaces.observation_space,
                                                    action_space=spaces.action_space))["gamma"]

    assert gamma("minigrid/doorkey_5x5") == 0.99
    assert gamma("nethack/score") == 0.999  # the NetHack PPO default
    assert gamma("nethack/score", "+agent.kwargs.gamma=0.95") == 0.95
    assert gamma("nethack/score", "reward.shaping.gamma=0.9") == 0.9


# --- the math ------------------------------------------------------------------------------------------------


def test_shaped_rewards_formula():
    config = ShapingConfig(alpha_ext=2.0, alpha_int=0.5, beta=2.0)
    r_int, total = shaped_rewards([1, 0, 0, 2], [2.0, 0.5, -1.0, 3.0], [1, 2, 1, 3], config, threshold=1.0)
    np.testing.assert_allclose(r_int, [2.0, 0.0, 0.0, 3.0 / 9])
    np.testing.assert_allclose(total, [2 + 1.0, 0.0, 0.0, 4 + 0.5 / 3])
    with pytest.raises(ValueError, match=">= 1"):
        shaped_rewards([0.0], [1.0], [0], config)


def test_potential_form_math_and_defaults():
    assert ShapingConfig().beta == 3.0 and ShapingConfig(form="potential").beta == 0.0
    config = ShapingConfig(form="potential", alpha_ext=2.0, alpha_int=0.5, gamma=0.9)
    r_int, total = potential_rewards([1, 0, 0], [2.0, 0.5, 3.0], [1.0, 2.0, -1.0], config, threshold=0.0)
    np.testing.assert_allclose(r_int, [0.9 * 2 - 1, 0.9 * 0.5 - 2, 0.9 * 3 - 0])  # Phi(-1) = 0 below threshold
    np.testing.assert_allclose(total, 2.0 * np.array([1, 0, 0]) + 0.5 * r_int)


def test_potential_form_telescopes_over_an_episode_and_counts_do_not_matter():
    # gamma = 1: the episode's intrinsic sum is Phi(last caption) - Phi(reset caption), however the agent wandered.
    env = LLMRewardWrapper(make_corridor(max_steps=20), reward_model=LengthReward(), alpha_ext=0.0, alpha_int=1.0,
                           threshold_quantile=None, form="potential", gamma=1.0)
    steps = rollout(env, [RIGHT, LEFT, STAY, RIGHT, RIGHT, RIGHT])
    assert [r for r, _, _ in steps] == [1.0, -1.0, 0.0, 1.0, 1.0, 1.0]
    assert steps[-1][2]["episode_shaped"]["r_intrinsic"] == pytest.approx(4 - 1)
    assert steps[-1][1]  # reached the end: no bonus for lingering was possible


def test_zero_terminal_potential_makes_termination_absorbing_but_not_truncation():
    config = ShapingConfig(form="potential", alpha_int=1.0, gamma=0.5, terminal_potential="zero")
    r_int, _ = potential_rewards([0, 0], [4.0, 4.0], [2.0, 2.0], config, terminated=[True, False])
    np.testing.assert_allclose(r_int, [0 - 2.0, 0.5 * 4 - 2.0])
    with pytest.raises(ValueError, match="terminated"):
        potential_rewards([0], [4.0], [2.0], config)
    kwargs = dict(alpha_ext=0.0, alpha_int=1.0, threshold_quantile=None, form="potential", gamma=1.0)
    # Reaching the end terminates: "zero" takes back the potential gathered on the way (Phi(reset) = 1 remains).
    for terminal_potential, last in (("keep", 1.0), ("zero", -3.0)):
        env = LLMRewardWrapper(make_corridor(), reward_model=LengthReward(), terminal_potential=terminal_potential,
                               **kwargs)
        steps = rollout(env, [RIGHT, RIGHT, RIGHT])
        assert steps[-1][1] and [r for r, _, _ in steps] == [1.0, 1.0, last]
    # A time limit is not termination: the last caption keeps its potential under "zero" too.
    env = LLMRewardWrapper(make_corridor(max_steps=2), reward_model=LengthReward(), terminal_potential="zero",
                           **kwargs)
    steps = rollout(env, [RIGHT, RIGHT])
    assert steps[-1][1] and [r for r, _, _ in steps] == [1.0, 1.0]  # truncated after 2 steps, Phi(last) = 3 kept


def test_caption_counter_scopes():
    episodic, shared = CaptionCounter(2, "episode"), CaptionCounter(2, "global")
    assert [episodic.add(0, "a"), episodic.add(0, "a"), episodic.add(1, "a")] == [1, 2, 1]
    assert [shared.add(0, "a"), shared.add(1, "a")] == [1, 2]
    episodic.reset_episode(0)
    shared.reset_episode(0)
    assert episodic.count(0, "a") == 0 and episodic.count(1, "a") == 1 and shared.count(0, "a") == 2


def test_cached_reward_checks_model_output():
    with pytest.raises(ValueError, match="shape"):
        CachedReward(lambda caps: np.zeros(len(caps) + 1))(["a"])
    with pytest.raises(ValueError, match="non-finite.*'b'"):
        CachedReward(lambda caps: np.array([1.0 if c == "a" else np.nan for c in caps]))(["a", "b"])
    with pytest.raises(TypeError, match="callable"):
        CachedReward("not a model")
    cache = CachedReward(LengthReward(), max_size=2)
    np.testing.assert_array_equal(cache(["a", "bb", "ccc"]), [1, 2, 3])
    assert len(cache.cache) == 2


# --- single-env wrapper --------------------------------------------------------------------------------------


def test_threshold_zeroes_rewards_below_it():
    model = LengthReward(threshold=3.0)
    env = LLMRewardWrapper(make_corridor(), reward_model=model, alpha_ext=0.0, alpha_int=1.0, beta=0.0,
                           threshold_quantile=0.25)
    steps = rollout(env, [RIGHT, RIGHT])  # cells 1, 2 -> captions "xx", "xxx" -> r_hat 2, 3
    assert model.quantiles == [0.25]
    assert [info["r_intrinsic"] for _, _, info in steps] == [0.0, 3.0]
    no_threshold = LLMRewardWrapper(make_corridor(), reward_model=LengthReward(threshold=3.0), alpha_ext=0.0,
                                    alpha_int=1.0, beta=0.0, threshold_quantile=None)
    assert [r for r, _, _ in rollout(no_threshold, [RIGHT, RIGHT])] == [2.0, 3.0]


def test_count_decay_and_reset_caption_is_counted_not_rewarded():
    env = LLMRewardWrapper(make_corridor(max_steps=20), reward_model=constant_reward, alpha_ext=0.0,
                           alpha_int=1.0, beta=2.0, threshold_quantile=None)
    steps = rollout(env, [STAY, STAY, STAY, RIGHT, LEFT])
    # the reset caption "x" was counted once, so staying at cell 0 is its 2nd, 3rd, 4th sighting
    assert [info["caption_count"] for _, _, info in steps] == [2, 3, 4, 1, 5]
    np.testing.assert_allclose([r for r, _, _ in steps], [1 / 4, 1 / 9, 1 / 16, 1.0, 1 / 25])


@pytest.mark.parametrize("scope, second_episode", [("episode", [1.0, 1.0, 1.0]), ("global", [1 / 2, 1 / 2, 1 / 2])])
def test_episodic_counts_reset_but_global_counts_persist(scope, second_episode):
    env = LLMRewardWrapper(make_corridor(), reward_model=constant_reward, alpha_ext=0.0, alpha_int=1.0, beta=1.0,
                           threshold_quantile=None, count_scope=scope)
    steps = rollout(env, [RIGHT, RIGHT, RIGHT] * 2)
    assert [r for r, _, _ in steps[:3]] == [1.0, 1.0, 1.0]
    np.testing.assert_allclose([r for r, _, _ in steps[3:]], second_episode)


def test_alpha_scaling_info_parts_and_episode_sums():
    env = LLMRewardWrapper(make_corridor(), reward_model=LengthReward(), alpha_ext=2.0, alpha_int=0.5, beta=1.0,
                           threshold_quantile=None)
    steps = rollout(env, [RIGHT, LEFT, RIGHT, RIGHT, RIGHT])
    for reward, _, info in steps:
        assert reward == pytest.approx(2.0 * info["r_extrinsic"] + 0.5 * info["r_intrinsic"])
    # cells 1, 0, 1, 2, 3: r_hat 2, 1, 2, 3, 4; counts 1, 2 (reset counted), 2, 1, 1
    assert [info["r_intrinsic"] for _, _, info in steps] == [2.0, 0.5, 1.0, 3.0, 4.0]
    assert [done for _, done, _ in steps] == [False] * 4 + [True]
    final = steps[-1][2]
    assert final["episode_shaped"] == pytest.approx({"r_extrinsic": 1.0, "r_intrinsic": 10.5,
                                                      "r_shaped": sum(r for r, _, _ in steps)})
    assert final["episode"]["r"] == 1.0  # Monitor inside: the true return
    assert all("episode_shaped" not in info for _, _, info in steps[:-1])


def test_missing_caption_is_reported_at_reset():
    env = LLMRewardWrapper(Monitor(Corridor()), reward_model=LengthReward())
    with pytest.raises(KeyError, match="CaptionWrapper"):
        env.reset(seed=0)
    with pytest.raises(ValueError, match="captioner"):
        LLMRewardWrapper(Monitor(Corridor()), reward_model=LengthReward(), progress=lambda env, obs, info: 0.0)


def test_captioner_mismatch_is_refused_at_construction():
    with pytest.raises(ValueError, match="'nethack-message'.*'corridor'"):
        LLMRewardWrapper(make_corridor(), reward_model=LengthReward(captioner="nethack-message"))
    with pytest.raises(ValueError, match="'nethack-message'.*'corridor'"):
        LLMRewardWrapper(Monitor(Corridor()), reward_model=LengthReward(captioner="nethack-message"),
                         captioner=corridor_captioner())
    with pytest.raises(ValueError, match="'nethack-message'.*'corridor'"):
        LLMRewardVecEnv(DummyVecEnv([make_corridor]), reward_model=LengthReward(captioner="nethack-message"))
    LLMRewardWrapper(make_corridor(), reward_model=LengthReward(captioner="corridor"))  # matching: fine


def test_zoo_style_string_arguments(monkeypatch, tmp_path):
    import llm_reward.shaping.wrappers as wrappers

    loaded = []

    class FakeArtifact:
        @classmethod
        def load(cls, path):
            loaded.append(path)
            return LengthReward(captioner="corridor")

    monkeypatch.setattr(wrappers, "RewardArtifact", FakeArtifact)
    env = LLMRewardWrapper(Monitor(Corridor()), reward_model=str(tmp_path),
                           captioner=f"{__name__}.corridor_captioner", alpha_int=1.0, alpha_ext=0.0, beta=0.0)
    assert loaded == [str(tmp_path)]
    assert [r for r, _, _ in rollout(env, [RIGHT])] == [2.0]
    with pytest.raises(ValueError, match="cannot import"):
        LLMRewardWrapper(Monitor(Corridor()), reward_model=LengthReward(), captioner="no_such_module.Captioner")


@pytest.mark.filterwarnings("ignore:.*(unwrapped version|not having a spec|system font)")
def test_check_env_on_corridor_and_minigrid():
    check_env(LLMRewardWrapper(Corridor(), reward_model=LengthReward(), captioner=corridor_captioner()))
    pytest.importorskip("minigrid")

    class MissionPosCaptioner:
        name = "mission-pos"

        def reset(self):
            pass

        def __call__(self, env, obs, info):
            x, y = env.unwrapped.agent_pos
            return f"{obs['mission']}; agent at {int(x)},{int(y)} facing {int(obs['direction'])}"

    env = LLMRewardWrapper(gym.make("MiniGrid-Empty-5x5-v0"), reward_model=LengthReward(),
                           captioner=MissionPosCaptioner())
    check_env(env)
    _, info = env.reset(seed=1)
    assert info["caption"].startswith("get to the green goal square; agent at")
    assert env.step(2)[4]["r_intrinsic"] > 0


# --- VecEnv wrapper ------------------------------------------------------------------------------------------


def _vec_trajectory(venv, n_steps: int, seed: int = 3):
    venv.seed(seed)
    venv.reset()
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_steps):
        _, rewards, dones, infos = venv.step(rng.integers(0, 3, size=venv.num_envs))
        out.append((rewards.copy(), dones.copy(), [dict(info) for info in infos]))
    return out


@pytest.mark.parametrize("n_envs, shaping", [
    (3, dict(alpha_ext=1.0, alpha_int=0.5, beta=1.0, threshold_quantile=0.5, count_scope="episode")),
    (1, dict(alpha_ext=0.5, alpha_int=1.0, beta=0.5, threshold_quantile=None, count_scope="global")),
    (3, dict(alpha_ext=1.0, alpha_int=0.5, threshold_quantile=0.5, form="potential", gamma=0.9)),
    (3, dict(alpha_ext=1.0, alpha_int=0.5, threshold_quantile=None, form="potential", gamma=0.9,
             terminal_potential="zero")),
])
def test_vecenv_matches_per_env_wrapper_through_auto_resets(n_envs, shaping):
    vec = LLMRewardVecEnv(DummyVecEnv([make_corridor] * n_envs), reward_model=LengthReward(threshold=2.0),
                          **shaping)
    per_env = DummyVecEnv([functools.partial(LLMRewardWrapper, make_corridor(), LengthReward(threshold=2.0),
                                             **shaping) for _ in range(n_envs)])
    a, b = _vec_trajectory(vec, 150), _vec_trajectory(per_env, 150)
    n_done = 0
    for (rew_a, done_a, infos_a), (rew_b, done_b, infos_b) in zip(a, b):
        assert rew_a.dtype == np.float32
        np.testing.assert_allclose(rew_a, rew_b, rtol=1e-6)
        np.testing.assert_array_equal(done_a, done_b)
        for info_a, info_b in zip(infos_a, infos_b):
            for key in ("caption", "r_extrinsic", "r_intrinsic", "caption_count"):
                assert info_a[key] == pytest.approx(info_b[key])
            assert ("episode_shaped" in info_a) == ("episode_shaped" in info_b)
            if "episode_shaped" in info_a:
                n_done += 1
                assert info_a["episode_shaped"] == pytest.approx(info_b["episode_shaped"])
    assert n_done >= 10  # auto-resets were exercised
    assert any(info["caption_count"] > 1 for _, _, infos in a for info in infos)


def test_monitor_return_is_true_return_and_model_called_once_per_unique_caption():
    model = LengthReward()
    venv = LLMRewardVecEnv(DummyVecEnv([make_corridor] * 4), reward_model=model, alpha_int=1.0, beta=0.0,
                           threshold_quantile=None)
    episodes, running = [], np.zeros(4)
    for rewards, dones, infos in _vec_trajectory(venv, 100):
        running += rewards
        for i in np.flatnonzero(dones):
            episodes.append((infos[i], running[i]))
            running[i] = 0.0
    assert len(episodes) >= 10
    for info, agent_return in episodes:
        assert info["episode"]["r"] == pytest.approx(info["episode_shaped"]["r_extrinsic"])
        assert info["episode_shaped"]["r_shaped"] == pytest.approx(agent_return, rel=1e-5)  # what the agent got
        assert agent_return > info["episode"]["r"]
    evaluated = [c for call in model.calls for c in call]
    assert len(evaluated) == len(set(evaluated)) == 4  # cells 1..3 and cell 0 (after a step left)
    assert len(model.calls) <= 4 and venv.shaper.reward.model_calls == len(model.calls)


def test_vecenv_reset_restarts_episodic_counts_and_requires_captions():
    venv = LLMRewardVecEnv(DummyVecEnv([make_corridor]), reward_model=constant_reward, beta=1.0,
                           threshold_quantile=None)
    venv.reset()
    first = [venv.step(np.array([STAY]))[3][0]["caption_count"] for _ in range(2)]
    venv.reset()
    assert first == [venv.step(np.array([STAY]))[3][0]["caption_count"] for _ in range(2)] == [2, 3]
    bare = LLMRewardVecEnv(DummyVecEnv([lambda: Monitor(Corridor())]), reward_model=constant_reward)
    with pytest.raises(KeyError, match="CaptionWrapper"):
        bare.reset()


def test_pickling_through_subprocess_workers():
    venv = SubprocVecEnv([functools.partial(shaped_corridor, seed=i, alpha_int=1.0) for i in range(2)])
    try:
        venv.reset()
        _, rewards, _, infos = venv.step(np.array([RIGHT, STAY]))
        assert [info["caption"] for info in infos] == ["xx", "x"]
        np.testing.assert_allclose(rewards, [2.0 / 1 ** 3, 1.0 / 2 ** 3])
    finally:
        venv.close()
    shaper = LLMRewardVecEnv(DummyVecEnv([make_corridor]), reward_model=LengthReward()).shaper
    clone = pickle.loads(pickle.dumps(shaper))
    assert isinstance(clone, Shaper) and clone.config == shaper.config


def test_vecenv_wrapper_over_subprocvecenv_matches_dummyvecenv():
    """The usual SubprocVecEnv layout: workers step and caption, the learner process shapes (batched, cached)."""
    shaping = dict(alpha_int=0.5, beta=1.0, threshold_quantile=None)
    dummy = LLMRewardVecEnv(DummyVecEnv([make_corridor] * 2), reward_model=LengthReward(), **shaping)
    subproc = LLMRewardVecEnv(SubprocVecEnv([make_corridor] * 2), reward_model=LengthReward(), **shaping)
    try:
        expected, got = _vec_trajectory(dummy, 40), _vec_trajectory(subproc, 40)
    finally:
        subproc.close()
    for (r1, d1, i1), (r2, d2, i2) in zip(expected, got):
        np.testing.assert_allclose(r1, r2)
        assert (d1 == d2).all() and [i["caption"] for i in i1] == [i["caption"] for i in i2]
    assert subproc.shaper.reward.stats()["cache_hits"] > 0  # corridor captions repeat: most steps hit the cache


def test_a_built_wrapper_is_pickled_into_subprocess_workers():
    """An LLMRewardWrapper built in the parent (reward model and all) survives cloudpickle into a worker."""
    wrapped = LLMRewardWrapper(make_corridor(), reward_model=LengthReward(), alpha_int=1.0, threshold_quantile=None)
    venv = SubprocVecEnv([lambda: wrapped, lambda: wrapped])
    try:
        venv.reset()
        _, rewards, _, infos = venv.step(np.array([RIGHT, STAY]))
    finally:
        venv.close()
    assert [info["caption"] for info in infos] == ["xx", "x"]
    np.testing.assert_allclose(rewards, [2.0 / 1 ** 3, 1.0 / 2 ** 3])  # r_hat = length, per-episode count, beta 3


def test_cached_reward_counts_model_calls_scored_captions_and_hits():
    cache = CachedReward(LengthReward())
    cache(["a", "bb", "a"])
    cache(["bb", "ccc"])
    assert cache.stats() == {"model_calls": 2, "captions_scored": 3, "cache_hits": 1}


@pytest.mark.slow
def test_ppo_learns_with_shaped_vecenv_and_logs_shaped_returns(tmp_path, one_torch_thread):
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import configure

    venv = LLMRewardVecEnv(DummyVecEnv([make_corridor] * 2), reward_model=LengthReward(), alpha_int=1.0, beta=1.0,
                           threshold_quantile=None)
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(total_timesteps=384, callback=ShapedRewardLogger())
    log = pd.read_csv(tmp_path / "progress.csv")
    assert len(log) == 3 and log["shaped/ep_intrinsic_mean"].notna().all()
    # ep_rew_mean is Monitor's true return, over the same episodes as the logger's extrinsic mean
    np.testing.assert_allclose(log["rollout/ep_rew_mean"], log["shaped/ep_extrinsic_mean"], rtol=1e-5)
    assert (log["shaped/ep_shaped_mean"] > log["rollout/ep_rew_mean"]).all()


def test_package_root_exports_are_lazy():
    code = ("import sys, llm_reward; assert 'torch' not in sys.modules and 'stable_baselines3' not in sys.modules;"
            "from llm_reward import LLMRewardWrapper, LLMRewardVecEnv, CaptionWrapper, FunctionCaptioner;"
            "print(llm_reward.__version__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == __import__("llm_reward").__version__
