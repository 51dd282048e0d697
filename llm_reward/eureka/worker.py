"""The sandbox children: a trusted runner (``smoke``, ``train``) and the jailed reward server (``serve``).

Started only by :mod:`llm_reward.eureka.sandbox`. The job arrives as JSON on stdin; results leave as frames on
the private channel fd given with ``--channel``. Modes:

- ``smoke``: a short random-action rollout of the env; the rewards come from a reward server, the statistics are
  computed here;
- ``train``: a whole short SB3 training run on the reward (``code`` through a reward server, the env's own
  ``env`` reward, or the ``sparse`` success reward), with ~``n_points`` progress frames for reward reflection
  (and, for the env adapter's milestones the job names, the share of episodes that reached each);
- ``serve``: the reward server, the only mode that loads reward code. Before it does, the process is in the OS
  jail, has dropped every privilege and installed the seccomp filter and the audit hook.

The runner modes never execute reward code, so nothing the code does can reach their env, trainer, statistics or
channel.
"""

from __future__ import annotations

import argparse
import builtins
import functools
import itertools
import json
import math
import os
import sys
import traceback
from typing import Any, Callable, Iterator

from llm_reward.eureka.batch import HEADER as REQUEST_HEADER
from llm_reward.eureka.batch import decode_request
from llm_reward.eureka.channel import ChannelError, encode_rewards, write_bytes, write_frame
from llm_reward.eureka.guard import (SERVER_MAX_OPEN_FILES, RewardCodeError, apply_limits, call_rewards,
                                     describe_exception, install_audit_hook, load_reward)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="llm_reward.eureka.worker")
    parser.add_argument("--channel", type=int, required=True)
    parser.add_argument("--requests", type=int, default=None)
    args = parser.parse_args(argv)
    job = json.loads(sys.stdin.read())
    sys.stdin.close()
    send = functools.partial(write_frame, args.channel)
    limits = job["limits"]
    stage = job["mode"]
    apply_limits(cpu_seconds=limits["cpu_seconds"], memory_mb=limits["memory_mb"],
                 max_file_mb=limits["max_file_mb"], max_processes=None,
                 max_open_files=SERVER_MAX_OPEN_FILES if stage == "serve" else None)
    os.chdir(job["work_dir"])
    try:
        if stage == "smoke":
            run_smoke(job, send)
        elif stage == "train":
            run_train(job, send)
        elif stage == "serve":
            serve(job, args.channel, args.requests)
        else:
            raise ValueError(f"unknown mode {stage!r}")
    except RewardCodeError as exc:
        send({"type": "error", "reason": str(exc)})
    except BaseException as exc:  # noqa: BLE001 - report, then exit non-zero
        traceback.print_exc()
        send({"type": "error", "reason": describe_exception(exc)})
        _exit(1)
    _exit(0)


def _exit(code: int) -> None:
    """Exit now: everything is reported and every child closed; an interpreter shutdown that unloads torch can
    take seconds on a loaded machine, and the caller would wait for it or kill it."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _setup_numerics() -> None:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    np.seterr(all="ignore")  # overflow warnings from reward code are not errors; non-finite results are


def _make_env(job: dict[str, Any], seed: int) -> Any:
    from llm_reward.envs import make_env

    return make_env(job["env_id"], seed=seed, max_episode_steps=job.get("max_episode_steps"),
                    success=job.get("success"), **job.get("env_kwargs", {}))


class _Stats:
    """Running mean/min/max of the total and of each component. The total is kept apart from the components, so
    no component name (``__total__`` included) can stand in for it."""

    def __init__(self) -> None:
        self.total: list[float] | None = None  # sum, min, max, count
        self.sums: dict[str, list[float]] = {}

    def add(self, total: float, components: dict[str, float]) -> None:
        self.total = _accumulate(self.total, total)
        for name, value in components.items():
            self.sums[name] = _accumulate(self.sums.get(name), value)

    def total_summary(self) -> list[float] | None:
        """``[mean, min, max]`` of the total, or None before the first ``add``."""
        return None if self.total is None else _mean_min_max(self.total)

    def summary(self) -> dict[str, list[float]]:
        """``{component: [mean, min, max]}``."""
        return {name: _mean_min_max(entry) for name, entry in self.sums.items()}

    def clear(self) -> None:
        self.total, self.sums = None, {}


def _accumulate(entry: list[float] | None, value: float) -> list[float]:
    if entry is None:
        return [value, value, value, 1.0]
    entry[0] += value
    entry[1] = min(entry[1], value)
    entry[2] = max(entry[2], value)
    entry[3] += 1
    return entry


def _mean_min_max(entry: list[float]) -> list[float]:
    total, low, high, count = entry
    return [total / count, low, high]


def _reward_server(job: dict[str, Any]) -> Any:
    """The job's reward server (the caller checked that its isolation can run here)."""
    from llm_reward.eureka.sandbox import SandboxLimits
    from llm_reward.eureka.server import RewardServer

    limits = job["limits"]
    return RewardServer(job["code"], hidden_info_keys=job.get("hidden_info_keys", ()),
                        call_timeout_s=float(job.get("call_timeout_s", 10.0)),
                        startup_timeout_s=min(60.0, float(limits["timeout_s"])),
                        limits=SandboxLimits(memory_mb=int(job.get("server_memory_mb", 2048)),
                                             writable_mb=int(limits["writable_mb"]),
                                             max_file_mb=int(limits["max_file_mb"]),
                                             isolation=limits["isolation"]),
                        cpu_s_per_call=float(job.get("cpu_s_per_call", 0.005)),
                        _inner_layers=bool(job.get("inner_layers", True)), _jailed=bool(job["jail"]))


