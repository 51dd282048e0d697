"""Physical quantities of a robot task, read from the MuJoCo state and observation into ``info`` every step.

:class:`RobotInfo` sits below ``Monitor`` (it changes no reward) and adds, in SI units:

- locomotion (HalfCheetah, Hopper, Walker2d, Ant, Humanoid, Swimmer): ``distance_travelled`` (m along +x since
  reset), ``mean_forward_velocity`` (that distance / simulated time, m/s), ``forward_velocity``, ``torso_height``
  (not for the swimmer, which moves in a horizontal plane);
- HumanoidStandup: ``torso_height``; InvertedPendulum: ``pole_angle`` (rad), ``cart_position``;
  InvertedDoublePendulum: ``pole_tip_height``, ``cart_position``;
- goal tasks (Reacher, Pusher, Fetch, mazes, Adroit relocate): ``goal_distance`` (m), and where an object is
  moved ``gripper_object_distance`` (Fetch ``object_height`` above the table too);
- Adroit: ``door_angle`` / ``palm_handle_distance``, ``nail_depth`` / ``palm_hammer_distance``,
  ``orientation_error`` (rad) / ``pen_offset``, ``palm_ball_distance``; Franka kitchen ``tasks_remaining``.

Captions, progress oracles and success criteria read these keys, so they work the same in SubprocVecEnv workers.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from llm_reward.envs import robotics_tasks


def task_kind(cls: type) -> str:
    """``locomotion``, ``standup``, ``pendulum``, ``double_pendulum``, ``reacher``, ``pusher``, ``fetch``, ``maze``,
    ``door``, ``hammer``, ``pen``, ``relocate``, ``kitchen`` or ``generic``."""
    names = {k.__name__ for k in cls.__mro__}
    if names & set(robotics_tasks.LOCOMOTION):
        return "locomotion"
    by_class = {"HumanoidStandupEnv": "standup", "InvertedPendulumEnv": "pendulum",
                "InvertedDoublePendulumEnv": "double_pendulum", "ReacherEnv": "reacher", "PusherEnv": "pusher",
                "AdroitHandDoorEnv": "door", "AdroitHandHammerEnv": "hammer", "AdroitHandPenEnv": "pen",
                "AdroitHandRelocateEnv": "relocate"}
    for name, kind in by_class.items():
        if name in names:
            return kind
    family = robotics_tasks.family_of(cls)
    return family if family in ("fetch", "maze", "kitchen") else "generic"


def _norm(vector: Any) -> float:
    return float(np.linalg.norm(np.asarray(vector, dtype=np.float64)))


class RobotInfo(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Adds the task's physical quantities to ``info`` on reset and every step (see the module docstring).

    Example:
        >>> env = RobotInfo(gym.make("HalfCheetah-v5"))
        >>> _, info = env.reset(seed=0)
        >>> sorted(k for k in info if k.endswith("velocity"))
        ['forward_velocity', 'mean_forward_velocity']
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self.kind = task_kind(type(env.unwrapped))
        self._planar = any(k.__name__ == "SwimmerEnv" for k in type(env.unwrapped).__mro__)
        self._steps = 0
        self._x0 = 0.0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._steps = 0
        self._x0 = self._x(info)
        return obs, {**info, **self.measure(obs, info)}

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._steps += 1
        # float(): Fetch pays numpy float32 scalars, which SB3's env checker rejects; the value is unchanged.
        return obs, float(reward), terminated, truncated, {**info, **self.measure(obs, info)}

    def _x(self, info: dict[str, Any]) -> float:
        if "x_position" in info:
            return float(info["x_position"])
        data = getattr(self.env.unwrapped, "data", None)
        return float(data.qpos[0]) if data is not None else 0.0

    def _torso_height(self) -> float:
        return float(self.env.unwrapped.data.xpos[1][2])  # body 1: the robot's root body (torso)

    def measure(self, obs: Any, info: dict[str, Any]) -> dict[str, float]:
        base, kind = self.env.unwrapped, self.kind
        if kind == "locomotion":
            distance = self._x(info) - self._x0
            elapsed = self._steps * float(base.dt)
            velocity = info.get("x_velocity", distance / elapsed if elapsed else 0.0)
            out = {"distance_travelled": distance, "mean_forward_velocity": distance / elapsed if elapsed else 0.0,
                   "forward_velocity": float(velocity)}
            if not self._planar:  # the swimmer moves in a horizontal plane: its height says nothing
                out["torso_height"] = self._torso_height()
            return out
        if kind == "standup":
            return {"torso_height": self._torso_height()}
        if kind == "pendulum":
            return {"pole_angle": float(base.data.qpos[1]), "cart_position": float(base.data.qpos[0])}
        if kind == "double_pendulum":
            return {"pole_tip_height": float(base.data.site_xpos[0][2]), "cart_position": float(base.data.qpos[0])}
        if kind == "reacher":
            return {"goal_distance": _norm(base.get_body_com("fingertip") - base.get_body_com("target"))}
        if kind == "pusher":
            return {"goal_distance": _norm(base.get_body_com("object") - base.get_body_com("goal")),
                    "gripper_object_distance": _norm(base.get_body_com("tips_arm") - base.get_body_com("object"))}
        if kind in ("fetch", "maze"):
            out = {"goal_distance": _norm(obs["achieved_goal"] - obs["desired_goal"])}
            state = np.asarray(obs["observation"])
            if kind == "fetch" and state.shape[0] >= 25:  # a block: relative position at 6:9, its height at 5
                out["gripper_object_distance"] = _norm(state[6:9])
                out["object_height"] = float(state[5] - getattr(base, "height_offset", state[5]))
            if kind == "maze" and hasattr(base, "ant_env"):
                out["torso_height"] = float(state[0])
            return out
        if kind == "door":
            return {"door_angle": float(obs[28]), "palm_handle_distance": _norm(obs[35:38])}
        if kind == "hammer":
            return {"nail_depth": float(obs[26]), "palm_hammer_distance": _norm(obs[33:36] - obs[36:39])}
        if kind == "pen":
            cosine = float(np.clip(np.dot(obs[33:36], obs[36:39]), -1.0, 1.0))
            return {"orientation_error": float(np.arccos(cosine)), "pen_offset": _norm(obs[39:42])}
        if kind == "relocate":
            return {"palm_ball_distance": _norm(obs[30:33]), "goal_distance": _norm(obs[36:39])}
        if kind == "kitchen":
            return {"tasks_remaining": float(len(info.get("tasks_to_complete", [])))}
        data = getattr(base, "data", None)
        return {"torso_height": self._torso_height()} if data is not None and len(data.xpos) > 1 else {}
