"""Agent factory, feature extractors and success evaluation, on real MiniGrid / NetHack / classic-control envs."""

from __future__ import annotations

import re

import gymnasium as gym
import minigrid  # noqa: F401  (registers MiniGrid-* ids)
import nle  # noqa: F401  (registers NetHack* ids)
import numpy as np
import pytest
import torch as th
from minigrid.wrappers import ImgObsWrapper
from nle import nethack
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from llm_reward.envs import StepInfo
from llm_reward.agents import (
    ALGOS, MiniGridCNN, NetHackExtractor, crop_around, env_family, evaluate_success, make_agent, validate_algo,
)

NETHACK_KEYS = ("glyphs", "blstats", "message")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def minigrid_env() -> gym.Env:
    return ImgObsWrapper(gym.make("MiniGrid-DoorKey-5x5-v0"))


def nethack_env() -> gym.Env:
    return gym.make("NetHackScore-v0", observation_keys=NETHACK_KEYS)


def extractor_of(model):
    return model.q_net.features_extractor if hasattr(model, "q_net") else model.policy.features_extractor


def learn_and_check(model, steps: int) -> None:
    """``learn(steps)`` must train: the collected steps are counted and gradient updates changed the weights."""
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(steps)
    assert model.num_timesteps >= steps
    after = list(model.policy.parameters())
    assert any(not th.equal(b, a) for b, a in zip(before, after)), "learn() left every weight unchanged"


def venv_of(fn, n: int = 2) -> DummyVecEnv:
    venv = DummyVecEnv([lambda: Monitor(fn())] * n)
    venv.seed(0)
    return venv


@pytest.fixture(scope="module")
def minigrid_venv():
    venv = venv_of(minigrid_env)
    yield venv
    venv.close()


@pytest.fixture(scope="module")
def nethack_venv():
    venv = venv_of(nethack_env)
    yield venv
    venv.close()


@pytest.fixture(scope="module")
def pendulum_venv():
    venv = venv_of(lambda: gym.make("Pendulum-v1"))
    yield venv
    venv.close()


# --- training smoke: every family x algo builds and learns ---------------------------------------------------------

@pytest.mark.parametrize("algo, kwargs", [("ppo", {}), ("recurrent_ppo", {}), ("a2c", {}),
                                          ("dqn", {"learning_starts": 64})])
def test_minigrid_agents_learn(minigrid_venv, algo, kwargs):
    model = make_agent(algo.upper(), minigrid_venv, seed=0, **kwargs)
    assert isinstance(extractor_of(model), MiniGridCNN)
    assert model.policy.normalize_images is False
    assert hasattr(model.policy, "lstm_actor") == (algo == "recurrent_ppo")  # memory only where asked for
    learn_and_check(model, 256)
    result = evaluate_success(model, minigrid_env, n_episodes=1, seed=0)  # image transposition at predict time
    assert 1 <= result["mean_length"] <= 250 and result["n_episodes"] == 1


@pytest.mark.parametrize("algo, kwargs", [("ppo", {}), ("a2c", {}),
                                          ("dqn", {"learning_starts": 64, "buffer_size": 1_000})])
def test_nethack_agents_learn(nethack_venv, algo, kwargs):
    model = make_agent(algo, nethack_venv, seed=0, **kwargs)
    assert isinstance(extractor_of(model), NetHackExtractor)
    learn_and_check(model, 256)
    assert model.gamma == (0.99 if algo == "dqn" else 0.999)


@pytest.mark.parametrize("algo", ["ppo", "sac", "td3"])
def test_vector_agents_learn(pendulum_venv, algo):
    kwargs = {} if algo == "ppo" else {"learning_starts": 192, "buffer_size": 1_000}
    model = make_agent(algo, pendulum_venv, seed=0, **kwargs)
    assert model.policy_class.__name__ in ("ActorCriticPolicy", "SACPolicy", "TD3Policy")
    if algo == "ppo":
        assert model.n_steps * pendulum_venv.num_envs == 2048  # PPO-paper rollout size whatever n_envs
    assert (model.action_noise is not None) == (algo == "td3")
    learn_and_check(model, 256)


def test_mujoco_family_if_installed():
    pytest.importorskip("mujoco")
    venv = venv_of(lambda: gym.make("HalfCheetah-v5"), n=1)
    model = make_agent("sac", venv, seed=0, learning_starts=32, buffer_size=1_000)
    learn_and_check(model, 64)
    assert env_family(venv.observation_space) == "vector"
    venv.close()


# --- overrides and errors ------------------------------------------------------------------------------------------

