"""SB3 agents for llm_reward: per-env-family defaults, feature extractors and success evaluation."""

from .evaluation import evaluate_success, make_eval_callback
from .factory import (
    ALGOS, agent_defaults, algo_class, check_algo_action_space, env_family, family_defaults, make_agent, validate_algo,
)
from .policies import MiniGridCNN, NetHackExtractor, crop_around

__all__ = [
    "ALGOS", "MiniGridCNN", "NetHackExtractor", "agent_defaults", "algo_class", "check_algo_action_space",
    "crop_around", "env_family", "evaluate_success", "family_defaults", "make_agent", "make_eval_callback",
    "validate_algo",
]
