"""Speed of CodeRewardVecEnv (reward code in a sandbox worker, one batched call per vector step) against the env's
own reward, in one run: 8 HalfCheetah-v5 envs in a DummyVecEnv.

    python benchmarks/eureka_wrapper_speed.py            # 15 rounds, 1-4 min depending on the machine's load
    python benchmarks/eureka_wrapper_speed.py --quick    # 2 rounds, under a minute

Two loops: random actions (the wrapper's overhead at its most visible: nothing else to do per step) and SB3 PPO
``learn`` (a user's training loop). Rounds alternate own reward / code reward so machine load hits both alike;
the ratio is code-reward steps/s over own-reward steps/s, median over rounds. Target: >= 0.8. A round is short
(about a second per arm), so one load spike moves one round's ratio a lot: the default of 15 rounds keeps the
median steady on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, stamp  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from llm_reward.envs import make_vec_env  # noqa: E402
from llm_reward.eureka.wrappers import CodeRewardVecEnv  # noqa: E402

ENV_ID, N_ENVS = "HalfCheetah-v5", 8
CODE = """import numpy as np

def compute_reward(obs, action, next_obs, info):
    forward = float(next_obs[8])
    ctrl = -0.1 * float(np.sum(np.square(action)))
    upright = -0.05 * abs(float(next_obs[1]))
    return forward + ctrl + upright, {"forward": forward, "ctrl": ctrl, "upright": upright}
"""


def random_steps_per_s(venv, steps: int) -> float:
    rng = np.random.default_rng(0)
    venv.reset()
    actions = rng.uniform(-1, 1, size=(steps, N_ENVS, 6)).astype(np.float32)
    start = time.perf_counter()
    for t in range(steps):
        venv.step(actions[t])
    return steps * N_ENVS / (time.perf_counter() - start)


def ppo_steps_per_s(venv, steps: int) -> float:
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", venv, n_steps=256, batch_size=256, n_epochs=2, seed=0, device="cpu", verbose=0)
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    return model.num_timesteps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rounds = 2 if args.quick else args.rounds
    began = time.perf_counter()
    random_steps, ppo_steps = (300, 4096) if args.quick else (1000, 8192)
    own = make_vec_env(ENV_ID, n_envs=N_ENVS, seed=0)
    code = CodeRewardVecEnv(make_vec_env(ENV_ID, n_envs=N_ENVS, seed=0), code=CODE)
    results: dict[str, dict[str, list[float]]] = {"random": {"own": [], "code": []}, "ppo": {"own": [], "code": []}}
    try:
        random_steps_per_s(code, 20)  # warm-up: the worker's first requests
        for _ in range(rounds):
            for name, venv in (("own", own), ("code", code)):
                results["random"][name].append(random_steps_per_s(venv, random_steps))
            for name, venv in (("own", own), ("code", code)):
                results["ppo"][name].append(ppo_steps_per_s(venv, ppo_steps))
    finally:
        own.close()
        code.close()
    summary = {}
    for loop, arms in results.items():
        ratios = [c / o for o, c in zip(arms["own"], arms["code"])]
        summary[loop] = {"own_steps_per_s": statistics.median(arms["own"]),
                         "code_steps_per_s": statistics.median(arms["code"]),
                         "ratio_median": statistics.median(ratios), "ratios": ratios, "rounds": rounds,
                         "own_rounds": arms["own"], "code_rounds": arms["code"]}
    config = {"env": ENV_ID, "n_envs": N_ENVS, "rounds": rounds, "random_steps": random_steps, "ppo_steps": ppo_steps}
    emit("eureka_wrapper_speed_quick" if args.quick else "eureka_wrapper_speed", {
        "env": ENV_ID, "n_envs": N_ENVS, "random_actions": summary["random"], "ppo_learn": summary["ppo"],
        "target_ratio": 0.8, **stamp(config=config, wall_time_s=time.perf_counter() - began)})


if __name__ == "__main__":
    main()
