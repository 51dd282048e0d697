"""Which captioner, progress oracle and wrappers belong to an environment id, and how the env is built.

Built in: every MiniGrid/BabyAI id and every NLE (NetHack*) id. Anything else is registered by the user::

    from llm_reward.envs import EnvAdapter, register_adapter

    def describe(obs, info):                      # module level, so SubprocVecEnv workers can unpickle it
        return f"The cart is at {obs[0]:.1f}."

    register_adapter("CartPole-v1", EnvAdapter.from_function("cartpole", describe, goal="keep the pole upright"))
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, SupportsFloat

import gymnasium as gym

from llm_reward import training
from llm_reward.envs import task
from llm_reward.importing import import_object
from llm_reward.shaping.captions import CaptionWrapper, FunctionCaptioner
from llm_reward.types import Captioner, ProgressFn


@dataclass(frozen=True)
class Milestone:
    """A named stage of a task, ``predicate(info)`` true on a step where the episode has reached it.

    An adapter declares its milestones in the order an episode reaches them (DoorKey: the key, the door, the
    goal). Eureka's failure diagnosis reports the share of training episodes that reached each one at any step,
    so the reward-code writer reads "most episodes never opened the door" instead of a raw progress number. The
    predicate reads only the step's ``info`` (plain numbers) and must not raise for a missing key; define it at
    module level (or as a ``functools.partial`` of one) so it pickles.

    Example:
        >>> lit = Milestone("lit the lamp", lambda info: info.get("lamp_on", 0) == 1)  # module level in real code
        >>> lit.name, lit.predicate({"lamp_on": 1}), lit.predicate({})
        ('lit the lamp', True, False)
    """

    name: str
    predicate: Callable[[Mapping[str, Any]], bool]


class SuccessFn(Protocol):
    """Decides ``info["is_success"]`` on an episode's final step."""

    def __call__(self, env: gym.Env, reward: SupportsFloat, terminated: bool, truncated: bool,
                 info: dict[str, Any]) -> bool: ...


@dataclass(frozen=True)
class EnvAdapter:
    """Everything llm_reward needs to know about one environment family.

    ``goal`` is the task sentence for the judge prompt (``None``: the family's default goal in
    ``llm_reward.feedback.prompts``); ``make_kwargs`` go to ``gym.make``; ``inner_wrapper`` fixes the raw env
    (seeding, API quirks) below ``Monitor`` and must not change rewards; ``obs_wrapper`` is applied outermost,
    after captioning, to give agents an array observation; ``success`` marks ``info["is_success"]`` (``None``:
    keep the env's own ``is_success``, else False). ``progress`` is shared by every env built from this adapter
    instance: keep it stateless, or register a factory that returns a fresh adapter per call (as MiniGrid does).
    ``milestones``: the task's ordered stages (:class:`Milestone`), for Eureka's failure diagnosis; none by default.
    ``eval_deterministic``: how Eureka's final policies act on their fresh evaluation episodes: the argmax action
    (SB3's convention, right for continuous control) or, ``False``, sampled actions (MiniGrid, NetHack: an argmax
    policy there can turn against a wall forever, so a policy that solves the task when sampling scores 0).

    Example:
        >>> def describe(obs, info):  # define it at module level: vectorized envs import it by name
        ...     return f"The cart is {'left' if obs[0] < 0 else 'right'} of the centre."
        >>> adapter = EnvAdapter.from_function("cartpole", describe, goal="keep the pole upright")
        >>> adapter.make_captioner()(None, [0.3, 0.0, 0.0, 0.0], {}), adapter.captioner_name
        ('The cart is right of the centre.', 'cartpole:describe')
    """

    family: str
    captioner_factory: Callable[[], Captioner]
    captioner_name: str
    goal: str | None = None
    progress: ProgressFn | None = None
    success: SuccessFn | None = None
    make_kwargs: Mapping[str, Any] = field(default_factory=dict)
    inner_wrapper: Callable[[gym.Env], gym.Env] | None = None
    obs_wrapper: Callable[[gym.Env], gym.Env] | None = None
    milestones: tuple[Milestone, ...] = ()
    eval_deterministic: bool = True

    def make_captioner(self) -> Captioner:
        """A fresh captioner (captioners keep per-episode state, so every env gets its own)."""
        return self.captioner_factory()

    @classmethod
    def from_function(cls, family: str, fn: Callable[[Any, dict[str, Any]], str], *, name: str | None = None,
                      goal: str | None = None, progress: ProgressFn | None = None,
                      success: SuccessFn | None = None, **kwargs: Any) -> EnvAdapter:
        """An adapter around a plain ``fn(obs, info) -> str`` captioner (define ``fn`` at module level)."""
        name = name or f"{family}:{getattr(fn, '__qualname__', type(fn).__name__)}"
        return cls(family=family, captioner_factory=functools.partial(FunctionCaptioner, fn, name),
                   captioner_name=name, goal=goal, progress=progress, success=success, **kwargs)


