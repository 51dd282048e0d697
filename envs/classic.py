"""Classic control (CartPole, Pendulum, MountainCar, Acrobot) and Box2D tasks: vector observations named from the
env class's own documentation.

These tasks have no events to describe, so the caption lists the documented observation fields with rounded
numbers ("cart position 0.12, cart velocity -0.40, ..."). That is enough for Eureka, which needs an env with a
success criterion and ``info`` it can read, and it lets the caption-preference path run on them too. Success comes
from :func:`llm_reward.envs.task.success_fn` (CartPole: balanced until the time limit; MountainCar and Acrobot:
reached the goal); Pendulum has none built in, so it needs ``env.success`` / ``make_env(success=...)``.

Example:
    >>> from llm_reward.envs import make_env
    >>> env = make_env("CartPole-v1", seed=0)
    >>> obs, info = env.reset(seed=0)
    >>> _, _, _, _, info = env.step(0)
    >>> info["caption"]
    'cart position 0.01, cart velocity -0.22, pole angle -0.05, pole angular velocity 0.23'
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np

from llm_reward.envs import robotics_tasks
from llm_reward.envs.registry import EnvAdapter
from llm_reward.envs.task import success_fn
from llm_reward.envs.task_layout import observation_layout

CAPTIONER_NAME = "vector-state-v1"
#: Where Gymnasium's own vector-observation tasks live (Box2D needs its extra; ids that do not import are skipped).
MODULES = ("gymnasium.envs.classic_control", "gymnasium.envs.box2d")


def owns_id(env_id: str) -> bool:
    """True for ids whose registered entry point is a Gymnasium classic-control or Box2D class (nothing built)."""
    spec = gym.registry.get(env_id)
    entry = spec.entry_point if spec is not None else None
    return isinstance(entry, str) and entry.startswith(MODULES)


class VectorCaptioner:
    """``"<field> <value>, ..."`` over a Box observation, fields named as the env class documents them."""

    name = CAPTIONER_NAME

    def __init__(self, names: tuple[str, ...], digits: int = 2):
        self.names = names
        self.digits = digits

    def reset(self) -> None:
        """No per-episode state."""

    def __call__(self, env: gym.Env, obs: Any, info: dict[str, Any]) -> str:
        values = np.asarray(obs, dtype=np.float64).ravel()
        names = self.names if len(self.names) == len(values) else tuple(f"obs[{i}]" for i in range(len(values)))
        return ", ".join(f"{name} {value:.{self.digits}f}".replace("-0.00", "0.00")
                         for name, value in zip(names, values))


@functools.lru_cache(maxsize=None)
def adapter(env_id: str) -> EnvAdapter:
    """The adapter for a classic-control / Box2D id: field-named captions, the task's success criterion.

    Example:
        >>> adapter("CartPole-v1").captioner_name
        'vector-state-v1'
    """
    env = gym.make(env_id, disable_env_checker=True)
    try:
        names = tuple(field.name.replace("_", " ") for field in observation_layout(env))
    finally:
        env.close()
    cls = robotics_tasks.env_class(env_id)
    description = robotics_tasks.description(cls, cls.__doc__ or "")
    return EnvAdapter(family="classic", captioner_factory=functools.partial(VectorCaptioner, names),
                      captioner_name=CAPTIONER_NAME, goal=description[0].lower() + description[1:],
                      success=success_fn(env_id),
                      progress=mountain_car_progress if env_id.startswith("MountainCar") else None)


def mountain_car_progress(env: gym.Env, obs: Any, info: dict[str, Any]) -> float:
    """MountainCar's progress oracle (higher is better): the car's position; the goal is the right hilltop.

    Example:
        >>> from llm_reward.envs import make_env
        >>> env = make_env("MountainCarContinuous-v0", seed=0)
        >>> _, _, _, _, info = env.step(env.action_space.sample())
        >>> -1.2 <= info["progress"] <= 0.6
        True
    """
    return float(env.unwrapped.state[0])
