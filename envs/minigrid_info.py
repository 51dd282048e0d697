"""The state of a MiniGrid / BabyAI grid, in absolute grid coordinates, read into ``info`` every step.

:class:`MiniGridInfo` sits below ``Monitor`` (it changes neither reward nor observation) and adds plain integers:

- always: ``agent_x``, ``agent_y`` (the agent's cell), ``agent_dir`` (0 right, 1 down, 2 left, 3 up),
  ``carrying`` (object id of what the agent carries, 0 nothing: 5 key, 6 ball, 7 box) and ``carrying_color``
  (color id, -1 nothing);
- where the env has them: ``key_x``, ``key_y`` (-1 while carried or inside a box); ``door_x``, ``door_y``,
  ``door_open``, ``door_locked`` (the door the mission names, else the first locked door, else the first door);
  ``goal_x``, ``goal_y`` (the goal square); ``target_x``, ``target_y`` (without a goal square: the object to pick
  up in KeyCorridor, ObstructedMaze, UnlockPickup and the like, else the first object the mission names by color
  and type, as in BabyAI's "go to the red ball"; -1 while carried).

:func:`milestones` names the stages an episode of an env id passes on the way to success (picked up the key that
opens the door, opened that door, picked up the object to fetch, reached the goal), each a test of one step's keys:
Eureka's failure diagnosis reports how many training episodes reached each.

x counts columns from the left, y rows from the top; the border cells are walls. Which optional keys an env has
is decided once per env id from a few seeded resets, so every instance reports the same keys on every step (an
object missing from one episode reads -1). These are state, not progress: no distances, nothing about the
solution. Reward code (Eureka) reads them instead of decoding the agent's egocentric view.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Mapping, SupportsFloat

import gymnasium as gym
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX
from minigrid.core.world_object import WorldObj

#: The optional groups of keys, each present when an env id has that object.
OPTIONAL_KEYS = {"key": ("key_x", "key_y"), "door": ("door_x", "door_y", "door_open", "door_locked"),
                 "goal": ("goal_x", "goal_y"), "target": ("target_x", "target_y")}
ALWAYS = ("agent_x", "agent_y", "agent_dir", "carrying", "carrying_color")
PROBE_RESETS = 3
#: minigrid's ``Actions``, as the reward-code writer needs them (``info["action"]`` is the step's action).
ACTION_MEANINGS = ("0 turn left, 1 turn right, 2 move forward, 3 pick up the object in front, 4 drop, "
                   "5 toggle (open or unlock the door in front), 6 done")
_CARRIABLE = ", ".join(f"{OBJECT_TO_IDX[kind]} {kind}" for kind in ("key", "ball", "box"))
_COLORS = ", ".join(f"{index} {name}" for name, index in COLOR_TO_IDX.items())


def _door_rank(door: WorldObj, order: int, mission: str) -> tuple[float, int, int]:
    """Doors sort by: named in the mission (earliest first), then locked, then grid order."""
    named = mission.find(f"{door.color} door")
    return (named if named >= 0 else math.inf, 0 if door.is_locked else 1, order)


def task_objects(base: Any) -> dict[str, tuple[WorldObj, str] | None]:
    """The objects the keys describe, each with the words that name it in the keys' meanings, on a fresh grid."""
    objects = [o for o in base.grid.grid if o is not None]
    mission = str(base.mission)
    doors = [o for o in objects if o.type == "door"]
    door = min(doors, key=lambda d: _door_rank(d, doors.index(d), mission)) if doors else None
    keys = [o for o in objects if o.type == "key"]
    key = next((k for k in keys if door is not None and door.is_locked and k.color == door.color), None) or (
        keys[0] if keys else None)
    goal = next((o for o in objects if o.type == "goal"), None)
    target = getattr(base, "obj", None)  # KeyCorridor, ObstructedMaze, (Blocked)UnlockPickup: the object to pick up
    target_name = f"the {target.type} to pick up" if isinstance(target, WorldObj) else "the object the mission names"
    if not isinstance(target, WorldObj):  # BabyAI: the first object the mission names by color and type
        target = next((o for o in objects if o.type not in ("door", "wall") and f"{o.color} {o.type}" in mission),
                      None)
    if goal is not None:
        target = None
    if door is None:
        door_name = ""
    elif len(doors) == 1:
        door_name = "the door"
    elif _door_rank(door, 0, mission)[0] < math.inf:
        door_name = "the door the mission names first"
    elif door.is_locked:
        door_name = "the door the key opens" if key is not None and key.color == door.color else \
            "the door that starts locked"
    else:
        door_name = "the first door (row by row)"
    return {"key": (key, "the key") if key is not None else None,
            "door": (door, door_name) if door is not None else None,
            "goal": (goal, "the goal square") if goal is not None else None,
            "target": (target, target_name) if target is not None else None}