AdapterFactory = Callable[[str], EnvAdapter]
_REGISTRY: dict[str, AdapterFactory] = {}
_HOW_TO_REGISTER = ("register one with llm_reward.envs.register_adapter(id_or_prefix, adapter), e.g. "
                    "register_adapter('MyEnv-v0', EnvAdapter.from_function('myenv', caption_fn)) with a module-level "
                    "caption_fn(obs, info) -> str")


def register_adapter(prefix_or_id: str, adapter: EnvAdapter | AdapterFactory) -> None:
    """Use ``adapter`` (or ``adapter(env_id)`` when it is a factory) for ids equal to or starting with ``prefix_or_id``.

    An exact id wins over a prefix, a longer prefix over a shorter one; registering again replaces the entry. From
    the command line, ``env.adapter=module:attr`` registers one for ``env.id`` (:func:`load_adapter`).

    Args:
        prefix_or_id: a Gymnasium id (``"FrozenLake-v1"``) or an id prefix (``"MiniGrid-"``).
        adapter: an :class:`EnvAdapter`, or a factory ``env_id -> EnvAdapter``.

    Raises:
        ValueError: an empty ``prefix_or_id``.
        TypeError: ``adapter`` is neither.

    Example:
        >>> def where(obs, info):
        ...     return f"The player is on square {int(obs)}."
        >>> register_adapter("FrozenLake-v1", EnvAdapter.from_function("frozen lake", where, goal="reach the gift"))
        >>> env = make_env("FrozenLake-v1", seed=0)
        >>> _, info = env.reset(seed=0)
        >>> info["caption"], captioner_name("FrozenLake-v1")
        ('The player is on square 0.', 'frozen lake:where')
    """
    if not isinstance(prefix_or_id, str) or not prefix_or_id:
        raise ValueError(f"prefix_or_id must be a non-empty string, got {prefix_or_id!r}")
    if isinstance(adapter, EnvAdapter):
        adapter = functools.partial(_constant, adapter)
    elif not callable(adapter):
        raise TypeError(f"adapter must be an EnvAdapter or a callable env_id -> EnvAdapter, "
                        f"got {type(adapter).__name__}")
    _REGISTRY[prefix_or_id] = adapter


