"""What a task is, as plain data: the context a reward-code prompt needs, and the success criterion.

``task_spec(env_id)`` works for any registered Gymnasium id (MuJoCo, gymnasium-robotics, MiniGrid, NetHack,
classic control...): a one-line description, the meaning of every observation index (from the env class's own
documentation, see :mod:`llm_reward.envs.task_layout`), the action space, the success criterion, the env's dense
reward terms and info keys (seen in a short seeded rollout) and the source of its observation method::

    >>> from llm_reward.envs import task_spec
    >>> spec = task_spec("HalfCheetah-v5")
    >>> spec.observation_layout[0].name, spec.observation_layout[0].unit, spec.reward_terms
    ('rootz', 'm', ['reward_ctrl', 'reward_forward'])

Success criteria are clauses over the last step's ``info``, joined by ``and``: ``is_success``,
``not terminated``, ``mean_forward_velocity >= 2.0``, ``goal_distance <= 0.02``. ``terminated``,
``truncated`` and ``reward`` are the step's own. Defaults per task are listed in :mod:`llm_reward.envs.robotics_tasks`.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from dataclasses import asdict, dataclass, field
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from minigrid.minigrid_env import MiniGridEnv

from llm_reward.envs import robotics_tasks
from llm_reward.envs.minigrid_info import ACTION_MEANINGS, MiniGridInfo
from llm_reward.envs.robotics_info import RobotInfo
from llm_reward.envs.task_layout import ObsField, class_doc, observation_layout

#: Classic-control tasks with an obvious success: reached the goal (terminated) or balanced until the time limit.
CLASSIC_SUCCESS = {"CartPoleEnv": "not terminated", "MountainCarEnv": "terminated",
                   "Continuous_MountainCarEnv": "terminated", "AcrobotEnv": "terminated"}
#: Families whose success is a rule over the last step: MiniGrid pays a positive reward only for the mission;
#: NLE's end_status 2 is StepStatus.TASK_SUCCESSFUL (never reached by the Score task).
FAMILY_SUCCESS = {"minigrid": "terminated and reward > 0", "nethack": "end_status == 2"}
#: Info keys of an env's own dense reward: MuJoCo's reward_forward / reward_ctrl, IDP's distance_penalty, ...
REWARD_TERM = re.compile(r"^reward_|_(penalty|cost|bonus|reward)$")
OBSERVATION_METHODS = ("_get_obs", "get_obs", "_get_observation", "_get_observations", "gen_obs", "step")
MAX_SOURCE_CHARS = 6000
ROLLOUT_STEPS = 10
STEP_KEYS = frozenset({"terminated", "truncated", "reward"})

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_CLAUSE = re.compile(rf"^(?P<neg>not\s+)?(?P<key>[A-Za-z_]\w*)(?:\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>{_NUMBER}))?$")
_OPS = {">=": np.greater_equal, "<=": np.less_equal, "==": np.equal, "!=": np.not_equal, ">": np.greater,
        "<": np.less}


class InfoCriterion:
    """A success criterion over the final step's ``info`` (a :class:`~llm_reward.envs.SuccessFn`).

    Example:
        >>> ok = InfoCriterion("not terminated and mean_forward_velocity >= 2")
        >>> ok(None, 0.0, False, True, {"mean_forward_velocity": 2.5})
        True
    """

    def __init__(self, text: str):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"env.success must be a criterion such as 'is_success' or 'mean_forward_velocity >= 2.0',"
                             f" got {text!r}")
        self.text = " ".join(text.split())
        self.clauses: list[tuple[bool, str, str | None, float | None]] = []
        for clause in re.split(r"\s+and\s+", self.text):
            match = _CLAUSE.match(clause.strip())
            if match is None:
                raise ValueError(f"env.success={text!r}: cannot read {clause!r}; write clauses '<info key>', "
                                 f"'not <info key>' or '<info key> <op> <number>' (op: >= <= > < == !=) joined by "
                                 f"'and', e.g. 'not terminated and mean_forward_velocity >= 2.0'")
            value = match.group("value")
            self.clauses.append((bool(match.group("neg")), match.group("key"), match.group("op"),
                                 float(value) if value is not None else None))

    @property
    def keys(self) -> list[str]:
        """The info keys the criterion reads (``terminated``, ``truncated``, ``reward``: the step's own)."""
        return [key for _, key, _, _ in self.clauses]

    def __call__(self, env: Any, reward: SupportsFloat, terminated: bool, truncated: bool,
                 info: dict[str, Any]) -> bool:
        values = {**info, "terminated": bool(terminated), "truncated": bool(truncated), "reward": float(reward)}
        result = True
        for negate, key, op, value in self.clauses:
            if key not in values:
                raise ValueError(f"success criterion {self.text!r} reads info[{key!r}], which this env does not "
                                 f"report; its info keys are {sorted(values)} (set env.success / make_env(success=))")
            held = bool(_OPS[op](float(values[key]), value)) if op is not None else bool(values[key])
            result = result and (held != negate)
        return result

    def __repr__(self) -> str:
        return f"InfoCriterion({self.text!r})"


class UndefinedSuccess:
    """Stands for a missing criterion: ``make_env`` raises its message before any env is built."""

    def __init__(self, env_id: str):
        self.env_id = env_id
        self.message = (f"env {env_id!r} reports no success flag (info['is_success']) and llm_reward has no success "
                        f"criterion for it: pass one, e.g. make_env({env_id!r}, success='x_position >= 5') or "
                        f"env.success='goal_distance <= 0.05' in the config (clauses over the last step's info, "
                        f"joined by 'and')")

    def __call__(self, env: Any, reward: SupportsFloat, terminated: bool, truncated: bool,
                 info: dict[str, Any]) -> bool:
        raise ValueError(self.message)


def default_criterion(env_id: str) -> str | None:
    """The built-in success criterion text for ``env_id`` (None: the env has none llm_reward knows of)."""
    cls = robotics_tasks.env_class(env_id)
    return next((CLASSIC_SUCCESS[k.__name__] for k in cls.__mro__ if k.__name__ in CLASSIC_SUCCESS),
                robotics_tasks.default_success(cls) or FAMILY_SUCCESS.get(robotics_tasks.family_of(cls)))


def success_fn(env_id: str, success: Any = None) -> Any:
    """The :class:`SuccessFn` for ``env_id``: ``success`` (criterion text or callable) if given, else the default.

    Returns :class:`UndefinedSuccess` when there is neither (``make_env`` turns it into a clear error).
    """
    if callable(success):
        return success
    if success is not None:
        return InfoCriterion(success)
    default = default_criterion(env_id)
    return InfoCriterion(default) if default is not None else UndefinedSuccess(env_id)


@dataclass(frozen=True)
class TaskSpec:
    """Plain-data description of a task (``as_dict()`` is JSON-serialisable). See :func:`task_spec`."""

    env_id: str
    family: str
    description: str
    observation_layout: list[ObsField]
    observation_shape: str
    action_space: str
    success_criterion: str
    reward_terms: list[str]
    info_keys: list[str]
    observation_source: str | None
    #: What the keys an info wrapper of ours adds mean (MiniGrid's grid state), one line each.
    info_meanings: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ensure_registered(env_id: str) -> None:
    """Import the packages that register ids (gymnasium-robotics, minigrid, nle) until ``env_id`` is known."""
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env.id must be a non-empty Gymnasium id, got {env_id!r}")
    if env_id in gym.registry:
        return
    robotics_tasks.register_gym_envs()
    for module in ("minigrid", "nle", "llm_reward.envs.minigrid"):
        if env_id in gym.registry:
            return
        try:
            __import__(module)
        except ImportError:
            continue
    if env_id not in gym.registry:
        raise ValueError(f"unknown env id {env_id!r}: not registered with Gymnasium, gymnasium-robotics, minigrid or "
                         f"nle (for MuJoCo and robotics ids: pip install -e '.[mujoco]')")


def task_spec(env_id: str, *, success: str | None = None) -> TaskSpec:
    """Describe ``env_id`` for a reward-code prompt; ``success`` overrides the default criterion.

    Builds the env once and runs a seeded random rollout of a few steps to see its info keys. Raises ValueError
    for an unknown id or a criterion that reads an info key the env does not report.

    Example:
        >>> spec = task_spec("FetchReach-v4")
        >>> spec.family, spec.success_criterion
        ('fetch', "is_success: info['is_success'] on the episode's last step")
    """
    ensure_registered(env_id)
    env = gym.make(env_id, disable_env_checker=True)
    try:
        cls = type(env.unwrapped)
        family = robotics_tasks.family_of(cls)
        if robotics_tasks.is_robot(cls):
            env = RobotInfo(env)
        elif isinstance(env.unwrapped, MiniGridEnv):  # what the MiniGrid adapter's make_env adds
            env = MiniGridInfo(env)
        info_keys = _rollout_info_keys(env)
        description = robotics_tasks.description(cls, class_doc(cls))
        action_text = str(env.action_space)
        if isinstance(env.unwrapped, MiniGridEnv):  # a class doc may not say what to do (KeyCorridor): the mission does
            description += f' Its mission reads like "{str(env.unwrapped.mission).strip().rstrip(".")}".'
            action_text += f": {ACTION_MEANINGS}"
        criterion = success if success is not None else default_criterion(env_id)
        if criterion is None and "is_success" in info_keys:
            criterion = "is_success"
        if criterion is not None:
            missing = sorted(set(InfoCriterion(criterion).keys) - set(info_keys) - STEP_KEYS)
            if missing:
                raise ValueError(f"success criterion {criterion!r} for {env_id!r} reads info keys {missing} that the "
                                 f"env does not report; its info keys are {info_keys}")
            criterion_text = f"{criterion}: {_describe(InfoCriterion(criterion))} on the episode's last step"
        else:
            criterion_text = "none: the env reports no success flag; give one with success='<info key> >= <number>'"
        return TaskSpec(
            env_id=env_id, family=family, description=description,
            observation_layout=observation_layout(env), observation_shape=space_text(env.observation_space),
            action_space=action_text, success_criterion=criterion_text,
            reward_terms=[k for k in info_keys if REWARD_TERM.search(k)], info_keys=info_keys,
            observation_source=observation_source(cls), info_meanings=getattr(env, "meanings", {}))
    finally:
        env.close()


def _rollout_info_keys(env: gym.Env) -> list[str]:
    keys: set[str] = set()
    _, info = env.reset(seed=0)
    keys.update(info)
    env.action_space.seed(0)
    for _ in range(ROLLOUT_STEPS):
        *_, terminated, truncated, info = env.step(env.action_space.sample())
        keys.update(info)
        if terminated or truncated:
            break
    return sorted(keys)


def _describe(criterion: InfoCriterion) -> str:
    parts = []
    for negate, key, op, value in criterion.clauses:
        name = key if key in STEP_KEYS else f"info[{key!r}]"
        parts.append(f"{'not ' if negate else ''}{name}" + (f" {op} {value:g}" if op else ""))
    return " and ".join(parts)


def space_text(space: spaces.Space) -> str:
    """``Box(17,)``, ``Dict(observation: Box(10,), achieved_goal: Box(3,), desired_goal: Box(3,))``, ``Discrete(7)``."""
    if isinstance(space, spaces.Box):
        return f"Box{tuple(space.shape)}"
    if isinstance(space, spaces.Dict):
        return "Dict(" + ", ".join(f"{k}: {space_text(v)}" for k, v in space.spaces.items()) + ")"
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
        return str(space)
    return type(space).__name__  # Text / MissionSpace: their repr holds addresses


def observation_source(cls: type) -> str | None:
    """Source of the class's observation method (``_get_obs``, else ``step``) plus the ``self.<method>()`` helpers
    it calls that the env's own package defines; ``None`` when ``inspect`` finds no source."""
    method = next((getattr(cls, name) for name in OBSERVATION_METHODS if callable(getattr(cls, name, None))), None)
    if method is None:
        return None
    try:
        source = textwrap.dedent(inspect.getsource(method))
    except (OSError, TypeError):
        return None
    package = cls.__module__.split(".")[0]
    seen = {method.__name__}
    for name in re.findall(r"self\.(\w+)\(", source):
        helper = getattr(cls, name, None)
        if name in seen or not inspect.isfunction(helper) or not helper.__module__.startswith(package):
            continue
        seen.add(name)
        try:
            source += "\n" + textwrap.dedent(inspect.getsource(helper))
        except (OSError, TypeError):
            continue
    if len(source) > MAX_SOURCE_CHARS:
        source = source[:MAX_SOURCE_CHARS] + "\n# ... (truncated)"
    return source
