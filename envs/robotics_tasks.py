"""What each robotic task is: its family, a one-line description and the default success criterion.

Families are read from the module of the env class (so any id of these packages is covered, not a list of ids):
``mujoco`` (gymnasium.envs.mujoco), ``fetch``, ``adroit``, ``maze``, ``kitchen``, ``shadow_hand`` (gymnasium_robotics).

Success criteria are written in the small language of :class:`llm_reward.envs.task.InfoCriterion`, evaluated on
the last step of an episode. Envs with their own flag use it (Fetch ``is_success``; Adroit and mazes ``success``).
Locomotion has none, so llm_reward uses a documented speed criterion on the episode's mean forward velocity
(``info["mean_forward_velocity"]``, distance travelled along +x divided by the episode's simulated time); robots
that fall over (Hopper, Walker2d, Ant, Humanoid) must also still be healthy at the time limit. The speeds are a
"clearly walking/running" level, about a fifth of what a well-trained SAC reaches (HalfCheetah ~10 m/s):

==================  ==============================================================
HalfCheetah         mean forward velocity >= 2.0 m/s
Hopper, Walker2d    not fallen and mean forward velocity >= 1.0 m/s
Ant                 not flipped and mean forward velocity >= 1.0 m/s
Humanoid            not fallen and mean forward velocity >= 0.5 m/s
Swimmer             mean forward velocity >= 0.2 m/s
HumanoidStandup     torso higher than 1.0 m at the end
Reacher             fingertip within 2 cm of the target at the end
Pusher              object within 5 cm of the goal at the end
Inverted(Double)Pendulum  still balanced at the time limit
==================  ==============================================================

Override any of them with ``make_env(env_id, success="mean_forward_velocity >= 4")`` (config: ``env.success``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from llm_reward.envs.task_layout import doc_section, first_sentence

#: Module prefix of the env class -> family name.
FAMILY_MODULES = (
    ("gymnasium.envs.mujoco", "mujoco"),
    ("gymnasium_robotics.envs.fetch", "fetch"),
    ("gymnasium_robotics.envs.adroit_hand", "adroit"),
    ("gymnasium_robotics.envs.maze", "maze"),
    ("gymnasium_robotics.envs.franka_kitchen", "kitchen"),
    ("gymnasium_robotics.envs.shadow_dexterous_hand", "shadow_hand"),
    ("gymnasium_robotics", "robotics"),
)
ROBOT_FAMILIES = frozenset(name for _, name in FAMILY_MODULES)
OTHER_MODULES = (("minigrid", "minigrid"), ("nle", "nethack"), ("gymnasium.envs.classic_control", "classic"),
                 ("gymnasium.envs.box2d", "box2d"), ("gymnasium.envs.toy_text", "toy_text"))

#: Locomotion robots: class name -> (default mean forward velocity threshold in m/s, can fall over).
LOCOMOTION = {"HalfCheetahEnv": (2.0, False), "HopperEnv": (1.0, True), "Walker2dEnv": (1.0, True),
              "AntEnv": (1.0, True), "HumanoidEnv": (0.5, True), "SwimmerEnv": (0.2, False)}

DEFAULT_SUCCESS = {
    **{name: (f"not terminated and mean_forward_velocity >= {v}" if falls else f"mean_forward_velocity >= {v}")
       for name, (v, falls) in LOCOMOTION.items()},
    "HumanoidStandupEnv": "torso_height >= 1.0",
    "ReacherEnv": "goal_distance <= 0.02",
    "PusherEnv": "goal_distance <= 0.05",
    "InvertedPendulumEnv": "not terminated",
    "InvertedDoublePendulumEnv": "not terminated",
}
FAMILY_SUCCESS = {"fetch": "is_success", "shadow_hand": "is_success", "adroit": "success", "maze": "success"}

DESCRIPTIONS = {
    "HalfCheetahEnv": "Make a 2-D cheetah robot run forward (+x) as fast as possible by applying torques to its "
                      "six joints.",
    "HopperEnv": "Make a 2-D one-legged hopper hop forward (+x) as fast as possible without falling over.",
    "Walker2dEnv": "Make a 2-D two-legged walker walk forward (+x) as fast as possible without falling over.",
    "AntEnv": "Make a four-legged ant robot move forward (+x) as fast as possible without flipping over.",
    "HumanoidEnv": "Make a 3-D humanoid robot walk forward (+x) as fast as possible without falling over.",
    "HumanoidStandupEnv": "Make a 3-D humanoid robot that starts lying on the ground stand up and stay standing.",
    "SwimmerEnv": "Make a three-link swimmer move forward (+x) through a viscous fluid as fast as possible.",
    "ReacherEnv": "Move the fingertip of a two-joint planar arm onto a randomly placed target.",
    "PusherEnv": "Use a seven-joint arm to push a cylindrical object on a table to a goal position.",
    "InvertedPendulumEnv": "Keep a pole balanced upright on a cart by pushing the cart left or right.",
    "InvertedDoublePendulumEnv": "Keep a two-link pole balanced upright on a cart by pushing the cart left or right.",
    "MujocoFetchReachEnv": "Move the gripper of a 7-DoF Fetch robot arm to a target position in 3-D space.",
    "MujocoFetchPushEnv": "Push a block across a table to a target position with a 7-DoF Fetch robot arm.",
    "MujocoFetchSlideEnv": "Hit a puck so that it slides across a long table and stops at a target position.",
    "MujocoFetchPickAndPlaceEnv": "Grasp a block with a Fetch robot's gripper and move it to a target position, "
                                  "sometimes in the air.",
    "AdroitHandDoorEnv": "With a 24-DoF robotic hand on an arm, undo a door's latch and swing the door open.",
    "AdroitHandHammerEnv": "With a 24-DoF robotic hand on an arm, pick up a hammer and drive a nail into a board.",
    "AdroitHandPenEnv": "With a 24-DoF robotic hand, rotate a pen to match a randomly chosen target orientation.",
    "AdroitHandRelocateEnv": "With a 24-DoF robotic hand on an arm, pick up a ball and move it to a target position.",
    "PointMazeEnv": "Steer a force-actuated ball through a maze to a goal position.",
    "AntMazeEnv": "Make a four-legged ant robot walk through a maze to a goal position.",
}


def family_of(cls: type) -> str:
    """``mujoco``, ``fetch``, ``adroit``, ``maze``, ``minigrid``, ``nethack``, ``classic``... from the class module;
    the top-level package name for anything else."""
    module = cls.__module__
    for prefix, name in FAMILY_MODULES + OTHER_MODULES:
        if module == prefix or module.startswith(prefix + "."):
            return name
    return module.split(".")[0]


def env_class(env_id: str) -> type:
    """The env class behind a registered id, from its entry point (nothing is built)."""
    entry = gym.spec(env_id).entry_point
    creator = gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
    return creator if isinstance(creator, type) else type(creator)


def register_gym_envs() -> None:
    """Register gymnasium-robotics ids (Fetch, Adroit, mazes); the MuJoCo v5 ids come with gymnasium itself."""
    try:
        import gymnasium_robotics
    except ImportError:  # the [mujoco] extra is not installed: only gymnasium's own ids exist
        return
    gym.register_envs(gymnasium_robotics)


def default_success(cls: type) -> str | None:
    """The built-in criterion for an env class (see the module docstring), or None when there is none."""
    for klass in cls.__mro__:
        if klass.__name__ in DEFAULT_SUCCESS:
            return DEFAULT_SUCCESS[klass.__name__]
    return FAMILY_SUCCESS.get(family_of(cls))


def description(cls: type, doc: str) -> str:
    """The task in one line: ours for the known robots, else the first sentence of the class's description."""
    for klass in cls.__mro__:
        if klass.__name__ in DESCRIPTIONS:
            return DESCRIPTIONS[klass.__name__]
    text = doc_section(doc, "Description") or doc
    paragraphs = [p for p in text.split("\n\n") if p.strip() and not p.strip().startswith(("#", "|", "```"))]
    return first_sentence(paragraphs[0]) if paragraphs else f"The {cls.__name__} task."


def is_robot(cls: Any) -> bool:
    return family_of(cls) in ROBOT_FAMILIES
