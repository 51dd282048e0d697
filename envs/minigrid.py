"""MiniGrid / BabyAI: BabyAI-Text-style captions of the agent's 7x7 view, events, and a progress oracle.

A caption reads like::

    Mission: use the key to open the door and then get to the goal. You see a yellow key 1 step forward and
    1 step left, a locked yellow door 2 steps forward and 1 step right, a wall 3 steps forward. You picked up ...

Everything is read from minigrid's own state (``grid``, ``agent_pos``, ``carrying``, the symbolic 'image'
observation decoded with ``minigrid.core.constants``), so it works for any ``MiniGridEnv``.
"""

from __future__ import annotations

import functools
import re
from collections import deque
from typing import Any, Callable, SupportsFloat

import gymnasium as gym
import minigrid  # noqa: F401  (importing registers the MiniGrid-* and BabyAI-* ids)
import numpy as np
from minigrid.core.actions import Actions
from minigrid.core.constants import DIR_TO_VEC, IDX_TO_COLOR, IDX_TO_OBJECT, OBJECT_TO_IDX, STATE_TO_IDX
from minigrid.core.roomgrid import RoomGrid
from minigrid.envs.keycorridor import KeyCorridorEnv
from minigrid.envs.multiroom import MultiRoomEnv
from minigrid.envs.obstructedmaze import ObstructedMazeEnv
from minigrid.minigrid_env import MiniGridEnv
from minigrid.wrappers import ImgObsWrapper

from llm_reward.envs.minigrid_info import MiniGridInfo, milestones
from llm_reward.envs.registry import EnvAdapter, Milestone

CAPTIONER_NAME = "minigrid-text-v1"
ORDERED_DOORS = re.compile(r"\bthen\b.*\bdoor\b")  # "open the red door then the blue door"
VARYING_MISSION_GOAL = "complete the mission stated at the start of each description"

# Progress oracle weights, chosen so that in DoorKey: start < key < door open < near goal < goal.
SUCCESS_BONUS = 10.0
DOOR_OPENED = 1.0
CARRYING_NEEDED = 0.5
DISTANCE_WEIGHT = 0.25  # times BFS distance to the target / largest distance on the map, so in [-0.25, 0]

_IDX_TO_STATE = {v: k for k, v in STATE_TO_IDX.items()}
_THINGS = OBJECT_TO_IDX["door"]  # image type ids >= this are objects worth naming (door ... lava)


#: Larger sizes of tasks minigrid registers only small, under our own namespace rather than minigrid's.
EXTRA_SIZES = {"RedBlueDoors": ("minigrid.envs:RedBlueDoorEnv", (10, 12))}


def register_gym_envs() -> None:
    """Register ``llm_reward/RedBlueDoors-12x12-v0`` and the like (importing minigrid registered its own ids)."""
    for name, (entry_point, sizes) in EXTRA_SIZES.items():
        for size in sizes:
            env_id = f"llm_reward/{name}-{size}x{size}-v0"
            if env_id not in gym.registry:
                gym.register(env_id, entry_point=entry_point, kwargs={"size": size})


register_gym_envs()


def owns(unwrapped: gym.Env) -> bool:
    return isinstance(unwrapped, MiniGridEnv)


def adapter(env_id: str) -> EnvAdapter:
    """The MiniGrid adapter; the image observation (``ImgObsWrapper``) is what agents see, and ``info`` carries the
    grid's state in absolute coordinates (:class:`~llm_reward.envs.minigrid_info.MiniGridInfo`), which the
    milestones read (:func:`~llm_reward.envs.minigrid_info.milestones`)."""
    if env_id not in gym.registry:
        raise ValueError(f"unknown MiniGrid/BabyAI env id {env_id!r}; registered ids look like "
                         f"'MiniGrid-DoorKey-5x5-v0' or 'BabyAI-GoToRedBallGrey-v0'")
    goal = env_goal(env_id)
    # A mission that never changes (DoorKey) is stated once in the judge's goal sentence; repeating it in every
    # caption would only lengthen every prompt. Varying missions (BabyAI) stay in each caption.
    with_mission = goal == VARYING_MISSION_GOAL
    # A fixed mission that orders doors (RedBlueDoors: "open the red door then the blue door") needs captions that
    # recall the doors already opened: without them the judge sees the same scene before and after the first one.
    remember_doors = not with_mission and ORDERED_DOORS.search(goal) is not None
    # Multi-room exploration tasks: a view of 7x7 cells cannot tell the first room from the last, so their captions
    # say which room the agent is in and how many it has been in (what a judge needs to rank progress there).
    captioner = functools.partial(MiniGridCaptioner, with_mission=with_mission, remember_doors=remember_doors,
                                  rooms=has_rooms(env_id))
    return EnvAdapter(family="minigrid", captioner_factory=captioner, captioner_name=captioner().name,
                      goal=goal, progress=MiniGridProgress(), success=success, obs_wrapper=ImgObsWrapper,
                      inner_wrapper=MiniGridInfo, eval_deterministic=False,
                      milestones=tuple(Milestone(name, test) for name, test in milestones(env_id)))


