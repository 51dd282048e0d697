"""``evaluate_success``: success rate and true return of a trained agent on fresh, seeded envs.

Built on SB3's ``evaluate_policy``: with a ``Monitor`` in the env it reports Monitor's episode return, i.e. the
task's own reward even when other wrappers rescale or shape it. Success is the ``is_success`` flag of the last step.
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv


def evaluate_success(model: BaseAlgorithm, env_fn: Callable[[], gym.Env], *, n_episodes: int, seed: int,
                     deterministic: bool = False) -> dict[str, float]:
    """Run ``n_episodes`` episodes, episode ``i`` on a fresh ``env_fn()`` reset with seed ``seed + i``.

    Returns ``success_rate``, ``mean_return``, ``std_return``, ``mean_length`` and ``n_episodes``. An env without a
    ``Monitor`` gets one on the outside (then the return is whatever reward the outermost wrapper emits).
    The default ``deterministic=False`` samples actions, which is how MiniGrid/NetHack policies are usually
    scored: an argmax policy can loop forever against a wall.
    """
    if int(n_episodes) < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    returns, lengths, successes = [], [], []
    for i in range(int(n_episodes)):
        env = env_fn()
        if not is_wrapped(env, Monitor):
            env = Monitor(env)
        venv = DummyVecEnv([lambda env=env: env])
        venv.seed(seed + i)
        finished: list[bool] = []

        def record(local_vars: dict[str, Any], _globals: dict[str, Any]) -> None:
            if local_vars["done"]:
                finished.append(bool(local_vars["info"].get("is_success", False)))

        try:
            ep_returns, ep_lengths = evaluate_policy(model, venv, n_eval_episodes=1, deterministic=deterministic,
                                                     return_episode_rewards=True, callback=record, warn=False)
        finally:
            venv.close()
        returns.append(float(ep_returns[0]))
        lengths.append(int(ep_lengths[0]))
        successes.append(finished[-1])
    return {
        "success_rate": float(np.mean(successes)), "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)), "mean_length": float(np.mean(lengths)),
        "n_episodes": int(n_episodes),
    }
