"""Compose the main job's config from ``conf/`` in-process, so a benchmark cell is exactly an ``llm-reward-train``
run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_module
from omegaconf import DictConfig


def train_config(overrides: list[str]) -> DictConfig:
    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        return compose("train", overrides=overrides)


def run_cell(overrides: list[str], run_dir: Path) -> dict[str, Any]:
    from llm_reward.apps.experiment import run_experiment

    cfg = train_config([*overrides, f"run_dir={run_dir}"])
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_experiment(cfg, run_dir)
