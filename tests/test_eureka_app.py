"""llm-reward-eureka and the acceptance surface: --help, bad input before any work, Ray, a real search."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time

import pytest

from llm_reward.eureka import validate_reward_code

pytest.importorskip("mujoco", reason="the MuJoCo tasks need the [mujoco] extra: pip install -e '.[mujoco]'")

GOOD = ("import numpy as np\ndef compute_reward(obs, action, next_obs, info):\n"
        "    upright = float(np.cos(next_obs[1]))\n    return upright, {'upright': upright}\n")


def _eureka(*overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llm_reward.apps.eureka", *overrides], capture_output=True,
                          text=True, timeout=timeout)


def test_help_answers():
    done = _eureka("--help")
    assert done.returncode == 0 and "search: default, paper, quick" in done.stdout


def _compose(*overrides: str):
    from hydra import compose, initialize_config_module

    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        return compose("eureka", overrides=list(overrides))


@pytest.mark.parametrize("overrides, fragment", [
    (["env.id=NoSuchEnv-v0"], "unknown env id"),
    (["search.samples=0"], "search.samples"),
    (["search.total_timesteps=0"], "search.total_timesteps"),
    (["search.final_eval_episodes=0"], "search.final_eval_episodes"),
    (["env.id=Pendulum-v1"], "success"),
    (["llm.spec=local:/no/such/coder.gguf"], "llm.spec"),
    (["search.executor=slurm"], "search.executor"),
    (["+search.sample=3"], "search.sample"),
    (["env=robotics/inverted_pendulum", "+context.descripton=typo"], "context.descripton"),
    (["env=robotics/inverted_pendulum", "+context.description=' '"], "context.description"),
])
def test_bad_input_is_one_clear_error_before_any_work(overrides, fragment, tmp_path):
    from llm_reward.apps.eureka import run

    cfg = _compose(*overrides, f"run_dir={tmp_path / 'run'}")
    with pytest.raises(ValueError, match=fragment.replace(".", "\\.")) as info:
        run(cfg)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run").exists()


def test_the_app_exits_with_the_reason_on_bad_input(tmp_path):
    done = _eureka("search.samples=0", f"run_dir={tmp_path / 'run'}")
    assert done.returncode == 2 and "search.samples must be an integer >= 1" in done.stderr


def test_a_jail_that_cannot_start_stops_the_app_before_the_coder_loads(tmp_path, monkeypatch):
    from llm_reward.apps import eureka as app
    from llm_reward.eureka import jail

    loaded = []
    monkeypatch.setattr(app, "make_llm_from_config", lambda cfg: loaded.append(cfg))
    monkeypatch.setattr(jail, "isolation_status", lambda: "bubblewrap could not set up the namespaces: denied")
    with pytest.raises(jail.SandboxUnavailable, match=r"sandbox\.isolation='os' cannot run here"):
        app.run(_compose("sandbox.isolation=os", f"run_dir={tmp_path / 'run'}"))
    with pytest.raises(ValueError, match=r"sandbox\.isolation must be one of"):
        app.run(_compose("sandbox.isolation=none", f"run_dir={tmp_path / 'run'}"))
    assert loaded == [] and not (tmp_path / "run").exists()


def test_ray_requested_but_missing_is_a_clear_error(monkeypatch):
    from llm_reward.eureka import executors

    monkeypatch.setattr(executors.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(executors.ExecutorError, match="pip install 'llm_reward\\[ray\\]'"):
        executors.check_executor("ray")


def test_validate_reward_code_contract():
    start = time.monotonic()
    assert validate_reward_code(GOOD, "InvertedPendulum-v5")[0] is True
    ok, reason = validate_reward_code("def compute_reward(obs, action, next_obs, info):\n    while True:\n"
                                      "        pass\n", "InvertedPendulum-v5")
    assert not ok and "timed out" in reason
    assert validate_reward_code("no code here", "InvertedPendulum-v5") == (
        False, "no function named compute_reward found; write compute_reward(obs, action, next_obs, info) -> "
               "(float, dict[str, float])")
    ok, reason = validate_reward_code(GOOD, "NoSuchEnv-v0")
    assert not ok and "unknown env id" in reason
    assert time.monotonic() - start < 4 * 60  # four calls, each bounded by the smoke timeout


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install '.[ray]')")
def test_ray_executor_runs_a_candidate_on_a_real_local_instance(tmp_path):
    import ray

    from llm_reward.eureka.candidate import evaluate_candidate
    from llm_reward.eureka.executors import RayExecutor
    from llm_reward.eureka.records import CandidateJob, TrainSettings

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        executor = RayExecutor(workers=1)
        job = CandidateJob("InvertedPendulum-v5", reward="code", code=GOOD, seed=0, smoke_steps=20,
                           train=TrainSettings("ppo", total_timesteps=256, n_envs=2, n_points=2, eval_episodes=0,
                                               max_episode_steps=50), timeout_s=300, memory_mb=4096,
                           log_dir=str(tmp_path))
        record = executor.submit(evaluate_candidate, job).result(timeout=600)
        executor.shutdown()
    finally:
        ray.shutdown()
    assert record.trained, record.reason
    assert record.curve and (tmp_path / "train.log").exists()


@pytest.mark.slow
def test_real_search_with_the_embedded_coder(tmp_path):
    """2 candidates x 1 iteration on InvertedPendulum with Qwen2.5-Coder-1.5B, tiny budgets, no final retraining."""
    done = _eureka("env=robotics/inverted_pendulum", "env.max_episode_steps=50", "search=quick",
                   "search.total_timesteps=512", "search.n_envs=2", "search.n_points=2", "search.eval_episodes=0",
                   "search.final_seeds=0", "search.max_tokens=300", "search.repairs=0", "progress=false",
                   f"run_dir={tmp_path}",
                   timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-2])
    assert result["candidates"] == 2 and result["task"] == "InvertedPendulum-v5"
    for k in range(2):
        cand = tmp_path / "iter_00" / f"cand_{k:02d}"
        record = json.loads((cand / "result.json").read_text())
        assert (cand / "response.md").read_text().strip()
        assert record["status"] == "ok" or record["reason"]  # either it trained or it says why not
    responses = [(tmp_path / "iter_00" / f"cand_{k:02d}" / "response.md").read_text() for k in range(2)]
    assert responses[0] != responses[1]  # distinct sampling seeds
