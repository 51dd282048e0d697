"""The LLM layer: one interface (:class:`LLM`) for chat completion and choice probabilities, several backends.

    >>> from llm_reward.llm import make_llm
    >>> judge = make_llm("local")  # embedded Qwen2.5-Coder-1.5B-Instruct, offline  # doctest: +SKIP
    >>> question = [{"role": "user", "content": "Is 3 > 2? Answer 1 for yes, 2 for no."}]
    >>> judge.choice_probs(question, ["1", "2"])  # doctest: +SKIP
    {'1': 0.97..., '2': 0.02...}

Model specs: ``"local"`` (default judge), ``"local:small"`` (Qwen2.5-Coder-0.5B), ``"local:tiny"`` (SmolLM2-135M,
for tests), ``"local:/path/model.gguf"``, or any litellm model string (``"gpt-4o-mini"``, ``"anthropic/…"``,
``"hosted_vllm/…"`` + ``api_base=…``, ``"ollama/…"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm_reward.llm.base import LLM, LLMStats, Sampling
from llm_reward.llm.cache import ResultCache, default_cache_dir
from llm_reward.llm.errors import (LLMCallError, LLMCapabilityError, LLMConfigError, LLMError,
                                   LLMOutputError)

DEFAULT_SPEC = "local"


def make_llm(spec: str = DEFAULT_SPEC, *, cache: bool | str | Path = True, **options: Any) -> LLM:
    """Build the LLM named by ``spec``; every check (files, keys, options) happens here, before any call.

    Args:
        spec: ``"local"`` (the embedded default judge), ``"local:small"``, ``"local:tiny"``, ``"local:<file.gguf>"``,
            or any litellm model string (``"gpt-4o-mini"``, ``"ollama/qwen2.5"``, ``"hosted_vllm/<model>"``).
        cache: ``True`` uses ``~/.cache/llm_reward/llm_cache.sqlite`` (``$LLM_REWARD_CACHE`` moves it), a path uses
            that file, ``False`` disables caching.
        **options: backend options: ``n_ctx``/``n_threads`` for local models; ``api_base``, ``api_key``,
            ``max_concurrency``, ``timeout``, ``num_retries`` for litellm; ``name`` for either.

    Returns:
        An :class:`~llm_reward.llm.base.LLM`: ``complete_batch`` for text, ``choice_probs_batch`` for the
        probabilities of fixed answers, ``stats`` for its counters.

    Raises:
        LLMConfigError: an empty spec, a missing model file or API key, an option the backend does not take.

    Example:
        >>> llm = make_llm("local:tiny", cache=False)
        >>> probs = llm.choice_probs_batch([[{"role": "user", "content": "Answer 1 or 2."}]], ["1", "2"])[0]
        >>> sorted(probs), round(sum(probs.values()), 6)
        (['1', '2'], 1.0)
        >>> make_llm("local", n_gpu_layers=10)
        Traceback (most recent call last):
        ...
        llm_reward.llm.errors.LLMConfigError: ...
    """
    if not isinstance(spec, str) or not spec.strip():
        raise LLMConfigError(f"model spec must be a non-empty string such as 'local' or 'gpt-4o-mini', got {spec!r}")
    result_cache = _make_cache(cache)
    if spec == "local" or spec.startswith("local:"):
        from llm_reward.llm.local import LlamaCppLLM
        from llm_reward.llm.models import (DEFAULT_JUDGE, SMALL_JUDGE, TINY, default_judge_path, small_judge_path,
                                           tiny_model_path)

        _check_options(options, {"n_ctx", "n_threads", "name"}, spec)
        target = spec.partition(":")[2]
        if target in ("", "default"):
            return LlamaCppLLM(default_judge_path(), model_id=DEFAULT_JUDGE.sha256, cache=result_cache,
                               **{"name": DEFAULT_JUDGE.name, **options})
        if target == "small":
            return LlamaCppLLM(small_judge_path(), model_id=SMALL_JUDGE.sha256, cache=result_cache,
                               **{"name": SMALL_JUDGE.name, **options})
        if target == "tiny":
            return LlamaCppLLM(tiny_model_path(), model_id=TINY.sha256, cache=result_cache,
                               **{"name": TINY.name, **options})
        return LlamaCppLLM(target, cache=result_cache, **options)
    from llm_reward.llm.remote import LiteLLM

    _check_options(options, {"api_base", "api_key", "max_concurrency", "timeout", "num_retries", "top_logprobs",
                             "name"}, spec)
    return LiteLLM(spec, cache=result_cache, **options)


def _make_cache(cache: bool | str | Path | None) -> ResultCache | None:
    if cache is True:
        return ResultCache(default_cache_dir() / "llm_cache.sqlite")
    if cache in (False, None):
        return None
    return ResultCache(cache)


def _check_options(options: dict[str, Any], allowed: set[str], spec: str) -> None:
    unknown = set(options) - allowed
    if unknown:
        raise LLMConfigError(f"unknown option(s) {sorted(unknown)} for {spec!r}; allowed: {sorted(allowed)}")


__all__ = ["make_llm", "LLM", "LLMStats", "Sampling", "ResultCache", "LLMError", "LLMConfigError", "LLMCallError",
           "LLMCapabilityError", "LLMOutputError", "DEFAULT_SPEC"]
