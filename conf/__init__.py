"""The Hydra config tree (``pkg://llm_reward.conf``) and the resolvers its paths use.

The resolvers name each Motif stage (rollouts, labels, reward model) after what decides it; their hashes come from
:func:`llm_reward.identity.digest`, the one stage-identity hash of every track.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from llm_reward.identity import digest

from .schema import register as _register_schemas


def policy_tag(policy: str | None) -> str:
    """``""`` for random-policy rollouts; else ``"_<stem>-<hash>"`` of the saved agent, so cached rollouts and labels
    are keyed on which agent collected them (its file's bytes when it exists, so a retrained agent gets new ones)."""
    if policy is None:
        return ""
    path = Path(policy)
    return f"_{path.stem}-{digest(path.read_bytes() if path.is_file() else str(path.resolve()))}"


def goal_tag(goal: str) -> str:
    """``""`` for the ``default`` goal; else ``"_goal-<variant>"``, or ``"_goal-<hash>"`` for a ``text:`` sentence, so
    labels asked under another goal (Motif's goal variants) get their own store and reward model."""
    if goal == "default":
        return ""
    if goal.startswith("text:"):
        return f"_goal-{digest(goal)}"
    return f"_goal-{goal}"


def strategy_tag(strategy: Any) -> str:
    """``""`` without a ``feedback.strategy``; else ``"_<its name>"`` (a ``_target_`` node is named as the strategy
    of the same questions, ``pointwise_fewshot``), so labels asked another way get their own store and reward
    model."""
    from llm_reward.feedback.strategies import judging_spec

    spec = judging_spec(strategy)
    return "" if spec is None else f"_{spec.name}"


def dense_tag(dense_pairs: int) -> str:
    """``""`` without dense pairs; else ``"_dense<N>"``, so a reward model fitted with them never replaces one
    fitted without."""
    return f"_dense{int(dense_pairs)}" if int(dense_pairs) else ""


#: Rewards whose reward model is fitted offline on the judge's labels (llm-reward-fit fits like motif); the
#: ``+novelty`` variants fit the very same model (one stage cache entry for motif and motif_e3b).
OFFLINE_JUDGE_REWARDS = ("motif", "shuffled", "motif_e3b", "shuffled_e3b")


def dense_default(pairs: int, reward: str, mode: str, strategy: Any) -> int:
    """``reward_model.dense_pairs``' default: ``pairs`` where a reward model is fitted offline on judge labels that
    score each caption (pointwise feedback, reward=motif or shuffled, llm-reward-fit), else 0 (pairwise or oracle
    labels, online feedback), so no default asks for scores the labels do not have."""
    from llm_reward.feedback.strategies import scores_captions

    return int(pairs) if reward in OFFLINE_JUDGE_REWARDS and scores_captions(mode, strategy) else 0


def captioner(env_id: str) -> str:
    """The caption format of ``env_id`` (``minigrid-text-nomission-v1``): rollouts, and so labels and reward models,
    are keyed on it, so a captioner change never reuses captions written in the old format."""
    from llm_reward.envs import captioner_name

    return captioner_name(env_id)


OmegaConf.register_new_resolver("policy_tag", policy_tag, replace=True)
OmegaConf.register_new_resolver("captioner", captioner, replace=True)
OmegaConf.register_new_resolver("goal_tag", goal_tag, replace=True)
OmegaConf.register_new_resolver("strategy_tag", strategy_tag, replace=True)
OmegaConf.register_new_resolver("dense_tag", dense_tag, replace=True)
OmegaConf.register_new_resolver("dense_default", dense_default, replace=True)
_register_schemas()