def load_adapter(spec: str, env_id: str) -> EnvAdapter:
    """The adapter that ``spec`` (``"package.module:attr"``) names for ``env_id``: what ``env.adapter`` in a config
    and ``llm-reward-train env.adapter=...`` on the command line point at.

    ``attr`` is an :class:`EnvAdapter`, a factory ``attr(env_id) -> EnvAdapter``, or a plain caption function
    ``attr(obs, info) -> str`` (its family is the id without its version, e.g. ``FrozenLake``; give the judge a goal
    with ``feedback.goal='text:...'`` or write an :class:`EnvAdapter` with ``goal=``).

    Args:
        spec: import path of the adapter, factory or caption function (``module:attr`` or ``module.attr``).
        env_id: the Gymnasium id the adapter is for (passed to a factory).

    Returns:
        The adapter (not registered: :func:`register_adapter` does that).

    Raises:
        ValueError: ``spec`` does not import, or names something that is neither of the three.

    Example:
        >>> adapter = load_adapter("llm_reward.envs.classic:adapter", "CartPole-v1")  # a factory env_id -> adapter
        >>> adapter.captioner_name
        'vector-state-v1'
    """
    target = import_object(spec)
    if isinstance(target, EnvAdapter):
        return target
    if not callable(target):
        raise ValueError(f"{spec!r} is a {type(target).__name__}, not an EnvAdapter, a factory env_id -> EnvAdapter "
                         "or a caption function (obs, info) -> str")
    try:
        required = [p for p in inspect.signature(target).parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):  # a builtin without a signature: treat it as a caption function
        required = [None, None]
    if len(required) == 1:
        adapter = target(env_id)
        if not isinstance(adapter, EnvAdapter):
            raise ValueError(f"{spec}({env_id!r}) returned {type(adapter).__name__}, not an EnvAdapter")
        return adapter
    if len(required) == 2:
        family = env_id.rsplit("-v", 1)[0]
        return EnvAdapter.from_function(family, target, name=f"{family}:{spec}")
    raise ValueError(f"{spec!r} takes {len(required)} arguments: expected an EnvAdapter, a factory env_id -> "
                     "EnvAdapter or a caption function (obs, info) -> str")


def _constant(adapter: EnvAdapter, env_id: str) -> EnvAdapter:
    return adapter


def get_adapter(env_id: str) -> EnvAdapter:
    """The adapter for ``env_id``; ValueError if the id is unknown to Gymnasium or has no captioner.

    Example:
        >>> get_adapter("MiniGrid-DoorKey-5x5-v0").family, get_adapter("CartPole-v1").family
        ('minigrid', 'classic')
    """
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env_id must be a non-empty Gymnasium id, got {env_id!r}")
    factory = _lookup(env_id)
    if factory is not None:
        adapter = factory(env_id)
        if not isinstance(adapter, EnvAdapter):
            raise TypeError(f"adapter factory for {env_id!r} returned {type(adapter).__name__}, not EnvAdapter")
        return adapter
    return _detect(env_id)


def captioner_name(env_id: str) -> str:
    """Name of the caption format of ``env_id`` (reward models refuse captions of another format).

    Rollouts, labels and reward models are keyed on it, so a captioner change never reuses captions written in the
    old format.

    Args:
        env_id: a Gymnasium id with an adapter (built in or registered with :func:`register_adapter`).

    Returns:
        The adapter's ``captioner_name``, e.g. ``minigrid-text-nomission-v1``.

    Raises:
        ValueError: no adapter handles ``env_id``.

    Example:
        >>> captioner_name("CartPole-v1")
        'vector-state-v1'
    """
    return get_adapter(env_id).captioner_name


def _lookup(env_id: str) -> AdapterFactory | None:
    if env_id in _REGISTRY:
        return _REGISTRY[env_id]
    prefixes = [p for p in _REGISTRY if env_id.startswith(p)]
    return _REGISTRY[max(prefixes, key=len)] if prefixes else None