@functools.lru_cache(maxsize=None)
def env_goal(env_id: str, n_resets: int = 3) -> str:
    """The mission when it is the same on a few seeded resets (DoorKey), else a pointer to the per-caption mission."""
    env = gym.make(env_id, disable_env_checker=True)
    try:
        missions = {env.reset(seed=seed)[0]["mission"] for seed in range(n_resets)}
    finally:
        env.close()
    return missions.pop().strip().rstrip(".") if len(missions) == 1 else VARYING_MISSION_GOAL


#: Env classes whose captions carry the room structure (``MiniGridCaptioner(rooms=True)``).
ROOM_TASKS = (MultiRoomEnv, KeyCorridorEnv, ObstructedMazeEnv)


@functools.lru_cache(maxsize=None)
def has_rooms(env_id: str) -> bool:
    """Whether ``env_id`` is a multi-room exploration task (MultiRoom, KeyCorridor, ObstructedMaze)."""
    env = gym.make(env_id, disable_env_checker=True)
    try:
        return isinstance(env.unwrapped, ROOM_TASKS)
    finally:
        env.close()


def success(env: gym.Env, reward: SupportsFloat, terminated: bool, truncated: bool, info: dict[str, Any]) -> bool:
    """MiniGrid pays a positive reward only when the mission is accomplished (lava and timeouts pay 0)."""
    return bool(terminated and float(reward) > 0)


def _noun(kind: str, color: str, state: str | None = None) -> str:
    """'red ball', 'locked blue door', 'goal' (goal, lava and wall have one colour each: not worth a word)."""
    return kind if kind in ("goal", "lava", "wall") else " ".join(w for w in (state, color, kind) if w)


def _a(noun: str) -> str:
    return noun if noun == "lava" else ("an " if noun[0] in "aeiou" else "a ") + noun


def _where(forward: int, right: int) -> str:
    parts = [(forward, "forward"), (abs(right), "right" if right > 0 else "left")]
    return " and ".join(f"{n} step{'s' if n != 1 else ''} {word}" for n, word in parts if n)


def describe_view(image: np.ndarray) -> str:
    """Objects in the agent's egocentric symbolic view (agent at column 3, bottom row, facing up), nearest first."""
    size = image.shape[0]
    ax, ay = size // 2, size - 1
    items: list[tuple[tuple[int, int, int], str]] = []
    for x, y in np.argwhere(image[:, :, 0] >= _THINGS):
        if (x, y) == (ax, ay):  # the agent's own cell shows what it carries
            continue
        kind, color = IDX_TO_OBJECT[int(image[x, y, 0])], IDX_TO_COLOR.get(int(image[x, y, 1]), "")
        state = _IDX_TO_STATE.get(int(image[x, y, 2])) if kind == "door" else None
        forward, right = ay - int(y), int(x) - ax
        text = f"{_a(_noun(kind, color, state))} {_where(forward, right)}"
        items.append(((forward + abs(right), forward, right), text))
    # Walls only along the three straight lines from the agent: enough to tell corridors, corners and dead ends.
    for dx, dy in ((0, -1), (-1, 0), (1, 0)):
        for distance in range(1, size):
            x, y, forward, right = ax + dx * distance, ay + dy * distance, -dy * distance, dx * distance
            if 0 <= x < size and 0 <= y < size and image[x, y, 0] == OBJECT_TO_IDX["wall"]:
                items.append(((distance, forward, right), f"a wall {_where(forward, right)}"))
                break
    if not items:
        return "You see no objects."
    return "You see " + ", ".join(text for _, text in sorted(items)) + "."


