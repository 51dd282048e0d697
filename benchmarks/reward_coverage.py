"""Why a distilled reward helps on one sparse MiniGrid task and not another: what its training data covers, and
what it pays along a scripted solution.

    python benchmarks/reward_coverage.py --env minigrid/unlockpickup --reward-model data/reward_models/<dir>
    python benchmarks/reward_coverage.py --env minigrid/doorkey_8x8 --reward-model <dir> --rollouts <parquet>

Prints, for the random-policy rollouts a reward model was fitted on, how many steps show each task event (a key
picked up, a door unlocked, the goal reached, ...), then walks a scripted solution (BFS to the key, the door, then
the goal or box; the key is put down first when the target must be picked up; RedBlueDoors: the doors in the
mission's order, or with ``--reverse`` the failing order) and prints the reward model's
normalized output at every step next to the progress oracle. Saves ``results/reward_coverage_<env>.json``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import gymnasium as gym
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from _hydra import train_config  # noqa: E402

from llm_reward.envs import get_adapter  # noqa: E402
from llm_reward.envs.minigrid import MiniGridProgress, facing, find_object, plan_actions  # noqa: E402
from llm_reward.reward_model import RewardArtifact  # noqa: E402
from minigrid.core.actions import Actions  # noqa: E402

EVENTS = ["You picked up the", "You dropped the", "You unlocked the", "You opened the", "You reached the goal",
          "You completed the mission", "You carry a", "You fell into the lava", "Earlier you opened the"]


def solve(env_id: str, seed: int, reverse: bool = False) -> list[tuple[str, float, str]]:
    """(action name, progress, caption) after reset and after every step of a scripted solution (``reverse``:
    doors the mission names are opened in the opposite order, RedBlueDoors' failing one)."""
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    base = env.unwrapped
    captioner = get_adapter(env_id).make_captioner()  # the captions the reward model was trained on
    progress = MiniGridProgress()
    rows = [("reset", progress(env, obs, {}), captioner(env, obs, {}))]

    def act(action: int) -> bool:
        nonlocal obs
        obs, reward, terminated, _, info = env.step(action)
        info = {**info, "action": action, "terminated": terminated, "env_reward": reward}
        rows.append((Actions(action).name, progress(env, obs, info), captioner(env, obs, info)))
        return terminated

    def has(kind: str) -> bool:
        return any(o is not None and o.type == kind for o in base.grid.grid)

    named_doors = re.findall(r"(\w+) door", base.mission)
    if len(named_doors) > 1:  # RedBlueDoors: open the doors in the order the mission names them
        for color in reversed(named_doors) if reverse else named_doors:
            for action in [*plan_actions(base, facing(find_object(base, "door", color))), int(Actions.toggle)]:
                if act(action):
                    return rows
        return rows
    for kind, last in (("key", Actions.pickup), ("door", Actions.toggle)):  # plan each leg from where we stand
        if has(kind):  # lava and crossing tasks have neither
            for action in [*plan_actions(base, facing(find_object(base, kind))), int(last)]:
                act(action)
    if has("goal"):
        for action in [*plan_actions(base, facing(find_object(base, "goal"))), int(Actions.forward)]:
            if act(action):
                break
        return rows
    target = next(o.type for o in base.grid.grid if o is not None and o.type in ("box", "ball") and
                  f"{o.color} {o.type}" in base.mission)
    for action in (Actions.forward, Actions.forward, Actions.drop):  # through the door, put the key down
        act(int(action))
    for action in [*plan_actions(base, facing(find_object(base, target))), int(Actions.pickup)]:
        act(action)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True, help="env config (conf/env/), e.g. minigrid/unlockpickup")
    parser.add_argument("--reward-model", required=True, type=Path, help="artifact directory (llm-reward-fit)")
    parser.add_argument("--rollouts", type=Path, help="parquet the model was fitted on (default: the main job's)")
    parser.add_argument("--seed", type=int, default=1, help="env seed of the scripted episode")
    parser.add_argument("--reverse", action="store_true",
                        help="open the doors the mission names in the opposite order (RedBlueDoors: the failure)")
    parser.add_argument("--tag", default="", help="suffix of the result file, to keep several models' results apart "
                        "(--reverse adds _reverse after it)")
    args = parser.parse_args()
    cfg = train_config([f"env={args.env}"])
    model = RewardArtifact.load(args.reward_model)
    rollouts = pd.read_parquet(args.rollouts or cfg.paths.rollouts)
    coverage = {event: int(rollouts["caption"].str.contains(event, regex=False).sum()) for event in EVENTS}
    print(f"{len(rollouts)} rollout steps; steps showing each event: {coverage}", file=sys.stderr)
    rows = solve(cfg.env.id, args.seed, reverse=args.reverse)
    rewards = model([caption for _, _, caption in rows])
    for (action, progress, caption), reward in zip(rows, rewards):
        print(f"{action:8s} progress {progress:6.2f}  reward {reward:6.2f}  {caption[:110]}", file=sys.stderr)
    suffix = "".join(f"_{part}" for part in (args.tag, "reverse" if args.reverse else "") if part)
    emit(f"reward_coverage_{cfg.env.name}{suffix}", {
        "env": cfg.env.id, "reward_model": str(args.reward_model), "rollout_steps": len(rollouts),
        # rewards below it pay nothing under the motif reward's default shaping
        "threshold": float(model.threshold(cfg.reward.shaping.threshold_quantile)),
        "event_steps": coverage, "solution": [{"action": a, "progress": p, "reward": float(r), "caption": c}
                                              for (a, p, c), r in zip(rows, rewards)]})


if __name__ == "__main__":
    main()
