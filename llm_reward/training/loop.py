"""Phase 3: train an SB3 agent on the shaped reward and record what happened, episode by episode.

The true environment return and success come from ``Monitor`` (innermost in every env), so the curves and
``metrics.json`` always report the task's own reward, whatever reward the agent was optimising.
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


def make_vec_env(env_id: str, *, n_envs: int, seed: int, subprocess: bool = False,
                 max_episode_steps: int | None = None, env_wrapper: Callable[[Any], Any] | None = None) -> VecEnv:
    """``n_envs`` captioned envs (Monitor innermost) in a Dummy/SubprocVecEnv, seeded ``seed, seed+1, ...``."""
    fns = [functools.partial(_make_one, env_id, seed + i, max_episode_steps, env_wrapper) for i in range(n_envs)]
    venv = SubprocVecEnv(fns) if subprocess else DummyVecEnv(fns)
    venv.seed(seed)
    return venv


def _make_one(env_id: str, seed: int, max_episode_steps: int | None, env_wrapper: Callable | None) -> Any:
    from llm_reward.envs import make_env

    env = make_env(env_id, seed=seed, max_episode_steps=max_episode_steps)
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
    only; elsewhere this callback does nothing.
    """

    def __init__(self) -> None:
        super().__init__()
        self.requested = False
        self._previous: Any = None

    def _on_training_start(self) -> None:
        if threading.current_thread() is threading.main_thread():
            # None: the handler was not set from Python; Python's own raises KeyboardInterrupt
            self._previous = signal.signal(signal.SIGINT, self._request) or signal.default_int_handler

    def _request(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)  # a second Ctrl-C interrupts at once

    def _on_step(self) -> bool:
        return not self.requested

    def _on_training_end(self) -> None:
        if self._previous is not None and signal.getsignal(signal.SIGINT) == self._request:
            signal.signal(signal.SIGINT, self._previous)


def train_agent(model: Any, *, total_timesteps: int, run_dir: Path, name: str,
                extra_callbacks: list[BaseCallback] | None = None, progress: bool = True) -> TrainResult:
    """``model.learn`` with an episode recorder; Ctrl-C stops training but keeps the model and episodes so far."""
    from llm_reward.shaping.wrappers import ShapedRewardLogger

    recorder, stop = EpisodeRecorder(run_dir / f"episodes_{name}.csv"), StopOnInterrupt()
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
