"""Caption collection on real envs: columns, episode bookkeeping across auto-reset, determinism, parquet."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llm_reward.envs import EnvAdapter, make_env, make_vec_env, register_adapter, registry
from llm_reward.training import rollouts as rollouts_module
from llm_reward.training.rollouts import COLUMNS, collect_captions, load_rollouts, save_rollouts

DOORKEY = "MiniGrid-DoorKey-5x5-v0"


def env_fn(env_id: str, **kwargs):
    """The env factory collect_captions takes: ``env_fn(seed=...)`` builds one captioned env."""
    return functools.partial(make_env, env_id, **kwargs)


def turn_left(obs):
    return np.zeros(len(obs), dtype=np.int64)


class ForwardModel:
    """Duck-typed SB3 model: ``predict`` returns (actions, state)."""

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        return np.full(len(obs), 2, dtype=np.int64), None


class StepCountingRecurrentModel:
    """Duck-typed recurrent SB3 model whose state is the number of steps since its episode started."""

    def __init__(self):
        self.states = []

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        state = np.where(episode_start, 0, -1 if state is None else state + 1)
        self.states.append(state)
        return np.zeros(len(obs), dtype=np.int64), state


def test_columns_and_episode_bookkeeping():
    frame = collect_captions(env_fn(DOORKEY, max_episode_steps=9), n_steps=120, n_envs=2, seed=0, progress=False)
    assert tuple(frame.columns) == COLUMNS
    assert frame["caption"].map(type).eq(str).all() and frame["caption"].str.startswith("You see ").all()
    assert frame["progress"].notna().all() and frame["done"].dtype == bool
    assert (frame["step"] > 0).sum() == 120  # one row per env step, plus one per episode start
    for _, rows in frame.groupby("episode"):
        assert rows["env_index"].nunique() == 1
        assert rows["step"].tolist() == list(range(len(rows)))
        assert rows["done"].iloc[:-1].eq(False).all() and rows["extrinsic_reward"].iloc[0] == 0.0
    finished = frame.groupby("episode")["done"].any()
    assert finished.sum() >= 2 * (60 // 9)  # 9-step timeouts in both envs
    assert frame.groupby("episode")["step"].max()[finished].eq(9).all()
    assert sorted(frame["episode"].unique()) == list(range(frame["episode"].max() + 1))


def test_final_caption_survives_auto_reset():
    """Rows equal a hand-driven single env: the done row holds the terminal caption, not the next reset's."""
    frame = collect_captions(env_fn(DOORKEY, max_episode_steps=10), n_steps=25, seed=3, policy=turn_left,
                             progress=False)
    env = make_env(DOORKEY, seed=3, max_episode_steps=10)
    expected = [env.reset(seed=3)[1]["caption"]]
    for _ in range(25):
        *_, terminated, truncated, info = env.step(0)
        expected.append(info["caption"])
        if terminated or truncated:
            expected.append(env.reset()[1]["caption"])
    assert frame["caption"].tolist() == expected
    done_rows = frame.index[frame["done"]]
    assert len(done_rows) == 2 and frame.loc[done_rows + 1, "step"].eq(0).all()
    assert (frame.loc[done_rows, "caption"].to_numpy() != frame.loc[done_rows + 1, "caption"].to_numpy()).any()


def test_same_seed_same_rollouts():
    a = collect_captions(env_fn(DOORKEY), n_steps=60, n_envs=2, seed=7, progress=False)
    b = collect_captions(env_fn(DOORKEY), n_steps=60, n_envs=2, seed=7, progress=False)
    c = collect_captions(env_fn(DOORKEY), n_steps=60, n_envs=2, seed=8, progress=False)
    pd.testing.assert_frame_equal(a, b)
    assert not a["caption"].equals(c["caption"])


def test_model_policy_and_success_reward():
    frame = collect_captions(env_fn("MiniGrid-Empty-5x5-v0"), n_steps=40, seed=0, policy=ForwardModel(), progress=False)
    # Always forward in Empty-5x5 walks into the wall: no goal, zero reward, captions still vary at the start.
    assert frame["extrinsic_reward"].eq(0).all() and frame["caption"].nunique() >= 2


def test_recurrent_policy_state_is_carried_and_reset_at_episode_starts():
    model = StepCountingRecurrentModel()
    collect_captions(env_fn("MiniGrid-Empty-5x5-v0", max_episode_steps=5), n_steps=24, n_envs=2, seed=0, policy=model,
                     progress=False)
    # Turning left never reaches the goal: every episode is cut at 5 steps, and the state restarts with it.
    assert np.array_equal(np.stack(model.states), np.tile(np.arange(12) % 5, (2, 1)).T)


