"""Novelty bonuses against their papers' definitions (E3B: elliptical episodic bonus on an inverse-dynamics
embedding; RND: normalised prediction error against a fixed random target), their composition with a judged reward
in one VecEnv stack, and the config errors that name the key before any training."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from gymnasium import spaces
from hydra import compose, initialize_config_module
from stable_baselines3.common.running_mean_std import RunningMeanStd

from llm_reward.apps._common import ConfigError
from llm_reward.apps.experiment import novelty_term, validate
from llm_reward.shaping.novelty import E3B, RND, NoveltyTerm

BOX = spaces.Box(-3.0, 3.0, (5,), np.float32)


def elliptical_reference(phis: np.ndarray, ridge: float) -> list[float]:
    """E3B's bonus by its definition: b_t = phi_t^T (lambda I + sum_{i<t} phi_i phi_i^T)^-1 phi_t, for t >= 1 (the
    episode's first state phi_0 is counted, not rewarded)."""
    d = phis.shape[1]
    out = []
    for t in range(1, len(phis)):
        cov = ridge * np.eye(d) + phis[:t].T @ phis[:t]
        out.append(float(phis[t] @ np.linalg.solve(cov, phis[t])))
    return out


def test_e3b_is_the_elliptical_bonus_reset_every_episode():
    rng = np.random.default_rng(0)
    e3b = E3B(BOX, spaces.Discrete(3), n_envs=2, latent_dim=6, ridge=0.1, normalize=False,
              train_every=10_000)  # encoder fixed, the raw bonus
    episode = rng.normal(size=(8, 2, 5)).astype(np.float32)
    e3b.reset(episode[0])
    got = []
    for t in range(1, 8):
        dones = np.array([t == 7, False])  # env 0's episode ends on its last step
        new = episode[t].copy()
        new[0] = rng.normal(size=5)  # env 0 starts over here
        got.append(e3b.step(episode[t - 1], np.array([0, 1]), episode[t], dones, new))
    got = np.array(got)
    for env in range(2):
        expected = elliptical_reference(e3b.embed(episode[:, env]), ridge=0.1)
        np.testing.assert_allclose(got[:, env], expected, rtol=1e-6)
    # env 0 restarted at C_0 = lambda I, counting only its new first state
    fresh = rng.normal(size=(1, 5)).astype(np.float32)
    phis = e3b.embed(np.concatenate([new[:1], fresh]))
    bonus = e3b.step(new, np.array([0, 0]), np.concatenate([fresh, episode[7, 1:]]), np.array([False, False]),
                     np.concatenate([fresh, episode[7, 1:]]))
    assert bonus[0] == pytest.approx(elliptical_reference(phis, 0.1)[0], rel=1e-6)
    # a state seen before in the episode is worth less than it was the first time
    both = np.concatenate([fresh, episode[7, 1:]])
    again = e3b.step(both, np.array([0, 0]), both, np.array([False, False]), both)
    assert again[0] < bonus[0]


def test_e3b_encoder_learns_inverse_dynamics():
    """phi is trained to tell which action led from s to s': on transitions where each action moves a different
    coordinate, the inverse model goes from chance (1/4) to nearly always right."""
    rng = np.random.default_rng(1)
    e3b = E3B(spaces.Box(-10, 10, (4,), np.float32), spaces.Discrete(4), n_envs=8, latent_dim=16,
              train_every=256, epochs=4, batch_size=64, lr=3e-3, seed=0)
    obs = rng.normal(size=(8, 4)).astype(np.float32)
    e3b.reset(obs)
    for _ in range(600):
        actions = rng.integers(0, 4, size=8)
        nxt = obs + np.eye(4, dtype=np.float32)[actions]
        e3b.step(obs, actions, nxt, np.zeros(8, bool), nxt)
        obs = np.where(np.abs(nxt) > 5, rng.normal(size=(8, 4)), nxt).astype(np.float32)
    test_obs = rng.normal(size=(500, 4)).astype(np.float32)
    test_actions = rng.integers(0, 4, size=500)
    with torch.no_grad():
        phi = e3b.encoder(e3b.whiten(test_obs))
        phi_next = e3b.encoder(e3b.whiten(test_obs + np.eye(4, dtype=np.float32)[test_actions]))
        predicted = e3b.inverse(torch.cat([phi, phi_next], dim=1)).argmax(dim=1).numpy()
    assert e3b.stats()["updates"] >= 10
    assert (predicted == test_actions).mean() > 0.9