def _detect(env_id: str) -> EnvAdapter:
    """Fallback for ids without a known prefix: build the env once and look at its unwrapped class."""
    from llm_reward.envs import minigrid as minigrid_family
    from llm_reward.envs import nethack as nethack_family
    from llm_reward.envs import classic as classic_family
    from llm_reward.envs import robotics as robotics_family

    families = [minigrid_family, nethack_family, robotics_family]
    for family in families:
        family.register_gym_envs()
    if env_id not in gym.registry:
        raise ValueError(f"unknown env id {env_id!r}: it is not registered with Gymnasium (import the package that "
                         f"registers it first) and has no llm_reward adapter; {_HOW_TO_REGISTER}")
    if robotics_family.owns_id(env_id):  # MuJoCo / gymnasium-robotics: known from the entry point, nothing built
        return robotics_family.adapter(env_id)
    if classic_family.owns_id(env_id):  # classic control / Box2D: vector observations, named fields
        return classic_family.adapter(env_id)
    env = gym.make(env_id, disable_env_checker=True)
    try:
        for family in families:
            if family.owns(env.unwrapped):
                return family.adapter(env_id)
    finally:
        env.close()
    raise ValueError(f"env id {env_id!r} has no captioner: built-in adapters cover MiniGrid-*/BabyAI-* (any "
                     f"MiniGridEnv), NetHack* (any NLE env), robotic sims (any Gymnasium MuJoCo or "
                     f"gymnasium-robotics env) and Gymnasium's classic-control / Box2D tasks; {_HOW_TO_REGISTER}")


def success_rule(adapter: EnvAdapter, env_id: str, success: str | SuccessFn | None = None) -> SuccessFn | None:
    """The success rule an env of ``adapter`` gets: ``success`` (criterion text or callable) or the adapter's own.

    Raises ValueError for a criterion that does not parse, or when the env has no success flag, the adapter no
    criterion and the caller none (config key ``env.success``).
    """
    rule = adapter.success if success is None else task.success_fn(env_id, success)
    if isinstance(rule, task.UndefinedSuccess):
        raise ValueError(rule.message)
    return rule


def make_env(env_id: str, *, seed: int | None = None, max_episode_steps: int | None = None,
             success: str | SuccessFn | None = None, **kwargs: Any) -> gym.Env:
    """A captioned env ready for SB3.

    Stack (inside out): ``gym.make`` -> the family's inner wrapper (NetHack: game seeding) -> ``Monitor`` (true
    return and length) -> :class:`StepInfo` -> ``CaptionWrapper`` (``info["caption"]``, ``info["progress"]``) ->
    :class:`SuccessInfo` (``info["is_success"]``) -> the family's observation wrapper. ``success`` replaces the
    adapter's success rule: a criterion over the last step's info such as ``"mean_forward_velocity >= 3"`` (see
    :mod:`llm_reward.envs.task`) or a :class:`SuccessFn`. ``kwargs`` go to ``gym.make``. With ``seed`` the env is
    reset once with it and its action space seeded, so it is reproducible even if later resets pass no seed.

    Args:
        env_id: a Gymnasium id with an adapter (built in, or registered with :func:`register_adapter`).
        seed: reset once with it and seed the action space (None: neither).
        max_episode_steps: the episode limit (None: the env's own).
        success: replaces the adapter's success rule (criterion text or a :class:`SuccessFn`).
        **kwargs: passed to ``gym.make``.

    Returns:
        The wrapped env: every step's ``info`` has ``caption`` (and ``progress`` where there is an oracle), the
        last step of an episode ``is_success``.

    Example:
        >>> env = make_env("MiniGrid-DoorKey-5x5-v0", seed=0, max_episode_steps=3)
        >>> _, info = env.reset(seed=0)
        >>> for _ in range(3):
        ...     _, _, terminated, truncated, info = env.step(2)
        >>> truncated, info["is_success"], isinstance(info["caption"], str)
        (True, False, True)
    """
    from stable_baselines3.common.monitor import Monitor

    if max_episode_steps is not None and max_episode_steps < 1:
        raise ValueError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps}")
    adapter = get_adapter(env_id)
    success_rule(adapter, env_id, success)  # a bad or missing criterion fails before the env is built
    make_kwargs = {**adapter.make_kwargs, **kwargs}
    if max_episode_steps is not None:
        make_kwargs["max_episode_steps"] = max_episode_steps
    env: gym.Env = gym.make(env_id, **make_kwargs)
    if adapter.inner_wrapper is not None:
        env = adapter.inner_wrapper(env)
    env = caption_env(Monitor(env), env_id, success=success)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def make_vec_env(env_id: str, *, n_envs: int, seed: int, subprocess: bool = False,
                 max_episode_steps: int | None = None, **kwargs: Any) -> Any:
    """``n_envs`` envs of :func:`make_env` in a Dummy/SubprocVecEnv, seeded ``seed, seed+1, ...``.

    Args:
        env_id: a Gymnasium id with an adapter.
        n_envs: how many envs.
        seed: the first env's seed (the others count up from it).
        subprocess: one process per env (SubprocVecEnv; pays off for slow envs such as NetHack).
        max_episode_steps: the episode limit (None: the env's own).
        **kwargs: passed to :func:`make_env` (``success=``, ``gym.make`` keywords).

    Returns:
        An SB3 VecEnv whose infos carry the captions.

    Example:
        >>> venv = make_vec_env("MiniGrid-DoorKey-5x5-v0", n_envs=2, seed=0)
        >>> venv.num_envs
        2
        >>> venv.close()
    """
    get_adapter(env_id)  # an unknown id fails here, not inside a worker process
    env_fn = functools.partial(make_env, env_id, max_episode_steps=max_episode_steps, **kwargs)
    return training.make_vec_env(env_fn, n_envs=n_envs, seed=seed, subprocess=subprocess)


