"""Small helpers shared by the Hydra apps."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("llm_reward")

CONFIG_PATH = "pkg://llm_reward.conf"
VERSION_BASE = "1.3"


def make_llm_from_config(cfg: DictConfig) -> Any:
    from llm_reward.llm import make_llm

    return make_llm(cfg.llm.spec, **OmegaConf.to_container(cfg.llm.options, resolve=True))


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in payload.items()}
    path.write_text(json.dumps(clean, indent=2, sort_keys=True) + "\n")
