"""The evolutionary search: K reward functions per iteration, each trained in a sandbox, the best reflected on.

    >>> from llm_reward.llm import make_llm
    >>> summary = run_search("HalfCheetah-v5", make_llm("local"), SearchConfig(samples=4, iterations=2),
    ...                      run_dir="runs/eureka/halfcheetah")  # doctest: +SKIP
    >>> summary["best_fitness_per_iteration"], summary["hns"]["mean"]  # doctest: +SKIP

Run directory (everything a reader needs to audit the search; a rerun with the same directory resumes)::

    config.json  context.json  context.txt
    iter_00/prompt.json                      the messages sent for this iteration
    iter_00/cand_03/response.md  code.py     the raw reply and the extracted function
    iter_00/cand_03/smoke.log  train.log     the sandbox worker's output (tracebacks)
    iter_00/cand_03/result.json              status, failure stage and reason, curve, fitness, timings
    iter_00/summary.json                     execute rate, best candidate, the feedback given to the next prompt
    final/{eureka,env,sparse}_seed0.json     the best reward and both baselines retrained over several seeds
    best_reward.py  summary.json
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import math
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from tqdm.auto import tqdm

from llm_reward.eureka.allowlist import CodeRejected, check_code
from llm_reward.eureka.candidate import evaluate_candidate
from llm_reward.eureka.context import EnvContext, env_context
from llm_reward.eureka.executors import check_executor, make_executor
from llm_reward.eureka.extract import ExtractionError, extract_reward_code
from llm_reward.eureka.prompts import failure_feedback, feedback_messages, initial_messages
from llm_reward.eureka.reflection import FITNESS_MODES, hns, reflection_text
from llm_reward.eureka.sandbox import kill_all_workers

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
    eval_episodes: int = 5
    fitness: str = "max"
    final_seeds: int = 3
    baselines: bool = True
    workers: int = 2
    executor: str = "local"
    ray_address: str | None = None
    max_tokens: int = 512
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
        for key in ("eval_episodes", "final_seeds"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 0:
                raise ValueError(f"search.{key} must be an integer >= 0, got {getattr(self, key)!r}")
        if self.fitness not in FITNESS_MODES:
            raise ValueError(f"search.fitness must be one of {FITNESS_MODES}, got {self.fitness!r}")
        if not 0.0 < self.temperature <= 2.0:
            raise ValueError(f"search.temperature must be in (0, 2]: the K samples of one prompt must differ, "
                             f"got {self.temperature}")
        if self.timeout_s <= 0:
            raise ValueError(f"search.timeout_s must be > 0, got {self.timeout_s}")
        check_executor(self.executor)

    def job(self, env_id: str, hidden_info_keys: list[str], **fields: Any) -> dict[str, Any]:
        """An :func:`~llm_reward.eureka.candidate.evaluate_candidate` job with these settings."""
        return {"env_id": env_id, "success": self.success, "hidden_info_keys": list(hidden_info_keys),
                "smoke_steps": self.smoke_steps, "train": self.train_settings(), "fitness": self.fitness,
                "timeout_s": self.timeout_s, "memory_mb": self.memory_mb, **fields}

    def train_settings(self) -> dict[str, Any]:
        return {"algo": self.algo, "total_timesteps": self.total_timesteps, "n_envs": self.n_envs,
                "n_points": self.n_points, "eval_episodes": self.eval_episodes,
                "agent_kwargs": dict(self.agent_kwargs), "max_episode_steps": self.max_episode_steps}


def sample_seed(search_seed: int, iteration: int, sample: int) -> int:
    """A distinct LLM sampling seed per sample (the LLM cache keys on it, so equal seeds would give equal code)."""
    return search_seed * 1_000_000 + iteration * 1_000 + sample


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")  # one per writer thread
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)  # atomic: a crash never leaves half a result.json that a rerun would trust


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _rank(record: dict[str, Any]) -> tuple[float, float]:
    tie = record.get("tiebreak")
    return float(record["fitness"]), float(tie) if tie is not None else -math.inf


class EurekaSearch:
    """One search over reward code for one env, resumable from its run directory (see the module docstring)."""

    def __init__(self, env_id: str, llm: Any, config: SearchConfig, run_dir: str | Path, *,
                 context: EnvContext | None = None, context_overrides: Mapping[str, Any] | None = None,
                 progress: bool = True):
        self.env_id, self.llm, self.config, self.progress = env_id, llm, config, progress
        self.run_dir = Path(run_dir)
        self._stopping = False
        self.context = context if context is not None else env_context(env_id, context_overrides,
                                                                       success=config.success, seed=config.seed)

    # -- the loop -----------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run (or continue) every iteration, then the final retraining; returns and writes ``summary.json``."""
        cfg, start = self.config, time.monotonic()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(self.run_dir / "config.json", {"env_id": self.env_id, "llm": getattr(self.llm, "name", "?"),
                                                  "search": asdict(cfg)})
        _write_json(self.run_dir / "context.json", self.context.as_dict())
        (self.run_dir / "context.txt").write_text(self.context.as_text())
        iterations, best, feedback = [], None, None
        executor = make_executor(cfg.executor, workers=cfg.workers, address=cfg.ray_address)
        try:
            for it in range(cfg.iterations):
                records, summary = self._iteration(it, feedback, executor)
                iterations.append(summary)
                ok = [r for r in records if r["status"] == "ok"]
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
        executor.shutdown()
        summary = self._summary(iterations, best, final, time.monotonic() - start)
        _write_json(self.run_dir / "summary.json", summary)
        return summary

    def _iteration(self, it: int, feedback: dict[str, str] | None,
                   executor: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        cfg, it_dir = self.config, self.run_dir / f"iter_{it:02d}"
        messages = (initial_messages(self.context) if feedback is None
                    else feedback_messages(self.context, feedback["code"], feedback["text"]))
        _write_json(it_dir / "prompt.json", messages)
        records: dict[int, dict[str, Any]] = {}
        futures: dict[cf.Future, tuple[int, Path, str]] = {}
        bar = tqdm(total=cfg.samples, desc=f"iteration {it}", unit="candidate", disable=not self.progress)
        for k in range(cfg.samples):
            cand_dir = it_dir / f"cand_{k:02d}"
            if (cand_dir / "result.json").exists():  # finished in an earlier run
                records[k] = _read_json(cand_dir / "result.json")
                bar.update()
                continue
            response = self._response(messages, cand_dir, sample_seed(cfg.seed, it, k))
            try:
                code = extract_reward_code(response)
                (cand_dir / "code.py").write_text(code)
                check_code(code)
            except (ExtractionError, CodeRejected) as exc:
                stage = "extract" if isinstance(exc, ExtractionError) else "allowlist"
                records[k] = self._finish(cand_dir, {"status": "failed", "stage": stage, "reason": str(exc),
                                                     "curve": [], "fitness": None, "code": None})
                bar.update()
                continue
            job = cfg.job(self.env_id, self.context.hidden_info_keys, reward="code", code=code, seed=cfg.seed + k,
                          log_dir=str(cand_dir))
            future = executor.submit(evaluate_candidate, job)
            futures[future] = (k, cand_dir, code)
            # written the moment it finishes, so a Ctrl-C during the next LLM call keeps it
            future.add_done_callback(lambda f, d=cand_dir, c=code: self._on_done(f, d, c))
        for future in cf.as_completed(futures):
            k, cand_dir, code = futures[future]
            # evaluate_candidate never raises for bad code; a crash here is a bug: surface it
            records[k] = self._finish(cand_dir, {**future.result(), "code": code})
            bar.update()
        bar.close()
        ordered = [records[k] for k in range(cfg.samples)]
        summary = self._iteration_summary(it, ordered)
        _write_json(it_dir / "summary.json", summary)
        return ordered, summary

    def _on_done(self, future: cf.Future, cand_dir: Path, code: str) -> None:
        """Write a candidate's result as soon as it finishes (the main thread writes the same record again later)."""
        if self._stopping or future.cancelled() or future.exception() is not None:
            return  # a worker killed by Ctrl-C is not a finished candidate: a rerun trains it again
        self._finish(cand_dir, {**future.result(), "code": code})

    def _response(self, messages: list[dict[str, str]], cand_dir: Path, seed: int) -> str:
        path = cand_dir / "response.md"
        if path.exists():
            return path.read_text()
        cfg = self.config
        text = self.llm.complete(messages, max_tokens=cfg.max_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                                 seed=seed, allow_empty=True)
        cand_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return text

    @staticmethod
    def _finish(cand_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
        record = {"candidate": cand_dir.name, **record}
        _write_json(cand_dir / "result.json", record)
        return record

    def _iteration_summary(self, it: int, records: list[dict[str, Any]]) -> dict[str, Any]:
        ok = [r for r in records if r["status"] == "ok"]
        stages = {}
        for r in records:
            if r["status"] != "ok":
                stages[r["stage"]] = stages.get(r["stage"], 0) + 1
        summary: dict[str, Any] = {"iteration": it, "candidates": len(records), "executed": len(ok),
                                   "execute_rate": len(ok) / len(records), "failures_by_stage": stages,
                                   "best_candidate": None, "best_fitness": None,
                                   "candidate_wall_s": [r.get("elapsed_s") for r in records]}
        if ok:
            top = max(ok, key=_rank)
            summary.update(best_candidate=top["candidate"], best_fitness=top["fitness"])
            text = reflection_text(top["curve"], evaluation=top.get("eval_success"))
            summary["feedback"] = {"code": top["code"], "text": text, "from": top["candidate"]}
        else:  # nothing ran: show the model its own failure (the first one with code, else any)
            failed = next((r for r in records if r.get("code")), records[0])
            code = failed.get("code") or "# (no compute_reward found in the reply)"
            summary["feedback"] = {"code": code, "text": failure_feedback(failed["reason"]),
                                   "from": failed["candidate"]}
        return summary

    # -- final evaluation -------------------------------------------------------------------------------------
    def _final(self, best: dict[str, Any], executor: Any) -> dict[str, list[dict[str, Any]]]:
        """Retrain the best code (and the env/sparse baselines) over ``final_seeds`` seeds at the same budget."""
        cfg = self.config
        (self.run_dir / "best_reward.py").write_text(best["code"])
        kinds = ["eureka"] + (["env", "sparse"] if cfg.baselines else [])
        results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
        futures = {}
        for kind in kinds:
            for s in range(cfg.final_seeds):
                path = self.run_dir / "final" / f"{kind}_seed{s}.json"
                if path.exists():
                    results[kind].append(_read_json(path))
                    continue
                job = cfg.job(self.env_id, self.context.hidden_info_keys,
                              reward="code" if kind == "eureka" else kind,
                              code=best["code"] if kind == "eureka" else None, seed=cfg.seed + 100 + s,
                              log_dir=str(path.parent / f"{kind}_seed{s}"))
                Path(job["log_dir"]).mkdir(parents=True, exist_ok=True)
                futures[executor.submit(evaluate_candidate, job)] = (kind, path)
        for future in tqdm(cf.as_completed(futures), total=len(futures), desc="final retraining", unit="run",
                           disable=not self.progress or not futures):
            kind, path = futures[future]
            record = future.result()
            _write_json(path, record)
            results[kind].append(record)
        for kind in kinds:
            results[kind].sort(key=lambda r: r["seed"])
        return results

    def _summary(self, iterations: list[dict[str, Any]], best: dict[str, Any] | None,
                 final: dict[str, list[dict[str, Any]]], wall_s: float) -> dict[str, Any]:
        total = sum(s["candidates"] for s in iterations)
        walls = [w for s in iterations for w in s["candidate_wall_s"] if w is not None]
        summary: dict[str, Any] = {
            "task": self.env_id, "candidates": total,
            "execute_rate": sum(s["executed"] for s in iterations) / total if total else 0.0,
            "execute_rate_per_iteration": [s["execute_rate"] for s in iterations],
            "best_fitness_per_iteration": [s["best_fitness"] for s in iterations],
            "failures_by_stage": _merge_counts([s["failures_by_stage"] for s in iterations]),
            "best_candidate": None if best is None else f"{best.get('candidate')}",
            "best_fitness": None if best is None else best["fitness"],
            "wall_s_per_candidate": statistics.mean(walls) if walls else None,
            "wall_s": wall_s, "llm": getattr(self.llm, "name", "?"), "search": asdict(self.config),
        }
        scores = {kind: [_score(r) for r in runs] for kind, runs in final.items()}
        summary["final"] = scores
        summary["hns"] = hns_summary(scores)
        return summary


def _merge_counts(counts: list[dict[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            merged[k] = merged.get(k, 0) + v
    return merged


def _score(record: dict[str, Any]) -> float | None:
    return record["fitness"] if record.get("status") == "ok" else None


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


def run_search(env_id: str, llm: Any, config: SearchConfig | None = None, run_dir: str | Path = "runs/eureka",
               **kwargs: Any) -> dict[str, Any]:
    """Build and run an :class:`EurekaSearch`; returns the summary (also in ``run_dir/summary.json``)."""
    return EurekaSearch(env_id, llm, config or SearchConfig(), run_dir, **kwargs).run()
