"""llm_reward: turn AI feedback into rewards for reinforcement-learning agents.

The main entry points are importable from the package root; they load lazily, so ``import llm_reward`` stays
cheap (no torch or stable-baselines3 until a wrapper is used).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "CaptionWrapper": "llm_reward.shaping.captions",
    "FunctionCaptioner": "llm_reward.shaping.captions",
    "LLMRewardWrapper": "llm_reward.shaping.wrappers",
    "LLMRewardVecEnv": "llm_reward.shaping.wrappers",
    "OnlineFeedback": "llm_reward.motif.online",
    "make_llm": "llm_reward.llm",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'llm_reward' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