def run_smoke(job: dict[str, Any], send: Callable[[dict], None]) -> None:
    """A random-action rollout of ``n_steps``; ``compute_reward`` answered and checked on every step."""
    _setup_numerics()
    from llm_reward.eureka.server import CodeRewardError
    from llm_reward.eureka.wrappers import _one

    env = _make_env(job, job["seed"])
    env.action_space.seed(job["seed"])
    obs, _ = env.reset(seed=job["seed"])
    server = _reward_server(job)
    stats = _Stats()
    try:
        for step in range(int(job["n_steps"])):
            action = env.action_space.sample()
            next_obs, _, terminated, truncated, info = env.step(action)
            try:
                totals, components = server.rewards(_one(obs), [action], _one(next_obs), [info])
            except CodeRewardError as exc:
                raise RewardCodeError(f"smoke test step {step}: {exc}") from None
            stats.add(float(totals[0]), {name: float(values[0]) for name, values in components.items()})
            obs = env.reset()[0] if terminated or truncated else next_obs
    finally:
        server.close()
    send({"type": "result", "steps": int(job["n_steps"]), "total": stats.total_summary() or [0.0, 0.0, 0.0],
          "components": stats.summary()})


def _sparse_reward(env: Any) -> Any:
    """``env`` rewarded 1 at the end of a successful episode, else 0."""
    import gymnasium as gym

    class _Sparse(gym.Wrapper):
        def step(self, action: Any) -> Any:
            next_obs, _, terminated, truncated, info = self.env.step(action)
            reward = float(bool(info.get("is_success", False))) if terminated or truncated else 0.0
            return next_obs, reward, terminated, truncated, info

    return _Sparse(env)


def _stats_vec_env(venv: Any, stats: _Stats) -> Any:
    """``venv`` with every training reward (and its components, if any) added to ``stats``."""
    from stable_baselines3.common.vec_env import VecEnvWrapper

    class _Recorder(VecEnvWrapper):
        def reset(self) -> Any:
            return self.venv.reset()

        def step_wait(self) -> Any:
            obs, rewards, dones, infos = self.venv.step_wait()
            for reward, info in zip(rewards.tolist(), infos):
                stats.add(float(reward), info.get("reward_components", {}))
            return obs, rewards, dones, infos

    return _Recorder(venv)


def run_train(job: dict[str, Any], send: Callable[[dict], None]) -> None:
    """Train ``job["algo"]`` for ``total_timesteps`` on the chosen reward; one progress frame per training chunk."""
    _setup_numerics()
    from stable_baselines3.common.vec_env import DummyVecEnv

    from llm_reward.agents import make_agent
    from llm_reward.eureka.wrappers import CodeRewardVecEnv

    kind, seed, n_points = job["reward"], int(job["seed"]), int(job["n_points"])
    stats = _Stats()

    def make(i: int) -> Any:
        env = _make_env(job, seed + i)
        return _sparse_reward(env) if kind == "sparse" else env

    venv = DummyVecEnv([functools.partial(make, i) for i in range(int(job["n_envs"]))])
    venv.seed(seed)
    if kind == "code":
        venv = CodeRewardVecEnv(venv, server=_reward_server(job))
    venv = _stats_vec_env(venv, stats)
    model = make_agent(job["algo"], venv, seed=seed, **job.get("agent_kwargs", {}))
    try:
        _train(job, model, stats, send, n_points)
    finally:
        venv.close()


