"""PPO steps/s with the frozen-reward VecEnv wrapper vs without: the cost of shaping, measured in one run.

    python benchmarks/shaping_overhead.py --quick    # <= 2 minutes
    python benchmarks/shaping_overhead.py

MiniGrid DoorKey-8x8, 8 envs in a DummyVecEnv, one torch thread. The reward model is a real char-CNN artifact
fitted on oracle labels of captioned rollouts. The two agents learn in many short alternating chunks, in ABBA
order, so the load of a shared machine (which moves steps/s by 30 % within a minute here) hits both alike;
``ratio`` = shaped / unshaped steps per second over all chunks (target >= 0.9), ``ratio_chunks`` the median and
spread of the per-pair ratios.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine  # noqa: E402

from llm_reward import LLMRewardVecEnv  # noqa: E402
from llm_reward.agents import make_agent  # noqa: E402
from llm_reward.envs import captioner_name  # noqa: E402
from llm_reward.pipeline import collect_stage, fit_stage, oracle_stage, sample_pairs  # noqa: E402
from llm_reward.training import make_vec_env  # noqa: E402

ENV_ID = "MiniGrid-DoorKey-8x8-v0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    reps, chunk = (12, 2048) if args.quick else (48, 4096)
    with tempfile.TemporaryDirectory() as tmp:
        rollouts = collect_stage(ENV_ID, n_steps=2000, n_envs=4, seed=0, path=Path(tmp) / "r.parquet", progress=False)
        labelled, _ = oracle_stage(sample_pairs(rollouts, 1000, seed=0))
        artifact = fit_stage(labelled, rollouts, captioner=captioner_name(ENV_ID), path=Path(tmp) / "rm",
                             epochs=5, progress=False)
    agents = {}
    for name in ("unshaped", "shaped"):
        venv = make_vec_env(ENV_ID, n_envs=8, seed=0)
        if name == "shaped":
            venv = LLMRewardVecEnv(venv, reward_model=artifact, alpha_int=0.1, beta=3.0, threshold_quantile=0.5)
        agents[name] = make_agent("ppo", venv, seed=0)
        agents[name].learn(1024)  # warm-up: allocate buffers, fill the caption reward cache with first captions
    times: dict[str, list[float]] = {name: [] for name in agents}
    for rep in range(reps):
        for name in (("unshaped", "shaped") if rep % 2 == 0 else ("shaped", "unshaped")):
            start = time.perf_counter()
            agents[name].learn(chunk, reset_num_timesteps=False)
            times[name].append(time.perf_counter() - start)
    sps = {name: reps * chunk / sum(times[name]) for name in agents}
    per_pair = np.array(times["unshaped"]) / np.array(times["shaped"])
    wrapper = agents["shaped"].get_env()
    emit("shaping_overhead_quick" if args.quick else "shaping_overhead", {
        "sps_unshaped": sps["unshaped"], "sps_shaped": sps["shaped"], "ratio": sps["shaped"] / sps["unshaped"],
        "ratio_chunks": {"median": float(np.median(per_pair)), "q25": float(np.quantile(per_pair, 0.25)),
                         "q75": float(np.quantile(per_pair, 0.75)), "pairs": reps},
        "steps_per_agent": reps * chunk, "env": ENV_ID, "n_envs": 8,
        "reward_cache_size": len(wrapper.shaper.reward.cache), "reward_model_calls": wrapper.shaper.reward.model_calls,
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
