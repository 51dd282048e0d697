"""Build the fixed judge-quality pair sets: captioned rollouts -> distinct captions with a ground-truth class -> pairs.

    python benchmarks/pairsets/build.py            # rewrites benchmarks/pairsets/{minigrid,nethack,robotics}.jsonl

The files are committed; ``benchmarks/judge_quality.py`` only reads them, so every run judges the same pairs.
Rebuilding with the same seeds and package versions gives the same files.

Ground truth (see docs/judge_quality.md):

* **MiniGrid / BabyAI** — the milestone stage of the adapter's progress oracle: 0 (nothing yet), 0.5 (carrying the
  key or object the task needs), 1 (a door opened; 2 for two doors), 10 (mission accomplished). Pairs always
  differ in stage; the oracle's within-stage distance term is left out
  because an egocentric caption often does not show the target at all.
* **Robotics** — the adapter's progress oracle (minus the distance to the goal, or the distance run), binned
  (4 cm for Fetch, 25 cm for HalfCheetah); pairs differ by at least two bins.
* **NetHack** — what the step that produced the message did: *good* when the score or the dungeon depth rose,
  *harmful* when hit points fell or the hero died, *neutral* otherwise; good > neutral > harmful.

A caption seen with different classes in the rollouts is kept only if >= 80 % of its occurrences share one class
(that class is its label); rarer ambiguous captions are dropped, since no judge could tell them apart.
Rollouts: uniform random actions, plus (MiniGrid) a scripted solver that follows the task with per-episode
epsilon-random actions, standing in for a trained agent's experience (it reaches doors and goals).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from minigrid.core.actions import Actions

from llm_reward.envs import get_adapter, make_env
from llm_reward.envs.minigrid import NoPath, facing, plan_actions
from llm_reward.envs.nethack import status_summary

HERE = Path(__file__).resolve().parent
PURITY = 0.8

#: env id -> (episodes per source, max steps, full pool size, full pairs, quick pool size, quick pairs)
MINIGRID = {
    "MiniGrid-DoorKey-5x5-v0": (60, 100, 36, 50, 6, 4),
    "MiniGrid-DoorKey-8x8-v0": (60, 200, 36, 50, 6, 4),
    "MiniGrid-UnlockPickup-v0": (60, 250, 36, 50, 6, 4),
}
NETHACK = {"NetHackScore-v0": (60, 1000, 110, 150, 14, 12)}
ROBOTICS = {"FetchReach-v4": (40, 50, 36, 50, 6, 4), "FetchPush-v4": (40, 50, 36, 50, 6, 4),
            "HalfCheetah-v5": (20, 200, 36, 50, 6, 4)}
#: Robot progress is continuous: it is binned (metres, per env) and pairs differ by >= 2 bins (a clear margin).
ROBOT_BINS = {"FetchReach-v4": 0.04, "FetchPush-v4": 0.04, "HalfCheetah-v5": 0.25}
EPSILONS = (0.05, 0.2, 0.4, 0.7)  # the scripted solver's random-action rate, one per episode in turn


def _stage(progress: float) -> float:
    """Milestone of a MiniGrid progress value: distance term dropped; once a door is open, what is carried no
    longer counts (DoorKey's mission names the key, so the oracle keeps paying for holding it after the door)."""
    if progress >= 9.0:
        return 10.0
    stage = float(np.ceil(2 * progress - 1e-9) / 2)
    return float(np.floor(stage)) if stage >= 1 else stage + 0.0  # + 0.0: no "-0.0" in the files


def _objects(base, kind: str, color: str | None = None):
    return [(x, y) for x in range(base.grid.width) for y in range(base.grid.height)
            if (o := base.grid.get(x, y)) is not None and o.type == kind and color in (None, o.color)]


def scripted_action(base, rng: np.random.Generator) -> int:
    """Next action of a greedy solver for key/door/goal/pickup tasks (random when it has no plan)."""
    def go(target, done_action):
        try:
            plan = plan_actions(base, facing(target))
        except NoPath:
            return int(rng.integers(0, 6))
        return int(plan[0]) if plan else int(done_action)

    carrying = base.carrying
    locked = [p for p in _objects(base, "door") if base.grid.get(*p).is_locked]
    front = base.grid.get(*base.front_pos)
    if locked:
        color = base.grid.get(*locked[0]).color
        if carrying is not None and carrying.type == "key" and carrying.color == color:
            return go(locked[0], Actions.toggle)
        if carrying is not None:
            return int(Actions.drop) if front is None else int(Actions.left)
        keys = _objects(base, "key", color)
        return go(keys[0], Actions.pickup) if keys else int(rng.integers(0, 6))
    goals = _objects(base, "goal")
    if goals:
        try:
            plan = plan_actions(base, lambda pos, d: pos == goals[0])
            return int(plan[0]) if plan else int(Actions.forward)
        except NoPath:
            return int(rng.integers(0, 6))
    wanted = re.search(r"pick up the (\w+) (\w+)", str(base.mission))
    if wanted:
        color, kind = wanted.groups()
        if carrying is not None and not (carrying.type == kind and carrying.color == color):
            return int(Actions.drop) if front is None else int(Actions.left)
        targets = _objects(base, kind, color)
        if targets:
            return go(targets[0], Actions.pickup)
    return int(rng.integers(0, 6))


def collect_minigrid(env_id: str, episodes: int, max_steps: int, seed: int) -> list[dict]:
    env = make_env(env_id, seed=seed, max_episode_steps=max_steps)
    rng = np.random.default_rng(seed)
    rows = []
    for episode in range(2 * episodes):
        scripted = episode % 2 == 1
        eps = EPSILONS[(episode // 2) % len(EPSILONS)] if scripted else 1.0
        obs, info = env.reset(seed=seed * 10_000 + episode)
        source = "scripted" if scripted else "random"
        rows.append({"caption": info["caption"], "cls": _stage(info["progress"]), "source": source})
        for _ in range(max_steps):
            action = int(rng.integers(0, 6)) if rng.random() < eps else scripted_action(env.unwrapped, rng)
            obs, reward, terminated, truncated, info = env.step(action)
            rows.append({"caption": info["caption"], "cls": _stage(info["progress"]), "source": source})
            if terminated or truncated:
                break
    env.close()
    return rows


def collect_robotics(env_id: str, episodes: int, max_steps: int, seed: int) -> list[dict]:
    """Random actions, and (Fetch) a noisy scripted reacher that moves the gripper to the block, then the target."""
    env = make_env(env_id, seed=seed, max_episode_steps=max_steps)
    rng = np.random.default_rng(seed)
    width = ROBOT_BINS[env_id]
    rows = []
    for episode in range(2 * episodes):
        scripted = episode % 2 == 1 and env_id.startswith("Fetch")
        eps = EPSILONS[(episode // 2) % len(EPSILONS)] if scripted else 1.0
        obs, info = env.reset(seed=seed * 10_000 + episode)
        source = "scripted" if scripted else "random"
        rows.append({"caption": info["caption"], "cls": float(np.floor(info["progress"] / width)), "source": source})
        for _ in range(max_steps):
            action = env.action_space.sample()
            if scripted and rng.random() >= eps:
                grip = obs["observation"][:3]
                aim = obs["desired_goal"] if env_id.startswith("FetchReach") else obs["observation"][3:6]
                action = np.clip(np.append(10.0 * (aim - grip), 0.0), -1, 1).astype(np.float32)
            obs, reward, terminated, truncated, info = env.step(action)
            rows.append({"caption": info["caption"], "cls": float(np.floor(info["progress"] / width)),
                         "source": source})
            if terminated or truncated:
                break
    env.close()
    return rows


def collect_nethack(env_id: str, episodes: int, max_steps: int, seed: int) -> list[dict]:
    from nle import nethack

    env = make_env(env_id, seed=seed, max_episode_steps=max_steps)
    rows = []
    for episode in range(episodes):
        obs, info = env.reset(seed=seed * 10_000 + episode)
        before = obs["blstats"].copy()
        for _ in range(max_steps):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            now = obs["blstats"]
            gained = now[nethack.NLE_BL_SCORE] > before[nethack.NLE_BL_SCORE] or \
                now[nethack.NLE_BL_DEPTH] > before[nethack.NLE_BL_DEPTH]
            hurt = now[nethack.NLE_BL_HP] < before[nethack.NLE_BL_HP] or (terminated and not truncated)
            cls = 1.0 if gained else (-1.0 if hurt else 0.0)
            rows.append({"caption": info["caption"], "status_caption": f"{info['caption']} ({status_summary(now)})",
                         "cls": cls, "source": "random"})
            before = now.copy()
            if terminated or truncated:
                break
    env.close()
    return rows


def labelled_captions(rows: list[dict]) -> dict[str, dict]:
    """Distinct captions with a clear class (>= PURITY of their occurrences), each with one example row."""
    by_caption: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_caption[row["caption"]].append(row)
    kept = {}
    for caption, seen in by_caption.items():
        cls, count = Counter(r["cls"] for r in seen).most_common(1)[0]
        if count / len(seen) >= PURITY:
            kept[caption] = next(r for r in seen if r["cls"] == cls)
    return kept


def choose_pool(captions: dict[str, dict], size: int, rng: np.random.Generator) -> list[str]:
    """Up to ``size`` captions, round-robin over classes (rare classes first) so every class is represented."""
    by_class: dict[float, list[str]] = defaultdict(list)
    for caption, row in sorted(captions.items()):
        by_class[row["cls"]].append(caption)
    queues = [list(rng.permutation(v)) for _, v in sorted(by_class.items(), key=lambda kv: len(kv[1]))]
    pool: list[str] = []
    while len(pool) < size and any(queues):
        for queue in queues:
            if queue and len(pool) < size:
                pool.append(str(queue.pop()))
    return pool


def choose_pairs(pool: list[str], captions: dict[str, dict], n: int, rng: np.random.Generator,
                 taken: set[tuple[str, str]], min_gap: float = 0.0) -> list[tuple[str, str]]:
    """``n`` new pairs of different classes, round-robin over class combinations, random order within a pair."""
    by_kind: dict[tuple[float, float], list[tuple[str, str]]] = defaultdict(list)
    for i, a in enumerate(pool):
        for b in pool[i + 1:]:
            ca, cb = captions[a]["cls"], captions[b]["cls"]
            if ca != cb and abs(ca - cb) >= min_gap and (a, b) not in taken and (b, a) not in taken:
                by_kind[(min(ca, cb), max(ca, cb))].append((a, b))
    queues = [list(rng.permutation(len(v))) for v in by_kind.values()]
    kinds = list(by_kind.values())
    pairs: list[tuple[str, str]] = []
    while len(pairs) < n and any(queues):
        for kind, queue in zip(kinds, queues, strict=True):
            if queue and len(pairs) < n:
                a, b = kind[queue.pop()]
                pairs.append((a, b) if rng.random() < 0.5 else (b, a))
    return pairs


def build_family(family: str, specs: dict, seed: int) -> list[dict]:
    records = []
    for env_index, (env_id, (episodes, max_steps, pool_n, pairs_n, quick_pool_n, quick_n)) in enumerate(specs.items()):
        collect = {"nethack": collect_nethack, "minigrid": collect_minigrid, "robotics": collect_robotics}[family]
        rows = collect(env_id, episodes, max_steps, seed + env_index)
        captions = labelled_captions(rows)
        rng = np.random.default_rng(seed + env_index)
        pool = choose_pool(captions, pool_n, rng)
        gap = 2.0 if family == "robotics" else 0.0
        quick = choose_pairs(pool[:quick_pool_n], captions, quick_n, rng, set(), gap)
        full = quick + choose_pairs(pool, captions, pairs_n - len(quick), rng, set(quick), gap)
        adapter = get_adapter(env_id)
        print(f"{env_id}: {len(rows)} observations, {len(captions)} distinct labelled captions, pool {len(pool)}, "
              f"{len(full)} pairs ({len(quick)} quick), classes {Counter(captions[c]['cls'] for c in pool)}")
        for a, b in full:
            ra, rb = captions[a], captions[b]
            record = {"family": family, "domain": adapter.family, "env_id": env_id, "env_goal": adapter.goal,
                      "caption_format": adapter.captioner_name,
                      "caption_a": a, "caption_b": b, "class_a": ra["cls"], "class_b": rb["cls"],
                      "oracle": 1.0 if ra["cls"] > rb["cls"] else 0.0, "source_a": ra["source"],
                      "source_b": rb["source"], "quick": (a, b) in set(quick)}
            if family == "nethack":
                record.update(status_caption_a=ra["status_caption"], status_caption_b=rb["status_caption"])
            records.append(record)
    # Quick pairs first, then the envs interleaved: any prefix of the file is a stratified subset (--max-pairs).
    quick = [r for r in records if r["quick"]]
    rest = [r for r in records if not r["quick"]]
    rank = {id(r): i for env_id in specs for i, r in enumerate(x for x in rest if x["env_id"] == env_id)}
    ordered = quick + sorted(rest, key=lambda r: (rank[id(r)], list(specs).index(r["env_id"])))
    return [{"pair_id": i, **r} for i, r in enumerate(ordered)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--families", nargs="+", default=["minigrid", "nethack", "robotics"])
    args = parser.parse_args()
    specs = {"minigrid": MINIGRID, "nethack": NETHACK, "robotics": ROBOTICS}
    for family in args.families:
        records = build_family(family, specs[family], args.seed)
        path = HERE / f"{family}.jsonl"
        path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
        print(f"wrote {len(records)} pairs to {path}")


if __name__ == "__main__":
    main()
