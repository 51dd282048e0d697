"""Robotic sims: Gymnasium MuJoCo v5 and gymnasium-robotics (Fetch, Adroit, PointMaze/AntMaze, ...).

Any id whose env class lives in ``gymnasium.envs.mujoco`` or ``gymnasium_robotics`` gets this adapter (the class
is read from the registered entry point, nothing is built)::

    >>> from llm_reward.envs import make_env
    >>> env = make_env("HalfCheetah-v5", seed=0)
    >>> _, info = env.reset(seed=0)
    >>> info["caption"]
    'torso 0.7 m high, not moving, 0.0 m from the start'

Captions are short and built from rounded physical quantities (:mod:`llm_reward.envs.robotics_info` puts them in
``info``): "torso 0.6 m high, moving forward at 1.2 m/s, 3.4 m from the start"; "gripper 4 cm from the block,
block 21 cm from the target". Progress oracles: distance travelled along +x for locomotion, minus the distance to
the goal for goal tasks (plus 1 on success). Success: the env's own flag, else the documented criterion of
:mod:`llm_reward.envs.robotics_tasks` (override with ``make_env(..., success="...")``). Dict observations (Fetch,
mazes) are kept as they are: SB3's ``MultiInputPolicy`` and ``HerReplayBuffer`` read them.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import gymnasium as gym

from llm_reward.envs import robotics_tasks
from llm_reward.envs.registry import EnvAdapter
from llm_reward.envs.robotics_info import RobotInfo, task_kind
from llm_reward.envs.task import success_fn

CAPTIONER_NAME = "robot-state-v1"
SUCCESS_BONUS = 1.0
#: Progress weight of the gripper-object distance in manipulation (the object-goal distance counts fully).
REACH_WEIGHT = 0.25

register_gym_envs = robotics_tasks.register_gym_envs


def owns(unwrapped: gym.Env) -> bool:
    return robotics_tasks.is_robot(type(unwrapped))


def owns_id(env_id: str) -> bool:
    """True for ids whose registered entry point is a MuJoCo / gymnasium-robotics class (nothing is built)."""
    try:
        return robotics_tasks.is_robot(robotics_tasks.env_class(env_id))
    except Exception:  # an entry point that does not import (missing optional dependency): not ours to judge
        return False


@functools.lru_cache(maxsize=None)
def adapter(env_id: str) -> EnvAdapter:
    """The robot adapter for ``env_id``: state captions, a progress oracle, the task's success criterion.

    Example:
        >>> adapter("FetchReach-v4").family
        'fetch'
    """
    register_gym_envs()
    if env_id not in gym.registry:
        raise ValueError(f"unknown robot env id {env_id!r}; ids look like 'HalfCheetah-v5', 'FetchReach-v4', "
                         f"'AdroitHandDoor-v1' or 'PointMaze_UMaze-v3' (pip install -e '.[mujoco]')")
    cls = robotics_tasks.env_class(env_id)
    description = robotics_tasks.description(cls, cls.__doc__ or "")
    kind = task_kind(cls)
    return EnvAdapter(family=robotics_tasks.family_of(cls),
                      captioner_factory=functools.partial(RobotCaptioner, kind),
                      captioner_name=f"{CAPTIONER_NAME}-{kind}", goal=description[0].lower() + description[1:],
                      progress=RobotProgress(kind), success=success_fn(env_id), inner_wrapper=RobotInfo,
                      obs_wrapper=GoalEnvAccess if callable(getattr(cls, "compute_reward", None)) else None)


class GoalEnvAccess(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Exposes a goal env's ``compute_reward`` / ``compute_terminated`` / ``compute_truncated`` on the outermost
    wrapper (Gymnasium 1.x wrappers do not forward attributes), so the wrapped env is still a GoalEnv to SB3's
    checker and to code that relabels goals. The observation is unchanged: SB3's ``MultiInputPolicy`` and
    ``HerReplayBuffer`` take the dict as it is."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def compute_reward(self, achieved_goal: Any, desired_goal: Any, info: Any) -> Any:
        return self.env.unwrapped.compute_reward(achieved_goal, desired_goal, info)

    def compute_terminated(self, achieved_goal: Any, desired_goal: Any, info: Any) -> Any:
        return self.env.unwrapped.compute_terminated(achieved_goal, desired_goal, info)

    def compute_truncated(self, achieved_goal: Any, desired_goal: Any, info: Any) -> Any:
        return self.env.unwrapped.compute_truncated(achieved_goal, desired_goal, info)


def _cm(metres: float) -> str:
    return f"{metres * 100:.0f} cm" if abs(metres) < 1.0 else f"{metres:.1f} m"


def _num(value: float, digits: int = 1) -> str:
    """Rounded, and never '-0.0'."""
    return f"{round(value, digits) + 0.0:.{digits}f}"


def _motion(velocity: float, digits: int = 1) -> str:
    if round(velocity, digits) == 0:
        return "not moving"
    return f"moving {'forward' if velocity > 0 else 'backward'} at {_num(abs(velocity), digits)} m/s"


class RobotCaptioner:
    """One short sentence of rounded numbers per step, from the quantities :class:`RobotInfo` puts in ``info``.

    Numbers are rounded (0.1 m, 0.1 m/s, 1 cm, 1 degree) so nearby states share a caption while the states a
    judge should tell apart (faster, closer, fallen) differ. ``kind`` is :func:`task_kind` of the env class.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self.name = f"{CAPTIONER_NAME}-{kind}"

    def reset(self) -> None:
        pass

    def __call__(self, env: gym.Env, obs: Any, info: dict[str, Any]) -> str:
        kind, i = self.kind, info
        if kind == "locomotion":
            digits = 1 if "torso_height" in i else 2  # the swimmer (no height) is ten times slower
            height = f"torso {_num(i['torso_height'])} m high, " if "torso_height" in i else ""
            text = (f"{height}{_motion(i['forward_velocity'], digits)}, "
                    f"{_num(i['distance_travelled'], digits)} m from the start")
            return text + (", fallen over" if i.get("terminated") else "")
        if kind == "standup":
            return f"torso {i['torso_height']:.2f} m above the ground"
        if kind == "pendulum":
            side = "right" if i["pole_angle"] >= 0 else "left"
            return (f"pole tilted {abs(math.degrees(i['pole_angle'])):.0f} degrees {side}, "
                    f"cart at {i['cart_position']:.1f} m")
        if kind == "double_pendulum":
            return f"pole tip {i['pole_tip_height']:.2f} m high, cart at {i['cart_position']:.1f} m"
        if kind == "reacher":
            return f"fingertip {_cm(i['goal_distance'])} from the target"
        if kind == "pusher":
            return (f"arm tip {_cm(i['gripper_object_distance'])} from the object, "
                    f"object {_cm(i['goal_distance'])} from the goal")
        if kind == "fetch":
            if "gripper_object_distance" not in i:
                return f"gripper {_cm(i['goal_distance'])} from the target"
            lifted = f", block {_cm(i['object_height'])} above the table" if i["object_height"] > 0.02 else ""
            return (f"gripper {_cm(i['gripper_object_distance'])} from the block, block "
                    f"{_cm(i['goal_distance'])} from the target{lifted}")
        if kind == "maze":
            who = "ant" if "torso_height" in i else "ball"
            return f"{who} {_cm(i['goal_distance'])} from the goal" + (", reached it" if i.get("success") else "")
        if kind == "door":
            return (f"palm {_cm(i['palm_handle_distance'])} from the door handle, door opened "
                    f"{math.degrees(i['door_angle']):.0f} degrees")
        if kind == "hammer":
            return (f"palm {_cm(i['palm_hammer_distance'])} from the hammer, nail driven in "
                    f"{i['nail_depth'] * 100:.0f} cm")
        if kind == "pen":
            return (f"pen {math.degrees(i['orientation_error']):.0f} degrees from the target orientation, "
                    f"{_cm(i['pen_offset'])} from its target position")
        if kind == "relocate":
            return f"palm {_cm(i['palm_ball_distance'])} from the ball, ball {_cm(i['goal_distance'])} from the target"
        if kind == "kitchen":
            return f"{int(i['tasks_remaining'])} kitchen tasks left"
        if "torso_height" in i:
            return f"torso {i['torso_height']:.1f} m high, reward {i.get('env_reward', 0.0):.1f}"
        return f"reward {i.get('env_reward', 0.0):.1f}"


