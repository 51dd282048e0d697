"""Environment adapters: a captioner, a progress oracle and an SB3-ready wrapper stack per env id.

``get_adapter(env_id)`` works for any MiniGrid/BabyAI id and any NLE (NetHack*) id; other envs are added with
``register_adapter``. ``make_env(env_id)`` builds the env (Monitor innermost, captions in ``info``).
"""

from __future__ import annotations

from llm_reward.envs import minigrid, nethack
from llm_reward.envs.registry import (
    EnvAdapter,
    StepInfo,
    SuccessFn,
    SuccessInfo,
    caption_env,
    captioner_name,
    get_adapter,
    make_env,
    register_adapter,
)

register_adapter("MiniGrid-", minigrid.adapter)
register_adapter("BabyAI-", minigrid.adapter)
register_adapter("NetHack", nethack.adapter)

__all__ = [
    "EnvAdapter", "StepInfo", "SuccessFn", "SuccessInfo", "caption_env", "captioner_name", "get_adapter", "make_env",
    "register_adapter", "minigrid", "nethack",
]