def test_nethack_rollouts():
    frame = collect_captions(env_fn("NetHackScore-v0"), n_steps=40, seed=0, progress=False)
    assert len(frame) >= 41 and frame["progress"].ge(100).all()
    assert frame["caption"].str.len().gt(0).all() and frame["caption"].nunique() > 1


def describe_cartpole(obs, info):
    return f"The pole leans {'left' if obs[2] < 0 else 'right'}."


def test_user_env_without_oracle(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_adapter("CartPole-v1", EnvAdapter.from_function("cartpole", describe_cartpole))
    frame = collect_captions(env_fn("CartPole-v1"), n_steps=30, seed=0, progress=False)
    assert frame["progress"].isna().all() and set(frame["caption"]) <= {"The pole leans left.", "The pole leans right."}


def test_parquet_roundtrip(tmp_path):
    frame = collect_captions(env_fn(DOORKEY), n_steps=20, seed=0, progress=False)
    path = save_rollouts(frame, tmp_path / "nested" / "dir" / "rollouts.parquet")
    pd.testing.assert_frame_equal(load_rollouts(path), frame)
    assert [p.name for p in path.parent.iterdir()] == ["rollouts.parquet"]  # no temp file left behind
    with pytest.raises(FileNotFoundError, match="no rollouts file"):
        load_rollouts(tmp_path / "missing.parquet")
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="no 'caption' column"):
        load_rollouts(tmp_path / "other.parquet")


def test_bad_arguments_fail_before_building_envs(monkeypatch):
    def no_envs(*args, **kwargs):
        raise AssertionError("an env was built")

    monkeypatch.setattr(rollouts_module, "make_vec_env", no_envs)
    with pytest.raises(ValueError, match="n_steps must be an integer >= 1, got 0"):
        collect_captions(env_fn(DOORKEY), n_steps=0)
    with pytest.raises(ValueError, match="n_envs"):
        collect_captions(env_fn(DOORKEY), n_steps=10, n_envs=0)
    with pytest.raises(TypeError, match="policy"):
        collect_captions(env_fn(DOORKEY), n_steps=10, policy=3)
    from llm_reward.motif.stages import collect_stage

    with pytest.raises(ValueError, match="NoSuchEnv-v0"):  # an unknown id fails before any env or file
        collect_stage("NoSuchEnv-v0", n_steps=10, n_envs=1, seed=0, path=Path("never-written.parquet"))


def test_collect_stage_with_a_saved_agent_is_keyed_on_that_agent(tmp_path):
    from llm_reward.agents import make_agent
    from llm_reward.conf import policy_tag
    from llm_reward.motif.stages import collect_stage

    agent = make_agent("ppo", make_vec_env("MiniGrid-DoorKey-5x5-v0", n_envs=2, seed=0), seed=0)
    agent.save(tmp_path / "agent.zip")
    kwargs = dict(n_steps=40, n_envs=2, seed=0, progress=False)
    frame = collect_stage("MiniGrid-DoorKey-5x5-v0", path=tmp_path / "r.parquet", policy=str(tmp_path / "agent.zip"),
                          **kwargs)
    assert len(frame) >= 40 and (tmp_path / "r.parquet").exists()
    with pytest.raises(FileNotFoundError, match="no saved agent"):
        collect_stage("MiniGrid-DoorKey-5x5-v0", path=tmp_path / "r.parquet", policy=str(tmp_path / "nope.zip"),
                      **kwargs)
    # The cache key follows the agent's bytes: the same file gives the same tag, a retrained one a new tag.
    tag = policy_tag(str(tmp_path / "agent.zip"))
    assert policy_tag(None) == "" and tag.startswith("_agent-") and tag == policy_tag(str(tmp_path / "agent.zip"))
    agent.learn(256)
    agent.save(tmp_path / "agent.zip")
    assert policy_tag(str(tmp_path / "agent.zip")) != tag


def test_collect_stage_refuses_to_reuse_another_envs_rollouts(tmp_path):
    """Stage caches are keyed on the env config's name; an ``env.id`` override alone must not reuse them."""
    from llm_reward.motif.stages import collect_stage

    kwargs = dict(n_steps=20, n_envs=1, seed=0, progress=False, path=tmp_path / "r.parquet")
    first = collect_stage("MiniGrid-DoorKey-5x5-v0", **kwargs)
    assert collect_stage("MiniGrid-DoorKey-5x5-v0", **kwargs).equals(first)  # same env: reused
    with pytest.raises(ValueError, match="holds rollouts of 'MiniGrid-DoorKey-5x5-v0', not 'MiniGrid-Empty-5x5-v0'"):
        collect_stage("MiniGrid-Empty-5x5-v0", **kwargs)
