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

import collections
import os
import pickle
import shutil
import struct
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from llm_reward.eureka import channel
from llm_reward.eureka.allowlist import check_code
from llm_reward.eureka.channel import ChannelError
from llm_reward.eureka.context import ALWAYS_HIDDEN
from llm_reward.eureka.extract import extract_reward_code, info_keys_used
from llm_reward.eureka.guard import plain_info
from llm_reward.eureka.sandbox import SandboxLimits, end_worker, spawn_worker

_HEADER = struct.Struct(">I")


def _numbers(values: Any, n: int, what: str) -> np.ndarray:
    """``n`` finite floats within +-1e9 from a decoded frame (checked as one array: this runs every vector step)."""
    if not isinstance(values, list) or len(values) != n or not all(type(v) in (int, float) for v in values):
        raise ChannelError(f"{what} must be a list of {n} numbers")
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.abs(array) <= channel.MAX_ABS_VALUE):  # also false for NaN
        raise ChannelError(f"{what} has a non-finite or huge value")
    return array


class CodeRewardError(RuntimeError):
    """The reward code failed on a request (raised in the caller's process with the worker's one-line reason)."""


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


class RewardServer:
    """A long-lived sandbox worker that evaluates ``compute_reward`` on batches sent by this process.

    Requests are pickled by us (trusted) to the worker; replies are typed JSON frames of numbers only.
    """

    def __init__(self, code: str, *, hidden_info_keys: Sequence[str] = ALWAYS_HIDDEN, call_timeout_s: float = 10.0,
                 startup_timeout_s: float = 60.0, memory_mb: int = 2048):
        self.code, self.call_timeout_s = code, call_timeout_s
        self.hidden = frozenset(hidden_info_keys)
        self.info_keys = info_keys_used(code)  # send only what the code reads (None: all of it)
        self._pending: collections.deque[int] = collections.deque()
        self._dir = tempfile.mkdtemp(prefix="eureka-serve-")
        limits = SandboxLimits(timeout_s=startup_timeout_s, memory_mb=memory_mb, cpu_seconds=10 ** 7)
        request_read, self._requests = os.pipe()
        try:
            self._proc, self._reader, self._log = spawn_worker(
                {"mode": "serve", "code": code, "hidden_info_keys": sorted(self.hidden)}, limits, self._dir,
                extra_fds=(request_read,), extra_args=("--requests", str(request_read)))
        finally:
            os.close(request_read)
        frame = self._next(time.monotonic() + startup_timeout_s)
        if frame["type"] != "ready":
            self.close()
            raise CodeRewardError(f"the reward worker did not start: {channel.reason_text(frame.get('reason'))}")

    def _next(self, deadline: float) -> dict[str, Any]:
        try:
            frame = self._reader.read(deadline)
        except ChannelError as exc:
            self.close()
            raise CodeRewardError(f"reward worker: {exc}") from None
        if frame is None:
            self.close()
            raise CodeRewardError("the reward worker exited (CPU, memory or process limit)")
        return frame

    def send(self, obs: Any, actions: Any, next_obs: Any, infos: Sequence[dict]) -> None:
        """Queue a batch of ``n`` transitions without waiting; :meth:`receive` returns the replies in order."""
        if self.info_keys is not None:
            infos = [{k: info[k] for k in self.info_keys if k in info} for info in infos]
        payload = pickle.dumps((obs, actions, next_obs, [plain_info(i, self.hidden) for i in infos]), protocol=5)
        try:
            os.write(self._requests, _HEADER.pack(len(payload)) + payload)
        except (BrokenPipeError, OSError, TypeError):
            self.close()
            raise CodeRewardError("the reward worker is gone") from None
        self._pending.append(len(actions))

    def receive(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Totals ``(n,)`` and components ``{name: (n,)}`` of the oldest batch sent; a failure closes the worker."""
        n = self._pending.popleft()
        frame = self._next(time.monotonic() + self.call_timeout_s)
        try:
            if frame["type"] == "error":
                raise CodeRewardError(channel.reason_text(frame.get("reason")))
            totals = _numbers(frame.get("total"), n, "total")
            parts = frame.get("components")
            if not isinstance(parts, dict) or len(parts) > channel.MAX_COMPONENTS:
                raise ChannelError("malformed reward frame")
            components = {str(k)[:channel.MAX_NAME_CHARS]: _numbers(v, n, k) for k, v in parts.items()}
        except ChannelError as exc:
            self.close()
            raise CodeRewardError(f"reward worker: {exc}") from None
        except CodeRewardError:
            self.close()  # the replies still queued behind it would be out of step
            raise
        return totals, components

    def rewards(self, obs: Any, actions: Any, next_obs: Any,
                infos: Sequence[dict]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Totals ``(n,)`` and components ``{name: (n,)}`` for a batch of ``n`` transitions."""
        self.send(obs, actions, next_obs, infos)
        return self.receive()

    def close(self) -> None:
        if getattr(self, "_proc", None) is None:
            return
        try:
            os.close(self._requests)
        except OSError:
            pass
        end_worker(self._proc, grace_s=1.0)
        os.close(self._reader.fd)
        self._log.close()
        self._proc = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __del__(self) -> None:
        self.close()


class CodeRewardVecEnv(VecEnvWrapper):
    """Replaces a VecEnv's rewards by ``compute_reward``'s totals: one batched request per vector step to one
    sandbox worker.

    ``code`` or ``code_path`` (a ``best_reward.py`` of a search); ``call_timeout_s`` bounds every batch.
    """

    def __init__(self, venv: VecEnv, code: str | None = None, code_path: str | Path | None = None, *,
                 hidden_info_keys: Sequence[str] = ALWAYS_HIDDEN, call_timeout_s: float = 10.0):
        super().__init__(venv)
        self.server = RewardServer(load_code(code, code_path), hidden_info_keys=hidden_info_keys,
                                   call_timeout_s=call_timeout_s)
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
        totals, components = self.server.rewards(self._obs, self._actions, next_obs, infos)
        for i, info in enumerate(infos):
            info.setdefault("env_reward", float(env_rewards[i]))
            info["reward_components"] = {name: float(values[i]) for name, values in components.items()}
        self._obs = obs
        return obs, totals.astype(np.float32), dones, infos

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
    if not np.any(dones):
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
                 hidden_info_keys: Sequence[str] = ALWAYS_HIDDEN, call_timeout_s: float = 10.0):
        gym.utils.RecordConstructorArgs.__init__(self, code=code, code_path=str(code_path) if code_path else None)
        gym.Wrapper.__init__(self, env)
        self.server = RewardServer(load_code(code, code_path), hidden_info_keys=hidden_info_keys,
                                   call_timeout_s=call_timeout_s)
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