@functools.lru_cache(maxsize=None)
def env_groups(env_id: str) -> dict[str, str]:
    """The optional key groups ``env_id`` has (``{"key": "the key", "door": "the locked door", ...}``): those
    whose object exists after one of a few seeded resets, with the words naming it."""
    env = gym.make(env_id, disable_env_checker=True)
    groups: dict[str, str] = {}
    try:
        for seed in range(PROBE_RESETS):
            env.reset(seed=seed)
            for group, found in task_objects(env.unwrapped).items():
                if found is not None:
                    groups.setdefault(group, found[1])
    finally:
        env.close()
    return {group: groups[group] for group in OPTIONAL_KEYS if group in groups}


def info_meanings(groups: dict[str, str]) -> dict[str, str]:
    """One line per key: what it means (what the Eureka context tells the reward-code writer)."""
    meanings = {
        "agent_x": "column of the agent (x = 0 is the left wall, x grows to the right; border cells are walls)",
        "agent_y": "row of the agent (y = 0 is the top wall, y grows downward)",
        "agent_dir": "direction the agent faces: 0 right (x + 1), 1 down (y + 1), 2 left (x - 1), 3 up (y - 1)",
        "carrying": f"object the agent carries: 0 nothing, {_CARRIABLE}",
        "carrying_color": f"color of the carried object: -1 nothing, {_COLORS}",
    }
    if "key" in groups:
        meanings.update(key_x="column of the key (-1 while carried)", key_y="row of the key (-1 while carried)")
    if "door" in groups:
        door = groups["door"]
        meanings.update(door_x=f"column of {door}", door_y=f"row of {door}",
                        door_open=f"1 if {door} is open, else 0", door_locked=f"1 if {door} is locked, else 0")
    if "goal" in groups:
        meanings.update(goal_x="column of the goal square", goal_y="row of the goal square")
    if "target" in groups:
        target = groups["target"]
        meanings.update(target_x=f"column of {target} (-1 while carried)", target_y=f"row of {target} (-1 while "
                        "carried)")
    return meanings


def _key_taken(info: Mapping[str, Any]) -> bool:
    """The agent carries the key the ``key_*`` keys describe (a key, and that key off the grid)."""
    return info.get("carrying") == OBJECT_TO_IDX["key"] and info.get("key_x") == -1


def _door_opened(info: Mapping[str, Any]) -> bool:
    return info.get("door_open") == 1


def _target_taken(kind: int | None, info: Mapping[str, Any]) -> bool:
    """The agent carries the target: the target is off the grid while the agent carries an object (of the
    target's type, where every probed episode's target had the same type)."""
    carrying = info.get("carrying", 0)
    return carrying != 0 and (kind is None or carrying == kind) and info.get("target_x") == -1


def _on_goal(info: Mapping[str, Any]) -> bool:
    return info.get("goal_x", -1) >= 0 and (info.get("agent_x"), info.get("agent_y")) == (info.get("goal_x"),
                                                                                          info.get("goal_y"))