def test_overrides_merge_nested_policy_kwargs(minigrid_venv):
    model = make_agent("ppo", minigrid_venv, seed=3, n_steps=32, batch_size=32, ent_coef=0.0,
                       policy_kwargs={"features_extractor_kwargs": {"features_dim": 32},
                                      "activation_fn": "torch.nn.Tanh"})
    assert (model.n_steps, model.batch_size, model.ent_coef, model.seed) == (32, 32, 0.0, 3)
    assert model.policy.features_extractor.features_dim == 32
    assert model.policy.normalize_images is False  # untouched default kept by the merge
    assert model.policy.activation_fn is th.nn.Tanh
    assert model.n_epochs == 4 and model.device.type == "cpu"


def test_make_agent_errors(minigrid_venv, pendulum_venv):
    allowed = re.escape(str(sorted(ALGOS)))
    with pytest.raises(ValueError, match=r"unknown algo 'trpo'.*" + allowed):
        make_agent("trpo", minigrid_venv, seed=0)
    with pytest.raises(ValueError, match=r"'dqn'.*Discrete.*Box"):
        make_agent("dqn", pendulum_venv, seed=0)
    with pytest.raises(ValueError, match=r"'sac'.*Box.*Discrete"):
        make_agent("sac", minigrid_venv, seed=0)
    with pytest.raises(ValueError, match=r"PPO does not accept \['n_stepz'\]"):
        make_agent("ppo", minigrid_venv, seed=0, n_stepz=8)
    with pytest.raises(ValueError, match=r"(?s)torch\.nn\.NoSuch.*full_key: policy_kwargs\.activation_fn"):
        make_agent("ppo", minigrid_venv, seed=0, policy_kwargs={"activation_fn": "torch.nn.NoSuch"})
    with pytest.raises(ValueError, match="unsupported observation space"):
        env_family(gym.spaces.Box(0, 1, (4, 4), np.float32))


def test_validate_algo():
    validate_algo("PPO", "MiniGrid-DoorKey-8x8-v0")
    validate_algo("dqn", "NetHackScore-v0")
    validate_algo("td3", "Pendulum-v1")
    with pytest.raises(ValueError, match=r"'td3'.*Box.*Discrete"):
        validate_algo("td3", "BabyAI-GoToLocal-v0")
    with pytest.raises(ValueError, match=r"'dqn'.*Discrete.*Box"):
        validate_algo("dqn", "Pendulum-v1")
    with pytest.raises(ValueError, match="unknown algo"):
        validate_algo("ddpg", "Pendulum-v1")
    with pytest.raises(ValueError, match="NoSuchEnv"):
        validate_algo("ppo", "NoSuchEnv-v0")


# --- feature extractors --------------------------------------------------------------------------------------------

def reference_crop(grid: np.ndarray, x: int, y: int, size: int, pad: int) -> np.ndarray:
    r = size // 2
    out = np.full((size, size), pad, dtype=grid.dtype)
    for i in range(size):
        for j in range(size):
            row, col = y - r + i, x - r + j
            if 0 <= row < grid.shape[0] and 0 <= col < grid.shape[1]:
                out[i, j] = grid[row, col]
    return out


def test_crop_around_matches_loop_reference_at_borders():
    rng = np.random.default_rng(0)
    pad = nethack.MAX_GLYPH
    glyphs = rng.integers(0, pad, size=(4, 21, 79))
    xs, ys = np.array([0, 78, 40, 2]), np.array([0, 20, 10, 19])
    crops = crop_around(th.as_tensor(glyphs), th.as_tensor(xs), th.as_tensor(ys), 9, pad).numpy()
    for b in range(4):
        np.testing.assert_array_equal(crops[b], reference_crop(glyphs[b], xs[b], ys[b], 9, pad))
    assert crops[0, 4, 4] == glyphs[0, 0, 0] and (crops[0, :4] == pad).all() and (crops[0, :, :4] == pad).all()
    assert crops[1, 4, 4] == glyphs[1, 20, 78] and (crops[1, 5:] == pad).all() and (crops[1, :, 5:] == pad).all()
    with pytest.raises(ValueError, match="odd"):
        crop_around(th.as_tensor(glyphs), th.as_tensor(xs), th.as_tensor(ys), 8, pad)


def test_nethack_extractor_sees_crop_and_whole_map():
    space = nethack_env().observation_space
    extractor = NetHackExtractor(space)
    obs = {k: th.zeros((2, *space[k].shape)) for k in NETHACK_KEYS}
    obs["glyphs"][:] = 2359  # one glyph everywhere
    obs["blstats"][0, :2] = th.tensor([78.0, 20.0])  # agent 0 in the bottom-right corner
    obs["blstats"][1, :2] = th.tensor([40.0, 10.0])  # agent 1 far from it
    before = extractor(obs).detach()
    obs["glyphs"][:, 20, 78] = 333  # something appears in the corner
    seen = crop_around(obs["glyphs"].long(), obs["blstats"][:, 0], obs["blstats"][:, 1], 9, nethack.MAX_GLYPH)
    assert seen[0, 4, 4] == 333 and (seen[1] == 2359).all()
    features = extractor(obs)
    assert features.shape == (2, 256) and th.isfinite(features).all()
    assert not th.allclose(features[1], before[1])  # the far agent sees it through the coarse map (last row/col kept)
    features.sum().backward()
    assert extractor.glyph_embed.weight.grad[333].abs().sum() > 0  # trained through the crop of agent 0
    with pytest.raises(ValueError, match="missing"):
        NetHackExtractor(gym.spaces.Dict({"glyphs": space["glyphs"]}))


