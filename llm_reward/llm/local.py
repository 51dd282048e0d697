"""In-process GGUF models through llama-cpp-python: the embedded default judge needs no network and no API key.

Speed comes from the KV cache: prompts in a batch are evaluated in sorted token order, so consecutive prompts
share their longest common prefix (system prompt, goal, often the first caption) and only the rest is decoded.
Choice probabilities read the next-token logits once — no sampling, no per-token logits for the whole prompt.
"""

from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from llm_reward.llm.base import LLM, Sampling
from llm_reward.llm.cache import ResultCache
from llm_reward.llm.errors import LLMConfigError, LLMOutputError
from llm_reward.types import Messages

_MODELS: dict[tuple[str, int, int], Any] = {}  # one loaded model per (path, n_ctx, n_threads) per process
_MODELS_LOCK = threading.Lock()


@atexit.register
def _close_all() -> None:
    """Free models before interpreter teardown; llama-cpp's own finaliser fails once module globals are gone."""
    with _MODELS_LOCK:
        for model in _MODELS.values():
            model.close()
        _MODELS.clear()


def _load(path: Path, n_ctx: int, n_threads: int) -> Any:
    from llama_cpp import Llama

    key = (str(path), n_ctx, n_threads)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads,
                                 n_batch=512, logits_all=False, verbose=False)
        return _MODELS[key]


class LlamaCppLLM(LLM):
    """A GGUF file run in this process. ``make_llm("local")`` gives the default judge, ``"local:tiny"`` SmolLM2."""

    backend = "llama_cpp"

    def __init__(self, model_path: str | os.PathLike[str], *, model_id: str | None = None, name: str | None = None,
                 n_ctx: int = 4096, n_threads: int | None = None, cache: ResultCache | None = None):
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise LLMConfigError(f"GGUF model file not found: {path}")
        if n_ctx < 256:
            raise LLMConfigError(f"n_ctx must be >= 256, got {n_ctx}")
        stat = path.stat()
        super().__init__(model_id=model_id or f"{path.name}:{stat.st_size}", name=name or path.stem, cache=cache)
        self.model_path, self.n_ctx = path, n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self._model: Any = None
        self._lock = threading.Lock()  # a llama.cpp context serves one request at a time

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = _load(self.model_path, self.n_ctx, self.n_threads)
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            m = self._model
            template = m.metadata.get("tokenizer.chat_template")
            if not template:
                raise LLMConfigError(f"{self.model_path.name} has no chat template; use an instruct/chat GGUF")
            token_text = lambda t: m._model.token_get_text(t) if t != -1 else ""  # noqa: E731
            self._formatter = Jinja2ChatFormatter(template=template, eos_token=token_text(m.token_eos()),
                                                  bos_token=token_text(m.token_bos()), add_generation_prompt=True)
        return self._model

    def __getstate__(self) -> dict[str, Any]:  # the loaded model stays behind; it reloads on first use
        state = dict(self.__dict__)
        state.update(_model=None, _lock=None)
        state.pop("_formatter", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def tokens(self, messages: Messages) -> list[int]:
        """The chat rendered with the model's own template and tokenized, ready for the assistant's reply."""
        model = self.model
        rendered = self._formatter(messages=messages)
        tokens = model.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)
        return tokens

    def _sorted_tokens(self, conversations: list[Messages], room: int) -> list[tuple[int, list[int]]]:
        encoded = [(i, self.tokens(m)) for i, m in enumerate(conversations)]
        for i, toks in encoded:
            if len(toks) + room > self.n_ctx:
                raise LLMConfigError(f"prompt {i} has {len(toks)} tokens; with {room} to generate it exceeds "
                                     f"n_ctx={self.n_ctx} (pass n_ctx=... to make_llm)")
        return sorted(encoded, key=lambda item: item[1])  # neighbours share the longest prefixes

    def _next_token_logits(self, tokens: list[int]) -> np.ndarray:
        """Decode only what differs from the tokens already in the KV cache, return the last position's logits."""
        model = self.model
        cached = model.input_ids[: model.n_tokens]
        limit = min(len(cached), len(tokens) - 1)  # always decode >= 1 token so fresh logits exist
        differ = np.flatnonzero(cached[:limit] != np.asarray(tokens[:limit]))
        prefix = int(differ[0]) if differ.size else limit
        model.n_tokens = prefix  # eval() drops the KV entries from here on
        model.eval(tokens[prefix:])
        self.stats.prompt_tokens += len(tokens) - prefix
        return np.ctypeslib.as_array(model._ctx.get_logits(), shape=(model.n_vocab(),)).copy()

    def _choice_probs(self, conversations: list[Messages],
                      choices: list[str]) -> Iterator[tuple[int, dict[str, float]]]:
        spelled = {c: self.model.tokenize(c.encode("utf-8"), add_bos=False, special=False) for c in choices}
        if len({tuple(t) for t in spelled.values()}) != len(choices):
            raise LLMConfigError(f"choices {choices} tokenize identically; use choices that differ")
        with self._lock:
            for i, tokens in self._sorted_tokens(conversations, room=max(map(len, spelled.values()))):
                mass = _sequence_mass(lambda prefix: self._next_token_probs(tokens + prefix), spelled)  # noqa: B023
                total = sum(mass.values())
                if not total > 1e-9:
                    raise LLMOutputError(f"prompt {i}: {self.name} puts no probability on any of {choices} "
                                         f"(mass {total:.2e}); is this an instruct model?")
                yield i, {c: mass[c] / total for c in choices}

    def _next_token_probs(self, tokens: list[int]) -> np.ndarray:
        logits = self._next_token_logits(tokens).astype(np.float64)
        return np.exp(logits - np.logaddexp.reduce(logits))

    def _complete(self, conversations: list[Messages], sampling: Sampling) -> Iterator[tuple[int, str]]:
        model = self.model
        with self._lock:
            for i, tokens in self._sorted_tokens(conversations, room=sampling.max_tokens):
                model.set_seed(sampling.seed)
                out = model.create_completion(tokens, max_tokens=sampling.max_tokens,
                                              temperature=sampling.temperature, top_p=sampling.top_p,
                                              seed=sampling.seed)
                self.stats.prompt_tokens += out["usage"]["prompt_tokens"]
                self.stats.completion_tokens += out["usage"]["completion_tokens"]
                yield i, out["choices"][0]["text"]


