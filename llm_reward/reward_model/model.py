"""The reward network: one encoder's fixed featurizer under 1+ trainable scorer nets (an ensemble), averaged."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from llm_reward.reward_model.encoders import SMALL_BATCH, Features, make_encoder


class RewardModel(nn.Module):
    """Raw caption reward ``r(caption)``; the mean over ``n_members`` independently initialised scorer nets.

    Calling it on captions returns float32 ``[B]`` raw rewards (eval mode, no grad, each unique caption scored
    once, in length-sorted chunks so little compute goes to padding). Training uses :meth:`featurize`,
    :meth:`select` and the ``members`` directly.

    Example:
        >>> model = RewardModel("char_cnn", n_members=2, seed=0)
        >>> model(["You find 3 gold pieces.", "It's a wall."]).shape
        (2,)
    """

    def __init__(self, encoder: str = "char_cnn", n_members: int = 1, *, seed: int = 0, **encoder_kwargs: Any):
        super().__init__()
        if isinstance(n_members, bool) or not isinstance(n_members, int) or n_members < 1:
            raise ValueError(f"n_members must be a positive int, got {n_members!r}")
        self.encoder_name = encoder
        self.encoder = make_encoder(encoder, **encoder_kwargs)
        members = []
        for index in range(n_members):
            with torch.random.fork_rng(devices=[]):  # seeded init that leaves the caller's RNG untouched
                torch.manual_seed(member_seed(seed, index))
                members.append(self.encoder.make_scorer())
        self.members = nn.ModuleList(members)

    @property
    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this architecture: ``RewardModel(**{k: v ...})`` minus the weights."""
        return {"encoder": self.encoder_name, "n_members": len(self.members),
                "encoder_kwargs": dict(self.encoder.config)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "RewardModel":
        return cls(config["encoder"], int(config["n_members"]), **config["encoder_kwargs"])

    def featurize(self, captions: Sequence[str]) -> Features:
        return self.encoder.featurize(captions)

    def select(self, features: Features, index: torch.Tensor) -> Features:
        return self.encoder.select(features, index)

    def score(self, features: Features, chunk: int = 2048) -> torch.Tensor:
        """Ensemble-mean reward of every featurized caption (no grad), ``chunk`` captions at a time."""
        n = features[0].shape[0]
        out = torch.empty(n)
        with torch.inference_mode():
            for start in range(0, n, chunk):
                part = self.select(features, torch.arange(start, min(start + chunk, n)))
                out[start : start + chunk] = torch.stack([m(*part) for m in self.members]).mean(0)
        return out

    def forward(self, captions: Sequence[str], batch_size: int = 1024) -> np.ndarray:  # type: ignore[override]
        """float32 raw rewards, one per caption."""
        if isinstance(captions, str):
            raise TypeError("captions must be a sequence of str, got a single str (wrap it in a list)")
        captions = list(captions)
        unique = list(dict.fromkeys(captions))
        unique.sort(key=len)  # neighbours of similar length pad little
        if self.training:  # a module-tree walk per call is measurable at one call per env step
            self.eval()
        score_small = getattr(self.encoder, "score_small", None)
        values: dict[str, float] = {}
        for start in range(0, len(unique), batch_size):
            chunk = unique[start : start + batch_size]
            features = self.featurize(chunk)
            if score_small is not None and len(chunk) <= SMALL_BATCH:
                scores = score_small(features, self.members).tolist()
            else:
                scores = self.score(features, chunk=batch_size).tolist()
            values.update(zip(chunk, scores))
        return np.array([values[c] for c in captions], dtype=np.float32)


def member_seed(seed: int, index: int) -> int:
    """Seed of ensemble member ``index``: distinct members, reproducible from the run's seed."""
    return int(seed) * 1_000_003 + 7919 * index
