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
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from llm_reward.eureka import channel
from llm_reward.eureka.allowlist import check_code
from llm_reward.eureka.batch import encode_request
from llm_reward.eureka.channel import ChannelError
from llm_reward.eureka.context import ALWAYS_HIDDEN
from llm_reward.eureka.extract import extract_reward_code, info_keys_used
from llm_reward.eureka.guard import plain_info
from llm_reward.eureka.sandbox import SandboxLimits, end_worker, spawn_worker


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

    Requests are pickled by us (trusted, :mod:`~llm_reward.eureka.batch`) to the worker; each reply is one typed
    binary frame of float64 (or a JSON error frame), checked here for its batch size, names and finite values
    before any number is used.
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
                {"mode": "serve", "code": code}, limits, self._dir,
                extra_fds=(request_read,), extra_args=("--requests", str(request_read)))
        finally:
            os.close(request_read)
        frame = self._next(time.monotonic() + startup_timeout_s)
        if frame["type"] != "ready":
            self.close()
            raise CodeRewardError(f"the reward worker did not start: {channel.reason_text(frame.get('reason'))}")

    def _next(self, deadline: float) -> dict[str, Any]:
        body = self._next_body(deadline)
        try:
            return channel.decode_payload(body)
        except ChannelError as exc:
            self.close()
            raise CodeRewardError(f"reward worker: {exc}") from None

    def _next_body(self, deadline: float) -> bytes:
        try:
            body = self._reader.read_body(deadline)
        except ChannelError as exc:
            self.close()
            raise CodeRewardError(f"reward worker: {exc}") from None
        if body is None:
            self.close()
            raise CodeRewardError("the reward worker exited (CPU, memory or process limit)")
        return body

    def send(self, obs: Any, actions: Any, next_obs: Any, infos: Sequence[dict]) -> None:
        """Queue a batch of ``n`` transitions without waiting; :meth:`receive` returns the replies in order."""
        if self.info_keys is None:
            shown = [plain_info(info, self.hidden) for info in infos]
        elif self.info_keys:
            shown = [plain_info({k: info[k] for k in self.info_keys if k in info}, self.hidden) for info in infos]
        else:
            shown = None  # the code reads no info key: nothing to filter or send
        request = encode_request(obs, actions, next_obs, shown)
        try:
            os.write(self._requests, request)
        except (BrokenPipeError, OSError, TypeError):
            self.close()
            raise CodeRewardError("the reward worker is gone") from None
        self._pending.append(len(actions))

    def receive(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Totals ``(n,)`` and components ``{name: (n,)}`` of the oldest batch sent; a failure closes the worker."""
        names, values = self.receive_table()
        values = values.copy()  # writable arrays of its own for the caller (the table is a view of the frame)
        return values[0], dict(zip(names, values[1:]))

    def receive_table(self) -> tuple[tuple[str, ...], np.ndarray]:
        """:meth:`receive` as the frame holds it: component names and a read-only ``(1 + k, n)`` array whose
        row 0 is the totals and row ``1 + j`` component ``names[j]``."""
        n = self._pending.popleft()
        body = self._next_body(time.monotonic() + self.call_timeout_s)
        try:
            if body[:len(channel.REWARDS_TAG)] == channel.REWARDS_TAG:
                return channel.decode_rewards(body, n)
            frame = channel.decode_payload(body)
            if frame["type"] == "error":
                raise CodeRewardError(channel.reason_text(frame.get("reason")))
            raise ChannelError(f"unexpected {frame['type'][:40]!r} frame instead of rewards")
        except ChannelError as exc:
            self.close()
            raise CodeRewardError(f"reward worker: {exc}") from None
        except CodeRewardError:
            self.close()  # the replies still queued behind it would be out of step
            raise

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
