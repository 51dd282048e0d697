"""llm_reward: turn AI feedback into rewards for reinforcement-learning agents.

The main entry points are importable from the package root; they load lazily, so ``import llm_reward`` stays
cheap (no torch or stable-baselines3 until a name is used), and the same names are imported explicitly for type
checkers and IDEs. The contracts a user implements are here too: :class:`Captioner` (observation -> text) and
:class:`EnvAdapter` (an environment family: captioner, goal, progress oracle), :class:`Labeler` (a way of judging
caption pairs). The Motif path, top to bottom, on the tiny test
model (the embedded default judge is ``make_llm("local")``):

    >>> import tempfile
    >>> from pathlib import Path
    >>> import llm_reward as L
    >>> tmp = Path(tempfile.mkdtemp())
    >>> env_id = "MiniGrid-DoorKey-5x5-v0"
    >>> rollouts = L.collect_stage(env_id, n_steps=200, n_envs=2, seed=0, path=tmp / "rollouts.parquet",
    ...                            progress=False)
    >>> pairs = L.sample_pairs(rollouts, 16, unique_captions=True, seed=0)
    >>> judge = L.LLMPreferenceLabeler(L.make_llm("local:tiny"), L.PairPrompt("minigrid", goal=None), mode="pointwise")
    >>> labelled, report = L.annotate_stage(pairs, judge, store_path=tmp / "labels.sqlite", progress=False)
    >>> oracle = L.oracle_labels(labelled["progress_a"], labelled["progress_b"])  # the env's own ground truth
    >>> model, metrics = L.fit_reward_model(labelled["caption_a"], labelled["caption_b"], oracle, epochs=3,
    ...                                     progress=False)
    >>> reward = L.build_artifact(model, rollouts["caption"].tolist(), captioner=L.captioner_name(env_id),
    ...                           metrics=metrics)
    >>> reward = L.RewardArtifact.load(reward.save(tmp / "reward_model"))
    >>> venv = L.LLMRewardVecEnv(L.make_vec_env(env_id, n_envs=2, seed=0), reward_model=reward, form="potential")
    >>> agent = L.make_agent("ppo", venv, seed=0, n_steps=32, batch_size=64)
    >>> agent = agent.learn(64)
    >>> single = L.LLMRewardWrapper(L.make_env(env_id), reward_model=reward, form="potential")
    >>> obs, info = single.reset(seed=0)
    >>> _, r, *_, info = single.step(single.action_space.sample())
    >>> sorted(k for k in info if k.startswith("r_"))
    ['r_extrinsic', 'r_intrinsic']
    >>> feedback = L.OnlineFeedback(L.make_llm("local:tiny"), domain="minigrid", goal=None)  # ONI: judged online
    >>> with feedback:
    ...     _ = feedback([info["caption"]])
    ...     idle = feedback.wait_idle(timeout=60)
    >>> idle
    True
    >>> venv.close()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    # contracts a user implements
    "Captioner": "llm_reward.types",
    "Labeler": "llm_reward.types",
    "LabelBatch": "llm_reward.types",
    "EnvAdapter": "llm_reward.envs",
    # LLM judges and feedback
    "make_llm": "llm_reward.llm",
    "LLMPreferenceLabeler": "llm_reward.feedback.labelers",
    "PairPrompt": "llm_reward.feedback.prompts",
    "CaptionPrompt": "llm_reward.feedback.prompts",
    "oracle_labels": "llm_reward.feedback.labelers",
    "sample_pairs": "llm_reward.feedback.annotate",
    # reward model
    "fit_reward_model": "llm_reward.reward_model",
    "build_artifact": "llm_reward.reward_model",
    "RewardArtifact": "llm_reward.reward_model",
    "RewardModelRecipe": "llm_reward.reward_model",
    # shaping and wrappers
    "CaptionWrapper": "llm_reward.shaping.captions",
    "FunctionCaptioner": "llm_reward.shaping.captions",
    "LLMRewardWrapper": "llm_reward.shaping.wrappers",
    "LLMRewardVecEnv": "llm_reward.shaping.wrappers",
    "ShapedRewardLogger": "llm_reward.shaping.wrappers",
    # training
    "train_agent": "llm_reward.training.loop",
    # env and agent plug-ins
    "make_env": "llm_reward.envs",
    "make_vec_env": "llm_reward.envs",
    "captioner_name": "llm_reward.envs",
    "register_adapter": "llm_reward.envs",
    "make_agent": "llm_reward.agents",
    # the Motif track: offline stages and ONI online feedback
    "collect_stage": "llm_reward.motif.stages",
    "annotate_stage": "llm_reward.motif.stages",
    "fit_stage": "llm_reward.motif.stages",
    "make_labeler": "llm_reward.motif.stages",
    "OnlineFeedback": "llm_reward.motif.online",
}

__all__ = [  # the names of _EXPORTS, spelled out for linters and star-imports
    "__version__", "Captioner", "Labeler", "LabelBatch", "EnvAdapter", "make_llm", "LLMPreferenceLabeler",
    "PairPrompt", "CaptionPrompt", "oracle_labels", "sample_pairs", "fit_reward_model", "build_artifact",
    "RewardArtifact", "RewardModelRecipe", "CaptionWrapper", "FunctionCaptioner", "LLMRewardWrapper",
    "LLMRewardVecEnv", "ShapedRewardLogger", "train_agent", "make_env", "make_vec_env", "captioner_name",
    "register_adapter", "make_agent", "collect_stage", "annotate_stage", "fit_stage", "make_labeler",
    "OnlineFeedback",
]

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs (never executed)
    from llm_reward.agents import make_agent
    from llm_reward.envs import EnvAdapter, captioner_name, make_env, make_vec_env, register_adapter
    from llm_reward.feedback.annotate import sample_pairs
    from llm_reward.feedback.labelers import LLMPreferenceLabeler, oracle_labels
    from llm_reward.feedback.prompts import CaptionPrompt, PairPrompt
    from llm_reward.llm import make_llm
    from llm_reward.motif.online import OnlineFeedback
    from llm_reward.motif.stages import annotate_stage, collect_stage, fit_stage, make_labeler
    from llm_reward.reward_model import RewardArtifact, RewardModelRecipe, build_artifact, fit_reward_model
    from llm_reward.shaping.captions import CaptionWrapper, FunctionCaptioner
    from llm_reward.shaping.wrappers import LLMRewardVecEnv, LLMRewardWrapper, ShapedRewardLogger
    from llm_reward.training.loop import train_agent
    from llm_reward.types import Captioner, LabelBatch, Labeler


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'llm_reward' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
