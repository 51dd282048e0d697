"""Hydra launchers for sweeps: each shipped launcher config composes from ``pkg://llm_reward.conf`` and builds its
launcher, and a real joblib multirun runs two jobs side by side with one torch thread each."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, RunMode

ROOT = Path(__file__).resolve().parents[1]


def _launcher_cfg(name: str, *extra: str):
    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        return compose("train", overrides=[f"hydra/launcher={name}", *extra], return_hydra_config=True).hydra.launcher


def test_each_launcher_config_composes() -> None:
    joblib = _launcher_cfg("joblib")
    assert joblib._target_.endswith("JoblibLauncher") and joblib.n_jobs == -1  # -1: one job per core
    slurm = _launcher_cfg("slurm", "hydra.launcher.partition=cpu")
    assert slurm._target_.endswith("submitit_launcher.SlurmLauncher")
    assert slurm.cpus_per_task == 2 and slurm.partition == "cpu" and "OMP_NUM_THREADS=1" in slurm.setup[0]
    ray = _launcher_cfg("ray_cluster")
    assert ray._target_ == "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
    assert ray.ray.remote.num_cpus == 2 and "address" in ray.ray.init
    assert _launcher_cfg("submitit_local")._target_.endswith("LocalLauncher")


def _instantiate(name: str):
    GlobalHydra.instance().clear()
    with initialize_config_module("llm_reward.conf", job_name="test", version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        cfg = hydra.compose_config("train", overrides=[f"hydra/launcher={name}"], run_mode=RunMode.MULTIRUN)
        context = HydraContext(config_loader=hydra.config_loader, callbacks=None)
        return Plugins.instance().instantiate_launcher(hydra_context=context, task_function=print, config=cfg)


@pytest.mark.parametrize("name", ["joblib", "slurm", "submitit_local",
                                  pytest.param("ray_cluster", marks=pytest.mark.skipif(
                                      importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None,
                                      reason="hydra-ray-launcher pins cloudpickle<3 (conflicts with joblib>=1.6)"))])
def test_each_installed_launcher_is_built_from_its_config(name: str) -> None:
    launcher = _instantiate(name)  # builds it; submits nothing
    assert type(launcher).__name__ in {"JoblibLauncher", "SlurmLauncher", "LocalLauncher", "RayLauncher"}


APP = textwrap.dedent("""
    import os
    import hydra
    import torch

    @hydra.main(config_path="pkg://llm_reward.conf", config_name="train", version_base="1.3")
    def main(cfg):
        print(f"job seed={cfg.seed} pid={os.getpid()} torch_threads={torch.get_num_threads()}", flush=True)

    main()
""")


def test_a_joblib_multirun_runs_two_jobs_in_two_processes_with_one_torch_thread_each(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    done = subprocess.run([sys.executable, "app.py", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                           "seed=0,1", f"data_dir={tmp_path / 'data'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = sorted(line.split() for line in done.stdout.splitlines() if line.startswith("job "))
    assert [job[1] for job in jobs] == ["seed=0", "seed=1"]
    assert jobs[0][2] != jobs[1][2], "two worker processes"
    # loky caps each worker's threads at cores // n_jobs; on a 2-core machine (here, CI) that is one torch thread
    if (os.cpu_count() or 1) <= 2:
        assert all(job[3] == "torch_threads=1" for job in jobs), jobs


@pytest.mark.slow
def test_llm_reward_train_multirun_with_joblib_prints_both_run_directories(tmp_path: Path) -> None:
    env = {**os.environ, "LLM_REWARD_DATA": str(tmp_path / "data")}
    done = subprocess.run(["llm-reward-train", "-m", "hydra/launcher=joblib", "experiment=smoke", "seed=0,1",
                           "train.baseline=false", "reward=none", "train.total_timesteps=1024",
                           "train.eval_episodes=1", "progress=false"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = [Path(line) for line in done.stdout.splitlines() if line.startswith(str(tmp_path))]
    assert len(printed) == 2 and printed[0] != printed[1], done.stdout
    for run_dir in printed:
        assert (run_dir / "metrics.json").is_file() and (run_dir / "config.yaml").is_file()
