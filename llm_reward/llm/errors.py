"""Typed errors of the LLM layer, so callers can tell bad configuration from a flaky provider or a bad answer."""

from __future__ import annotations


class LLMError(RuntimeError):
    """Base class of every error raised by ``llm_reward.llm``."""


class LLMConfigError(LLMError, ValueError):
    """Bad model spec, missing model file or API key, or bad sampling parameters: raised before any model call."""


class LLMCapabilityError(LLMError):
    """The backend cannot do what was asked (e.g. a provider that returns no log-probs for choice probabilities)."""


class LLMCallError(LLMError):
    """A model call still failed after retries. ``index`` is the position of the prompt in the submitted batch."""

    def __init__(self, message: str, index: int | None = None):
        super().__init__(message)
        self.index = index


class LLMOutputError(LLMError):
    """The model answered, but the answer is unusable (empty text, no probability on any choice)."""
