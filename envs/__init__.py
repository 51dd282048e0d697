"""Environment adapters: a captioner, a progress oracle and an SB3-ready wrapper stack per env id.

``get_adapter(env_id)`` works for any MiniGrid/BabyAI id, any NLE (NetHack*) id and any Gymnasium MuJoCo or
gymnasium-robotics id (``pip install -e '.[mujoco]'``); other envs are added with ``register_adapter``.
``task_spec(env_id)`` describes any Gymnasium task as plain data (description, observation layout, success
criterion, reward terms) for reward-code prompts. ``make_env(env_id)`` builds the env (Monitor innermost,
captions in ``info``).
"""

from __future__ import annotations

from llm_reward.envs import classic, minigrid, nethack, robotics
from llm_reward.envs.registry import (
    EnvAdapter,
    Milestone,
    StepInfo,
    SuccessFn,
    SuccessInfo,
    caption_env,
    captioner_name,
    get_adapter,
    load_adapter,
    make_env,
    make_vec_env,
    register_adapter,
    success_rule,
)
from llm_reward.envs.task import InfoCriterion, ObsField, TaskSpec, success_fn, task_spec

register_adapter("MiniGrid-", minigrid.adapter)
register_adapter("BabyAI-", minigrid.adapter)
register_adapter("NetHack", nethack.adapter)

__all__ = [
    "EnvAdapter", "Milestone", "StepInfo", "SuccessFn", "SuccessInfo", "caption_env", "captioner_name", "get_adapter",
    "load_adapter", "make_env", "make_vec_env", "register_adapter", "classic", "minigrid", "nethack",
    "InfoCriterion", "ObsField", "TaskSpec", "robotics", "success_fn", "success_rule", "task_spec",
]
