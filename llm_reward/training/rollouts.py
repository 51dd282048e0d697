"""Collect captioned observations from rollouts (the dataset Motif annotates) and store them as parquet.

Captions are produced inside each env and travel in ``info``, so a VecEnv's auto-reset does not lose the final
caption of an episode; the first observation of each episode comes from ``VecEnv.reset_infos``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from llm_reward.shaping.captions import CAPTION_KEY, PROGRESS_KEY
from llm_reward.training.loop import EnvFactory, make_vec_env

COLUMNS = ("caption", "progress", "episode", "step", "env_index", "extrinsic_reward", "done")
_DTYPES = {"caption": str, "progress": float, "episode": np.int64, "step": np.int64, "env_index": np.int64,
           "extrinsic_reward": float, "done": bool}


def collect_captions(env_fn: EnvFactory, *, n_steps: int, n_envs: int = 1, seed: int = 0, policy: Any = None,
                     progress: bool = True, desc: str = "captions") -> pd.DataFrame:
    """Run ``policy`` for ``n_steps`` environment steps in total and return one row per observation.

    Example:
        >>> import functools
        >>> from llm_reward.envs import make_env
        >>> frame = collect_captions(functools.partial(make_env, "MiniGrid-DoorKey-5x5-v0", max_episode_steps=9),
        ...                          n_steps=20, n_envs=2, seed=0, progress=False)
        >>> list(frame.columns)[:3], len(frame) > 20
        (['caption', 'progress', 'episode'], True)

    Args:
        env_fn: builds one captioned env from its seed (``env_fn(seed=...)``), e.g.
            ``functools.partial(llm_reward.envs.make_env, env_id, max_episode_steps=100)``.
        n_steps: environment steps summed over envs (rounded up to a multiple of ``n_envs``). Every episode's
            first observation gets a row too (``step`` 0, reward 0), so there are more rows than steps.
        policy: ``None`` for uniform random actions (seeded by ``seed``), an SB3 model (``.predict``), or a
            callable mapping the batch of observations to a batch of actions.
        progress: show a tqdm bar (labelled ``desc``).

    Columns: ``caption``, ``progress`` (the env's oracle, NaN without one), ``episode`` (global index, in order
    of episode start), ``step`` (within the episode), ``env_index``, ``extrinsic_reward``, ``done``.
    """
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}")
    if not isinstance(n_envs, (int, np.integer)) or n_envs < 1:
        raise ValueError(f"n_envs must be an integer >= 1, got {n_envs!r}")
    if policy is not None and not (hasattr(policy, "predict") or callable(policy)):
        raise TypeError(f"policy must be None, an SB3 model or a callable obs -> actions, got {type(policy).__name__}")

    venv = make_vec_env(env_fn, n_envs=n_envs, seed=seed)
    try:
        act = _actor(policy, venv.action_space, n_envs, seed)
        rows: dict[str, list[Any]] = {column: [] for column in COLUMNS}

        def add(info: dict[str, Any], episode: int, step: int, env_index: int, reward: float, done: bool) -> None:
            for column, value in zip(COLUMNS, (info[CAPTION_KEY], info.get(PROGRESS_KEY, math.nan), episode, step,
                                               env_index, reward, done)):
                rows[column].append(value)

        obs = venv.reset()
        dones = np.ones(n_envs, dtype=bool)
        episode, step = list(range(n_envs)), [0] * n_envs
        next_episode = n_envs
        for i in range(n_envs):
            add(venv.reset_infos[i], episode[i], 0, i, 0.0, False)
        n_iterations = math.ceil(n_steps / n_envs)
        with tqdm(total=n_iterations * n_envs, unit="step", desc=desc, disable=not progress) as bar:
            for _ in range(n_iterations):
                obs, rewards, dones, infos = venv.step(act(obs, dones))
                for i in range(n_envs):
                    step[i] += 1
                    add(infos[i], episode[i], step[i], i, float(rewards[i]), bool(dones[i]))
                    if dones[i]:
                        episode[i], step[i], next_episode = next_episode, 0, next_episode + 1
                        add(venv.reset_infos[i], episode[i], 0, i, 0.0, False)
                bar.update(n_envs)
    finally:
        venv.close()
    return pd.DataFrame(rows).astype(_DTYPES)


def _actor(policy: Any, action_space: Any, n_envs: int, seed: int) -> Callable[[Any, np.ndarray], np.ndarray]:
    """``act(obs, episode_start) -> actions``; ``episode_start`` marks the envs whose episode just began."""
    if policy is None:
        action_space.seed(seed)
        return lambda obs, _starts: np.stack([action_space.sample() for _ in range(n_envs)])
    if not hasattr(policy, "predict"):
        return lambda obs, _starts: np.asarray(policy(obs))
    state = None  # a recurrent policy's LSTM state, reset where an episode starts; None for the others

    def act(obs: Any, episode_start: np.ndarray) -> np.ndarray:
        nonlocal state
        actions, state = policy.predict(obs, state=state, episode_start=episode_start, deterministic=False)
        return actions

    return act


def save_rollouts(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``frame`` to ``path`` as parquet atomically (a crash never leaves a half-written file)."""
    missing = [c for c in ("caption",) if c not in frame.columns]
    if missing:
        raise ValueError(f"rollouts need columns {missing}, got {list(frame.columns)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        frame.to_parquet(tmp, index=False, engine="pyarrow")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_rollouts(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read rollouts written by :func:`save_rollouts`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no rollouts file at {path}")
    frame = pd.read_parquet(path, engine="pyarrow")
    if "caption" not in frame.columns:
        raise ValueError(f"{path} is not a rollouts file: no 'caption' column (columns {list(frame.columns)})")
    return frame
