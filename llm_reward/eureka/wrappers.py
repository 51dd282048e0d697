"""Train any SB3 agent on a chosen reward function, with the code running in a sandbox worker, never here.

:class:`CodeRewardVecEnv` (a VecEnvWrapper) sends one batched request per vector step to its worker;
:class:`CodeRewardWrapper` (a Gymnasium wrapper) does the same per env step. The agent's reward becomes the code's
total; the env's own reward stays in ``info["env_reward"]`` (and in ``Monitor``'s episode return, if Monitor is
inside), the components in ``info["reward_components"]``.

    >>> from llm_reward.envs import make_vec_env
    >>> venv = CodeRewardVecEnv(make_vec_env("HalfCheetah-v5", n_envs=8, seed=0),
    ...                         code_path="runs/eureka/halfcheetah/best_reward.py")  # doctest: +SKIP
    >>> from stable_baselines3 import SAC
    >>> SAC("MlpPolicy", venv).learn(10_000)  # doctest: +SKIP

rl-baselines3-zoo (hyperparameter YAML)::

    env_wrapper:
      - llm_reward.eureka.wrappers.CodeRewardWrapper:
          code_path: runs/eureka/halfcheetah/best_reward.py
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from llm_reward.eureka.allowlist import check_code
from llm_reward.eureka.context import ALWAYS_HIDDEN
from llm_reward.eureka.extract import extract_reward_code
from llm_reward.eureka.server import CodeRewardError, RewardServer

__all__ = ["CodeRewardError", "CodeRewardVecEnv", "CodeRewardWrapper", "RewardServer", "code_reward_vec_env",
           "load_code"]


def load_code(code: str | None = None, code_path: str | Path | None = None) -> str:
    """Reward source from a string or a file (a full LLM reply also works), extracted by name and allow-listed."""
    if (code is None) == (code_path is None):
        raise ValueError("give exactly one of code= or code_path=")
    if code_path is not None:
        path = Path(code_path)
        if not path.is_file():
            raise FileNotFoundError(f"reward code file {path} does not exist (reward.code_path)")
        code = path.read_text()
    source = extract_reward_code(code)
    check_code(source)
    return source


class CodeRewardVecEnv(VecEnvWrapper):
    """Replaces a VecEnv's rewards by ``compute_reward``'s totals: one batched request per vector step to one
    sandbox worker.

    ``code`` or ``code_path`` (a ``best_reward.py`` of a search); ``call_timeout_s`` bounds every batch; further
    keywords (``limits``, ``cpu_s_per_call``, ``memory_mb``) go to :class:`~llm_reward.eureka.server.RewardServer`.
    ``server`` hands over a reward server started already (the candidate runner's).
    """

    def __init__(self, venv: VecEnv, code: str | None = None, code_path: str | Path | None = None, *,
                 hidden_info_keys: Sequence[str] = ALWAYS_HIDDEN, call_timeout_s: float = 10.0,
                 server: RewardServer | None = None, **server_kwargs: Any):
        super().__init__(venv)
        self.server = server if server is not None else RewardServer(
            load_code(code, code_path), hidden_info_keys=hidden_info_keys, call_timeout_s=call_timeout_s,
            **server_kwargs)
        self._obs: Any = None
        self._actions: Any = None

    def reset(self) -> Any:
        self._obs = self.venv.reset()
        return self._obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions
        self.venv.step_async(actions)

    def step_wait(self) -> Any:
        obs, env_rewards, dones, infos = self.venv.step_wait()
        next_obs = _with_terminal(obs, dones, infos)
        self.server.send(self._obs, self._actions, next_obs, infos)
        # What does not need the rewards is done while the worker computes them (when it has a core of its own).
        for info, env_reward in zip(infos, np.asarray(env_rewards).tolist()):
            info.setdefault("env_reward", env_reward)
        self._obs = obs
        names, values = self.server.receive_table()
        # One conversion to Python floats for the whole batch, not one numpy scalar per env and component.
        for info, parts in zip(infos, values[1:].T.tolist()):
            info["reward_components"] = dict(zip(names, parts))
        return obs, values[0].astype(np.float32), dones, infos

    def close(self) -> None:
        self.server.close()
        self.venv.close()


def _one(obs: Any) -> Any:
    """A batch of one observation."""
    if isinstance(obs, dict):
        return {key: np.asarray(value)[None] for key, value in obs.items()}
    return np.asarray(obs)[None]


def _with_terminal(obs: Any, dones: np.ndarray, infos: Sequence[dict]) -> Any:
    """The true next observations: SB3 puts a finished episode's last one in ``terminal_observation``."""
    if not np.asarray(dones).any():  # the common step: no copies
        return obs
    if isinstance(obs, dict):
        out = {key: value.copy() for key, value in obs.items()}
        for i in np.flatnonzero(dones):
            for key in out:
                out[key][i] = infos[i]["terminal_observation"][key]
        return out
    out = obs.copy()
    for i in np.flatnonzero(dones):
        out[i] = infos[i]["terminal_observation"]
    return out


class CodeRewardWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Gymnasium twin of :class:`CodeRewardVecEnv` for one env (and the rl-baselines3-zoo ``env_wrapper`` route)."""

    def __init__(self, env: gym.Env, code: str | None = None, code_path: str | Path | None = None, *,
                 hidden_info_keys: Sequence[str] = ALWAYS_HIDDEN, call_timeout_s: float = 10.0,
                 **server_kwargs: Any):
        gym.utils.RecordConstructorArgs.__init__(self, code=code, code_path=str(code_path) if code_path else None)
        gym.Wrapper.__init__(self, env)
        self.server = RewardServer(load_code(code, code_path), hidden_info_keys=hidden_info_keys,
                                   call_timeout_s=call_timeout_s, **server_kwargs)
        self._obs: Any = None

    def reset(self, **kwargs: Any) -> Any:
        self._obs, info = self.env.reset(**kwargs)
        return self._obs, info

    def step(self, action: Any) -> Any:
        next_obs, env_reward, terminated, truncated, info = self.env.step(action)
        totals, components = self.server.rewards(_one(self._obs), [action], _one(next_obs), [info])
        info = {**info, "reward_components": {name: float(v[0]) for name, v in components.items()}}
        info.setdefault("env_reward", float(env_reward))
        self._obs = next_obs
        return next_obs, float(totals[0]), terminated, truncated, info

    def close(self) -> None:
        self.server.close()
        super().close()


def code_reward_vec_env(venv: VecEnv, code_path: str | Path, **kwargs: Any) -> CodeRewardVecEnv:
    """The ``reward=eureka`` hook of ``llm-reward-train``: wrap a training VecEnv with a saved reward file."""
    return CodeRewardVecEnv(venv, code_path=code_path, **kwargs)
