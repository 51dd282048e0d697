"""One candidate's whole life outside the LLM: allow-list, sandboxed smoke test, sandboxed training, fitness.

:func:`evaluate_candidate` is the unit of work the executors run; it takes a :class:`CandidateJob` and returns a
:class:`CandidateResult` (typed records that pickle, so a Ray node needs nothing but the installed package).
:func:`validate_reward_code` is the same check without the training, for users and CI.

    >>> code = "def compute_reward(o, a, n, i):\\n    return 1.0, {'alive': 1.0}"
    >>> validate_reward_code(code, "Hopper-v5")  # doctest: +SKIP
    (True, "ok: 100 smoke-test steps, total reward mean 1 (min 1, max 1), components ['alive']")
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from llm_reward.eureka.allowlist import CodeRejected, check_code
from llm_reward.eureka.context import ALWAYS_HIDDEN
from llm_reward.eureka.extract import ExtractionError, extract_reward_code
from llm_reward.eureka.frames import SmokeResult
from llm_reward.eureka.records import CandidateJob, CandidateResult, Stage, Status
from llm_reward.eureka.reflection import fitness, tiebreak
from llm_reward.eureka.sandbox import SandboxLimits, run_job

SMOKE_TIMEOUT_S = 45.0


def validate_reward_code(code: str, env_id: str, *, smoke_steps: int = 100, seed: int = 0) -> tuple[bool, str]:
    """The full pre-training check of ``code`` (plain source or an LLM reply) on ``env_id``: ``(ok, reason)``.

    Extraction by name, signature, allow-list, then a sandboxed smoke test on ``smoke_steps`` random-action steps
    (the code in a jailed reward server, the rollout and its statistics in a runner that never runs the code).
    Returns within about 55 s whatever the code does; never raises for bad code. Raises
    :class:`~llm_reward.eureka.jail.SandboxUnavailable` (naming ``sandbox.isolation``) where the OS sandbox cannot
    start on this machine.
    """
    try:
        source = extract_reward_code(code)
        check_code(source)
    except (ExtractionError, CodeRejected) as exc:
        return False, str(exc)
    except Exception as exc:  # noqa: BLE001 - never raise for bad code, even where a check itself fails on it
        return False, f"the reply could not be checked: {type(exc).__name__}"
    if not isinstance(env_id, str) or not env_id:
        return False, f"env_id must be a non-empty Gymnasium id, got {env_id!r}"
    outcome = run_job({"mode": "smoke", "env_id": env_id, "code": source, "seed": seed, "n_steps": smoke_steps,
                       "hidden_info_keys": list(ALWAYS_HIDDEN)},
                      limits=SandboxLimits(timeout_s=SMOKE_TIMEOUT_S, memory_mb=4096))
    if not outcome.ok:
        return False, outcome.reason
    return True, smoke_summary(outcome.result)


def smoke_summary(result: SmokeResult) -> str:
    mean, low, high = result.total if result.total else (0.0, 0.0, 0.0)
    return (f"ok: {result.steps} smoke-test steps, total reward mean {mean:.3g} (min {low:.3g}, max {high:.3g}), "
            f"components {sorted(result.components)}")


def evaluate_candidate(job: CandidateJob) -> CandidateResult:
    """Smoke-test, then train on ``job.code`` (or the env's ``env`` / ``sparse`` reward) in sandbox workers.

    Args:
        job: what to run (:class:`~llm_reward.eureka.records.CandidateJob`); it pickles, so a Ray node needs
            nothing but the installed package.

    Returns:
        The :class:`~llm_reward.eureka.records.CandidateResult`: ``status`` (ok | failed), the ``stage`` and
        ``reason`` of a failure, the training ``curve``, ``fitness``, ``tiebreak``, ``eval_success`` and timings.
        Bad code is a failed result, never an exception.
    """
    start = time.monotonic()
    log_dir = Path(job.log_dir) if job.log_dir else None
    result = CandidateResult(seed=job.seed, reward=job.reward)
    train = job.train
    env = {"env_id": job.env_id, "success": job.success, "max_episode_steps": train.max_episode_steps,
           "hidden_info_keys": list(job.hidden_info_keys)}
    if job.reward == "code":
        outcome = run_job({"mode": "smoke", **env, "code": job.code, "seed": job.seed, "n_steps": job.smoke_steps},
                          limits=SandboxLimits(timeout_s=SMOKE_TIMEOUT_S, memory_mb=job.memory_mb),
                          log_path=log_dir / "smoke.log" if log_dir else None)
        result.smoke_s = round(outcome.elapsed_s, 2)
        if not outcome.ok:
            result.stage, result.reason = Stage.SMOKE, outcome.reason
            result.elapsed_s = round(time.monotonic() - start, 2)
            return result
        result.smoke = dataclasses.asdict(outcome.result)
    outcome = run_job({"mode": "train", **env, "code": job.code, "reward": job.reward, "seed": job.seed,
                       "algo": train.algo, "total_timesteps": int(train.total_timesteps), "n_envs": int(train.n_envs),
                       "n_points": int(train.n_points), "eval_episodes": int(train.eval_episodes),
                       "eval_deterministic": bool(train.eval_deterministic),
                       "agent_kwargs": dict(train.agent_kwargs), "milestones": list(job.milestones)},
                      limits=SandboxLimits(timeout_s=float(job.timeout_s), memory_mb=job.memory_mb),
                      log_path=log_dir / "train.log" if log_dir else None)
    result.curve = [dataclasses.asdict(point) for point in outcome.progress]
    result.train_s = round(outcome.elapsed_s, 2)
    result.elapsed_s = round(time.monotonic() - start, 2)
    if not outcome.ok:
        result.stage, result.reason = Stage.TRAIN, outcome.reason
        return result
    result.eval_success, result.eval_return = outcome.result.eval_success, outcome.result.eval_return
    result.status = Status.OK
    result.fitness = fitness(result.curve, mode=job.fitness, evaluation=outcome.result.eval_success)
    result.tiebreak = tiebreak(result.curve)
    return result
