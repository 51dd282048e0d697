"""How a reward model is trained, as one value: the encoder, its size, epochs, ensemble, seed and label targets.

Offline Motif (``fit_stage``), online ranking (ONI) and the apps all fit through :meth:`RewardModelRecipe.fit`, so
the three can never drift apart (online refits once trained on soft targets while the offline path used hard ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from llm_reward.reward_model.encoders import make_encoder
from llm_reward.reward_model.model import RewardModel
from llm_reward.reward_model.train import check_dense_pairs, fit_reward_model

TARGETS = ("hard", "soft")


def to_targets(label: np.ndarray, targets: str = "hard") -> np.ndarray:
    """Training targets from stored labels: ``soft`` as stored, ``hard`` = 1 / 0 / 0.5 by side of 0.5 (NaN kept).

    Example:
        >>> to_targets(np.array([0.52, 0.1, 0.5], dtype=np.float32))
        array([1. , 0. , 0.5], dtype=float32)
    """
    if targets not in TARGETS:
        raise ValueError(f"targets must be 'hard' or 'soft', got {targets!r}")
    label = np.asarray(label, dtype=np.float32)
    if targets == "soft":
        return label
    return np.where(label > 0.5, 1.0, np.where(label < 0.5, 0.0, label)).astype(np.float32)


@dataclass(frozen=True)
class RewardModelRecipe:
    """The reward model's training recipe (``reward_model`` in ``conf/base.yaml``), checked when built.

    ``targets="soft"`` trains on the stored P(first preferred) as is (RLAIF); ``"hard"`` on its side of 0.5 (Motif's
    1 / 0 / tie). A small judge's both-order-averaged labels are right in sign far more often than they are
    confident (on our probe: 16/18 right with labels within 0.02 of 0.5), so hard targets keep that signal.

    Args:
        encoder: ``char_cnn`` or ``sentence_embedding``.
        encoder_kwargs: the encoder's hyper-parameters (char_cnn: ``max_chars``, ``truncate``, sizes).
        epochs: the most epochs to train.
        n_members: ensemble members.
        seed: seeds the split, the initialization and the dense pairs.
        targets: ``hard`` or ``soft`` (above).
        dense_pairs: extra pairs labelled by a pointwise judge's caption scores (0: none).

    Example:
        >>> recipe = RewardModelRecipe(epochs=5, seed=0)
        >>> model, metrics = recipe.fit(["You find gold."] * 4, ["A wall."] * 4, np.ones(4), progress=False)
        >>> bool(model(["You find gold.", "A wall."])[0] > model(["A wall."])[0]), metrics["targets"]
        (True, 'hard')
    """

    encoder: str = "char_cnn"  #: ``char_cnn`` | ``sentence_embedding``
    encoder_kwargs: Mapping[str, Any] = field(default_factory=dict)  #: the encoder's hyper-parameters (max_chars)
    epochs: int = 30
    n_members: int = 1  #: ensemble size
    seed: int = 0
    targets: Literal["hard", "soft"] = "hard"
    #: extra training pairs among the judged captions, labelled by a pointwise judge's own scores (0: off)
    dense_pairs: int = 0

    def __post_init__(self) -> None:
        to_targets(np.zeros(0), self.targets)  # validates
        check_dense_pairs(self.dense_pairs)
        object.__setattr__(self, "encoder_kwargs", dict(self.encoder_kwargs))

    def check(self) -> None:
        """Build the encoder once: a bad name or hyper-parameter fails now, not after annotation."""
        make_encoder(self.encoder, **self.encoder_kwargs)

    def check_encodable(self, captions: Sequence[str]) -> None:
        """Fail now, not after the judge has labelled every pair, when the encoder could not read the longest
        caption (``reward_model.max_chars``)."""
        config = make_encoder(self.encoder, **self.encoder_kwargs).config
        limit = config.get("max_chars")
        if limit is None or config.get("truncate") or len(captions) == 0:
            return
        longest = max(len(caption.encode("utf-8")) for caption in captions)
        if longest > limit:
            raise ValueError(f"the rollouts' longest caption has {longest} UTF-8 bytes, more than the {self.encoder} "
                             f"encoder's max_chars={limit}: set reward_model.max_chars (or caption_max_chars in the "
                             f"env config) to at least {longest}")

    def fit(self, captions_a: Sequence[str], captions_b: Sequence[str], labels: np.ndarray, *,
            progress: bool = True, oracle_labels: np.ndarray | None = None,
            caption_scores: Mapping[str, float] | None = None) -> tuple[RewardModel, dict[str, Any]]:
        """:func:`fit_reward_model` on ``to_targets(labels)`` with this recipe; metrics record the targets.
        ``caption_scores`` (a pointwise label store's) feed ``dense_pairs``, which fails without them (a store
        written before scores were kept, or labels of a pairwise judge or the oracle)."""
        if self.dense_pairs and not caption_scores:
            raise ValueError(f"reward_model.dense_pairs={self.dense_pairs} needs the pointwise judge's caption scores, "
                             "and these labels have none (a label store written before scores were kept, or labels "
                             "of a pairwise judge or the oracle): relabel into a new store, or set it to 0")
        model, metrics = fit_reward_model(list(captions_a), list(captions_b), to_targets(labels, self.targets),
                                          encoder=self.encoder, epochs=self.epochs, n_members=self.n_members,
                                          seed=self.seed, progress=progress, oracle_labels=oracle_labels,
                                          encoder_kwargs=self.encoder_kwargs, caption_scores=caption_scores,
                                          dense_pairs=self.dense_pairs,
                                          dense_targets=self.targets)
        return model, {**metrics, "targets": self.targets}
