"""``evaluate_success``: success rate and true return of a trained agent on fresh, seeded envs;
``make_eval_callback``: the same measurement every so many steps during training (SB3's ``EvalCallback``).

Built on SB3's ``evaluate_policy``: with a ``Monitor`` in the env it reports Monitor's episode return, i.e. the
task's own reward even when other wrappers rescale or shape it. Success is the ``is_success`` flag of the last step.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecTransposeImage, is_vecenv_wrapped
from tqdm.auto import tqdm


def evaluate_success(model: BaseAlgorithm, env_fn: Callable[[], gym.Env], *, n_episodes: int, seed: int,
                     deterministic: bool = False, progress: bool = False,
                     info_keys: Sequence[str] = ()) -> dict[str, float]:
    """Run ``n_episodes`` episodes, episode ``i`` on a fresh ``env_fn()`` reset with seed ``seed + i``.

    Returns ``success_rate``, ``mean_return``, ``std_return``, ``mean_length`` and ``n_episodes``, the raw
    outcomes behind them as ``per_episode`` (``success``, ``return``, ``length`` lists, episode by episode), plus
    ``mean_<key>`` for each of ``info_keys``: the mean over episodes of ``info[key]`` at the episode's last step
    (NetHack: ``gold``, ``depth``). An env without a ``Monitor`` gets one on the outside (then the return is
    whatever reward the outermost wrapper emits). The default ``deterministic=False`` samples actions, which is how
    MiniGrid/NetHack policies are usually scored: an argmax policy can loop forever against a wall.

    Example:
        >>> from stable_baselines3 import PPO
        >>> from llm_reward.envs import make_env
        >>> env_fn = lambda: make_env("MiniGrid-Empty-5x5-v0")
        >>> model = PPO("MlpPolicy", env_fn(), n_steps=64, seed=0)
        >>> sorted(evaluate_success(model, env_fn, n_episodes=2, seed=0, info_keys=["env_reward"]))[:3]
        ['mean_env_reward', 'mean_length', 'mean_return']
    """
    if int(n_episodes) < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    info_keys = list(info_keys)
    returns, lengths, successes = [], [], []
    last_values: dict[str, list[float]] = {key: [] for key in info_keys}
    for i in tqdm(range(int(n_episodes)), desc="evaluating", unit="episode", disable=not progress):
        env = env_fn()
        if not is_wrapped(env, Monitor):
            env = Monitor(env)
        venv = DummyVecEnv([lambda env=env: env])
        venv.seed(seed + i)
        finished: list[dict[str, Any]] = []  # the info of each done signal; the episode's own is the last

        def record(local_vars: dict[str, Any], _globals: dict[str, Any]) -> None:
            if local_vars["done"]:
                finished.append(local_vars["info"])  # noqa: B023 (called at once)

        try:
            ep_returns, ep_lengths = evaluate_policy(model, venv, n_eval_episodes=1, deterministic=deterministic,
                                                     return_episode_rewards=True, callback=record, warn=False)
        finally:
            venv.close()
        returns.append(float(ep_returns[0]))
        lengths.append(int(ep_lengths[0]))
        last = finished[-1]
        successes.append(bool(last.get("is_success", False)))
        if problem := missing_info_keys(last, info_keys):
            raise KeyError(f"evaluation: {problem}")
        for key in info_keys:
            last_values[key].append(float(last[key]))
    return {
        "success_rate": float(np.mean(successes)), "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)), "mean_length": float(np.mean(lengths)),
        "n_episodes": int(n_episodes), **{f"mean_{key}": float(np.mean(v)) for key, v in last_values.items()},
        "per_episode": {"success": successes, "return": returns, "length": lengths},
    }


def missing_info_keys(info: dict[str, Any], keys: Sequence[str]) -> str | None:
    """What is wrong when some of ``keys`` are not in ``info`` (naming the config key), else None."""
    missing = [key for key in keys if key not in info]
    if not missing:
        return None
    return (f"info key(s) {missing} are not in the env's step info (config key env.eval_info_keys); it has "
            f"{sorted(k for k in info if not k.startswith('_'))}")


def make_eval_callback(model: BaseAlgorithm, eval_env: VecEnv, *, every_steps: int, n_episodes: int,
                       log_path: str | None = None, deterministic: bool = False) -> EvalCallback:
    """SB3's ``EvalCallback`` on ``eval_env`` every ``every_steps`` environment steps of ``model``'s training.

    ``eval_env`` should be unshaped, with ``Monitor`` innermost (``llm_reward.training.make_vec_env``), so the
    logged ``eval/mean_reward`` is the task's own return; ``eval/success_rate`` comes from ``info["is_success"]``.
    It gets the image transpose SB3 gave the training env, and SB3's ``eval_freq`` counts vector steps, hence
    the division by the number of training envs.
    """
    if every_steps < 1 or n_episodes < 1:
        raise ValueError(f"need every_steps and n_episodes >= 1, got {every_steps}, {n_episodes}")
    if is_vecenv_wrapped(model.get_env(), VecTransposeImage) and not is_vecenv_wrapped(eval_env, VecTransposeImage):
        eval_env = VecTransposeImage(eval_env)
    return EvalCallback(eval_env, n_eval_episodes=n_episodes, eval_freq=max(1, every_steps // model.n_envs),
                        log_path=log_path, deterministic=deterministic, warn=False, verbose=0)
