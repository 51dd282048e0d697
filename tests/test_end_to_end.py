"""The main job and the Hydra apps, end to end on real envs and real embedded models (small budgets)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from llm_reward.reward_model import RewardArtifact

pytestmark = pytest.mark.slow


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("app", ["llm-reward-annotate", "llm-reward-fit", "llm-reward-train"])
def test_console_scripts_answer_help(app):
    out = _run([app, "--help"])
    assert out.returncode == 0, out.stderr
    assert "Configuration groups" in out.stdout and "env:" in out.stdout


def test_annotate_then_fit_apps_with_the_tiny_model(tmp_path):
    common = ["env=minigrid/doorkey_5x5", "llm=tiny", "rollouts.n_steps=200", "rollouts.n_envs=2", "pairs.n=6",
              "reward_model.epochs=3", f"data_dir={tmp_path}", "progress=false"]
    annotated = _run(["llm-reward-annotate", *common])
    assert annotated.returncode == 0, annotated.stderr[-2000:]
    store = Path(annotated.stdout.strip().splitlines()[-1])
    report = json.loads(store.with_suffix(".report.json").read_text())
    assert report["pairs_labelled"] == 6 and report["llm_prompts"] > 0
    fitted = _run(["llm-reward-fit", *common])
    assert fitted.returncode == 0, fitted.stderr[-2000:]
    artifact = RewardArtifact.load(Path(fitted.stdout.strip().splitlines()[-1]))
    assert artifact.captioner.startswith("minigrid-text")
    # A rerun of annotate reuses the store: no new pairs, no model calls.
    again = _run(["llm-reward-annotate", *common])
    rerun = json.loads(store.with_suffix(".report.json").read_text())
    assert again.returncode == 0 and rerun["pairs_new"] == 0 and rerun["llm_calls"] == 0


def test_main_job_with_the_embedded_judge(tmp_path):
    """collect -> annotate (default judge) -> fit -> PPO shaped + baseline -> evaluate -> metrics.json + curve."""
    from hydra import compose, initialize_config_module

    from llm_reward.apps.experiment import run_experiment

    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        cfg = compose("train", overrides=[
            "experiment=smoke", "pairs.n=6", "rollouts.n_steps=300", "train.total_timesteps=2048",
            "train.eval_episodes=2", "train.eval_every=1024", "train.eval_every_episodes=1",
            f"data_dir={tmp_path / 'data'}", f"run_dir={tmp_path / 'run'}", "progress=false",
        ])
    metrics = run_experiment(cfg, tmp_path / "run")
    assert metrics["completed"] is True
    assert RewardArtifact.load(tmp_path / "run" / "reward_model").captioner.startswith("minigrid-text")
    cache = metrics["runs"]["shaped"]["reward_cache"]
    assert cache["model_calls"] >= 1 and cache["captions_scored"] + cache["cache_hits"] > 0
    for name in ("shaped", "extrinsic"):  # periodic evaluation during training (SB3 EvalCallback)
        assert (tmp_path / "run" / f"eval_{name}" / "evaluations.npz").exists()
    assert (tmp_path / "run" / "metrics.json").exists() and (tmp_path / "run" / "learning_curve.png").exists()
    # Strict JSON: the extrinsic run has no intrinsic return, written as null rather than NaN.
    written = json.loads((tmp_path / "run" / "metrics.json").read_text(), parse_constant=pytest.fail)
    assert written["runs"]["extrinsic"]["intrinsic_return_mean"] is None
    assert set(metrics["runs"]) == {"shaped", "extrinsic"}  # the baseline trained in a second process
    comparison = metrics["comparison"]  # the two agents side by side, on the same evaluation episodes
    assert comparison["shaped_success_rate"] == metrics["runs"]["shaped"]["eval"]["success_rate"]
    assert comparison["success_rate_gain"] == pytest.approx(
        comparison["shaped_success_rate"] - metrics["runs"]["extrinsic"]["eval"]["success_rate"])
    assert metrics["runs"]["extrinsic"]["timesteps"] >= 2048 and (tmp_path / "run" / "agent_extrinsic.zip").exists()
    annotation = metrics["annotation"]  # pointwise: one prompt per distinct caption of the 6 pairs (some cached)
    assert 6 <= annotation["llm_prompts"] <= 12
    assert annotation["llm_calls"] + annotation["cache_hits"] == annotation["llm_prompts"]
    assert cfg.reward.shaping.form == "potential"  # the MiniGrid env configs recommend it
    # the success rate is the mean of the evaluation episodes' own outcomes, which the run keeps
    for name in ("shaped", "extrinsic"):
        evaluation = metrics["runs"][name]["eval"]
        episodes = evaluation["per_episode"]
        assert len(episodes["success"]) == len(episodes["return"]) == evaluation["n_episodes"] == 2
        assert evaluation["success_rate"] == np.mean(episodes["success"])
        assert evaluation["mean_return"] == pytest.approx(np.mean(episodes["return"]))
    assert metrics["success_rate"] == metrics["runs"]["shaped"]["eval"]["success_rate"]
    assert metrics["runs"]["shaped"]["timesteps"] >= 2048
    assert metrics["llm"] == "local"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for events in (tmp_path / "run" / "tb").glob("shaped*"):
        tags |= set(EventAccumulator(str(events)).Reload().Tags()["scalars"])
    assert {"reward_model/model_calls", "reward_model/cache_hits", "shaped/ep_intrinsic_mean"} <= tags


def test_main_job_with_online_feedback_from_the_tiny_model(tmp_path):
    """reward=oni: the judge labels in a background thread while PPO trains; the run keeps what it learned."""
    from hydra import compose, initialize_config_module

    from llm_reward.apps.experiment import run_experiment

    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        cfg = compose("train", overrides=[
            "experiment=smoke", "reward=oni", "llm=tiny", "train.total_timesteps=2048", "train.baseline=false",
            "train.eval_episodes=2", f"data_dir={tmp_path / 'data'}", f"run_dir={tmp_path / 'run'}", "progress=false",
        ])
    metrics = run_experiment(cfg, tmp_path / "run")
    online = metrics["runs"]["shaped"]["online_feedback"]
    assert metrics["completed"] and metrics["runs"]["shaped"]["timesteps"] >= 2048
    assert online["llm_prompts"] >= 1 and online["judge_stopped"] == 0
    assert online["llm"]["cache_hits"] + online["llm"]["cache_misses"] >= online["llm_prompts"]
    assert (tmp_path / "run" / "online_feedback" / "captions.parquet").exists()


def test_an_interrupt_while_building_the_reward_still_writes_metrics(tmp_path, monkeypatch):
    from hydra import compose, initialize_config_module

    from llm_reward.apps import experiment

    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        cfg = compose("train", overrides=["experiment=smoke", "reward=count", f"data_dir={tmp_path}", "progress=false"])

    def interrupted(kind, run):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "build_reward", interrupted)
    with pytest.raises(KeyboardInterrupt):
        experiment.run_experiment(cfg, tmp_path)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["completed"] is False and written["runs"] == {} and written["env"] == cfg.env.id


def test_a_baseline_due_after_an_interrupted_shaped_run_is_not_started(tmp_path):
    from hydra import compose, initialize_config_module

    from llm_reward.apps.baseline import baseline_runner
    from llm_reward.apps.experiment import train_and_evaluate

    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        cfg = compose("train", overrides=["experiment=smoke", "train.parallel_baseline=false", f"run_dir={tmp_path}"])
    with baseline_runner(cfg, tmp_path, train_and_evaluate, wanted=True) as baseline:
        assert baseline.result(True) is None  # would otherwise train a whole extrinsic agent here
    assert not (tmp_path / "agent_extrinsic.zip").exists()


def test_bad_config_fails_before_any_work(tmp_path):
    out = _run(["llm-reward-train", "reward.shaping.beta=-1", f"data_dir={tmp_path}", f"run_dir={tmp_path / 'r'}"])
    assert out.returncode != 0 and "beta" in out.stderr
    assert not (tmp_path / "rollouts").exists()
    out = _run(["llm-reward-train", "agent=dqn", "env=minigrid/doorkey_5x5", "+agent.kwargs.bogus=1",
                f"data_dir={tmp_path}", f"run_dir={tmp_path / 'r'}"])
    assert out.returncode != 0 and "bogus" in out.stderr
    assert not (tmp_path / "rollouts").exists()
    # The potential form takes the agent's discount (shaping.gamma: null), checked before any work too.
    out = _run(["llm-reward-train", "+agent.kwargs.gamma=1.5", f"data_dir={tmp_path}", f"run_dir={tmp_path / 'r'}"])
    assert out.returncode != 0 and "gamma" in out.stderr
    assert not (tmp_path / "rollouts").exists()
    out = _run(["llm-reward-train", "reward=oni", "reward.variant=magic", f"data_dir={tmp_path}",
                f"run_dir={tmp_path / 'r'}"])
    assert out.returncode != 0 and "reward.variant" in out.stderr
    out = _run(["llm-reward-train", "llm.spec=local:/no/such/model.gguf", f"data_dir={tmp_path}",
                f"run_dir={tmp_path / 'r'}"])
    assert out.returncode != 0 and "GGUF model file not found" in out.stderr
    assert not (tmp_path / "rollouts").exists()


def test_a_failing_shaped_run_stops_the_parallel_baseline(tmp_path):
    """The shaped agent's run raising must not leave the parent waiting out the baseline's whole budget."""
    import time

    from hydra import compose, initialize_config_module

    from llm_reward.apps.baseline import baseline_runner
    from llm_reward.apps.experiment import train_and_evaluate

    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        cfg = compose("train", overrides=["experiment=smoke", "train.total_timesteps=10000000",
                                          "train.eval_episodes=1", f"run_dir={tmp_path}", "progress=false"])
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="shaped run failed"):
        with baseline_runner(cfg, tmp_path, train_and_evaluate, wanted=True) as baseline:
            assert baseline is not None
            # Wait until the child is learning (SB3 opens its TensorBoard file in learn()): a fixed sleep raced the
            # child's start-up (spawn, imports) on a busy machine, and an interrupt then has nothing to save.
            while not any((tmp_path / "tb").rglob("events*")) and time.monotonic() - start < 300:
                time.sleep(1)
            time.sleep(2)
            raise RuntimeError("shaped run failed")
    from stable_baselines3 import PPO

    baseline = PPO.load(tmp_path / "agent_extrinsic.zip", device="cpu")  # the interrupted baseline saved its agent
    assert 0 < baseline.num_timesteps < 10_000_000  # after stopping early, not at the end of its budget


def test_the_shuffled_control_fits_its_own_model_on_the_same_labels(tmp_path):
    """reward=shuffled: the judge's labels of the same pairs, permuted; its own reward model beside the LLM one."""
    from hydra import compose, initialize_config_module

    from llm_reward.apps.experiment import run_experiment

    common = ["experiment=smoke", "llm=tiny", "pairs.n=8", "rollouts.n_steps=300", "train.total_timesteps=512",
              "train.baseline=false", "train.eval_episodes=1", f"data_dir={tmp_path / 'data'}", "progress=false"]
    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        motif = compose("train", overrides=[*common, "reward=motif", "reward_model.dense_pairs=0",
                                            f"run_dir={tmp_path / 'motif'}"])
        shuffled = compose("train", overrides=[*common, "reward=shuffled", "reward_model.dense_pairs=0",
                                               f"run_dir={tmp_path / 'shuffled'}"])
        dense = compose("train", overrides=[*common, "reward=motif", "reward_model.dense_pairs=64",
                                            f"run_dir={tmp_path / 'dense'}"])
    first = run_experiment(motif, tmp_path / "motif")
    control = run_experiment(shuffled, tmp_path / "shuffled")
    assert first["completed"] and control["completed"] and control["reward"] == "shuffled"
    assert control["annotation"]["pairs_new"] == 0  # the same label store: no pair judged twice
    assert control["reward_model_dir"] != first["reward_model_dir"] and "-shuffled0_" in control["reward_model_dir"]
    assert first["reward_model"]["n_dense_pairs"] == 0
    # reward_model.dense_pairs: the same labels (and the pointwise judge's stored caption scores), its own model
    densified = run_experiment(dense, tmp_path / "dense")
    assert densified["annotation"]["pairs_new"] == 0 and densified["reward_model"]["n_dense_pairs"] == 64
    assert densified["reward_model_dir"] == first["reward_model_dir"] + "_dense64"