@functools.lru_cache(maxsize=None)
def milestones(env_id: str) -> tuple[tuple[str, Callable[[Mapping[str, Any]], bool]], ...]:
    """The ordered ``(name, predicate over a step's info)`` stages of ``env_id``'s episodes, from a few seeded
    resets (as :func:`env_groups`): "picked up the key" where a key opens a locked door, "opened <the door>"
    where the door starts locked or the mission names it, "picked up the <type> the mission names" where the task
    is to fetch an object (KeyCorridor, ObstructedMaze, UnlockPickup), "reached the goal" where there is a goal
    square. Exploration tasks whose doors are neither (MultiRoom) and GoTo missions get only what applies.

    Example:
        >>> [name for name, _ in milestones("MiniGrid-DoorKey-5x5-v0")]
        ['picked up the key', 'opened the door', 'reached the goal']
        >>> [name for name, _ in milestones("MiniGrid-KeyCorridorS3R1-v0")]
        ['picked up the key', 'opened the door the key opens', 'picked up the ball the mission names']
    """
    env = gym.make(env_id, disable_env_checker=True)
    found: dict[str, str] = {}
    kinds: set[str] = set()
    try:
        for seed in range(PROBE_RESETS):
            env.reset(seed=seed)
            base = env.unwrapped
            objects = task_objects(base)
            key, door, goal = objects["key"], objects["door"], objects["goal"]
            if key is not None and door is not None and door[0].is_locked and key[0].color == door[0].color:
                found.setdefault("key", f"picked up {key[1]}")
            if door is not None and (door[0].is_locked or f"{door[0].color} door" in str(base.mission)):
                found.setdefault("door", f"opened {door[1]}")
            target = getattr(base, "obj", None)
            if isinstance(target, WorldObj) and goal is None:
                kinds.add(target.type)
            if goal is not None:
                found.setdefault("goal", "reached the goal")
    finally:
        env.close()
    if kinds:
        kind = kinds.pop() if len(kinds) == 1 else None
        found["target"] = f"picked up the {kind or 'object'} the mission names"
        target_test = functools.partial(_target_taken, None if kind is None else OBJECT_TO_IDX[kind])
    tests = {"key": _key_taken, "door": _door_opened, "goal": _on_goal}
    return tuple((found[group], tests[group] if group != "target" else target_test)
                 for group in ("key", "door", "target", "goal") if group in found)


class MiniGridInfo(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Adds the grid's state to ``info`` on reset and every step (see the module docstring for the keys).

    Args:
        env: a MiniGrid / BabyAI env (``gym.make`` of a registered id).
        groups: the optional key groups to report (default: :func:`env_groups` of the env's id; every group for an
            env without a registered id).

    Example:
        >>> env = MiniGridInfo(gym.make("MiniGrid-DoorKey-5x5-v0"))
        >>> _, info = env.reset(seed=0)
        >>> info["agent_x"], info["agent_y"], info["carrying"], info["door_locked"], info["goal_x"]
        (1, 3, 0, 1, 3)
    """

    def __init__(self, env: gym.Env, groups: dict[str, str] | None = None):
        gym.utils.RecordConstructorArgs.__init__(self, groups=groups)
        gym.Wrapper.__init__(self, env)
        if groups is None:
            groups = env_groups(env.spec.id) if env.spec is not None else {g: f"the {g}" for g in OPTIONAL_KEYS}
        self.groups = dict(groups)
        self.meanings = info_meanings(self.groups)
        self._objects: dict[str, WorldObj | None] = {}
        self._cells: dict[int, tuple[int, int]] = {}  # id(object) -> where it was last found

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        found = task_objects(self.env.unwrapped)
        self._objects = {g: found[g][0] if found[g] is not None else None for g in self.groups}
        self._cells = {}
        return obs, {**info, **self.measure()}

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, **self.measure()}

    def _cell_of(self, obj: WorldObj | None) -> tuple[int, int]:
        """Where ``obj`` lies on the grid; (-1, -1) when carried, inside a box or gone."""
        base = self.env.unwrapped
        if obj is None or base.carrying is obj:
            return -1, -1
        grid = base.grid
        last = self._cells.get(id(obj))
        if last is not None and grid.get(*last) is obj:
            return last
        for index, cell in enumerate(grid.grid):  # it moved (dropped elsewhere) or is looked up the first time
            if cell is obj:
                self._cells[id(obj)] = (index % grid.width, index // grid.width)
                return self._cells[id(obj)]
        return -1, -1

    def measure(self) -> dict[str, int]:
        """The keys' values now (plain ints)."""
        base = self.env.unwrapped
        held = base.carrying
        out = {"agent_x": int(base.agent_pos[0]), "agent_y": int(base.agent_pos[1]), "agent_dir": int(base.agent_dir),
               "carrying": OBJECT_TO_IDX[held.type] if held is not None else 0,
               "carrying_color": COLOR_TO_IDX[held.color] if held is not None else -1}
        for group in self.groups:
            obj = self._objects.get(group)
            x, y = self._cell_of(obj)
            out[f"{group}_x"], out[f"{group}_y"] = x, y
            if group == "door":
                out["door_open"] = int(obj is not None and obj.is_open)
                out["door_locked"] = int(obj is not None and obj.is_locked)
        return out
