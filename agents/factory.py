"""``make_agent``: an SB3 algorithm with per-env-family defaults, built from the VecEnv's spaces.

The defaults are config, not code: ``family_defaults`` of ``conf/agent/<algo>.yaml`` (the same file a Hydra run
composes as ``agent``), with class-valued options as ``{_target_: hydra.utils.get_class, path: ...}`` nodes that
Hydra's ``instantiate`` builds. The family is read from the observation space, so the caller never names it:

- ``minigrid``: a symbolic (7, 7, 3) uint8 image -> :class:`MiniGridCNN` (rl-starter-files PPO settings);
- ``nethack``: a Dict with glyphs/blstats/message -> :class:`NetHackExtractor` + ``MultiInputPolicy``
  (Motif/NLE-baseline flavoured: gamma 0.999, small entropy bonus, grad-norm clip 4; rollouts sized for a CPU);
- ``vector``: a flat Box (MuJoCo, Adroit, classic control) -> MLP with the PPO/SAC/TD3 papers' settings;
- ``goal``: a goal-conditioned Dict (observation / achieved_goal / desired_goal: Fetch, mazes) ->
  ``MultiInputPolicy`` with rl-baselines3-zoo's Fetch settings (gamma 0.95, lr 1e-3, learning_starts 1000).
  ``sac_her`` is SAC with ``HerReplayBuffer`` (future strategy, 4 relabelled goals per transition), the usual
  baseline on these sparse tasks; plain ``sac`` keeps every reward as the env (and any shaping) paid it, which is
  what a learned reward needs: HER recomputes relabelled rewards with the env's ``compute_reward``, which knows
  nothing of an intrinsic reward.

``recurrent_ppo`` (sb3-contrib's ``RecurrentPPO``) is PPO with an LSTM after the same extractor, for tasks a
memoryless policy cannot solve from one egocentric view (RedBlueDoors: was the red door, now out of view, opened?).

Hydra's ``agent.kwargs`` arrive as ``overrides``: OmegaConf merges them into the defaults, dicts key by key (so
``policy_kwargs.features_extractor_kwargs.features_dim`` can be changed alone), anything else replaces.
Class-valued options may be given as dotted import paths (``activation_fn: torch.nn.Tanh``).
"""

from __future__ import annotations

import importlib
import inspect
from importlib import resources
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from sb3_contrib import RecurrentPPO
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.vec_env import VecEnv

from .policies import NETHACK_KEYS

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "recurrent_ppo": RecurrentPPO, "a2c": A2C, "dqn": DQN,
                                         "sac": SAC, "td3": TD3, "sac_her": SAC}
DISCRETE_ONLY = ("dqn",)
CONTINUOUS_ONLY = ("sac", "td3", "sac_her")
#: Keys of a goal-conditioned observation (gymnasium-robotics' GoalEnv): what HerReplayBuffer relabels.
GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")
#: Env-id prefixes whose action space is known to be Discrete, so validate_algo need not build them.
DISCRETE_ENV_PREFIXES = ("MiniGrid-", "BabyAI-", "NetHack")
#: Policy options that take a class; a string there is an import path (``activation_fn: torch.nn.Tanh``).
_POLICY_CLASS_KEYS = ("activation_fn", "features_extractor_class", "optimizer_class")


def algo_class(algo: str) -> type[BaseAlgorithm]:
    """The SB3 class for ``algo`` (case-insensitive); ValueError listing the allowed names otherwise."""
    return ALGOS[_algo_key(algo)]


def _algo_key(algo: str) -> str:
    key = algo.strip().lower() if isinstance(algo, str) else None
    if key not in ALGOS:
        raise ValueError(f"unknown algo {algo!r}; choose one of {sorted(ALGOS)}")
    return key


def check_algo_action_space(algo: str, action_space: spaces.Space) -> None:
    """DQN needs Discrete actions, SAC/TD3 need Box actions; PPO/A2C take either."""
    key = _algo_key(algo)
    if key in DISCRETE_ONLY and not isinstance(action_space, spaces.Discrete):
        raise ValueError(f"algo {key!r} needs a Discrete action space, got {action_space}; "
                         f"use one of {sorted(set(ALGOS) - set(DISCRETE_ONLY))}")
    if key in CONTINUOUS_ONLY and not isinstance(action_space, spaces.Box):
        raise ValueError(f"algo {key!r} needs a Box (continuous) action space, got {action_space}; "
                         f"use one of {sorted(set(ALGOS) - set(CONTINUOUS_ONLY))}")