def _train(job: dict[str, Any], model: Any, stats: _Stats, send: Callable[[dict], None], n_points: int) -> None:
    from stable_baselines3.common.callbacks import BaseCallback

    from llm_reward.agents import evaluate_success

    seed = int(job["seed"])
    total = int(job["total_timesteps"])
    chunk = max(1, total // n_points)
    milestones = _milestones(job)

    class Progress(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_report, self.point = chunk, 0
            self.successes: list[float] = []
            self.returns: list[float] = []
            # failure diagnosis: the adapter's progress oracle (best value per episode) and time-limit endings
            self.best: dict[int, float] = {}
            self.progress_best: list[float] = []
            self.time_limits: list[float] = []
            # and the milestones each env's episode has reached at any step so far; one row per finished episode
            self.reached: dict[int, list[bool]] = {}
            self.episode_milestones: list[list[bool]] = []

        def _on_step(self) -> bool:
            for i, (info, done) in enumerate(zip(self.locals["infos"], self.locals["dones"])):
                if "progress" in info:
                    self.best[i] = max(self.best.get(i, -math.inf), float(info["progress"]))
                if milestones:
                    flags = self.reached.setdefault(i, [False] * len(milestones))
                    for j, milestone in enumerate(milestones):
                        flags[j] = flags[j] or bool(milestone.predicate(info))
                if done and "episode" in info:
                    self.successes.append(float(bool(info.get("is_success", False))))
                    self.returns.append(float(info["episode"]["r"]))
                    self.time_limits.append(float(bool(info.get("TimeLimit.truncated", False))))
                    if i in self.best:
                        self.progress_best.append(self.best.pop(i))
                    if milestones:
                        self.episode_milestones.append(self.reached.pop(i))
                elif done:
                    self.best.pop(i, None)
                    self.reached.pop(i, None)
            if self.num_timesteps >= self.next_report:
                self.report()
            return True

        def report(self) -> None:
            summary, total_stats = stats.summary(), stats.total_summary()
            frame = {"type": "progress", "point": self.point, "timestep": int(self.num_timesteps),
                     "episodes": len(self.successes),
                     "success_rate": sum(self.successes) / len(self.successes) if self.successes else None,
                     "env_return": sum(self.returns) / len(self.returns) if self.returns else None,
                     "reward_mean": total_stats[0] if total_stats else None,
                     "components": {name: values[0] for name, values in summary.items()},
                     "progress_best_mean": _mean(self.progress_best), "progress_best_max": max(
                         self.progress_best, default=None), "time_limit_rate": _mean(self.time_limits)}
            if milestones is not None:  # the job asked (a library that does not ask would refuse the field)
                frame["milestones"] = milestone_shares(milestones, self.episode_milestones)
            send(frame)
            stats.clear()
            self.successes, self.returns, self.progress_best, self.time_limits = [], [], [], []
            self.episode_milestones = []
            self.point += 1
            self.next_report += chunk

    progress = Progress()
    model.learn(total_timesteps=total, callback=progress, progress_bar=False)
    if progress.successes or stats.total is not None:
        progress.report()
    evaluation = {}
    if int(job.get("eval_episodes", 0)) > 0:
        evaluation = evaluate_success(model, functools.partial(_make_env, job, seed + 10_000),
                                      n_episodes=int(job["eval_episodes"]), seed=seed + 10_000,
                                      deterministic=bool(job["eval_deterministic"]))
    send({"type": "result", "timesteps": int(model.num_timesteps),
          "eval_success": evaluation.get("success_rate"), "eval_return": evaluation.get("mean_return")})


def _milestones(job: dict[str, Any]) -> list[Any] | None:
    """The env adapter's milestones that ``job["milestones"]`` names, in the adapter's order; None when the job
    names none (then progress frames carry no ``milestones`` field)."""
    if not job.get("milestones"):
        return None
    from llm_reward.envs import get_adapter

    wanted = set(job["milestones"])
    return [m for m in get_adapter(job["env_id"]).milestones if m.name in wanted]


def milestone_shares(milestones: list[Any], episodes: list[list[bool]]) -> dict[str, float]:
    """``{name: share of episodes that reached it}`` (``episodes``: one row of flags per finished episode);
    empty when no episode finished.

        >>> from llm_reward.envs import Milestone
        >>> steps = [Milestone("a", bool), Milestone("b", bool)]
        >>> milestone_shares(steps, [[True, False], [True, True], [False, False], [True, False]])
        {'a': 0.75, 'b': 0.25}
    """
    if not episodes:
        return {}
    return {m.name: sum(row[j] for row in episodes) / len(episodes) for j, m in enumerate(milestones)}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def serve(job: dict[str, Any], channel_fd: int, requests_fd: int) -> None:
    """Answer batched reward requests (encoded by the trusted library) until the request pipe closes.

    Each batch is answered with one binary ``rewards`` frame (:func:`~llm_reward.eureka.channel.encode_rewards`)
    or one JSON ``error`` frame with the reason; the library checks both again on its side.
    """
    import numpy as np

    from llm_reward.eureka import jail

    np.seterr(all="ignore")
    import pickle  # noqa: F401 - decode_request's, imported before the audit hook and the filter

    readable = jail.read_only_paths() + jail.system_read_paths()  # while every module can still be imported
    if not job["jailed"] and not jail.private_work_dir(job["work_dir"], int(job["limits"]["writable_mb"])):
        print("sandbox: no mount namespace here; the reward code's directory is on disk, capped per file only",
              file=sys.stderr, flush=True)
    jail.drop_privileges()
    # After the uid change (which clears it): die with the parent, and exit if it died before this line.
    jail.die_with_parent(1 if job["jailed"] else int(job["parent_pid"]), lifeline_fd=requests_fd)
    abi = jail.restrict_files(readable, [job["work_dir"]])
    if not abi and not job["jailed"]:
        print("sandbox: this kernel has no Landlock; the reward code can read what uid", os.getuid(), "can read",
              file=sys.stderr, flush=True)
    jail.install_syscall_filter()
    if job.get("inner_layers", True):
        install_audit_hook(job["work_dir"])
        fn = load_reward(job["code"])
    else:  # tests only: the OS layers on their own, as if the code had got past the allow-list and the hook
        namespace: dict[str, Any] = {"__builtins__": builtins, "__name__": "reward_code", "np": np}
        exec(compile(job["code"], "<reward_code>", "exec"), namespace)  # noqa: S102 - in the jail
        fn = namespace["compute_reward"]
    send = functools.partial(write_frame, channel_fd)
    send({"type": "ready"})
    names: tuple[str, ...] | None = None  # the last batch's, checked already
    for body in _requests(requests_fd):
        obs, actions, next_obs, infos = decode_request(body)
        try:
            names, frame = _reward_batch(fn, obs, actions, next_obs, infos, names)
        except RewardCodeError as exc:
            send({"type": "error", "reason": str(exc)})
            continue
        write_bytes(channel_fd, frame)


def _requests(fd: int) -> Iterator[bytes | memoryview]:
    """The bodies of the length-prefixed requests read from ``fd``, until it closes (a request cut short by
    the close is dropped). One ``read`` per request when it arrives whole, as it does from the library."""
    pending = bytearray()
    want = 1 << 16
    while True:
        chunk = os.read(fd, want)
        if not chunk:
            return
        if not pending and len(chunk) >= REQUEST_HEADER.size:  # the usual case: exactly one whole request
            (size,) = REQUEST_HEADER.unpack_from(chunk)
            if len(chunk) == REQUEST_HEADER.size + size:
                yield memoryview(chunk)[REQUEST_HEADER.size:]
                continue
        pending += chunk
        want = 1 << 16
        while len(pending) >= REQUEST_HEADER.size:
            end = REQUEST_HEADER.size + REQUEST_HEADER.unpack_from(pending)[0]
            if len(pending) < end:
                want = max(want, end - len(pending))  # a large request: read the rest in as few calls as it takes
                break
            body = bytes(pending[REQUEST_HEADER.size:end])
            del pending[:end]
            yield body


def _reward_batch(fn: Callable, obs: Any, actions: Any, next_obs: Any, infos: list[dict] | None,
                  known: tuple[str, ...] | None = None) -> tuple[tuple[str, ...], bytes]:
    """One checked call per transition (:func:`~llm_reward.eureka.guard.call_rewards`; ``known``: the names of
    the last batch), answered as one binary rewards frame: ``(names, frame)``.

    ``infos`` went through ``plain_info`` in the library already (the library built this batch; filtering it
    again here would only repeat trusted work), and each transition gets its own dict; ``None`` means the code
    reads no info key, and each call gets a fresh empty dict.
    """
    n = len(actions)
    infos = itertools.repeat(None) if infos is None else infos
    names, rows = call_rewards(fn, zip(_rows(obs, n), actions, _rows(next_obs, n), infos), known)
    try:
        return names, encode_rewards(names, rows)
    except (UnicodeEncodeError, ChannelError) as exc:  # a name with lone surrogates, or a batch beyond the cap
        raise RewardCodeError(f"the rewards could not be sent: {type(exc).__name__}") from None


def _rows(obs: Any, n: int) -> Any:
    """The ``n`` per-transition observations of a batch (row views; a dict observation gives dicts of rows)."""
    if isinstance(obs, dict):
        return [{key: value[i] for key, value in obs.items()} for i in range(n)]
    return obs


if __name__ == "__main__":
    main()
