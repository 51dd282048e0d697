"""The code reward wrappers: rewards computed in a sandbox worker, env reward kept in info, failures raised here."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mujoco", reason="the MuJoCo tasks need the [mujoco] extra: pip install -e '.[mujoco]'")

from llm_reward.envs import make_env, make_vec_env
from llm_reward.eureka.wrappers import CodeRewardError, CodeRewardVecEnv, CodeRewardWrapper

ENV_ID = "InvertedPendulum-v5"
CODE = ("import numpy as np\ndef compute_reward(obs, action, next_obs, info):\n"
        "    upright = float(np.cos(next_obs[1]))\n    ctrl = -0.01 * float(np.sum(np.square(action)))\n"
        "    return upright + ctrl, {'upright': upright, 'ctrl': ctrl}\n")


def test_vec_env_twin_matches_the_code_on_every_env_and_terminal_step(tmp_path):
    path = tmp_path / "best_reward.py"
    path.write_text(CODE)
    venv = CodeRewardVecEnv(make_vec_env(ENV_ID, n_envs=3, seed=0, max_episode_steps=20), code_path=path)
    try:
        venv.reset()
        saw_done = False
        for _ in range(30):
            actions = np.random.default_rng(0).uniform(-3, 3, size=(3, 1)).astype(np.float32)
            obs, rewards, dones, infos = venv.step(actions)
            for i, info in enumerate(infos):
                next_obs = info["terminal_observation"] if dones[i] else obs[i]
                upright, ctrl = np.cos(next_obs[1]), -0.01 * float(np.sum(actions[i] ** 2))
                assert rewards[i] == pytest.approx(upright + ctrl, rel=1e-5)
                assert info["reward_components"] == pytest.approx({"upright": upright, "ctrl": ctrl})
                assert "env_reward" in info
            saw_done |= bool(dones.any())
        assert saw_done
    finally:
        venv.close()


def test_gym_wrapper_and_zoo_style_kwargs():
    env = CodeRewardWrapper(make_env(ENV_ID, seed=0), code=CODE)
    try:
        env.reset(seed=0)
        _, reward, _, _, info = env.step(np.zeros(1, dtype=np.float32))
        assert reward == pytest.approx(info["reward_components"]["upright"])
        assert info["env_reward"] == 1.0
    finally:
        env.close()


def test_failing_code_raises_in_the_caller_with_the_reason():
    bad = "def compute_reward(obs, action, next_obs, info):\n    return float(next_obs[99]), {}\n"
    venv = CodeRewardVecEnv(make_vec_env(ENV_ID, n_envs=2, seed=0), code=bad)
    try:
        venv.reset()
        with pytest.raises(CodeRewardError, match="IndexError"):
            venv.step(np.zeros((2, 1), dtype=np.float32))
    finally:
        venv.close()


def test_a_hanging_reward_times_out_and_refused_code_never_starts():
    loop = "def compute_reward(obs, action, next_obs, info):\n    while True:\n        pass\n"
    venv = CodeRewardVecEnv(make_vec_env(ENV_ID, n_envs=1, seed=0), code=loop, call_timeout_s=2)
    try:
        venv.reset()
        with pytest.raises(CodeRewardError, match="timed out"):
            venv.step(np.zeros((1, 1), dtype=np.float32))
    finally:
        venv.close()
    with pytest.raises(ValueError, match="import of 'os'"):
        CodeRewardVecEnv(make_vec_env(ENV_ID, n_envs=1, seed=0), code="import os\n" + CODE)


def test_reward_eureka_kind_checks_the_file_then_wraps_the_training_venv(tmp_path):
    from llm_reward.eureka.reward_kind import EurekaCodeReward

    with pytest.raises(ValueError, match="reward.builder.code_path"):
        EurekaCodeReward().check(None)
    with pytest.raises(ValueError, match="reward.builder.code_path: .*does not exist"):
        EurekaCodeReward(code_path=str(tmp_path / "missing.py")).check(None)
    bad = tmp_path / "bad.py"
    bad.write_text("import subprocess\n" + CODE)
    with pytest.raises(ValueError, match="reward.builder.code_path: .*subprocess"):
        EurekaCodeReward(code_path=str(bad)).check(None)
    good = tmp_path / "best_reward.py"
    good.write_text(CODE)

    class Run:
        env_id = ENV_ID

    built = EurekaCodeReward(code_path=str(good)).build(Run())
    assert built.reward is None and built.wrap_venv is not None
    venv = built.wrap_venv(make_vec_env(ENV_ID, n_envs=2, seed=0))
    try:
        venv.reset()
        _, rewards, _, infos = venv.step(np.zeros((2, 1), dtype=np.float32))
        assert set(infos[0]["reward_components"]) == {"upright", "ctrl"}
    finally:
        venv.close()
    built.keep(tmp_path)
    assert (tmp_path / "reward_code.py").read_text() == CODE


def test_rl_zoo_env_wrapper_route(tmp_path):
    utils = pytest.importorskip("rl_zoo3.utils", reason="rl-baselines3-zoo is not installed (the [zoo] extra)")
    path = tmp_path / "best_reward.py"
    path.write_text(CODE)
    hyperparams = {"env_wrapper": [{"llm_reward.eureka.wrappers.CodeRewardWrapper": {"code_path": str(path)}}]}
    wrapper = utils.get_wrapper_class(hyperparams)  # how the zoo reads the YAML key
    env = wrapper(make_env(ENV_ID, seed=0))
    try:
        env.reset(seed=0)
        _, reward, _, _, info = env.step(np.zeros(1, dtype=np.float32))
        assert reward == pytest.approx(info["reward_components"]["upright"] + info["reward_components"]["ctrl"])
    finally:
        env.close()


def _reward(body: str) -> str:
    return "import numpy as np\ndef compute_reward(obs, action, next_obs, info):\n" + "".join(
        f"    {line}\n" for line in body.splitlines())


@pytest.mark.parametrize("body, reason", [
    ("return float('nan'), {}", "the total reward is nan"),
    ("return 1.0, {'boom': np.inf}", "component 'boom' is inf"),
    ("return 'high', {}", "not a float"),
    ("return 1.0, {f'c{i}': 1.0 for i in range(40)}", "40 reward components"),
    ("return 1.0, {('neg' if action[0] < 0 else 'pos'): 1.0}", "different component names"),
    ("return 1.0, {'\\ud800': 1.0}", "component names must be"),
])
def test_bad_reward_values_in_the_server_raise_one_line_reasons(body, reason):
    venv = CodeRewardVecEnv(make_vec_env(ENV_ID, n_envs=2, seed=0), code=_reward(body))
    try:
        venv.reset()
        with pytest.raises(CodeRewardError, match=reason) as caught:
            venv.step(np.array([[-1.0], [1.0]], dtype=np.float32))
        assert "\n" not in str(caught.value)
        assert venv.server._worker is None  # closed: replies queued behind a failure would be out of step
    finally:
        venv.close()


def test_stdout_that_looks_like_frames_changes_nothing():
    forged = ("print('\\x00rw1' + 'A' * 40)\nprint('{\"type\": \"error\", \"reason\": \"forged\"}')\n"
              "return 1.0, {'one': 1.0}")
    venv = CodeRewardVecEnv(make_vec_env(ENV_ID, n_envs=2, seed=0), code=_reward(forged))
    try:
        venv.reset()
        for _ in range(3):
            _, rewards, _, infos = venv.step(np.zeros((2, 1), dtype=np.float32))
            assert rewards.tolist() == [1.0, 1.0] and infos[1]["reward_components"] == {"one": 1.0}
    finally:
        venv.close()


def _json_frame(message) -> bytes:
    from llm_reward.eureka.channel import encode

    return encode(message)


def _encoded_rewards(names, rows) -> bytes:
    from llm_reward.eureka.channel import encode_rewards

    return encode_rewards(names, rows)


@pytest.mark.parametrize("frame, reason", [
    (lambda: _encoded_rewards(("upright", "ctrl"), [(float("nan"), 0.0, 0.0), (1.0, 0.0, 0.0)]), "non-finite"),
    (lambda: _encoded_rewards(("upright",), [(1.0, 1.0)] * 3), "for 3 transitions; 2 were sent"),
    (lambda: b"\x00\x00\x00\x0b" + b'{"type":"x"}'[:11], "undecodable"),
    (lambda: _json_frame({"type": "rewards", "total": [1, 1], "components": {"a": [1, 1]}}),  # the old format
     "unexpected 'rewards' frame"),
    (lambda: _encoded_rewards(("a",), [(1.0, 2.0), (1.0, 2.0)])[:-3], "closed in the middle of a frame"),
])
def test_a_forged_or_malformed_reply_frame_is_refused(frame, reason):
    """Whatever arrives on the reply channel, only a well-formed rewards frame for this batch becomes rewards."""
    import os

    from llm_reward.eureka.channel import FrameReader

    venv = CodeRewardVecEnv(make_vec_env(ENV_ID, n_envs=2, seed=0), code=CODE)
    server = venv.server
    read_fd, write_fd = os.pipe()
    try:
        venv.reset()
        venv.step(np.zeros((2, 1), dtype=np.float32))  # the real channel works
        os.close(server._worker.reader.fd)
        server._worker.reader = FrameReader(read_fd)  # from here on, replies come from this test
        os.write(write_fd, frame())
        os.close(write_fd)
        write_fd = None
        with pytest.raises(CodeRewardError, match=reason) as caught:
            venv.step(np.zeros((2, 1), dtype=np.float32))
        assert "\n" not in str(caught.value) and server._worker is None
    finally:
        if write_fd is not None:
            os.close(write_fd)
        venv.close()


def test_dict_observations_integer_actions_and_code_that_edits_its_inputs():
    """Requests carry arrays as raw buffers: dict observations, uint8 images and int64 actions arrive intact, and
    writable (reward code may change its inputs in place, as it could with pickled arrays)."""
    pytest.importorskip("gymnasium_robotics", reason="FetchReach needs the [mujoco] extra's gymnasium-robotics")
    code = _reward("d = next_obs['achieved_goal'] - next_obs['desired_goal']\nd *= 2.0\n"
                   "dist = float(np.linalg.norm(d)) / 2.0\nreturn -dist, {'dist': dist}")
    venv = CodeRewardVecEnv(make_vec_env("FetchReach-v4", n_envs=2, seed=0), code=code)
    try:
        venv.reset()
        for _ in range(3):
            obs, rewards, dones, infos = venv.step(np.random.default_rng(0).uniform(-1, 1, (2, 4)).astype(np.float32))
            for i in range(2):
                expected = np.linalg.norm(obs["achieved_goal"][i] - obs["desired_goal"][i])
                assert rewards[i] == pytest.approx(-expected, rel=1e-5)
                assert infos[i]["reward_components"]["dist"] == pytest.approx(expected)
    finally:
        venv.close()
    code = _reward("next_obs[0, 0, 0] = 7\nreturn float(action) + float(next_obs[0, 0, 0]), {}")
    venv = CodeRewardVecEnv(make_vec_env("MiniGrid-DoorKey-5x5-v0", n_envs=2, seed=0), code=code)
    try:
        venv.reset()
        obs, rewards, _, infos = venv.step(np.array([2, 5]))
        assert rewards.tolist() == [9.0, 12.0] and infos[0]["reward_components"] == {}
    finally:
        venv.close()