def validate_algo(algo: str, env_id: str) -> None:
    """Fail fast on an algo the env cannot use, before any rollout, annotation or training starts.

    MiniGrid, BabyAI and NetHack ids are known to be Discrete; any other id is built once to read its action space.
    """
    algo_class(algo)
    if env_id.startswith(DISCRETE_ENV_PREFIXES):
        check_algo_action_space(algo, spaces.Discrete(2))
        return
    try:
        env = gym.make(env_id)
    except gym.error.NameNotFound:
        try:  # robotics ids (Adroit, Fetch, ...) are registered by importing the package
            importlib.import_module("gymnasium_robotics")
        except ImportError as exc:
            raise ValueError(f"unknown env id {env_id!r} (gymnasium_robotics is not installed either)") from exc
        env = _make_or_explain(env_id)
    except gym.error.Error as exc:
        raise ValueError(f"cannot build env {env_id!r} to check its action space: {exc}") from exc
    try:
        check_algo_action_space(algo, env.action_space)
    finally:
        env.close()


def _make_or_explain(env_id: str) -> gym.Env:
    try:
        return gym.make(env_id)
    except gym.error.Error as exc:
        raise ValueError(f"cannot build env {env_id!r} to check its action space: {exc}") from exc


def env_family(observation_space: spaces.Space) -> str:
    """``"minigrid"``, ``"nethack"``, ``"goal"`` or ``"vector"`` from the observation space; ValueError otherwise."""
    if isinstance(observation_space, spaces.Dict) and set(NETHACK_KEYS) <= set(observation_space.spaces):
        return "nethack"
    if isinstance(observation_space, spaces.Dict) and set(observation_space.spaces) == set(GOAL_KEYS):
        return "goal"
    if isinstance(observation_space, spaces.Box):
        shape = observation_space.shape
        if observation_space.dtype == np.uint8 and len(shape) == 3 and 3 in (shape[0], shape[-1]):
            return "minigrid"
        if len(shape) == 1:
            return "vector"
    raise ValueError(
        f"unsupported observation space {observation_space}; supported: a MiniGrid symbolic image "
        f"(H, W, 3) uint8 (ImgObsWrapper), a Dict with keys {list(NETHACK_KEYS)} (NetHack), a goal-conditioned "
        f"Dict with keys {list(GOAL_KEYS)} (Fetch, mazes), or a flat Box")


def family_defaults(algo: str) -> DictConfig:
    """The per-env-family constructor keywords of ``algo``: ``family_defaults`` of ``conf/agent/<algo>.yaml``.

    Args:
        algo: an algorithm name of :data:`ALGOS` (case-insensitive).

    Returns:
        A DictConfig ``{family: {keyword: value}}``; class-valued options are ``_target_`` nodes, not classes yet.

    Example:
        >>> family_defaults("ppo").minigrid.n_steps
        256
    """
    key = _algo_key(algo)
    return OmegaConf.load(resources.files("llm_reward.conf").joinpath("agent", f"{key}.yaml")).family_defaults


