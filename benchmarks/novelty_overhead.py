"""PPO steps/s with the combined reward stack (judged reward + novelty bonus) vs without any shaping, in one run.

    python benchmarks/novelty_overhead.py --quick    # a few minutes
    python benchmarks/novelty_overhead.py

MiniGrid KeyCorridorS3R3, 8 envs in a DummyVecEnv, one torch thread. The judged reward is a real char-CNN artifact
fitted on oracle labels of captioned rollouts (:class:`~llm_reward.shaping.wrappers.LLMRewardVecEnv`); the novelty
bonus is E3B or RND with the settings of ``conf/novelty/*.yaml`` (:class:`~llm_reward.shaping.novelty.NoveltyVecEnv`
outermost), training its network on the agents' transitions as it does in a run. The agents learn in one process,
in short chunks taken in a shuffled order every round, so the load of a shared machine hits all alike:

* ``unshaped`` — no wrapper;
* ``motif_e3b`` / ``motif_rnd`` — both wrappers doing all their work (captions counted and scored, bonus computed,
  its network trained) but with ``alpha_int = 0`` and novelty weight 0, so the agent learns from the same rewards
  as ``unshaped`` and wanders the same way: ``ratio_*`` = their steps/s over unshaped's, the stack's own cost
  (target >= 0.8, issue 35);
* ``motif_e3b_learning`` — the same stack with the weights of ``reward=motif_e3b``: the cost plus the change of
  behaviour of an agent that learns from it (MiniGrid's per-step cost depends on where the agent goes).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, interleaved_learning_times, machine, oracle_reward_model  # noqa: E402

from llm_reward.agents import make_agent  # noqa: E402
from llm_reward.envs import make_vec_env  # noqa: E402
from llm_reward.shaping.novelty import E3B, RND, NoveltyVecEnv  # noqa: E402
from llm_reward.shaping.wrappers import LLMRewardVecEnv  # noqa: E402

ENV_ID = "MiniGrid-KeyCorridorS3R3-v0"
CONF = Path(__file__).resolve().parents[1] / "conf"


def bonus_settings(name: str) -> dict:
    """``conf/novelty/<name>.yaml``'s bonus options (what a run uses), without Hydra's keys."""
    spec = yaml.safe_load((CONF / "novelty" / f"{name}.yaml").read_text())
    return {k: v for k, v in spec["bonus"].items() if not k.startswith("_")}, float(spec["weight"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    reps, chunk = (6, 2048) if args.quick else (12, 4096)
    load_before = os.getloadavg()
    artifact = oracle_reward_model(ENV_ID, max_chars=1024)  # conf/env/minigrid/keycorridor_s3r3.yaml
    e3b, e3b_weight = bonus_settings("e3b")
    rnd, _ = bonus_settings("rnd")
    # (alpha_int, bonus class, bonus options, novelty weight) per agent; None: no wrapper at all
    stacks = {"unshaped": None, "motif_e3b": (0.0, E3B, e3b, 0.0), "motif_rnd": (0.0, RND, rnd, 0.0),
              "motif_e3b_learning": (0.1, E3B, e3b, e3b_weight)}
    agents = {}
    for name, stack in stacks.items():
        venv = make_vec_env(ENV_ID, n_envs=8, seed=0)
        if stack is not None:
            alpha_int, bonus, options, weight = stack
            venv = LLMRewardVecEnv(venv, reward_model=artifact, form="potential", alpha_int=alpha_int,
                                   threshold_quantile=0.5)
            venv = NoveltyVecEnv(venv, lambda *a, bonus=bonus, options=options, **k: bonus(*a, **options, **k),
                                 weight=weight, seed=0)
        agents[name] = make_agent("ppo", venv, seed=0)
        agents[name].learn(1024)  # warm-up: buffers allocated, first captions scored
    times = interleaved_learning_times(agents, reps=reps, chunk=chunk)
    sps = {name: reps * chunk / sum(times[name]) for name in agents}
    per_round = {name: np.array(times["unshaped"]) / np.array(times[name]) for name in agents if name != "unshaped"}
    bonus_updates = {name: agents[name].get_env().stats()["updates"] for name in per_round}
    emit("novelty_overhead_quick" if args.quick else "novelty_overhead", {
        "sps": sps, **{f"ratio_{name}": sps[name] / sps["unshaped"] for name in per_round},
        "ratio_chunks": {name: {"median": float(np.median(r)), "q25": float(np.quantile(r, 0.25)),
                                "q75": float(np.quantile(r, 0.75))} for name, r in per_round.items()},
        "target_ratio": 0.8, "rounds": reps, "steps_per_agent": reps * chunk, "env": ENV_ID, "n_envs": 8,
        "bonus_network_updates": bonus_updates, "load_before": load_before, "load_after": os.getloadavg(),
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
