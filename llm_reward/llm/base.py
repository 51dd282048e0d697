"""The one LLM interface every feedback component uses: chat completion and choice probabilities.

Backends (in-process GGUF via llama-cpp, anything litellm reaches) implement two generator hooks that yield
``(index, result)`` as each prompt finishes; this base class validates input up front, serves and fills the
persistent cache one result at a time (so a crash mid-batch keeps everything already answered), and counts.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Sequence

from llm_reward.llm.cache import ResultCache, cache_key
from llm_reward.llm.errors import LLMCallError, LLMConfigError, LLMOutputError
from llm_reward.types import Messages

ROLES = ("system", "user", "assistant")


@dataclass
class LLMStats:
    """Counters since construction; ``cache_misses`` is the number of prompts that reached the model."""

    prompts: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    retries: int = 0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters of a completion, checked before any call."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise LLMConfigError(f"max_tokens must be an integer >= 1, got {self.max_tokens!r}")
        if not (isinstance(self.temperature, (int, float)) and 0.0 <= self.temperature <= 2.0):
            raise LLMConfigError(f"temperature must be in [0, 2], got {self.temperature!r}")
        if not (isinstance(self.top_p, (int, float)) and 0.0 < self.top_p <= 1.0):
            raise LLMConfigError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if not isinstance(self.seed, int):
            raise LLMConfigError(f"seed must be an integer, got {self.seed!r}")


def validate_messages(messages: Any, index: int = 0) -> Messages:
    if not isinstance(messages, list) or not messages:
        raise LLMConfigError(f"prompt {index}: messages must be a non-empty list of {{'role', 'content'}} dicts")
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise LLMConfigError(f"prompt {index}: bad message {m!r}; need role in {ROLES} and str content")
    return messages


def validate_choices(choices: Sequence[str]) -> list[str]:
    choices = list(choices)
    distinct = len(set(choices)) == len(choices)
    if len(choices) < 2 or not distinct or not all(isinstance(c, str) and c.strip() for c in choices):
        raise LLMConfigError(f"choices must be >= 2 distinct non-empty strings, got {choices!r}")
    return choices


class LLM(ABC):
    """Chat completion and choice probabilities over one model, with a persistent result cache.

    Subclasses set ``backend`` and ``model_id`` (what identifies the weights, used in cache keys) and implement
    :meth:`_complete` and :meth:`_choice_probs`.
    """

    backend: str = "abstract"

    def __init__(self, model_id: str, *, name: str | None = None, cache: ResultCache | None = None):
        self.model_id = model_id
        self.name = name or model_id
        self.cache = cache
        self.stats = LLMStats()

    # -- backend hooks ------------------------------------------------------------------------------------------
    @abstractmethod
    def _complete(self, conversations: list[Messages], sampling: Sampling) -> Iterator[tuple[int, str]]:
        """Yield ``(index, text)`` for every conversation, in any order."""

    @abstractmethod
    def _choice_probs(self, conversations: list[Messages],
                      choices: list[str]) -> Iterator[tuple[int, dict[str, float]]]:
        """Yield ``(index, {choice: probability})`` for every conversation; probabilities over ``choices`` sum to 1."""

    # -- public API ---------------------------------------------------------------------------------------------
    def complete(self, messages: Messages, *, allow_empty: bool = False, **sampling: Any) -> str:
        """The model's reply to one chat (``max_tokens``, ``temperature``, ``top_p``, ``seed`` as keywords)."""
        return self.complete_batch([messages], allow_empty=allow_empty, **sampling)[0]

    def complete_batch(self, conversations: Sequence[Messages], *, allow_empty: bool = False,
                       **sampling: Any) -> list[str]:
        """Replies to many chats, in order. Empty replies raise :class:`LLMOutputError` unless ``allow_empty``."""
        params = self._sampling(sampling)
        keys = [self._key("complete", m, asdict(params)) for m in self._check_all(conversations)]
        texts = self._run(list(conversations), keys, lambda todo: self._complete(todo, params))
        if not allow_empty:
            for i, text in enumerate(texts):
                if not text.strip():
                    raise LLMOutputError(f"prompt {i}: {self.name} returned an empty reply")
        return texts

    def choice_probs(self, messages: Messages, choices: Sequence[str]) -> dict[str, float]:
        """Probability the model answers each of ``choices`` next (renormalised over the choices; sums to 1)."""
        return self.choice_probs_batch([messages], choices)[0]

    def choice_probs_batch(self, conversations: Sequence[Messages], choices: Sequence[str]) -> list[dict[str, float]]:
        choices = validate_choices(choices)
        keys = [self._key("choice_probs", m, {"choices": choices}) for m in self._check_all(conversations)]
        return self._run(list(conversations), keys, lambda todo: self._choice_probs(todo, choices))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    # -- internals ----------------------------------------------------------------------------------------------
    def _sampling(self, sampling: dict[str, Any]) -> Sampling:
        unknown = set(sampling) - set(Sampling.__dataclass_fields__)
        if unknown:
            raise LLMConfigError(f"unknown sampling parameter(s) {sorted(unknown)}; allowed: "
                                 f"{sorted(Sampling.__dataclass_fields__)}")
        return Sampling(**sampling)

    @staticmethod
    def _check_all(conversations: Sequence[Messages]) -> list[Messages]:
        if isinstance(conversations, dict) or (conversations and isinstance(conversations[0], dict)):
            raise LLMConfigError("batch methods take a list of message lists; use complete()/choice_probs() for one")
        return [validate_messages(m, i) for i, m in enumerate(conversations)]

    def _key(self, kind: str, messages: Messages, params: dict[str, Any]) -> str:
        return cache_key(backend=self.backend, model=self.model_id, kind=kind, messages=messages, params=params)

    def _run(self, conversations: list[Messages], keys: list[str], call: Any) -> list[Any]:
        """Serve cached results, send the rest (deduplicated) to the backend, cache each result as it arrives."""
        self.stats.prompts += len(keys)
        results: dict[str, Any] = self.cache.get_many(list(set(keys))) if self.cache is not None else {}
        todo_keys = list(dict.fromkeys(k for k in keys if k not in results))
        self.stats.cache_hits += len(keys) - len(todo_keys)  # repeats within a batch are answered once
        if todo_keys:
            first_index = {k: keys.index(k) for k in todo_keys}
            todo = [conversations[first_index[k]] for k in todo_keys]
            for j, value in call(todo):
                if isinstance(value, dict) and not all(math.isfinite(v) for v in value.values()):
                    raise LLMOutputError(f"prompt {first_index[todo_keys[j]]}: non-finite probabilities {value}")
                self.stats.cache_misses += 1
                results[todo_keys[j]] = value
                if self.cache is not None:
                    self.cache.put(todo_keys[j], value)
            missing = [first_index[k] for k in todo_keys if k not in results]
            if missing:
                raise LLMCallError(f"backend returned no result for prompt {missing[0]}", index=missing[0])
        return [results[k] for k in keys]