def test_minigrid_cnn_accepts_both_layouts():
    space = minigrid_env().observation_space
    last = MiniGridCNN(space)
    first = MiniGridCNN(gym.spaces.Box(0, 255, (3, 7, 7), np.uint8))
    first.load_state_dict(last.state_dict())
    obs = th.as_tensor(np.stack([space.sample() % 6 for _ in range(3)])).float()
    th.testing.assert_close(last(obs), first(obs.permute(0, 3, 1, 2)))
    assert last(obs).shape == (3, 128)


# --- evaluation ----------------------------------------------------------------------------------------------------

class GoalSide(gym.Env):
    """Goal 2 cells left or right; the side is ``seed % 2`` (1 = right). Reaching it: reward 1, success."""

    observation_space = gym.spaces.Box(-3, 3, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)  # 0 = left, 1 = right

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.side = 1 if (seed if seed is not None else self.np_random.integers(2)) % 2 else -1
        self.pos, self.t = 0, 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.pos += 1 if action == 1 else -1
        self.t += 1
        success = self.pos == 2 * self.side
        done = success or abs(self.pos) == 2
        info = {"is_success": True} if done and success else ({"is_success": False} if done else {})
        obs = np.array([self.pos], np.float32)
        return obs, float(success), bool(done and success), bool(done and not success), info


class AlwaysRight:
    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        return np.ones(len(obs), dtype=np.int64), state


def test_evaluate_success_known_outcomes():
    # Seeds 10..13: goal right for 11 and 13 only -> half the episodes succeed, each two steps long.
    result = evaluate_success(AlwaysRight(), lambda: Monitor(GoalSide()), n_episodes=4, seed=10)
    assert result == {"success_rate": 0.5, "mean_return": 0.5, "std_return": 0.5, "mean_length": 2.0,
                      "n_episodes": 4, "per_episode": {"success": [False, True, False, True],
                                                       "return": [0.0, 1.0, 0.0, 1.0], "length": [2, 2, 2, 2]}}
    # A reward-scaling wrapper outside Monitor does not leak into the reported (true) return.
    def scaled():
        return gym.wrappers.TransformReward(Monitor(GoalSide()), lambda r: 100 * r)

    assert evaluate_success(AlwaysRight(), scaled, n_episodes=1, seed=1)["mean_return"] == 1.0
    # Without a Monitor one is added.
    assert evaluate_success(AlwaysRight(), GoalSide, n_episodes=1, seed=3)["success_rate"] == 1.0
    with pytest.raises(ValueError, match="n_episodes"):
        evaluate_success(AlwaysRight(), GoalSide, n_episodes=0, seed=0)
    # info_keys: the mean over episodes of each key's value at the last step (the last reward here: 0, 1, 0, 1).
    with_info = evaluate_success(AlwaysRight(), lambda: StepInfo(Monitor(GoalSide())), n_episodes=4, seed=10,
                                 info_keys=["env_reward"])
    assert with_info["mean_env_reward"] == 0.5 and with_info["success_rate"] == 0.5
    with pytest.raises(KeyError, match="env.eval_info_keys"):
        evaluate_success(AlwaysRight(), GoalSide, n_episodes=1, seed=0, info_keys=["gold"])


def test_ctrl_c_stops_training_cleanly_and_keeps_the_agent(minigrid_venv, tmp_path):
    """The first SIGINT becomes a stop at the next step (never a KeyboardInterrupt that a finalizer could swallow):
    the agent and episodes are saved, and the previous SIGINT handler is back afterwards."""
    import os
    import signal

    from stable_baselines3.common.callbacks import BaseCallback

    from llm_reward.training.loop import train_agent

    class CtrlCAt(BaseCallback):
        def _on_step(self) -> bool:
            if self.n_calls == 40:
                os.kill(os.getpid(), signal.SIGINT)
            return True

    before = signal.getsignal(signal.SIGINT)
    model = make_agent("PPO", minigrid_venv, seed=0, n_steps=64, batch_size=64)
    result = train_agent(model, total_timesteps=1_000_000, run_dir=tmp_path, name="shaped",
                         extra_callbacks=[CtrlCAt()], progress=False)
    assert result.interrupted and model.num_timesteps < 1_000
    assert (tmp_path / "agent_shaped.zip").exists() and (tmp_path / "episodes_shaped.csv").exists()
    assert signal.getsignal(signal.SIGINT) is before
