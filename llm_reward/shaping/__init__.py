"""Shaping: the reward formula (Motif bonus, potential-based), captions in ``info`` and the SB3-facing wrappers.

``formula`` and ``captions`` import neither Gymnasium wrappers nor SB3 at module level beyond what they need;
``wrappers`` brings in SB3's VecEnv machinery.
"""

from llm_reward.shaping.captions import CAPTION_KEY, PROGRESS_KEY, CaptionWrapper, FunctionCaptioner
from llm_reward.shaping.formula import (CachedReward, CaptionCounter, Shaper, ShapingConfig, check_captioner,
                                        potential_rewards, reward_threshold, shaped_rewards)

__all__ = [
    "CAPTION_KEY", "PROGRESS_KEY", "CachedReward", "CaptionCounter", "CaptionWrapper", "FunctionCaptioner", "Shaper",
    "ShapingConfig", "check_captioner", "potential_rewards", "reward_threshold", "shaped_rewards",
]
