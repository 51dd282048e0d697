"""Small helpers shared by the Hydra apps."""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("llm_reward")

CONFIG_PATH = "pkg://llm_reward.conf"
VERSION_BASE = "1.3"


def make_llm_from_config(cfg: DictConfig) -> Any:
    from llm_reward.llm import make_llm

    return make_llm(cfg.llm.spec, **OmegaConf.to_container(cfg.llm.options, resolve=True))