def test_rnd_predictor_learns_seen_states_against_a_fixed_target():
    rng = np.random.default_rng(2)
    rnd = RND(BOX, spaces.Discrete(2), n_envs=4, normalize=False, train_every=64, epochs=8, batch_size=32,
              lr=3e-3, seed=0)
    seen = rng.normal(size=(4, 5)).astype(np.float32)
    unseen = rng.normal(size=(4, 5)).astype(np.float32) + 2.0
    target = [p.clone() for p in rnd.target.parameters()]
    rnd.reset(seen)
    before = rnd.error(seen)
    for _ in range(200):
        rnd.step(seen, np.zeros(4), seen, np.zeros(4, bool), seen)
    assert all(torch.equal(a, b) for a, b in zip(target, rnd.target.parameters()))  # the target never trains
    assert rnd.error(seen).mean() < 0.2 * before.mean()
    assert rnd.error(seen).mean() < 0.2 * rnd.error(unseen).mean()  # novel states keep a large error


def test_rnd_is_normalised_by_the_spread_of_its_discounted_return():
    """RND's normalisation (Burda et al.): the raw bonus over the running std of the discounted intrinsic return."""
    rng = np.random.default_rng(3)
    bonus = RND(BOX, spaces.Discrete(2), n_envs=2, gamma=0.9, train_every=10_000)  # networks fixed
    raw_twin = RND(BOX, spaces.Discrete(2), n_envs=2, gamma=0.9, normalize=False, train_every=10_000)
    returns, rms = np.zeros(2), RunningMeanStd(shape=())
    obs = rng.normal(size=(2, 5)).astype(np.float32)
    bonus.reset(obs)
    raw_twin.reset(obs)
    for _ in range(20):
        nxt = rng.normal(size=(2, 5)).astype(np.float32)
        raw = raw_twin.step(obs, np.zeros(2), nxt, np.zeros(2, bool), nxt)
        returns = 0.9 * returns + raw
        rms.update(returns)
        np.testing.assert_allclose(bonus.step(obs, np.zeros(2), nxt, np.zeros(2, bool), nxt),
                                   raw / np.sqrt(rms.var + 1e-8), rtol=1e-6)
        obs = nxt


def test_normalised_e3b_is_the_elliptical_bonus_on_unit_phi_over_the_per_step_spread():
    """normalize=True: phi of unit length (so b <= 1/lambda whatever the encoder's scale) and b over the running std
    of the per-step b (the E3B code's --reward_norm int), not of a discounted return."""
    rng = np.random.default_rng(3)
    e3b = E3B(BOX, spaces.Discrete(2), n_envs=2, latent_dim=6, ridge=0.1, train_every=10_000)  # encoder fixed
    with torch.no_grad():  # an encoder whose raw output is far from unit length
        e3b.encoder[-1].weight.mul_(50.0)
    episode = rng.normal(size=(12, 2, 5)).astype(np.float32)
    e3b.reset(episode[0])
    rms, got = RunningMeanStd(shape=()), []
    raw = np.array([elliptical_reference(e3b.embed(episode[:, env]), ridge=0.1) for env in range(2)]).T
    for t in range(1, 12):
        got.append(e3b.step(episode[t - 1], np.zeros(2), episode[t], np.zeros(2, bool), episode[t]))
        rms.update(raw[t - 1])
        np.testing.assert_allclose(got[-1], raw[t - 1] / np.sqrt(rms.var + 1e-8), rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(e3b.embed(episode[0]), axis=1), 1.0, rtol=1e-6)
    assert raw.max() <= 1 / 0.1 and e3b.stats()["raw_bonus_mean"] <= 1 / 0.1


