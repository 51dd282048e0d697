"""Captioning as a Gymnasium wrapper: every step's text lands in ``info["caption"]``.

Captioning happens inside each environment (so it works in SubprocVecEnv workers, where the env object
is not reachable from the learner); everything downstream only reads ``info``.
"""

from __future__ import annotations

from typing import Any, Callable, SupportsFloat

import gymnasium as gym

from llm_reward.types import Captioner, ProgressFn

CAPTION_KEY = "caption"
PROGRESS_KEY = "progress"


class FunctionCaptioner:
    """Adapts a plain ``fn(obs, info) -> str`` to the :class:`Captioner` protocol.

    Args:
        fn: the caption function of an observation and its step info.
        name: the caption format's name (reward models refuse captions of another format); None:
            ``function:<fn's qualified name>``.

    Example:
        >>> captioner = FunctionCaptioner(lambda obs, info: f"The cart is at {obs[0]:.1f}.", name="cartpole")
        >>> captioner(None, [0.25, 0.0], {}), captioner.name
        ('The cart is at 0.2.', 'cartpole')
    """

    def __init__(self, fn: Callable[[Any, dict[str, Any]], str], name: str | None = None):
        self.fn = fn
        self.name = name or f"function:{getattr(fn, '__qualname__', repr(fn))}"

    def reset(self) -> None:
        pass

    def __call__(self, env: gym.Env, obs: Any, info: dict[str, Any]) -> str:
        return self.fn(obs, info)


class CaptionWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Adds ``info["caption"]`` (and ``info["progress"]`` when a progress oracle is given) on reset and step.

    Args:
        env: the Gymnasium env to caption.
        captioner: ``captioner(env, obs, info) -> str`` (:class:`~llm_reward.types.Captioner`).
        progress: the progress oracle ``progress(env, obs, info) -> float``; None: no ``info["progress"]``.

    Example:
        >>> env = CaptionWrapper(gym.make("CartPole-v1"), FunctionCaptioner(lambda obs, info: f"x={obs[0]:.2f}"))
        >>> obs, info = env.reset(seed=0)
        >>> info["caption"]
        'x=0.01'
    """

    def __init__(self, env: gym.Env, captioner: Captioner, progress: ProgressFn | None = None):
        gym.utils.RecordConstructorArgs.__init__(self, captioner=captioner, progress=progress)
        gym.Wrapper.__init__(self, env)
        if not isinstance(captioner, Captioner):
            raise TypeError(f"captioner must have .name, .reset() and be callable (got {type(captioner).__name__})")
        self.captioner = captioner
        self.progress = progress

    @property
    def captioner_name(self) -> str:
        """Picklable identity of the caption format, readable through ``VecEnv.get_attr`` from worker processes."""
        return self.captioner.name

    def _annotate(self, obs: Any, info: dict[str, Any]) -> dict[str, Any]:
        info = dict(info)
        info[CAPTION_KEY] = self.captioner(self.env, obs, info)
        if self.progress is not None:
            info[PROGRESS_KEY] = float(self.progress(self.env, obs, info))
        return info

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.captioner.reset()
        return obs, self._annotate(obs, info)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._annotate(obs, info)