class RobotProgress:
    """Ground-truth progress (higher is better): distance travelled (locomotion), torso height (standup), minus
    the distance to the goal (goal tasks, plus ``SUCCESS_BONUS`` on a success step), pole uprightness."""

    def __init__(self, kind: str):
        self.kind = kind

    def __call__(self, env: gym.Env, obs: Any, info: dict[str, Any]) -> float:
        kind, i = self.kind, info
        bonus = SUCCESS_BONUS * float(bool(i.get("is_success", i.get("success", False))))
        if kind == "locomotion":
            return float(i["distance_travelled"])
        if kind == "standup":
            return float(i["torso_height"])
        if kind == "pendulum":
            return -abs(float(i["pole_angle"]))
        if kind == "double_pendulum":
            return float(i["pole_tip_height"])
        if kind == "door":
            return float(i["door_angle"]) - REACH_WEIGHT * float(i["palm_handle_distance"]) + bonus
        if kind == "hammer":
            return float(i["nail_depth"]) - REACH_WEIGHT * float(i["palm_hammer_distance"]) + bonus
        if kind == "pen":
            return -float(i["orientation_error"]) - float(i["pen_offset"]) + bonus
        if kind == "kitchen":
            return -float(i["tasks_remaining"])
        if "goal_distance" in i:
            near = i.get("gripper_object_distance", i.get("palm_ball_distance", 0.0))
            return -float(i["goal_distance"]) - REACH_WEIGHT * float(near) + bonus
        return float(i.get("env_reward", 0.0))