@pytest.mark.parametrize("kind", [E3B, RND])
def test_centred_bonus_is_the_bonus_minus_its_running_mean(kind):
    """center=True: the same bonus, shifted by the running mean of everything paid so far (this step included),
    so a usual step earns nothing or less and a novel step still pays more than a usual one."""
    rng = np.random.default_rng(5)
    plain, centred = (kind(BOX, spaces.Discrete(2), n_envs=2, train_every=10_000, center=c, seed=1)
                      for c in (False, True))
    episode = rng.normal(size=(40, 2, 5)).astype(np.float32)
    for bonus in (plain, centred):
        bonus.reset(episode[0])
    level, paid = RunningMeanStd(shape=()), []
    for t in range(1, 40):
        args = (episode[t - 1], np.zeros(2), episode[t], np.zeros(2, bool), episode[t])
        expected = plain.step(*args)
        level.update(expected)
        got = centred.step(*args)
        np.testing.assert_allclose(got, expected - level.mean, rtol=1e-6, atol=1e-9)
        paid.append(got)
    assert float(level.mean) > 0 and float(np.mean(paid)) < float(level.mean)  # the plain bonus is all positive


@pytest.fixture(scope="module")
def keycorridor_e3b():
    """The configured E3B (conf/novelty/e3b.yaml, trained faster) on KeyCorridorS3R3 under a random policy: per
    encoder update, the bonuses paid, and for each step whether the observation reached was new in its episode."""
    from llm_reward.envs import make_vec_env

    venv = NoveltyTerm(bonus=functools.partial(E3B, train_every=512, epochs=2, lr=3e-3),
                       weight=1.0).wrap(make_vec_env("MiniGrid-KeyCorridorS3R3-v0", n_envs=4, seed=0), seed=0)
    rng = np.random.default_rng(0)
    obs = venv.reset()
    seen = [{o.tobytes()} for o in obs]
    windows: dict[float, dict[str, list[float]]] = {}
    for _ in range(2500):
        obs, _, dones, infos = venv.step(rng.integers(0, 7, size=4))
        stats = venv.stats()
        window = windows.setdefault(stats["updates"], {"bonus": [], "raw": [], "new": [], "revisit": []})
        window["raw"].append(stats["raw_bonus_mean"])
        for i, info in enumerate(infos):
            reached = (info["terminal_observation"] if dones[i] else obs[i]).tobytes()
            window["bonus"].append(info["r_novelty"])
            window["revisit" if reached in seen[i] else "new"].append(info["r_novelty"])
            seen[i] = {obs[i].tobytes()} if dones[i] else seen[i] | {reached}
    venv.close()
    return venv.bonus, windows


def test_e3b_scale_stays_steady_while_its_encoder_trains(keycorridor_e3b):
    """The encoder's output norm grows as it trains (nothing in the inverse-dynamics loss bounds it); the bonus
    must not follow it: b stays <= 1/lambda and the normalised bonus's mean per encoder update stays O(1). (The
    earlier bonus on the raw encoder output over its return's spread: raw means in the hundreds, normalised ~0.01.)"""
    e3b, windows = keycorridor_e3b
    assert e3b.stats()["updates"] >= 15
    assert e3b.stats()["encoder_norm"] > 2.0  # the encoder did grow: the bound below is tested, not idle
    means = [np.mean(w["bonus"]) for updates, w in windows.items() if updates >= 1]
    assert max(max(w["raw"]) for w in windows.values()) <= 1 / e3b.ridge
    assert 0.08 < min(means) and max(means) < 3.0 and max(means) / min(means) < 8.0, means


def test_e3b_revisit_earns_less_than_a_new_state(keycorridor_e3b):
    """The property E3B exists for: within an episode, reaching an observation already seen pays much less than
    reaching one not yet seen, once the encoder has trained too."""
    _, windows = keycorridor_e3b
    late = [w for updates, w in windows.items() if updates >= 5]
    new = np.concatenate([w["new"] for w in late])
    revisit = np.concatenate([w["revisit"] for w in late])
    assert len(new) > 100 and len(revisit) > 100
    assert revisit.mean() < 0.5 * new.mean(), (revisit.mean(), new.mean())