def _defaults_node(algo: str, observation_space: spaces.Space, action_space: spaces.Space, n_envs: int,
                   table: Any) -> DictConfig:
    """The family's defaults of ``algo`` as a config node, with the rules that depend on the spaces applied."""
    key = _algo_key(algo)
    check_algo_action_space(key, action_space)
    family = env_family(observation_space)
    if key == "sac_her" and family != "goal":
        raise ValueError(f"agent.algo='sac_her' needs a goal-conditioned Dict observation with keys {list(GOAL_KEYS)} "
                         f"(e.g. FetchReach-v4), got {observation_space}; use agent=sac")
    table = family_defaults(key) if table is None else table
    if family not in table:
        having = [name for name in ALGOS if family in family_defaults(name)]
        raise ValueError(f"algo {key!r} has no settings for the {family} family; choose one of {having}")
    node = OmegaConf.create(table[family])
    if family in ("vector", "goal") and key in ("ppo", "recurrent_ppo"):  # 2048 transitions per update in all
        node.n_steps = max(64, int(node.n_steps) // n_envs)
    return node


def agent_defaults(algo: str, observation_space: spaces.Space, action_space: spaces.Space,
                   n_envs: int = 1, table: Any = None) -> dict[str, Any]:
    """The constructor keywords ``make_agent`` would use before overrides, classes resolved.

    Args:
        algo: an algorithm name of :data:`ALGOS` (case-insensitive).
        observation_space: picks the env family (:func:`env_family`).
        action_space: checked against the algorithm (:func:`check_algo_action_space`); TD3's action noise is
            sized on it.
        n_envs: the number of envs (PPO on vector / goal envs divides its 2048-step rollout among them).
        table: the per-family defaults (``agent.family_defaults`` of the run's config); None: the packaged
            ``conf/agent/<algo>.yaml`` (:func:`family_defaults`).

    Returns:
        A fresh dict of constructor keywords.

    Example:
        >>> import numpy as np
        >>> image = spaces.Box(0, 255, (7, 7, 3), np.uint8)
        >>> params = agent_defaults("ppo", image, spaces.Discrete(7))
        >>> params["policy"], params["policy_kwargs"]["features_extractor_class"].__name__
        ('CnnPolicy', 'MiniGridCNN')
    """
    node = _defaults_node(algo, observation_space, action_space, n_envs, table)
    return _with_action_noise(algo, action_space, instantiate(node, _convert_="all"))


def _with_action_noise(algo: str, action_space: spaces.Space, params: dict[str, Any]) -> dict[str, Any]:
    """TD3 explores with Gaussian action noise, sigma 0.1 per action dimension, unless one is given."""
    if _algo_key(algo) == "td3" and isinstance(action_space, spaces.Box) and "action_noise" not in params:
        dim = action_space.shape[0]
        params["action_noise"] = NormalActionNoise(np.zeros(dim), 0.1 * np.ones(dim))
    return params


def make_agent(algo: str, venv: VecEnv, *, seed: int, tensorboard_log: str | None = None,
               family_defaults: Any = None, **overrides: Any) -> BaseAlgorithm:
    """An untrained SB3 ``algo`` on ``venv`` (CPU, seeded, quiet) with per-family defaults and ``overrides``.

    Args:
        algo: ``ppo``, ``recurrent_ppo``, ``a2c``, ``dqn``, ``sac``, ``td3`` or ``sac_her`` (case-insensitive).
        venv: the training VecEnv; its observation space picks the family's defaults (:func:`agent_defaults`).
        seed: the agent's seed.
        tensorboard_log: a TensorBoard directory (None: no logging).
        family_defaults: the per-family defaults (``agent.family_defaults`` of a run's config); None: the packaged
            ``conf/agent/<algo>.yaml``.
        **overrides: constructor keywords of the SB3 class; dicts merge key by key into the defaults (OmegaConf
            merge), ``{_target_: ...}`` nodes are built with Hydra, and class-valued policy options may be import
            paths (``policy_kwargs={"activation_fn": "torch.nn.Tanh"}``).

    Returns:
        The SB3 algorithm, not trained yet.

    Raises:
        ValueError: an unknown algo, an algo/action-space mismatch, an unsupported observation space or an override
            the SB3 class does not accept, all before any network is built.

    Example:
        >>> from llm_reward.envs import make_vec_env
        >>> venv = make_vec_env("MiniGrid-DoorKey-5x5-v0", n_envs=2, seed=0)
        >>> agent = make_agent("ppo", venv, seed=0, n_steps=64, batch_size=64)
        >>> type(agent.policy.features_extractor).__name__, agent.n_steps
        ('MiniGridCNN', 64)
    """
    cls = algo_class(algo)
    node = _defaults_node(algo, venv.observation_space, venv.action_space, venv.num_envs, family_defaults)
    allowed = set(inspect.signature(cls.__init__).parameters) - {"self", "env", "seed"}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ValueError(f"{cls.__name__} does not accept {unknown}; allowed keys: {sorted(allowed)}")
    try:
        merged = OmegaConf.merge(node, OmegaConf.create(_class_paths_as_targets(overrides),
                                                        flags={"allow_objects": True}))
        params = instantiate(merged, _convert_="all")
    except (OmegaConfBaseException, InstantiationException) as exc:
        raise ValueError(f"agent keywords: {exc}") from exc
    params = {"device": "cpu", "verbose": 0, **_with_action_noise(algo, venv.action_space, params)}
    return cls(env=venv, seed=seed, tensorboard_log=tensorboard_log, **params)


def _class_paths_as_targets(overrides: dict[str, Any]) -> dict[str, Any]:
    """Import paths given for class-valued options (``replay_buffer_class``, ``policy_kwargs.activation_fn``, ...)
    as ``{_target_: hydra.utils.get_class}`` nodes, so Hydra imports them with the rest."""
    def target(value: Any) -> Any:
        return {"_target_": "hydra.utils.get_class", "path": value} if isinstance(value, str) else value

    out = dict(overrides)
    if "replay_buffer_class" in out:
        out["replay_buffer_class"] = target(out["replay_buffer_class"])
    if isinstance(out.get("policy_kwargs"), dict):
        out["policy_kwargs"] = {k: target(v) if k in _POLICY_CLASS_KEYS else v
                                for k, v in out["policy_kwargs"].items()}
    return out