class MiniGridCaptioner:
    """Mission + visible objects + what the agent carries + what the last step changed (pickups, doors, goal).

    ``with_mission=False`` leaves the mission out, for envs whose mission is fixed and given to the judge as its goal.
    ``remember_doors=True`` adds the doors the agent opened earlier in the episode and that are still open ("Earlier
    you opened the red door."): an ordered mission (red door, then blue) cannot be judged from the view alone once
    the first door is behind the agent. ``rooms=True`` adds the room structure of multi-room tasks: which room the
    agent is in and how many it has been in this episode ("You are in room 2 of 4." for MultiRoom, whose rooms run
    from the start to the goal; "You are in the middle left room; you have been in 3 of the 9 rooms." for a grid
    of rooms), and "You entered a new room." on the step it first enters one.
    """

    def __init__(self, with_mission: bool = True, remember_doors: bool = False, rooms: bool = False) -> None:
        self.with_mission, self.remember_doors, self.rooms = with_mission, remember_doors, rooms
        base, version = CAPTIONER_NAME.rsplit("-", 1)
        options = ("" if with_mission else "-nomission") + ("-doormemory" if remember_doors else "") + \
            ("-rooms" if rooms else "")
        self.name = f"{base}{options}-{version}"
        self.reset()

    def reset(self) -> None:
        self._carrying: Any = None
        self._front: tuple[tuple[int, int], Any, tuple[bool, bool] | None] | None = None
        self._opened: list[Any] = []  # door objects, in the order the agent opened them
        self._visited: set[int] = set()  # rooms the agent has been in this episode

    def __call__(self, env: gym.Env, obs: Any, info: dict[str, Any]) -> str:
        base = env.unwrapped
        if isinstance(obs, dict) and "image" in obs:
            image, mission = obs["image"], obs.get("mission", base.mission)
        else:
            image, mission = base.gen_obs()["image"], base.mission
        parts = [f"Mission: {str(mission).strip().rstrip('.')}."] if self.with_mission else []
        parts.append(describe_view(image))
        if base.carrying is not None:
            parts.append(f"You carry {_a(_noun(base.carrying.type, base.carrying.color))}.")
        earlier = [door for door in self._opened if door.is_open] if self.remember_doors else []
        parts.extend(self._events(base, info))
        if self.rooms:
            parts.extend(self._room_parts(base))
        if earlier:
            parts.append("Earlier you opened " + " and ".join(f"the {door.color} door" for door in earlier) + ".")
        return " ".join(parts)

    def _room_parts(self, base: Any) -> list[str]:
        here = room_index(base, tuple(int(v) for v in base.agent_pos))
        been_somewhere = bool(self._visited)  # the start room is not "entered"
        new = here is not None and here not in self._visited
        if here is not None:
            self._visited.add(here)
        n_rooms = len(base.rooms) if isinstance(base, MultiRoomEnv) else base.num_rows * base.num_cols
        if here is None:
            where = "You are in a doorway."
        elif isinstance(base, MultiRoomEnv):
            where = f"You are in room {here + 1} of {n_rooms}."
        else:
            where = f"You are in the {_grid_room_name(base, here)} room."
        if not isinstance(base, MultiRoomEnv):
            where = where[:-1] + f"; you have been in {len(self._visited)} of the {n_rooms} rooms."
        return [where, "You entered a new room."] if new and been_somewhere else [where]

    def _events(self, base: Any, info: dict[str, Any]) -> list[str]:
        events = []
        carrying = base.carrying
        if carrying is not self._carrying:
            if self._carrying is not None:
                events.append(f"You dropped the {_noun(self._carrying.type, self._carrying.color)}.")
            if carrying is not None:
                events.append(f"You picked up the {_noun(carrying.type, carrying.color)}.")
        toggled = "action" in info and int(np.asarray(info["action"]).item()) == int(Actions.toggle)
        front_pos = tuple(int(v) for v in base.front_pos)
        front = _cell(base, front_pos)
        if self._front is not None and self._front[0] == front_pos:
            _, before, before_state = self._front
            if front is before and front is not None and front.type == "door":
                door_events = _door_events(front, before_state, toggled)
                if front.is_open and door_events and front not in self._opened:
                    self._opened.append(front)
                events.extend(door_events)
            elif toggled and before is not None and before.type == "box" and front is not before:
                events.append(f"You opened the {before.color} box.")
        here = _cell(base, tuple(int(v) for v in base.agent_pos))
        if here is not None and here.type == "goal":
            events.append("You reached the goal.")
        elif here is not None and here.type == "lava":
            events.append("You fell into the lava.")
        elif info.get("terminated") and info.get("env_reward", 0.0) > 0:
            events.append("You completed the mission.")
        self._carrying = carrying
        self._front = (front_pos, front, _door_state(front))
        return events


