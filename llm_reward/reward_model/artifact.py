"""A trained reward model packaged for RL: Motif's normalization and a threshold table, in one directory.

Motif z-normalizes the raw reward with the mean/std over the training *observations* (repeats included) and zeroes
rewards below a quantile of the normalized reward over the *unique* training captions. Both are fixed at build time
and saved with the weights, so an RL run (possibly in another process) needs nothing but the directory. Online
feedback (ONI) normalizes its refitted models the same way, through :func:`build_artifact`.

Scoring is not cached here: the one caption -> reward cache is :class:`llm_reward.shaping.CachedReward`, which the
wrappers put in front of any reward model.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from llm_reward.jsonio import replaced_directory, write_json
from llm_reward.reward_model.model import RewardModel

FORMAT_VERSION = 1
FILES = ("config.json", "weights.pt", "metrics.json")
QUANTILE_POINTS = 101  # q = 0, 0.01, ..., 1


class RewardArtifact:
    """Normalized caption reward ``(r(caption) - mean) / std``: the :class:`CaptionRewardFn` the RL wrappers use.

    Picklable (SubprocVecEnv workers, rl-baselines3-zoo env wrappers). Built by :func:`build_artifact`.

    Args:
        model: the trained reward model.
        captioner: the caption format it was trained on (it refuses captions of another).
        metrics: the fit's metrics (saved beside the weights).
        mean: the raw reward's mean over the training captions.
        std: its standard deviation.
        quantiles: raw-reward quantiles, for :meth:`threshold`.

    Example:
        >>> import tempfile
        >>> from llm_reward.reward_model import RewardModel
        >>> artifact = build_artifact(RewardModel("char_cnn", seed=0), ["You see a door.", "It's a wall."],
        ...                           captioner="demo", metrics={})
        >>> path = artifact.save(tempfile.mkdtemp() + "/reward_model")
        >>> again = RewardArtifact.load(path)
        >>> again(["You see a door.", "It's a wall."]).round(3).tolist() == artifact(
        ...     ["You see a door.", "It's a wall."]).round(3).tolist()
        True
        >>> again.threshold(0.0) <= again.threshold(0.5) <= again.threshold(1.0)
        True
    """

    def __init__(self, model: RewardModel, *, captioner: str, metrics: dict[str, Any], mean: float, std: float,
                 quantiles: Sequence[float]):
        quantiles = np.asarray(quantiles, dtype=np.float64)
        if quantiles.ndim != 1 or len(quantiles) < 2 or np.any(np.diff(quantiles) < 0):
            raise ValueError(f"quantiles must be a non-decreasing table of >= 2 values, got {quantiles!r}")
        if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
            raise ValueError(f"normalization needs a finite mean and a positive std, got mean={mean}, std={std}")
        self.model = model.eval()
        self.captioner = str(captioner)
        self.metrics = dict(metrics)
        self.mean, self.std = float(mean), float(std)
        self.quantiles = quantiles

    def raw(self, captions: Sequence[str]) -> np.ndarray:
        """Un-normalized float32 rewards."""
        return self.model(captions)

    def __call__(self, captions: Sequence[str]) -> np.ndarray:
        """float32 normalized rewards, one per caption (each distinct caption scored once per call)."""
        if isinstance(captions, str):
            raise TypeError("captions must be a sequence of str, got a single str (wrap it in a list)")
        captions = list(captions)
        if not captions:
            return np.zeros(0, dtype=np.float32)
        return ((self.model(captions).astype(np.float64) - self.mean) / self.std).astype(np.float32)

    def threshold(self, q: float) -> float:
        """The normalized reward at quantile ``q`` of the unique training captions (linear interpolation)."""
        if isinstance(q, bool) or not isinstance(q, (int, float, np.floating, np.integer)) or not 0 <= q <= 1:
            raise ValueError(f"threshold quantile must be a number in [0, 1], got {q!r}")
        grid = np.linspace(0.0, 1.0, len(self.quantiles))
        return float(np.interp(float(q), grid, self.quantiles))

    def check_captioner(self, name: str) -> None:
        """Refuse captions of another captioner: the reward would silently score a format it never saw."""
        if name != self.captioner:
            raise ValueError(f"this reward model was trained on captions of captioner {self.captioner!r}, but got "
                             f"captions of captioner {name!r}; fit a reward model for {name!r} or switch captioner")

    def save(self, path: str | os.PathLike) -> Path:
        """Write config.json, weights.pt and metrics.json to the directory ``path`` (replaced if it exists).

        Files go to a temporary sibling directory that is renamed into place, so a crash never leaves a
        half-written directory with a config.json at ``path``.
        """
        path = Path(path)
        with replaced_directory(path) as tmp:
            torch.save(self.model.state_dict(), tmp / "weights.pt")
            write_json(tmp / "metrics.json", self.metrics)
            config = {"format_version": FORMAT_VERSION, "model": self.model.config, "captioner": self.captioner,
                      "normalization": {"mean": self.mean, "std": self.std}, "quantiles": self.quantiles.tolist()}
            write_json(tmp / "config.json", config)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RewardArtifact":
        """Rebuild a saved artifact from its directory alone."""
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"no reward model directory at {path}")
        missing = [name for name in FILES if not (path / name).is_file()]
        if missing:
            raise FileNotFoundError(f"reward model directory {path} is incomplete: missing {missing}")
        config = json.loads((path / "config.json").read_text())
        if config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}/config.json has format_version {config.get('format_version')!r}; this "
                             f"llm_reward reads version {FORMAT_VERSION}")
        model = RewardModel.from_config(config["model"])
        model.load_state_dict(torch.load(path / "weights.pt", map_location="cpu", weights_only=True))
        metrics = json.loads((path / "metrics.json").read_text())
        norm = config["normalization"]
        return cls(model, captioner=config["captioner"], metrics=metrics, mean=norm["mean"], std=norm["std"],
                   quantiles=config["quantiles"])


def build_artifact(model: RewardModel, captions: Sequence[str], *, captioner: str,
                   metrics: dict[str, Any]) -> RewardArtifact:
    """Normalize ``model`` over the training observations ``captions`` (all rollout captions, repeats included).

    mean/std are weighted by how often each caption was observed (Motif's normalization); the quantile table is
    over the *unique* captions, which is what a threshold quantile refers to.

    Args:
        model: a fitted :class:`RewardModel`.
        captions: every rollout caption, repeats included.
        captioner: the caption format's name; the artifact refuses captions of another.
        metrics: kept with the artifact (``metrics.json``).

    Returns:
        The :class:`RewardArtifact`: ``artifact(captions)`` is the normalized reward, ``threshold(q)`` the
        quantile table's value.

    Example:
        >>> from llm_reward.reward_model import RewardModel
        >>> artifact = build_artifact(RewardModel(seed=0), ["a door", "a door", "a wall"], captioner="demo", metrics={})
        >>> bool(abs(artifact(["a door", "a door", "a wall"]).mean()) < 1e-5)  # zero mean over the observations
        True
    """
    if isinstance(captions, str) or len(captions) == 0:
        raise ValueError("build_artifact needs the training observations' captions (a non-empty list of str)")
    observed = Counter(captions)
    counts = np.fromiter(observed.values(), dtype=np.float64, count=len(observed))
    raw = model(list(observed)).astype(np.float64)
    mean = float(np.average(raw, weights=counts))
    std = float(np.sqrt(np.average((raw - mean) ** 2, weights=counts)))
    if not std > 1e-8:  # every observation gets the same reward: keep the shift, skip the (infinite) scaling
        std = 1.0
    quantiles = np.quantile((raw - mean) / std, np.linspace(0.0, 1.0, QUANTILE_POINTS))
    quantiles = np.maximum.accumulate(quantiles)  # interpolation rounding must not make the table decrease
    return RewardArtifact(model, captioner=captioner, metrics=metrics, mean=mean, std=std, quantiles=quantiles)
