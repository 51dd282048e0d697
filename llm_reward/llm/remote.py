"""Any model litellm can reach (OpenAI, Anthropic, vLLM / Ollama / llama.cpp servers, any OpenAI-compatible URL).

litellm does provider routing, retries with backoff and cost lookup; this backend adds bounded concurrency for
batches, token/cost accounting, and choice probabilities from the provider's top log-probs.
"""

from __future__ import annotations

import math
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any, Iterator

from llm_reward.llm.base import LLM, Sampling
from llm_reward.llm.cache import ResultCache
from llm_reward.llm.errors import LLMCallError, LLMCapabilityError, LLMConfigError, LLMOutputError
from llm_reward.types import Messages


class LiteLLM(LLM):
    """A litellm model string, e.g. ``"gpt-4o-mini"``, ``"anthropic/claude-3-5-haiku-latest"``,
    ``"hosted_vllm/Qwen/Qwen2.5-7B-Instruct"`` with ``api_base="http://host:8000/v1"``, or ``"ollama/llama3"``."""

    backend = "litellm"

    def __init__(self, model: str, *, api_base: str | None = None, api_key: str | None = None,
                 max_concurrency: int = 8, timeout: float = 60.0, num_retries: int = 3,
                 top_logprobs: int = 10, cache: ResultCache | None = None, name: str | None = None):
        import litellm

        try:
            _, provider, _, _ = litellm.get_llm_provider(model=model, api_base=api_base)
        except Exception as err:  # litellm raises its own BadRequestError subclasses here
            raise LLMConfigError(f"litellm does not know the model {model!r} ({err}); use a provider prefix such as "
                                 "'openai/…', 'anthropic/…', 'hosted_vllm/…', 'ollama/…', or 'local' for the "
                                 "embedded judge") from None
        if api_key is None and api_base is None:
            env = litellm.validate_environment(model=model)
            if not env.get("keys_in_environment", True):
                missing = ", ".join(env.get("missing_keys") or ["the provider's API key"])
                raise LLMConfigError(f"{model!r} needs {missing} in the environment (or pass api_key=...)")
        if max_concurrency < 1 or num_retries < 0 or timeout <= 0:
            raise LLMConfigError("max_concurrency must be >= 1, num_retries >= 0 and timeout > 0, got "
                                 f"{max_concurrency}, {num_retries}, {timeout}")
        super().__init__(model_id=f"{model}@{api_base or provider}", name=name or model.replace("/", "_"), cache=cache)
        self.model, self.api_base, self.api_key = model, api_base, api_key
        self.max_concurrency, self.timeout, self.num_retries = max_concurrency, timeout, num_retries
        self.top_logprobs = top_logprobs

    def _call(self, messages: Messages, **params: Any) -> Any:
        import litellm

        return litellm.completion(model=self.model, messages=messages, api_base=self.api_base, api_key=self.api_key,
                                  timeout=self.timeout, num_retries=self.num_retries, **params)

    def _account(self, response: Any) -> None:
        import litellm

        usage = getattr(response, "usage", None)
        if usage is not None:
            self.stats.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
            self.stats.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
        try:
            self.stats.cost_usd += float(litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:  # self-hosted and unpriced models have no cost entry
            pass

    def _map(self, conversations: list[Messages], **params: Any) -> Iterator[tuple[int, Any]]:
        """Run calls with at most ``max_concurrency`` in flight, yielding responses as they finish."""
        pool = ThreadPoolExecutor(max_workers=self.max_concurrency)
        try:
            pending = {pool.submit(self._call, m, **params): i for i, m in enumerate(conversations)}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                failed = None
                for future in sorted(done, key=pending.__getitem__):  # answers first, so they reach the cache
                    i = pending.pop(future)
                    if future.exception() is not None:
                        failed = failed or (i, future.exception())
                        continue
                    self._account(future.result())
                    yield i, future.result()
                if failed is not None:
                    i, err = failed
                    raise LLMCallError(f"prompt {i}: {self.model} failed after {self.num_retries} retries: "
                                       f"{type(err).__name__}: {err}", index=i) from err
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _complete(self, conversations: list[Messages], sampling: Sampling) -> Iterator[tuple[int, str]]:
        for i, response in self._map(conversations, max_tokens=sampling.max_tokens, temperature=sampling.temperature,
                                     top_p=sampling.top_p, seed=sampling.seed):
            yield i, response.choices[0].message.content or ""

    def _choice_probs(self, conversations: list[Messages],
                      choices: list[str]) -> Iterator[tuple[int, dict[str, float]]]:
        # A choice that begins another ("1" and "10") needs the second position too, where the provider splits it.
        extends = any(d != c and d.strip().startswith(c.strip()) for c in choices for d in choices)
        for i, response in self._map(conversations, max_tokens=2 if extends else 1, temperature=0.0, logprobs=True,
                                     top_logprobs=self.top_logprobs):
            positions = _top_logprobs(response, i, self.model)
            chosen, top = positions[0]
            continuation = (chosen, positions[1][1]) if extends and len(positions) > 1 else None
            yield i, choice_probs_from_top_logprobs(top, choices, i, continuation=continuation)


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _top_logprobs(response: Any, index: int, model: str) -> list[tuple[str, list[tuple[str, float]]]]:
    """``(generated token, its top alternatives with log-probs)`` for each generated position."""
    logprobs = _get(response.choices[0], "logprobs")
    content = _get(logprobs, "content") if logprobs is not None else None
    if not content:
        raise LLMCapabilityError(f"prompt {index}: {model} returned no log-probs, so choice probabilities are "
                                 "unavailable; use feedback mode 'motif' (text verdicts) with this provider")
    return [(_get(position, "token") or "",
             [(_get(t, "token"), float(_get(t, "logprob"))) for t in _get(position, "top_logprobs") or []])
            for position in content]


def choice_probs_from_top_logprobs(top: list[tuple[str, float]], choices: list[str], index: int = 0,
                                   continuation: tuple[str, list[tuple[str, float]]] | None = None) -> dict[str, float]:
    """Sum the probability of top tokens spelling each choice (ignoring surrounding spaces) and renormalise.

    ``continuation`` is ``(token generated first, top tokens of the second position)``. When that first token
    spells a choice that begins longer ones ("1" of "10", in a tokenizer that splits numbers into digits), its mass
    is split by the second position: P("1") = P(1) * (1 - P(0 | 1)), P("10") = P(1) * P(0 | 1). When the model
    generated something else first, the split is unknown and the shorter choice keeps the mass.
    """
    mass = {c.strip(): 0.0 for c in choices}
    for token, logprob in top:
        key = (token or "").strip()
        if key in mass:
            mass[key] += math.exp(logprob)
    if continuation is not None:
        first = continuation[0].strip()
        longer = [c for c in mass if c != first and c.startswith(first)] if first in mass else []
        if longer:
            follow: dict[str, float] = {}
            for token, logprob in continuation[1]:
                key = (token or "").strip()
                follow[key] = follow.get(key, 0.0) + math.exp(logprob)
            base = mass[first]
            for choice in longer:
                mass[choice] += base * follow.get(choice[len(first):], 0.0)
            mass[first] = base * max(0.0, 1.0 - sum(follow.get(c[len(first):], 0.0) for c in longer))
    total = sum(mass.values())
    if total <= 0.0:
        raise LLMOutputError(f"prompt {index}: no probability on any of {choices} among the top tokens "
                             f"{[t for t, _ in top]}")
    return {c: mass[c.strip()] / total for c in choices}