def room_index(base: Any, pos: tuple[int, int]) -> int | None:
    """The room ``pos`` is in (MultiRoom: its place from the start room; a grid of rooms: row-major index), or
    None in a doorway. A wall line a grid task removed (KeyCorridor's corridor) belongs to the room below or right.

    Example:
        >>> env = gym.make("MiniGrid-KeyCorridorS3R3-v0")
        >>> _ = env.reset(seed=0)
        >>> base = env.unwrapped
        >>> room_index(base, tuple(int(v) for v in base.agent_pos)) == (base.num_rows // 2) * base.num_cols + 1
        True
    """
    x, y = pos
    if isinstance(base, MultiRoomEnv):
        for k, room in enumerate(base.rooms):
            (left, top), (width, height) = room.top, room.size
            if left < x < left + width - 1 and top < y < top + height - 1:
                return k
        return None
    if isinstance(base, RoomGrid):
        cell = _cell(base, pos)
        if cell is not None and cell.type == "door":
            return None
        step = base.room_size - 1
        return min(y // step, base.num_rows - 1) * base.num_cols + min(x // step, base.num_cols - 1)
    return None


_ROW_NAMES = {1: ("",), 2: ("top", "bottom"), 3: ("top", "middle", "bottom")}
_COLUMN_NAMES = {1: ("",), 2: ("left", "right"), 3: ("left", "middle", "right")}


def _grid_room_name(base: Any, index: int) -> str:
    """'top left', 'middle' (for the centre of a 3x3 grid), 'right', or 'row 2, column 4' past 3x3."""
    row, column = divmod(index, base.num_cols)
    if base.num_rows in _ROW_NAMES and base.num_cols in _COLUMN_NAMES:
        words = [_ROW_NAMES[base.num_rows][row], _COLUMN_NAMES[base.num_cols][column]]
        if words == ["middle", "middle"]:
            return "middle"
        return " ".join(w for w in words if w)
    return f"row {row + 1}, column {column + 1}"


def _door_events(door: Any, before: tuple[bool, bool] | None, toggled: bool) -> list[str]:
    """Door transitions as (open, locked) pairs: unlocking in minigrid also opens the door."""
    now = _door_state(door)
    if before is None or now == before:
        return [f"The {door.color} door is locked."] if toggled and door.is_locked else []
    verb = "unlocked" if before[1] else ("opened" if now[0] else "closed")
    return [f"You {verb} the {door.color} door."]


def _door_state(obj: Any) -> tuple[bool, bool] | None:
    return (bool(obj.is_open), bool(obj.is_locked)) if obj is not None and obj.type == "door" else None


def _cell(base: Any, pos: tuple[int, int]) -> Any:
    x, y = pos
    return base.grid.get(x, y) if 0 <= x < base.grid.width and 0 <= y < base.grid.height else None


def _mentioned(mission: str, obj: Any) -> bool:
    return f"{obj.color} {obj.type}" in mission or re.search(rf"\b(?:a|an|the) {obj.type}\b", mission) is not None


class MiniGridProgress:
    """Ground-truth progress for any MiniGrid/BabyAI env (higher is better).

    ``10 * success + 1 * (doors opened since the episode began) + 0.5 * (carrying an object the mission names
    or a key for a locked door) - 0.25 * normalised BFS distance to the target``; the target is the goal
    square(s) when the map has one, else the objects the mission names. The distance map is cached per episode.
    """

    def __init__(self) -> None:
        self._grid: Any = None
        self._initially_open: set[int] = set()
        self._targets: tuple[int, ...] = ()
        self._distance: dict[int, int] = {}
        self._largest = 1

    def __call__(self, env: gym.Env, obs: Any, info: dict[str, Any]) -> float:
        base = env.unwrapped
        grid, mission = base.grid, str(base.mission)
        cells = [(i, o) for i, o in enumerate(grid.grid) if o is not None]
        doors = [(i, o) for i, o in cells if o.type == "door"]
        if grid is not self._grid:
            self._grid, self._distance, self._targets = grid, {}, ()
            self._initially_open = {i for i, o in doors if o.is_open}
        value = 0.0
        here = _cell(base, tuple(int(v) for v in base.agent_pos))
        if (info.get("terminated") and info.get("env_reward", 0.0) > 0) or (here is not None and here.type == "goal"):
            value += SUCCESS_BONUS
        value += DOOR_OPENED * sum(o.is_open and i not in self._initially_open for i, o in doors)
        held = base.carrying
        if held is not None and (_mentioned(mission, held) or (held.type == "key" and any(
                o.is_locked and o.color == held.color for _, o in doors))):
            value += CARRYING_NEEDED
        targets = tuple(i for i, o in cells if o.type == "goal") or tuple(
            i for i, o in cells if o.type not in ("wall", "lava") and _mentioned(mission, o))
        if targets:
            if targets != self._targets:
                self._targets, self._distance = targets, _bfs(grid, targets)
                self._largest = max(self._distance.values()) or 1
            x, y = (int(v) for v in base.agent_pos)
            value -= DISTANCE_WEIGHT * self._distance.get(y * grid.width + x, self._largest) / self._largest
        return value


def _bfs(grid: Any, sources: tuple[int, ...]) -> dict[int, int]:
    """Steps from every cell to the nearest source, moving through anything but walls and lava."""
    width, height = grid.width, grid.height
    distance = {s: 0 for s in sources}
    queue = deque(sources)
    while queue:
        cell = queue.popleft()
        x, y = cell % width, cell // width
        for nx, ny in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
            n = ny * width + nx
            if 0 <= nx < width and 0 <= ny < height and n not in distance:
                obj = grid.grid[n]
                if obj is None or obj.type not in ("wall", "lava"):
                    distance[n] = distance[cell] + 1
                    queue.append(n)
    return distance


class NoPath(Exception):
    """:func:`plan_actions` found no way to the requested state."""


def plan_actions(base: Any, done: Callable[[tuple[int, int], int], bool],
                 avoid: tuple[tuple[int, int], ...] = ()) -> list[int]:
    """Shortest left/right/forward sequence (BFS over position x direction) until ``done(pos, dir)``: scripted
    solutions for tests and for reading what a reward model pays along a known-good episode."""
    start = (tuple(int(v) for v in base.agent_pos), int(base.agent_dir))
    parents: dict[Any, Any] = {start: None}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        (x, y), d = state
        if done((x, y), d):
            actions = []
            while parents[state] is not None:
                state, action = parents[state]
                actions.append(action)
            return actions[::-1]
        fx, fy = x + int(DIR_TO_VEC[d][0]), y + int(DIR_TO_VEC[d][1])
        cell = base.grid.get(fx, fy)
        moves = [(((x, y), (d - 1) % 4), Actions.left), (((x, y), (d + 1) % 4), Actions.right)]
        if (fx, fy) not in avoid and (cell is None or (cell.can_overlap() and cell.type != "lava")):
            moves.append((((fx, fy), d), Actions.forward))
        for nxt, action in moves:
            if nxt not in parents:
                parents[nxt] = (state, action)
                queue.append(nxt)
    raise NoPath


def facing(target: tuple[int, int]) -> Callable[[tuple[int, int], int], bool]:
    """``done`` for :func:`plan_actions`: the agent faces ``target``."""
    return lambda pos, d: (pos[0] + int(DIR_TO_VEC[d][0]), pos[1] + int(DIR_TO_VEC[d][1])) == target


def find_object(base: Any, kind: str, color: str | None = None) -> tuple[int, int]:
    """Position of the first object of type ``kind`` (and ``color``, if given; column-major scan)."""
    return next((x, y) for x in range(base.grid.width) for y in range(base.grid.height)
                if (o := base.grid.get(x, y)) is not None and o.type == kind and color in (None, o.color))
