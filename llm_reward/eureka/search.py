"""The evolutionary search: K reward functions per iteration, each trained in a sandbox, the best reflected on.

    >>> from llm_reward.llm import make_llm
    >>> summary = run_search("HalfCheetah-v5", make_llm("local"), SearchConfig(samples=4, iterations=2),
    ...                      run_dir="runs/eureka/halfcheetah")  # doctest: +SKIP
    >>> summary["best_training_fitness_per_iteration"], summary["eval_success"]  # doctest: +SKIP

Two metrics, named for what they measure: a candidate's ``training_fitness`` (its best training-window success
rate, Eureka's selection signal) picks the best code; the reported result is ``eval_success`` (and
``eval_return``), the success of each final policy (one per final seed and arm) on ``final_eval_episodes`` fresh
episodes. A candidate whose reply fails extraction, the allow-list or the smoke test is sent back to the coder
with its one-line reason up to ``repairs`` times (``execute_rate_first_try`` beside ``execute_rate``); executable
candidates are scored on stored rollouts against the progress oracle (:mod:`.prescreen`) before training.

Run directory (everything a reader needs to audit the search; a rerun with the same directory resumes; one for
another env id, coder or search setting is refused, see :mod:`.rundir`)::

    config.json  context.json  context.txt
    prescreen/rollouts.pkl                   the stored transitions candidates are pre-screened on
    iter_00/prompt.json                      the messages sent for this iteration
    iter_00/cand_03/response.md  code.py     the raw reply (and response_repair1.md ...) and the extracted function
    iter_00/cand_03/smoke.log  train.log     the sandbox worker's output (tracebacks)
    iter_00/cand_03/result.json              status, failure stage and reason, repairs, prescreen score, curve,
                                             training fitness, timings
    iter_00/summary.json                     execute rates, best candidate, the feedback given to the next prompt
    final/{eureka,env,sparse}_seed0.json     the best reward and both baselines retrained, each final policy
                                             evaluated on fresh episodes (and each hand-written reference arm)
    best_reward.py  summary.json
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import logging
import math
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from tqdm.auto import tqdm

from llm_reward.envs import get_adapter
from llm_reward.eureka.allowlist import CodeRejected, check_code
from llm_reward.eureka.candidate import evaluate_candidate, validate_reward_code
from llm_reward.eureka.context import EnvContext, env_context
from llm_reward.eureka.executors import ExecutorError, check_executor, make_executor
from llm_reward.eureka.extract import ExtractionError, extract_reward_code
from llm_reward.eureka.jail import check_isolation, default_isolation
from llm_reward.eureka.prescreen import Rollouts, load_or_collect, prescreen_score, spearman
from llm_reward.eureka.prompts import failure_feedback, feedback_messages, initial_messages, repair_messages
from llm_reward.eureka.records import CandidateJob, CandidateResult, Stage, Status, TrainSettings
from llm_reward.eureka.reflection import FITNESS_MODES, hns, reflection_text
from llm_reward.eureka.rundir import check_run_dir, default_run_dir, search_identity
from llm_reward.eureka.sandbox import kill_all_workers
from llm_reward.eureka.server import CodeRewardError
from llm_reward.jsonio import write_json
from llm_reward.types import Messages

log = logging.getLogger(__name__)


@dataclass
class SearchConfig:
    """The ``search.*`` keys. Defaults fit two CPU cores; Eureka's paper scale is ``samples=16, iterations=5``."""

    samples: int = 4
    iterations: int = 2
    algo: str = "ppo"
    total_timesteps: int = 20_000
    n_envs: int = 4
    n_points: int = 10
    eval_episodes: int = 0
    fitness: str = "max"
    final_seeds: int = 3
    final_eval_episodes: int = 20
    baselines: bool = True
    blind: bool = False
    repairs: int = 2
    reflection: bool = True
    prescreen_steps: int = 2000
    prescreen_top: int = 0
    workers: int = 2
    executor: str = "local"
    ray_address: str | None = None
    max_tokens: int = 800
    temperature: float = 0.8
    top_p: float = 0.95
    smoke_steps: int = 100
    timeout_s: float = 1800.0
    memory_mb: int = 6144
    seed: int = 0
    success: str | None = None
    max_episode_steps: int | None = None
    agent_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("samples", "iterations", "total_timesteps", "n_envs", "n_points", "workers", "max_tokens",
                    "smoke_steps"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ValueError(f"search.{key} must be an integer >= 1, got {getattr(self, key)!r}")
        for key in ("eval_episodes", "final_seeds", "repairs", "prescreen_steps", "prescreen_top"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 0:
                raise ValueError(f"search.{key} must be an integer >= 0, got {getattr(self, key)!r}")
        if not isinstance(self.final_eval_episodes, int) or self.final_eval_episodes < 1:
            raise ValueError(f"search.final_eval_episodes must be an integer >= 1 (fresh episodes per final policy), "
                             f"got {self.final_eval_episodes!r}")
        if self.prescreen_top and not self.prescreen_steps:
            raise ValueError("search.prescreen_top needs stored rollouts to screen on: set search.prescreen_steps > 0")
        if self.fitness not in FITNESS_MODES:
            raise ValueError(f"search.fitness must be one of {FITNESS_MODES}, got {self.fitness!r}")
        if not 0.0 < self.temperature <= 2.0:
            raise ValueError(f"search.temperature must be in (0, 2]: the K samples of one prompt must differ, "
                             f"got {self.temperature}")
        if self.timeout_s <= 0:
            raise ValueError(f"search.timeout_s must be > 0, got {self.timeout_s}")
        check_executor(self.executor)

    def job(self, env_id: str, hidden_info_keys: list[str], *, reward: str, seed: int, code: str | None = None,
            log_dir: str | None = None, eval_episodes: int | None = None,
            milestones: list[str] | tuple[str, ...] = ()) -> CandidateJob:
        """An :func:`~llm_reward.eureka.candidate.evaluate_candidate` job with these settings (``milestones``: the
        names whose share of training episodes the runner reports, for the failure diagnosis)."""
        return CandidateJob(env_id=env_id, reward=reward, seed=seed, code=code, success=self.success,
                            hidden_info_keys=tuple(hidden_info_keys), milestones=tuple(milestones),
                            smoke_steps=self.smoke_steps,
                            train=self.train_settings(env_id, eval_episodes), fitness=self.fitness,
                            timeout_s=self.timeout_s, memory_mb=self.memory_mb, log_dir=log_dir)

    def train_settings(self, env_id: str, eval_episodes: int | None = None) -> TrainSettings:
        """How each candidate's agent trains on ``env_id`` (``eval_episodes``: the final runs' evaluation instead),
        evaluated with the env adapter's actions (argmax, or sampled for MiniGrid and NetHack)."""
        return TrainSettings(algo=self.algo, total_timesteps=self.total_timesteps, n_envs=self.n_envs,
                             n_points=self.n_points,
                             eval_episodes=self.eval_episodes if eval_episodes is None else eval_episodes,
                             agent_kwargs=dict(self.agent_kwargs), max_episode_steps=self.max_episode_steps,
                             eval_deterministic=get_adapter(env_id).eval_deterministic)


def sample_seed(search_seed: int, iteration: int, sample: int) -> int:
    """A distinct LLM sampling seed per sample (the LLM cache keys on it, so equal seeds would give equal code)."""
    return search_seed * 1_000_000 + iteration * 1_000 + sample


def _read_result(path: Path) -> CandidateResult:
    return CandidateResult.from_json(json.loads(path.read_text()))


def _rank(record: CandidateResult) -> tuple[float, float]:
    return float(record.fitness), float(record.tiebreak) if record.tiebreak is not None else -math.inf


class EurekaSearch:
    """One search over reward code for one env, resumable from its run directory (see the module docstring)."""

    def __init__(self, env_id: str, llm: Any, config: SearchConfig, run_dir: str | Path | None = None, *,
                 context: EnvContext | None = None, context_overrides: Mapping[str, Any] | None = None,
                 progress: bool = True, references: Mapping[str, str] | None = None):
        """``references``: arm name -> reward source written by hand, retrained beside the final arms as upper
        references (never candidates, never selected); the other arguments as the module docstring describes."""
        self.env_id, self.llm, self.config, self.progress = env_id, llm, config, progress
        self.references = dict(references or {})
        clash = set(self.references) & {"eureka", "env", "sparse", "blind"}
        if clash or not all(name.isidentifier() for name in self.references):  # a name is part of a file name
            raise ValueError(f"reference arm names must be identifiers not taken by the search's own arms, got "
                             f"{sorted(self.references)}")
        for name, code in self.references.items():
            try:  # a reference is checked like a candidate, before any LLM call
                check_code(extract_reward_code(code))
            except (ExtractionError, CodeRejected) as exc:
                raise ValueError(f"reference arm {name!r}: {exc}") from None
        self._stopping = False
        # Before any LLM call: reward code needs a jail that starts here (or the user's explicit, warned opt-out).
        check_isolation(default_isolation())
        self.context = context if context is not None else env_context(env_id, context_overrides,
                                                                       success=config.success, seed=config.seed)
        # the final policies' evaluation actions (argmax, or sampled for MiniGrid and NetHack), read once
        self.eval_deterministic = get_adapter(env_id).eval_deterministic
        self.identity = search_identity(env_id, getattr(llm, "name", "?"), asdict(config), self.context.as_dict())
        # None: a directory keyed on what decides the search, so two searches never share one
        self.run_dir = Path(run_dir) if run_dir is not None else default_run_dir(self.identity)
        check_run_dir(self.run_dir, self.identity)  # before any LLM call: never resume another search

    # -- the loop -----------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run (or continue) every iteration, then the final retraining; returns and writes ``summary.json``."""
        cfg, start = self.config, time.monotonic()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        stored = {"env_id": self.env_id, "llm": getattr(self.llm, "name", "?"), "prompts": self.identity["prompts"],
                  "search": asdict(cfg), "context": self.context.as_dict()}
        if "diagnosis" in self.identity:  # an env with milestones: the failure diagnosis's texts
            stored["diagnosis"] = self.identity["diagnosis"]
        write_json(self.run_dir / "config.json", stored)
        write_json(self.run_dir / "context.json", self.context.as_dict())
        (self.run_dir / "context.txt").write_text(self.context.as_text())
        executor = self._start_executor()
        iterations, best, feedback = [], None, None
        try:
            self._rollouts = self._stored_rollouts()  # before any LLM call: an env without an oracle fails here
            for it in range(cfg.iterations):
                records, summary = self._iteration(it, feedback, executor)
                iterations.append(summary)
                ok = [r for r in records if r.trained]
                if ok:
                    top = max(ok, key=_rank)
                    if best is None or _rank(top) > _rank(best):
                        best = top
                feedback = summary["feedback"]
            final = self._final(best, executor) if best is not None else {}
        except KeyboardInterrupt:
            self._stopping = True
            stopped = kill_all_workers()
            executor.shutdown(cancel=True)
            log.warning("interrupted: %d running candidate(s) stopped; finished ones are kept in %s; rerun with the "
                        "same run directory to continue", stopped, self.run_dir)
            raise
        except BaseException:
            executor.shutdown(cancel=True)
            raise
        executor.shutdown()
        summary = self._summary(iterations, best, final, time.monotonic() - start)
        write_json(self.run_dir / "summary.json", summary)
        return summary

    def _start_executor(self) -> Any:
        """The executor, started before any LLM call; one that cannot start is an error naming its keys."""
        cfg = self.config
        try:
            return make_executor(cfg.executor, workers=cfg.workers, address=cfg.ray_address)
        except ExecutorError:
            raise
        except Exception as exc:  # Ray's connection and start-up errors have no common base class
            reason = " ".join(str(exc).split())[:300]
            raise ExecutorError(f"search.executor={cfg.executor} could not start ({type(exc).__name__}: {reason}); "
                                f"check search.ray_address={cfg.ray_address!r} and search.workers={cfg.workers}"
                                ) from None

    def _stored_rollouts(self) -> Rollouts | None:
        cfg = self.config
        if not cfg.prescreen_steps:
            return None
        return load_or_collect(self.run_dir / "prescreen" / "rollouts.pkl", self.env_id, n_steps=cfg.prescreen_steps,
                               seed=cfg.seed, success=cfg.success, max_episode_steps=cfg.max_episode_steps)

    def _iteration(self, it: int, feedback: dict[str, str] | None,
                   executor: Any) -> tuple[list[CandidateResult], dict[str, Any]]:
        cfg, it_dir = self.config, self.run_dir / f"iter_{it:02d}"
        if feedback is None or not cfg.reflection:  # reflection off (a control): every iteration starts afresh
            messages = initial_messages(self.context)
        else:
            messages = feedback_messages(self.context, feedback["code"], feedback["text"])
        write_json(it_dir / "prompt.json", messages)
        records: dict[int, CandidateResult] = {}
        futures: dict[cf.Future, int] = {}
        screened: list[dict[str, Any]] = []
        bar = tqdm(total=cfg.samples, desc=f"iteration {it}", unit="candidate", disable=not self.progress)
        for k in range(cfg.samples):
            cand_dir = it_dir / f"cand_{k:02d}"
            if (cand_dir / "result.json").exists():  # finished in an earlier run
                records[k] = _read_result(cand_dir / "result.json")
                bar.update()
                continue
            code, attempts = self._write_code(messages, cand_dir, sample_seed(cfg.seed, it, k))
            common = {"attempts": attempts, "repairs": len(attempts) - 1}
            if code is None:
                last = attempts[-1]
                records[k] = self._finish(cand_dir, CandidateResult(
                    status=Status.FAILED, stage=Stage(last["stage"]), reason=last["reason"], code=last.get("code"),
                    executable=False, **common))
                bar.update()
                continue
            candidate = {"k": k, "dir": cand_dir, "code": code, "prescreen_score": self._prescreen(code),
                         **common}
            if cfg.prescreen_top:
                screened.append(candidate)  # trained (or not) once every sample of this round is scored
            else:
                futures[self._submit(executor, candidate)] = k
        if screened:
            screened.sort(key=lambda c: -math.inf if c["prescreen_score"] is None else c["prescreen_score"],
                          reverse=True)
            for candidate in screened[cfg.prescreen_top:]:
                records[candidate["k"]] = self._finish(candidate["dir"], CandidateResult(
                    status=Status.SCREENED_OUT, stage=Stage.PRESCREEN, executable=True,
                    reason=f"prescreen score {candidate['prescreen_score']} not in the top {cfg.prescreen_top}",
                    **_public(candidate)))
                bar.update()
            for candidate in screened[:cfg.prescreen_top]:
                futures[self._submit(executor, candidate)] = candidate["k"]
        for future in cf.as_completed(futures):
            k = futures[future]
            # evaluate_candidate never raises for bad code; a crash here is a bug: surface it
            records[k] = self._finish(future.candidate["dir"], _trained(future))
            bar.update()
        bar.close()
        ordered = [records[k] for k in range(cfg.samples)]
        summary = self._iteration_summary(it, ordered)
        write_json(it_dir / "summary.json", summary)
        return ordered, summary

    def _write_code(self, messages: Messages, cand_dir: Path, seed: int) -> tuple[str | None, list[dict[str, Any]]]:
        """The candidate's code after up to ``search.repairs`` repairs, and each attempt's failure (stage, reason).

        A reply that fails extraction, the allow-list or the smoke test is asked for again with its one-line
        reason (and failing line) after the first prompt (:func:`~llm_reward.eureka.prompts.repair_messages`).
        Every reply is kept (``response.md``, ``response_repair1.md``, ...), so a rerun asks nothing again.
        """
        cfg, attempts, turn = self.config, [], messages
        for attempt in range(cfg.repairs + 1):
            name = "response.md" if attempt == 0 else f"response_repair{attempt}.md"
            # a repair samples with its own seed: with the first reply's seed the small coder repeats that reply
            # verbatim, whatever the reason it is told
            reply = self._response(turn, cand_dir / name, seed if attempt == 0 else seed + 7919 * attempt)
            code = None
            try:
                code = extract_reward_code(reply)
                check_code(code)
            except (ExtractionError, CodeRejected) as exc:
                stage, reason = ("extract" if isinstance(exc, ExtractionError) else "allowlist"), str(exc)
            except Exception as exc:  # noqa: BLE001 - a check that fails on a hostile reply fails the reply only
                stage, reason = "allowlist", f"the reply could not be checked: {type(exc).__name__}"
            else:
                ok, reason = validate_reward_code(code, self.env_id, smoke_steps=cfg.smoke_steps, seed=cfg.seed)
                if ok:
                    (cand_dir / "code.py").write_text(code)
                    attempts.append({"stage": None, "reason": reason})
                    return code, attempts
                stage = "smoke"
            attempts.append({"stage": stage, "reason": reason, "code": code})
            turn = repair_messages(messages, reason, code)
        return None, attempts

    def _reference(self) -> dict[str, float] | None:
        """What a random policy reaches on the progress oracle (the stored rollouts), for the failure diagnosis."""
        if getattr(self, "_rollouts", None) is None or not len(self._rollouts):
            return None
        progress = self._rollouts.progress
        return {"median": float(statistics.median(progress)), "max": float(progress.max())}

    def _prescreen(self, code: str) -> float | None:
        if self._rollouts is None:
            return None
        try:
            return prescreen_score(code, self._rollouts, hidden_info_keys=self.context.hidden_info_keys)
        except CodeRewardError as exc:  # passed the smoke test yet fails on a stored transition: unscored
            log.info("prescreen: %s", exc)
            return None

    def _submit(self, executor: Any, candidate: dict[str, Any]) -> cf.Future:
        job = self.config.job(self.env_id, self.context.hidden_info_keys, reward="code", code=candidate["code"],
                              seed=self.config.seed + candidate["k"], log_dir=str(candidate["dir"]),
                              milestones=self.context.milestones)
        future = executor.submit(evaluate_candidate, job)
        future.candidate = candidate
        # written the moment it finishes, so a Ctrl-C during the next LLM call keeps it
        future.add_done_callback(self._on_done)
        return future

    def _on_done(self, future: cf.Future) -> None:
        """Write a candidate's result as soon as it finishes (the main thread writes the same record again later)."""
        if self._stopping or future.cancelled() or future.exception() is not None:
            return  # a worker killed by Ctrl-C is not a finished candidate: a rerun trains it again
        self._finish(future.candidate["dir"], _trained(future))

    def _response(self, messages: Messages, path: Path, seed: int) -> str:
        if path.exists():
            return path.read_text()
        cfg = self.config
        text = self.llm.complete(messages, max_tokens=cfg.max_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                                 seed=seed, allow_empty=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return text

    @staticmethod
    def _finish(cand_dir: Path, record: CandidateResult) -> CandidateResult:
        record = dataclasses.replace(record, candidate=cand_dir.name)
        write_json(cand_dir / "result.json", record.to_json())
        return record

    def _iteration_summary(self, it: int, records: list[CandidateResult]) -> dict[str, Any]:
        ok = [r for r in records if r.trained]
        executable = [r for r in records if r.ran]
        stages = Counter(r.stage.value for r in records if r.status is Status.FAILED and r.stage is not None)
        summary: dict[str, Any] = {
            "iteration": it, "candidates": len(records), "executable": len(executable), "trained": len(ok),
            "executable_first_try": sum(not r.repairs for r in executable),
            "execute_rate": len(executable) / len(records), "failures_by_stage": dict(stages),
            "best_candidate": None, "best_training_fitness": None,
            "prescreen_scores": [r.prescreen_score for r in records],
            "training_fitness": [r.fitness for r in records],
            "selection_keys": [list(_rank(r)) if r.trained else None for r in records],
            "candidate_wall_s": [r.elapsed_s for r in records]}
        summary["execute_rate_first_try"] = summary["executable_first_try"] / len(records)
        if ok:
            top = max(ok, key=_rank)
            summary.update(best_candidate=top.candidate, best_training_fitness=top.fitness)
            text = reflection_text(top.curve, evaluation=top.eval_success, reference=self._reference(),
                                   milestones=self.context.milestones)
            summary["feedback"] = {"code": top.code, "text": text, "from": top.candidate}
        else:  # nothing ran: show the model its own failure (the first one with code, else any)
            failed = next((r for r in records if r.code), records[0])
            code = failed.code or "# (no compute_reward found in the reply)"
            summary["feedback"] = {"code": code, "text": failure_feedback(failed.reason), "from": failed.candidate}
        return summary

    # -- final evaluation -------------------------------------------------------------------------------------
    def _final(self, best: CandidateResult, executor: Any) -> dict[str, list[CandidateResult]]:
        """Retrain the best code (and the env/sparse baselines) over ``final_seeds`` seeds at the same budget, then
        evaluate each final policy on ``final_eval_episodes`` fresh episodes."""
        cfg = self.config
        (self.run_dir / "best_reward.py").write_text(best.code)
        kinds = ["eureka"] + (["env", "sparse"] if cfg.baselines else [])
        codes = {"eureka": best.code}
        if cfg.blind:
            blind = self._blind_code()
            if blind is not None:
                kinds.append("blind")
                codes["blind"] = blind
        for name, code in self.references.items():
            kinds.append(name)
            codes[name] = extract_reward_code(code)
        results: dict[str, list[CandidateResult]] = {kind: [] for kind in kinds}
        futures = {}
        for kind in kinds:
            for s in range(cfg.final_seeds):
                path = self.run_dir / "final" / f"{kind}_seed{s}.json"
                # a stored final run counts only if it trained the code that is best now: extending a search
                # (more samples or iterations) can change the best code, and its old final runs are then stale; so
                # is one evaluated with other actions (argmax where the adapter samples: records from before the key)
                if path.exists() and (stored := _read_result(path)).code == codes.get(kind) and (
                        stored.eval_deterministic is not False) == self.eval_deterministic:
                    results[kind].append(stored)
                    continue
                job = cfg.job(self.env_id, self.context.hidden_info_keys, eval_episodes=cfg.final_eval_episodes,
                              reward="code" if kind in codes else kind,
                              code=codes.get(kind), seed=cfg.seed + 100 + s,
                              log_dir=str(path.parent / f"{kind}_seed{s}"), milestones=self.context.milestones)
                Path(job.log_dir).mkdir(parents=True, exist_ok=True)
                future = executor.submit(evaluate_candidate, job)
                futures[future] = (kind, path)
                # written the moment it finishes, so a Ctrl-C while others still train keeps it
                code = codes.get(kind)
                future.add_done_callback(lambda f, p=path, c=code: self._final_done(f, p, c))
        for future in tqdm(cf.as_completed(futures), total=len(futures), desc="final retraining", unit="run",
                           disable=not self.progress or not futures):
            kind, path = futures[future]
            future.result()  # evaluate_candidate never raises for bad code; a crash here is a bug: surface it
            results[kind].append(self._final_done(future, path, codes.get(kind)))
        for kind in kinds:
            results[kind].sort(key=lambda r: r.seed)
        return results

    def _final_done(self, future: cf.Future, path: Path, code: str | None) -> CandidateResult | None:
        if self._stopping or future.cancelled() or future.exception() is not None:
            return None  # stopped by Ctrl-C: not a finished run, a rerun trains it again
        record = dataclasses.replace(future.result(), eval_episodes=self.config.final_eval_episodes, code=code,
                                     eval_deterministic=self.eval_deterministic)
        write_json(path, record.to_json())
        return record

    def _blind_code(self) -> str | None:
        """The blind control: code the coder writes without the task description, success criterion, info keys
        and observation layout (only the observation's shape and the action space), with the same repairs."""
        ctx = self.context
        blind = EnvContext(env_id="(not given)", description="(not given)", observation=ctx.observation.splitlines()[0],
                           action=ctx.action, success=None, hidden_info_keys=ctx.hidden_info_keys)
        code, attempts = self._write_code(initial_messages(blind), self.run_dir / "blind", sample_seed(
            self.config.seed, 999, 0))
        write_json(self.run_dir / "blind" / "result.json", {"code": code, "attempts": attempts})
        return code

    def _summary(self, iterations: list[dict[str, Any]], best: CandidateResult | None,
                 final: dict[str, list[CandidateResult]], wall_s: float) -> dict[str, Any]:
        total = sum(s["candidates"] for s in iterations)
        walls = [w for s in iterations for w in s["candidate_wall_s"] if w is not None]
        # the prescreen score against the search's own selection order (training fitness, ties broken by the
        # best training-window env return), over every trained candidate that was scored
        scored = [(p, tuple(k)) for s in iterations for p, k in zip(s["prescreen_scores"], s.get("selection_keys", []))
                  if p is not None and k is not None]
        order = sorted({k for _, k in scored})
        summary: dict[str, Any] = {
            "task": self.env_id, "candidates": total,
            "execute_rate": sum(s["executable"] for s in iterations) / total if total else 0.0,
            "execute_rate_first_try": sum(s["executable_first_try"] for s in iterations) / total if total else 0.0,
            "execute_rate_per_iteration": [s["execute_rate"] for s in iterations],
            "best_training_fitness_per_iteration": [s["best_training_fitness"] for s in iterations],
            "failures_by_stage": dict(sum((Counter(s["failures_by_stage"]) for s in iterations), Counter())),
            "best_candidate": None if best is None else f"{best.candidate}",
            "best_training_fitness": None if best is None else best.fitness,
            "prescreen_spearman": spearman([p for p, _ in scored], [order.index(k) for _, k in scored])
            if scored else None,
            "prescreen_pairs": len(scored),
            "wall_s_per_candidate": statistics.mean(walls) if walls else None,
            "wall_s": wall_s, "llm": getattr(self.llm, "name", "?"), "search": asdict(self.config),
            "identity": self.identity,
        }
        summary["final"] = {kind: final_arm(runs) for kind, runs in final.items()}
        summary["eval_episodes"] = self.config.final_eval_episodes
        summary["eval_actions"] = "argmax" if self.eval_deterministic else "sampled"
        summary["eval_success"] = {kind: _mean(arm["eval_success"]) for kind, arm in summary["final"].items()}
        summary["eval_return"] = {kind: _mean(arm["eval_return"]) for kind, arm in summary["final"].items()}
        summary["hns"] = hns_summary({kind: arm["eval_success"] for kind, arm in summary["final"].items()})
        return summary


def _public(candidate: dict[str, Any]) -> dict[str, Any]:
    """A candidate's fields that go into its result record."""
    return {key: candidate[key] for key in ("code", "prescreen_score", "attempts", "repairs")}


def _trained(future: cf.Future) -> CandidateResult:
    record = future.result()
    # executable: ran through training without an error (the smoke test inside the job included)
    return dataclasses.replace(record, executable=record.trained, **_public(future.candidate))


def final_arm(runs: list[CandidateResult]) -> dict[str, list[Any]]:
    """One arm's final runs, seed by seed: ``eval_success`` / ``eval_return`` of the final policy on fresh
    episodes (the reported metric) and ``training_fitness`` (best training-window success, Eureka's selection
    signal). A failed run is None in each list."""
    return {"seeds": [r.seed for r in runs],
            "eval_success": [r.eval_success if r.trained else None for r in runs],
            "eval_return": [r.eval_return if r.trained else None for r in runs],
            "training_fitness": [r.fitness if r.trained else None for r in runs]}


def _mean(values: list[float | None]) -> float | None:
    valid = [v for v in values if v is not None]
    return statistics.mean(valid) if valid else None


def hns_summary(scores: Mapping[str, list[float | None]]) -> dict[str, Any]:
    """HNS of the eureka runs against the env-reward ("human") and sparse-reward runs, seed by seed and of means.

    >>> hns_summary({"eureka": [0.5, 0.7], "env": [0.6, 0.6], "sparse": [0.1, 0.1]})["of_means"]
    1.0
    """
    out: dict[str, Any] = {"per_seed": [], "mean": None, "std": None, "of_means": None}
    method, human, sparse = (scores.get(k, []) for k in ("eureka", "env", "sparse"))
    if not (method and human and sparse):
        return out
    per_seed = [hns(m, human=h, sparse=s) if None not in (m, h, s) else None
                for m, h, s in zip(method, human, sparse)]
    out["per_seed"] = per_seed
    valid = [v for v in per_seed if v is not None]
    if valid:
        out["mean"] = statistics.mean(valid)
        out["std"] = statistics.pstdev(valid) if len(valid) > 1 else 0.0
    means = [statistics.mean([v for v in xs if v is not None]) if any(v is not None for v in xs) else None
             for xs in (method, human, sparse)]
    if None not in means:
        out["of_means"] = hns(means[0], human=means[1], sparse=means[2])
    return out


def run_search(env_id: str, llm: Any, config: SearchConfig | None = None, run_dir: str | Path | None = None,
               **kwargs: Any) -> dict[str, Any]:
    """Build and run an :class:`EurekaSearch`; returns the summary (also in ``run_dir/summary.json``)."""
    return EurekaSearch(env_id, llm, config or SearchConfig(), run_dir, **kwargs).run()