def _sequence_mass(next_probs: Any, spelled: dict[str, list[int]]) -> dict[str, float]:
    """Probability that the reply is exactly each choice, for choices spelled by one or more tokens.

    A choice's mass is the product of its tokens' conditional probabilities. Where one choice's tokens begin another
    ("1" and "10" both start with the token "1" in most tokenizers), the shorter one keeps only the mass that does
    *not* continue into a longer choice: P("1") = P(1) * (1 - P(0 | 1)), P("10") = P(1) * P(0 | 1). Only prefixes
    that some choice extends are decoded, so single-token choices cost one forward pass as before.
    """
    cache: dict[tuple[int, ...], np.ndarray] = {}

    def probs(prefix: tuple[int, ...]) -> np.ndarray:
        if prefix not in cache:
            cache[prefix] = next_probs(list(prefix))
        return cache[prefix]

    mass = {}
    for choice, ids in spelled.items():
        p = 1.0
        for j, token in enumerate(ids):
            p *= float(probs(tuple(ids[:j]))[token])
            if p == 0.0:
                break
        longer = {other[len(ids)] for other in spelled.values() if len(other) > len(ids) and other[: len(ids)] == ids}
        if longer and p > 0.0:
            p *= max(0.0, 1.0 - float(sum(probs(tuple(ids))[t] for t in longer)))
        mass[choice] = p
    return mass