def caption_env(env: gym.Env, env_id: str | None = None, *, success: str | SuccessFn | None = None) -> gym.Env:
    """Add captions, progress and success to an env that is already built (and ``Monitor``-wrapped).

    This is the rl-baselines3-zoo entry point: ``env_wrapper: [llm_reward.envs.caption_env]`` after the zoo's own
    ``gym.make`` + ``Monitor``. The adapter is looked up from ``env_id`` or the env's registered spec.

    Args:
        env: the built env.
        env_id: its id (None: the env's registered spec).
        success: replaces the adapter's success rule.

    Returns:
        The env with :class:`StepInfo`, the captioner, :class:`SuccessInfo` and the adapter's observation wrapper.

    Example:
        >>> import gymnasium as gym
        >>> env = caption_env(gym.make("CartPole-v1"))
        >>> _, info = env.reset(seed=0)
        >>> _, _, _, _, info = env.step(0)
        >>> info["caption"].startswith("cart position")
        True
    """
    env_id = env_id or (env.spec.id if env.spec is not None else None)
    if env_id is None:
        raise ValueError("caption_env needs env_id= for an env built without a registered spec")
    adapter = get_adapter(env_id)
    rule = success_rule(adapter, env_id, success)
    env = StepInfo(env)
    env = CaptionWrapper(env, adapter.make_captioner(), adapter.progress)
    env = SuccessInfo(env, rule)
    return adapter.obs_wrapper(env) if adapter.obs_wrapper is not None else env


class StepInfo(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Copies the step's ``action``, ``env_reward`` and ``terminated`` into ``info`` for captioners and oracles.

    Captioners only see ``(env, obs, info)``; events such as "the door is locked" (a toggle that changed nothing)
    or "you completed the mission" (a positive terminal reward) need these.
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = {**info, "action": action, "env_reward": float(reward), "terminated": bool(terminated)}
        return obs, reward, terminated, truncated, info


class SuccessInfo(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Sets a bool ``info["is_success"]`` on the final step of every episode (what SB3 and our recorder read)."""

    def __init__(self, env: gym.Env, success: SuccessFn | None = None):
        gym.utils.RecordConstructorArgs.__init__(self, success=success)
        gym.Wrapper.__init__(self, env)
        self.success = success

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            if self.success is None:
                flag = bool(info.get("is_success", False))
            else:
                flag = bool(self.success(self.env, reward, terminated, truncated, info))
            info = {**info, "is_success": flag}
        return obs, reward, terminated, truncated, info
