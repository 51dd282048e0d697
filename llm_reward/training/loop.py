"""Phase 3: train an SB3 agent on the shaped reward and record what happened, episode by episode.

The true environment return and success come from ``Monitor`` (innermost in every env), so the curves and
``metrics.json`` always report the task's own reward, whatever reward the agent was optimising. Envs arrive as a
factory (``env_fn(seed=...) -> gym.Env``, e.g. ``functools.partial(llm_reward.envs.make_env, env_id)``): this
floor knows no env family.
"""

from __future__ import annotations

import functools
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from llm_reward.shaping.wrappers import ShapedRewardLogger

#: Builds one env from its seed: ``env_fn(seed=3)``. Picklable (module-level function or partial) for subprocesses.
EnvFactory = Callable[..., Any]


class EpisodeRecorder(BaseCallback):
    """Records every finished episode (timestep, true return, length, success, shaped parts) to a CSV."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)
        self.rows: list[dict[str, float]] = []

    def _on_step(self) -> bool:
        for info, done in zip(self.locals["infos"], self.locals["dones"]):
            if not done or "episode" not in info:
                continue
            shaped = info.get("episode_shaped", {})
            self.rows.append({
                "timestep": self.num_timesteps, "return": float(info["episode"]["r"]),
                "length": int(info["episode"]["l"]), "success": float(bool(info.get("is_success", False))),
                "return_intrinsic": float(shaped.get("r_intrinsic", np.nan)),
                "return_shaped": float(shaped.get("r_shaped", np.nan)),
            })
        return True

    def _on_training_end(self) -> None:
        self.save()

    def save(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.rows, columns=["timestep", "return", "length", "success", "return_intrinsic",
                                                 "return_shaped"])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(self.path, index=False)
        return frame


def make_vec_env(env_fn: EnvFactory, *, n_envs: int, seed: int, subprocess: bool = False,
                 env_wrapper: Callable[[Any], Any] | None = None) -> VecEnv:
    """``n_envs`` envs ``env_fn(seed=seed + i)`` in a Dummy/SubprocVecEnv, seeded ``seed, seed+1, ...``.

    ``llm_reward.envs.make_vec_env`` is the same from an env id (captioned envs, Monitor innermost).

    Example:
        >>> import functools
        >>> from llm_reward.envs import make_env
        >>> venv = make_vec_env(functools.partial(make_env, "MiniGrid-DoorKey-5x5-v0"), n_envs=2, seed=0)
        >>> obs = venv.reset()
        >>> venv.num_envs, "caption" in venv.reset_infos[0]
        (2, True)
        >>> venv.close()
    """
    if isinstance(env_fn, str):
        raise TypeError(f"make_vec_env takes an env factory; for an env id use "
                        f"llm_reward.envs.make_vec_env({env_fn!r}, ...)")
    fns = [functools.partial(_make_one, env_fn, seed + i, env_wrapper) for i in range(n_envs)]
    venv = SubprocVecEnv(fns) if subprocess else DummyVecEnv(fns)
    venv.seed(seed)
    return venv


def _make_one(env_fn: EnvFactory, seed: int, env_wrapper: Callable | None) -> Any:
    env = env_fn(seed=seed)
    return env_wrapper(env) if env_wrapper is not None else env


@dataclass
class TrainResult:
    model: Any
    episodes: pd.DataFrame
    steps_per_s: float
    interrupted: bool


class StopOnInterrupt(BaseCallback):
    """Turns the first Ctrl-C (SIGINT) during ``learn`` into a clean stop at the next step; a second one raises.

    A ``KeyboardInterrupt`` raised wherever the signal lands can be swallowed: Python only prints it when it
    fires inside a finalizer or a callback called from C (TensorBoard's writer and torch have many), and
    training then runs on. A flag checked every step cannot be lost. Signal handlers live in the main thread
    only; elsewhere this callback does nothing. ``on_interrupt`` is called on that first Ctrl-C, e.g. to pass it
    on to a process training beside this one (a scheduler's ``kill -INT`` reaches this process alone).
    """

    def __init__(self, on_interrupt: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.requested = False
        self.on_interrupt = on_interrupt
        self._previous: Any = None

    def _on_training_start(self) -> None:
        if threading.current_thread() is threading.main_thread():
            # None: the handler was not set from Python; Python's own raises KeyboardInterrupt
            self._previous = signal.signal(signal.SIGINT, self._request) or signal.default_int_handler

    def _request(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)  # a second Ctrl-C interrupts at once
        if self.on_interrupt is not None:
            self.on_interrupt()

    def _on_step(self) -> bool:
        return not self.requested

    def _on_training_end(self) -> None:
        if self._previous is not None and signal.getsignal(signal.SIGINT) == self._request:
            signal.signal(signal.SIGINT, self._previous)


class CounterLogger(BaseCallback):
    """Logs counters (LLM calls, cache hits, reward-model calls...) as TensorBoard scalars at each rollout end.

    ``counters`` maps a tag prefix to a function returning that source's current counts, e.g.
    ``{"reward_model": shaper.reward.stats, "llm": lambda: llm.stats.as_dict()}`` logs
    ``reward_model/model_calls``, ``llm/cache_hits``, ...
    """

    def __init__(self, counters: dict[str, Callable[[], dict[str, Any]]], verbose: int = 0):
        super().__init__(verbose)
        self.counters = counters

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        for prefix, read in self.counters.items():
            for key, value in read().items():
                if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
                        and np.isfinite(value):
                    self.logger.record(f"{prefix}/{key}", float(value))


def train_agent(model: Any, *, total_timesteps: int, run_dir: Path, name: str,
                extra_callbacks: list[BaseCallback] | None = None, progress: bool = True,
                on_interrupt: Callable[[], None] | None = None) -> TrainResult:
    """``model.learn`` with an episode recorder; Ctrl-C stops training but keeps the model and episodes so far.

    Args:
        model: an SB3 algorithm (:func:`~llm_reward.agents.make_agent`).
        total_timesteps: env steps to train for.
        run_dir: where ``agent_<name>.zip`` and ``episodes_<name>.csv`` are written.
        name: the run's name in file names and TensorBoard (``shaped``, ``extrinsic``).
        extra_callbacks: more SB3 callbacks (evaluation, counters).
        progress: show SB3's progress bar.
        on_interrupt: called on the first Ctrl-C (e.g. to pass it on to a baseline process).

    Returns:
        A :class:`TrainResult`: the model, its episodes, steps per second and whether it was interrupted.

    Example:
        >>> import functools, tempfile
        >>> from pathlib import Path
        >>> from stable_baselines3 import PPO
        >>> from llm_reward.envs import make_env
        >>> venv = make_vec_env(functools.partial(make_env, "MiniGrid-Empty-5x5-v0"), n_envs=1, seed=0)
        >>> result = train_agent(PPO("MlpPolicy", venv, n_steps=64, batch_size=64, seed=0), total_timesteps=64,
        ...                      run_dir=Path(tempfile.mkdtemp()), name="demo", progress=False)
        >>> result.model.num_timesteps, result.interrupted
        (64, False)
    """
    recorder, stop = EpisodeRecorder(run_dir / f"episodes_{name}.csv"), StopOnInterrupt(on_interrupt)
    callbacks = CallbackList([stop, recorder, ShapedRewardLogger(), *(extra_callbacks or [])])
    start, interrupted = time.perf_counter(), False
    try:
        model.learn(total_timesteps=total_timesteps, callback=callbacks, progress_bar=progress, tb_log_name=name)
    except KeyboardInterrupt:  # the second Ctrl-C, or one that landed before training started
        interrupted = True
    finally:
        stop.on_training_end()  # learn skips it when it raises: put the previous handler back regardless
    interrupted = interrupted or stop.requested
    elapsed = time.perf_counter() - start
    model.save(run_dir / f"agent_{name}.zip")
    return TrainResult(model, recorder.save(), model.num_timesteps / max(elapsed, 1e-9), interrupted)


def plot_curves(curves: dict[str, pd.DataFrame], path: Path, *, title: str, window: int = 50) -> None:
    """Success rate (rolling over ``window`` episodes) against environment steps, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, frame in curves.items():
        if frame.empty:
            continue
        roll = frame.rolling(window, min_periods=max(1, window // 5)).mean()  # no spike from one lucky first episode
        axes[0].plot(frame["timestep"], roll["success"], label=name)
        axes[1].plot(frame["timestep"], roll["return"], label=name)
    axes[0].set(xlabel="environment steps", ylabel=f"success rate (last {window} episodes)", ylim=(-0.02, 1.02))
    axes[1].set(xlabel="environment steps", ylabel="true episode return")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.lines:  # a run too short to finish an episode draws nothing
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
