"""How far into a multi-room task the random-policy rollouts that offline Motif labels reach.

    python benchmarks/room_coverage.py                 # the multi-room tasks of suite=hard_exploration
    python benchmarks/room_coverage.py --tasks minigrid/multiroom_n4_s5 --n-steps 4000

Collects the rollouts exactly as a run's ``rollouts`` stage does (``conf/base.yaml``: 4,000 steps over 4 envs, random
actions, ``data_seed`` 0) and reads the room part of every caption (``MiniGridCaptioner(rooms=True)``): for
MultiRoom, the share of steps spent in each room (``room k of n``); for a grid of rooms (KeyCorridor,
ObstructedMaze), the share of steps by how many rooms the episode had been in so far. Captions of rooms the
rollouts never reach are captions an offline judge never sees. Saves ``results/room_coverage.json``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine  # noqa: E402
from _hydra import train_config  # noqa: E402

from llm_reward.motif.stages import collect_stage  # noqa: E402

TASKS = ["minigrid/multiroom_n4_s5", "minigrid/keycorridor_s3r3", "minigrid/obstructedmaze_1dl",
         "minigrid/obstructedmaze_2dlh"]
IN_ROOM = re.compile(r"You are in room (\d+) of (\d+)\.")
BEEN_IN = re.compile(r"you have been in (\d+) of the (\d+) rooms\.")


def room_shares(captions: list[str]) -> dict[str, object]:
    """Share of captions per room reached (MultiRoom) or per number of rooms visited so far (grid of rooms).

    Example:
        >>> room_shares(["You see a wall. You are in room 1 of 3.", "You are in room 2 of 3."])
        {'rooms': 3, 'kind': 'room the agent is in', 'steps': 2, 'share': {'1': 0.5, '2': 0.5, '3': 0.0}}
    """
    counts: Counter[int] = Counter()
    n_rooms, kind = 0, "room the agent is in"
    for caption in captions:
        if match := IN_ROOM.search(caption):
            counts[int(match.group(1))] += 1
            n_rooms = int(match.group(2))
        elif match := BEEN_IN.search(caption):
            counts[int(match.group(1))] += 1
            n_rooms, kind = int(match.group(2)), "rooms visited so far in the episode"
    total = sum(counts.values())
    return {"rooms": n_rooms, "kind": kind, "steps": total,
            "share": {str(k): counts[k] / total if total else 0.0 for k in range(1, n_rooms + 1)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=TASKS)
    parser.add_argument("--n-steps", type=int, default=None, help="steps in all (default: the runs' rollouts)")
    args = parser.parse_args()
    out = {}
    for task in args.tasks:
        cfg = train_config([f"env={task}"])
        n_steps = args.n_steps or int(cfg.rollouts.n_steps)
        with tempfile.TemporaryDirectory() as tmp:
            rollouts = collect_stage(cfg.env.id, n_steps=n_steps, n_envs=int(cfg.rollouts.n_envs), seed=0,
                                     path=Path(tmp) / "r.parquet", max_episode_steps=cfg.env.max_episode_steps,
                                     progress=False)
        out[task] = {"env": cfg.env.id, "n_steps": n_steps, "n_envs": int(cfg.rollouts.n_envs),
                     "episodes_finished": int(rollouts["done"].sum()),
                     **room_shares(rollouts["caption"].tolist())}
        print(task, out[task], flush=True)
    emit("room_coverage", {"tasks": out, "policy": "random actions (the rollouts stage's default)",
                           "load": os.getloadavg(), "machine": machine()})


if __name__ == "__main__":
    main()