def test_a_config_error_is_the_last_line_printed_and_leaves_no_run_dir(tmp_path):
    out = _run(["llm-reward-train", "pairs.n=0", f"data_dir={tmp_path}", f"run_dir={tmp_path / 'run'}"])
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1].startswith("llm-reward-train: error: pairs.n:"), out.stderr[-500:]
    assert not (tmp_path / "run").exists() and not (tmp_path / "rollouts").exists()
    out = _run(["llm-reward-train", "env.id=MiniGrid-NoSuchThing-v0", f"data_dir={tmp_path}",
                f"run_dir={tmp_path / 'run'}"])
    assert out.returncode != 0 and out.stderr.splitlines()[-1].startswith("llm-reward-train: error: env.id: unknown")


def test_sigint_to_the_runner_alone_stops_the_parallel_baseline_too(tmp_path):
    """What a scheduler sends: kill -INT <pid of llm-reward-train>, to that process only."""
    import os
    import signal
    import time

    run_dir = tmp_path / "run"
    proc = subprocess.Popen(["llm-reward-train", "experiment=smoke", "reward=count", "train.total_timesteps=10000000",
                             "train.eval_episodes=1", f"data_dir={tmp_path}", f"run_dir={run_dir}", "progress=false"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300  # both agents learning: each has opened its TensorBoard file
        while len(list((run_dir / "tb").glob("*"))) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(1)
        time.sleep(3)
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["runs"]) == {"shaped", "extrinsic"}, proc.stderr.read()[-2000:]
    assert all(run["interrupted"] and run["timesteps"] < 10_000_000 for run in metrics["runs"].values())
    assert metrics["completed"] is False
