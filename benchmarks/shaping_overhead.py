"""PPO steps/s with the frozen-reward VecEnv wrapper vs without: the cost of shaping, measured in one run.

    python benchmarks/shaping_overhead.py --quick    # <= 2 minutes
    python benchmarks/shaping_overhead.py

MiniGrid DoorKey-8x8, 8 envs in a DummyVecEnv, one torch thread. The reward model is a real char-CNN artifact
fitted on oracle labels of captioned rollouts. Three agents learn in one process, in many short chunks (one PPO
rollout + update each) taken in a shuffled order every round, so the load of a shared machine (which moves steps/s
by 30 % within a minute here) hits all alike:

* ``unshaped`` — no wrapper;
* ``shaped`` — the wrapper with ``alpha_int=0``: it does all its work (counts every caption, scores every new one
  with the reward model, applies the formula) but the agent learns from the same rewards as ``unshaped``, so it
  wanders the same way. ``ratio`` = shaped / unshaped steps per second: the wrapper's own cost (target >= 0.9);
* ``shaped_learning`` — the wrapper with ``alpha_int=0.1``: an agent that learns from the shaped reward goes
  elsewhere, and MiniGrid's per-step cost depends on where (what is in view, how often episodes reset).
  ``ratio_learning`` = shaped_learning / unshaped: the wrapper's cost plus that change of behaviour.

``ratio_chunks`` is the median and spread of the per-round shaped / unshaped ratios.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, interleaved_learning_times, machine, oracle_reward_model  # noqa: E402

from llm_reward import LLMRewardVecEnv  # noqa: E402
from llm_reward.agents import make_agent  # noqa: E402
from llm_reward.envs import make_vec_env  # noqa: E402

ENV_ID = "MiniGrid-DoorKey-8x8-v0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    reps, chunk = (12, 2048) if args.quick else (48, 4096)
    artifact = oracle_reward_model(ENV_ID)
    agents = {}
    for name, alpha_int in (("unshaped", None), ("shaped", 0.0), ("shaped_learning", 0.1)):
        venv = make_vec_env(ENV_ID, n_envs=8, seed=0)
        if alpha_int is not None:
            venv = LLMRewardVecEnv(venv, reward_model=artifact, alpha_int=alpha_int, beta=3.0, threshold_quantile=0.5)
        agents[name] = make_agent("ppo", venv, seed=0)
        agents[name].learn(1024)  # warm-up: allocate buffers, fill the caption reward cache with first captions
    times = interleaved_learning_times(agents, reps=reps, chunk=chunk)
    sps = {name: reps * chunk / sum(times[name]) for name in agents}
    per_round = np.array(times["unshaped"]) / np.array(times["shaped"])
    wrappers = {name: agents[name].get_env() for name in ("shaped", "shaped_learning")}
    emit("shaping_overhead_quick" if args.quick else "shaping_overhead", {
        "sps_unshaped": sps["unshaped"], "sps_shaped": sps["shaped"], "ratio": sps["shaped"] / sps["unshaped"],
        "sps_shaped_learning": sps["shaped_learning"], "ratio_learning": sps["shaped_learning"] / sps["unshaped"],
        "ratio_chunks": {"median": float(np.median(per_round)), "q25": float(np.quantile(per_round, 0.25)),
                         "q75": float(np.quantile(per_round, 0.75)), "rounds": reps},
        "steps_per_agent": reps * chunk, "env": ENV_ID, "n_envs": 8,
        "reward_model_calls": {name: w.shaper.reward.model_calls for name, w in wrappers.items()},
        "vec_steps": reps * chunk // 8, "machine": machine(),
    })


if __name__ == "__main__":
    main()
