"""docs/your_env.md, as written: an env with no built-in adapter (FrozenLake), wrapped from Python and from the
command line, end to end with a tiny budget. Also the contracts a user implements are importable from the root."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "your_env.md"
FENCE = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)
#: What the test adds to the page's command: the tiny judge and a budget of seconds (the page's run is the real one).
BUDGET = ["llm=tiny", "rollouts.n_steps=200", "rollouts.n_envs=2", "pairs.n=8", "reward_model.epochs=2",
          "train.total_timesteps=256", "train.n_envs=2", "+agent.kwargs.n_steps=128", "train.baseline=false",
          "train.eval_episodes=2", "progress=false"]


def _blocks(language: str) -> list[str]:
    return [code for lang, code in FENCE.findall(PAGE.read_text()) if lang == language]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory holding the page's adapter module, as a user's project would."""
    (tmp_path / "frozenlake_captions.py").write_text(_blocks("python")[0])
    return tmp_path


def _env(workdir: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(workdir), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def test_the_page_title_and_the_root_contracts():
    import llm_reward as L

    assert "your own environment" in PAGE.read_text().splitlines()[0].lower()
    assert {"Labeler", "EnvAdapter", "Captioner", "LabelBatch"} <= set(L.__all__)
    from llm_reward.envs.registry import EnvAdapter
    from llm_reward.types import Captioner, Labeler

    assert (L.EnvAdapter, L.Captioner, L.Labeler) == (EnvAdapter, Captioner, Labeler)


def test_the_python_api_example_runs(workdir: Path):
    done = subprocess.run([sys.executable, "-c", _blocks("python")[1]], cwd=workdir, env=_env(workdir),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "The player stands 3 rows above and 3 columns left of the gift."


def test_the_cli_example_trains_on_frozenlake_end_to_end(workdir: Path):
    (command,) = [line for line in _blocks("bash")[0].splitlines() if line.startswith("llm-reward-train")]
    words = shlex.split(command)
    assert "env.adapter=frozenlake_captions:adapter" in words
    args = [sys.executable, "-m", "llm_reward.apps.train", *words[1:], *BUDGET, f"data_dir={workdir / 'data'}",
            f"run_dir={workdir / 'run'}"]
    done = subprocess.run(args, cwd=workdir, env=_env(workdir), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((workdir / "run" / "metrics.json").read_text())
    assert metrics["completed"] and metrics["env"] == "FrozenLake-v1"
    assert metrics["annotation"]["pairs_labelled"] == 8 and metrics["annotation"]["llm_prompts"] > 0
    assert metrics["runs"]["shaped"]["timesteps"] >= 256
    assert (workdir / "run" / "reward_model" / "config.json").exists()


def test_a_bad_adapter_path_names_the_config_key(workdir: Path):
    args = [sys.executable, "-m", "llm_reward.apps.train", "env.id=FrozenLake-v1", "env.name=frozenlake",
            "env.adapter=frozenlake_captions:no_such_name", f"data_dir={workdir / 'data'}",
            f"run_dir={workdir / 'run'}"]
    done = subprocess.run(args, cwd=workdir, env=_env(workdir), capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "env.adapter:" in done.stderr.strip().splitlines()[-1]