def test_novelty_joins_a_judged_reward_in_one_vecenv_stack():
    from llm_reward.envs import make_vec_env
    from llm_reward.shaping.wrappers import LLMRewardVecEnv

    judged = LLMRewardVecEnv(make_vec_env("MiniGrid-Empty-5x5-v0", n_envs=2, seed=0),
                             reward_model=lambda captions: np.full(len(captions), 2.0), alpha_int=0.5, beta=1.0,
                             threshold_quantile=None)
    venv = NoveltyTerm(bonus=functools.partial(E3B, latent_dim=8), weight=0.25).wrap(judged, seed=0)
    venv.reset()
    finished = None
    for _ in range(200):
        _, rewards, dones, infos = venv.step(np.array([2, 1]))  # forward / turn: both episodes end by time limit
        for i in range(2):  # r = r_env + alpha_int * judged + weight * b, each part in the info
            expected = infos[i]["r_extrinsic"] + 0.5 * infos[i]["r_intrinsic"] + 0.25 * infos[i]["r_novelty"]
            assert rewards[i] == pytest.approx(expected, rel=1e-5)
            if dones[i]:
                finished = infos[i]
    assert finished is not None and finished["episode_novelty"]["r_novelty"] > 0
    shaped = finished["episode_shaped"]
    assert shaped["r_shaped"] == pytest.approx(shaped["r_extrinsic"] + 0.5 * shaped["r_intrinsic"]
                                               + 0.25 * shaped["r_novelty"], rel=1e-6)
    venv.close()


def config(*overrides: str):
    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        return compose("train", overrides=["experiment=smoke", *overrides])


def test_novelty_reward_configs_compose_with_any_kind():
    e3b, motif_e3b, rnd = (config(f"reward={r}") for r in ("e3b", "motif_e3b", "rnd"))
    assert e3b.reward.builder._target_.endswith("ExtrinsicOnly")
    assert motif_e3b.reward.builder._target_.endswith("OfflineReward") and "shaping" in motif_e3b.reward
    # motif_e3b fits the very same reward model as motif (one stage cache entry)
    assert motif_e3b.paths.reward_model == config("reward=motif").paths.reward_model
    assert isinstance(novelty_term(e3b).bonus.func, type) and novelty_term(e3b).bonus.func is E3B
    assert novelty_term(rnd).bonus.func is RND
    assert novelty_term(config("reward=motif")) is None
    oni_e3b, shuffled_e3b = config("reward=oni_e3b"), config("reward=shuffled_e3b")
    assert oni_e3b.reward.builder._target_.endswith("OnlineReward") and novelty_term(oni_e3b).bonus.func is E3B
    assert shuffled_e3b.paths.reward_model == config("reward=shuffled").paths.reward_model  # the same control model
    eureka = config("reward=eureka", "+novelty@reward.novelty=e3b")  # any kind's reward can join
    assert novelty_term(eureka).weight == e3b.reward.novelty.weight


@pytest.mark.parametrize("overrides, key", [
    (["env=nethack/score", "reward=e3b"], "reward.novelty.bonus"),   # Dict observations: nothing to embed
    (["reward=e3b", "reward.novelty.weight=0"], "reward.novelty"),    # the bonus switched off
    (["reward=rnd", "reward.novelty.bonus.gamma=2"], "reward.novelty"),
    (["reward=motif", "reward.shaping.alpha_ext=0", "reward.shaping.alpha_int=0"], "reward.shaping"),  # all zero
])
def test_novelty_config_errors_name_the_key_before_any_work(overrides, key, tmp_path):
    cfg = config(*overrides, f"data_dir={tmp_path}")
    with pytest.raises(ConfigError) as error:
        validate(cfg)
    assert str(error.value).startswith(key), str(error.value)
    assert not any(tmp_path.iterdir())
