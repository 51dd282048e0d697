"""Shaped LLM reward for agents: a Gymnasium wrapper, an SB3 VecEnv wrapper and a logging callback.

Both wrappers apply :class:`llm_reward.shaping.Shaper` (the Motif formula, one implementation) to the caption in
``info["caption"]`` written by :class:`~llm_reward.shaping.captions.CaptionWrapper`, and give the same rewards on the
same trajectory (see below for global counts). They add to every step's info:

* ``r_extrinsic`` — the env reward, ``r_intrinsic`` — the bonus before ``alpha_int``, ``caption_count`` — N;
* on the last step of an episode, ``episode_shaped = {"r_extrinsic", "r_intrinsic", "r_shaped"}`` (sums).

Keep ``Monitor`` inside (SB3's ``make_vec_env`` does): ``rollout/ep_rew_mean`` then stays the true env return
and the shaped parts are logged under ``shaped/`` by :class:`ShapedRewardLogger`.

Which to use: :class:`LLMRewardVecEnv` in the learner process (one batched reward-model call per step for all
envs; the model is loaded once); :class:`LLMRewardWrapper` when only env wrappers can be configured, e.g.
rl-baselines3-zoo (each env, and each subprocess, holds its own reward model). One difference follows from that:
with ``count_scope="global"`` each :class:`LLMRewardWrapper` counts the captions its own env has seen, while
:class:`LLMRewardVecEnv` counts over all its envs, so the two give the same rewards with one env, or with
episodic counts (the default).
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from llm_reward.shaping.captions import CAPTION_KEY, CaptionWrapper
from llm_reward.shaping.formula import Shaper, ShapingConfig, check_captioner
from llm_reward.importing import import_object
from llm_reward.reward_model import RewardArtifact
from llm_reward.types import Captioner, CaptionRewardFn, ProgressFn

EPISODE_SHAPED_KEY = "episode_shaped"


def load_reward_model(reward_model: CaptionRewardFn | str | os.PathLike) -> CaptionRewardFn:
    """A reward model object as is; a path (e.g. from a zoo YAML) loaded with ``RewardArtifact.load``."""
    if isinstance(reward_model, (str, os.PathLike)):
        reward_model = RewardArtifact.load(reward_model)
    if not callable(reward_model):
        raise TypeError(f"reward_model must map a list of captions to a float32 array, or be a path to a saved "
                        f"reward model; got {type(reward_model).__name__}")
    return reward_model


def _resolve_captioner(captioner: Captioner | str) -> Captioner:
    """A Captioner, or an import path to one or to a no-argument factory of one (YAML-friendly)."""
    if isinstance(captioner, str):
        captioner = import_object(captioner)
        if isinstance(captioner, type) or (callable(captioner) and not isinstance(captioner, Captioner)):
            captioner = captioner()
    return captioner


def find_captioner_name(env: gym.Env) -> str | None:
    """The name of the captioner of the outermost :class:`CaptionWrapper` around ``env``; None if there is none."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, CaptionWrapper):
            return env.captioner.name
        env = env.env
    return None


def _caption(info: dict[str, Any], where: str) -> str:
    try:
        return info[CAPTION_KEY]
    except KeyError:
        raise KeyError(f"no info[{CAPTION_KEY!r}] at {where}: wrap the env in "
                       f"llm_reward.shaping.captions.CaptionWrapper (or pass captioner=...) so every reset and step is "
                       f"captioned") from None


class LLMRewardWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Replaces the env reward by the shaped reward ``alpha_ext*r_env + alpha_int*bonus(caption)`` (Motif).

    Args:
        env: the Gymnasium env.
        reward_model: any ``CaptionRewardFn`` (captions -> rewards) or the path of a saved reward model.
        captioner: a Captioner or the import path of one; when given, the env is wrapped in a CaptionWrapper first
            (``progress`` goes with it), otherwise an inner CaptionWrapper must provide ``info["caption"]``.
        progress: the progress oracle handed to that CaptionWrapper.
        **shaping: the reward formula's settings (:class:`~llm_reward.shaping.formula.ShapingConfig`).

    Example (a reward model is any function of captions; a saved one is given by its directory):
        >>> import gymnasium as gym, numpy as np
        >>> from llm_reward.shaping.captions import FunctionCaptioner
        >>> left = FunctionCaptioner(lambda obs, info: "left" if obs[0] < 0 else "right", name="side")
        >>> env = LLMRewardWrapper(gym.make("CartPole-v1"), lambda cs: np.array([c == "left" for c in cs], float),
        ...                        captioner=left, alpha_int=0.5, beta=0.0, threshold_quantile=None)
        >>> _ = env.reset(seed=0)
        >>> _, reward, *_, info = env.step(0)
        >>> info["r_extrinsic"], reward == 1.0 + 0.5 * info["r_intrinsic"]
        (1.0, True)

    rl-baselines3-zoo ``hyperparams/ppo.yml`` (wrappers listed innermost first; zoo puts Monitor inside)::

        MiniGrid-DoorKey-8x8-v0:
          env_wrapper:
            - llm_reward.envs.caption_env      # captions, progress, success and the image observation
            - llm_reward.shaping.wrappers.LLMRewardWrapper:
                reward_model: runs/doorkey/reward_model
                form: potential      # scene captions rarely repeat (llm_reward.shaping)
                alpha_int: 0.1
          callback: llm_reward.shaping.wrappers.ShapedRewardLogger
    """

    def __init__(self, env: gym.Env, reward_model: CaptionRewardFn | str | os.PathLike,
                 captioner: Captioner | str | None = None, progress: ProgressFn | None = None, **shaping: Any):
        gym.utils.RecordConstructorArgs.__init__(self, reward_model=reward_model, captioner=captioner,
                                                 progress=progress, **shaping)
        config = ShapingConfig.from_kwargs(shaping)
        if captioner is not None:
            env = CaptionWrapper(env, _resolve_captioner(captioner), progress)
        elif progress is not None:
            raise ValueError("progress is passed to the CaptionWrapper this wrapper builds, so it needs captioner=...")
        gym.Wrapper.__init__(self, env)
        model = load_reward_model(reward_model)
        check_captioner(model, find_captioner_name(env))
        self.shaper = Shaper(model, config, n_envs=1)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.shaper.begin_episode(0, _caption(info, "reset"))
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        shaped, parts = self.shaper.step([reward], [_caption(info, "step")], [terminated])
        info = {**info, **parts[0]}
        if terminated or truncated:
            info[EPISODE_SHAPED_KEY] = self.shaper.end_episode(0)
        return obs, float(shaped[0]), terminated, truncated, info


def _vec_captioner_names(venv: VecEnv) -> list[str | None]:
    """Captioner names of the envs; only the name string crosses process boundaries (never a captioner)."""
    base = venv.unwrapped
    if isinstance(base, DummyVecEnv):
        return [find_captioner_name(env) for env in base.envs]
    if venv.has_attr("captioner_name"):
        return list(venv.get_attr("captioner_name"))
    return [None] * venv.num_envs


class LLMRewardVecEnv(VecEnvWrapper):
    """The same shaped reward as :class:`LLMRewardWrapper`, computed in the learner for all envs at once.

    Each step makes at most one reward-model call, on the captions not seen before (a per-caption cache).
    When an env's episode ends, its terminal step is rewarded first, then its episodic counts restart from the
    first caption of the new episode, read from the inner VecEnv's ``reset_infos`` (SB3 auto-reset).
    ``reset()`` restarts the episodic counts of every env; global counts last as long as the wrapper.

    Also usable as an rl-baselines3-zoo ``vec_env_wrapper``.

    Args:
        venv: the VecEnv; its envs must put ``info["caption"]`` in every step's info (a CaptionWrapper inside,
            as :func:`~llm_reward.envs.make_vec_env` builds them).
        reward_model: any ``CaptionRewardFn`` (a torch module is fine) or the path of a saved reward model.
        **shaping: the reward formula's settings (:class:`~llm_reward.shaping.formula.ShapingConfig`).

    Example:
        >>> import numpy as np
        >>> from llm_reward.envs import make_vec_env
        >>> venv = LLMRewardVecEnv(make_vec_env("MiniGrid-DoorKey-5x5-v0", n_envs=2, seed=0),
        ...                        reward_model=lambda cs: np.ones(len(cs)), alpha_int=0.1, beta=1.0)
        >>> _ = venv.reset()
        >>> _, rewards, _, infos = venv.step(np.array([2, 2]))
        >>> rewards.shape, sorted(k for k in infos[0] if k.startswith("r_"))
        ((2,), ['r_extrinsic', 'r_intrinsic'])
        >>> venv.close()
    """

    def __init__(self, venv: VecEnv, reward_model: CaptionRewardFn | str | os.PathLike, **shaping: Any):
        config = ShapingConfig.from_kwargs(shaping)
        model = load_reward_model(reward_model)
        for name in set(_vec_captioner_names(venv)):
            check_captioner(model, name)
        super().__init__(venv)
        self.shaper = Shaper(model, config, n_envs=venv.num_envs)

    def _reset_captions(self, indices: Any) -> dict[int, str]:
        reset_infos = getattr(self.venv.unwrapped, "reset_infos", None)
        if reset_infos is None:
            raise TypeError(f"{type(self.venv.unwrapped).__name__} keeps no reset_infos; LLMRewardVecEnv needs them "
                            f"to count the first caption of each episode (SB3 >= 2.0 Dummy/SubprocVecEnv keep them)")
        return {int(i): _caption(reset_infos[i], f"reset of env {i}") for i in indices}

    def reset(self) -> Any:
        obs = self.venv.reset()
        for i, caption in self._reset_captions(range(self.num_envs)).items():
            self.shaper.begin_episode(i, caption)
        return obs

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        captions = [_caption(info, f"step of env {i}") for i, info in enumerate(infos)]
        # SB3 folds termination and truncation into dones; a time limit is not an absorbing state.
        terminated = [bool(d) and not info.get("TimeLimit.truncated", False) for d, info in zip(dones, infos)]
        shaped, parts = self.shaper.step(rewards, captions, terminated)
        for info, part in zip(infos, parts):
            info.update(part)
        done_envs = np.flatnonzero(dones)
        for i, caption in self._reset_captions(done_envs).items():
            infos[i][EPISODE_SHAPED_KEY] = self.shaper.end_episode(i)
            self.shaper.begin_episode(i, caption)
        return obs, shaped.astype(np.float32), dones, infos


class ShapedRewardLogger(BaseCallback):
    """Logs ``shaped/ep_{extrinsic,intrinsic,shaped}_mean`` over the last finished episodes at each rollout end.

    Averages over the same window as SB3's ``rollout/ep_rew_mean`` (``stats_window_size``, 100 by default), so the
    two are comparable; ``shaped/ep_extrinsic_mean`` equals ``ep_rew_mean`` when Monitor sees the same episodes.
    Pass it to ``model.learn(callback=...)`` (rl-baselines3-zoo: ``callback:
    llm_reward.shaping.wrappers.ShapedRewardLogger``).

    Args:
        verbose: SB3's verbosity.

    Example:
        >>> from stable_baselines3 import PPO
        >>> from llm_reward.envs import make_vec_env
        >>> env = make_vec_env("MiniGrid-DoorKey-5x5-v0", n_envs=2, seed=0, max_episode_steps=16)
        >>> venv = LLMRewardVecEnv(env, reward_model=lambda captions: np.ones(len(captions), np.float32))
        >>> logger = ShapedRewardLogger()
        >>> agent = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, seed=0).learn(64, callback=logger)
        >>> len(logger.episodes) >= 2, sorted(logger.episodes[0])  # 64 steps of 16-step episodes
        (True, ['r_extrinsic', 'r_intrinsic', 'r_shaped'])
        >>> venv.close()
    """

    def __init__(self, verbose: int = 0):
        super().__init__(verbose)
        self.episodes: deque[dict[str, float]] = deque(maxlen=100)

    def _init_callback(self) -> None:
        self.episodes = deque(self.episodes, maxlen=int(getattr(self.model, "_stats_window_size", 100)))

    def _on_step(self) -> bool:
        for info, done in zip(self.locals["infos"], self.locals["dones"]):
            if done and EPISODE_SHAPED_KEY in info:
                self.episodes.append(info[EPISODE_SHAPED_KEY])
        return True

    def _on_rollout_end(self) -> None:
        if not self.episodes:
            return
        for part, key in (("r_extrinsic", "ep_extrinsic_mean"), ("r_intrinsic", "ep_intrinsic_mean"),
                          ("r_shaped", "ep_shaped_mean")):
            self.logger.record(f"shaped/{key}", float(np.mean([ep[part] for ep in self.episodes])))
