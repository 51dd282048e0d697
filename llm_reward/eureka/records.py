"""Typed records of the Eureka search: a candidate's job (what to smoke-test and train) and its result.

A job goes to an executor (a local process or a Ray node) and comes back as a result; the search keeps results as
they are and writes each as ``result.json`` (:meth:`CandidateResult.to_json`), which a rerun reads back
(:meth:`CandidateResult.from_json`) instead of training the candidate again. A result's ``status`` and a failure's
``stage`` are enums, not free strings.

    >>> result = CandidateResult(status=Status.FAILED, stage=Stage.SMOKE, reason="NameError: x")
    >>> result.trained, result.to_json()["stage"]
    (False, 'smoke')
    >>> CandidateResult.from_json(result.to_json()) == result
    True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from llm_reward.eureka.context import ALWAYS_HIDDEN


class Status(str, Enum):
    """How a candidate ended: trained (``ok``), failed at a ``stage``, or not trained after the prescreen."""

    OK = "ok"
    FAILED = "failed"
    SCREENED_OUT = "screened_out"


class Stage(str, Enum):
    """Where a candidate failed (or was screened out)."""

    EXTRACT = "extract"
    ALLOWLIST = "allowlist"
    SMOKE = "smoke"
    TRAIN = "train"
    PRESCREEN = "prescreen"


@dataclass(frozen=True)
class TrainSettings:
    """How a candidate's agent is trained and evaluated (the ``search.*`` training keys)."""

    algo: str
    total_timesteps: int
    n_envs: int
    n_points: int = 10
    eval_episodes: int = 0
    agent_kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None
    #: the evaluation's actions: argmax (True) or sampled (the env adapter's ``eval_deterministic``)
    eval_deterministic: bool = True


@dataclass(frozen=True)
class CandidateJob:
    """One unit of work for an executor: smoke-test ``code`` (``reward="code"``), then train on it, or train on the
    env's own (``env``) or sparse success (``sparse``) reward as a baseline.

    Example:
        >>> job = CandidateJob("Hopper-v5", reward="env", seed=0, train=TrainSettings("ppo", 1000, 2))
        >>> job.train.n_points, job.code is None
        (10, True)
    """

    env_id: str
    reward: str
    seed: int
    train: TrainSettings
    code: str | None = None
    success: str | None = None
    hidden_info_keys: tuple[str, ...] = ALWAYS_HIDDEN
    #: The env adapter's milestones whose share of episodes the training runner reports (failure diagnosis).
    milestones: tuple[str, ...] = ()
    smoke_steps: int = 100
    fitness: str = "max"
    timeout_s: float = 600.0
    memory_mb: int = 6144
    log_dir: str | None = None

    def __post_init__(self) -> None:
        if self.reward not in ("code", "env", "sparse"):
            raise ValueError(f"a candidate's reward must be 'code', 'env' or 'sparse', got {self.reward!r}")
        if (self.code is None) == (self.reward == "code"):
            raise ValueError("reward='code' needs code, and only it takes code")


@dataclass
class CandidateResult:
    """A candidate's (or a final run's) record, as ``result.json`` holds it.

    :func:`~llm_reward.eureka.candidate.evaluate_candidate` fills the outcome of the sandboxed smoke test and
    training; the search adds where the code came from (``candidate``, ``code``, ``attempts``, ``repairs``,
    ``prescreen_score``, ``executable``) and, for a final run, ``eval_episodes`` and ``eval_deterministic`` (argmax
    or sampled actions; ``None`` in records from before the field, which all took the argmax).
    """

    status: Status = Status.FAILED
    stage: Stage | None = None
    reason: str = ""
    curve: list[dict[str, Any]] = field(default_factory=list)
    fitness: float | None = None
    tiebreak: float | None = None
    eval_success: float | None = None
    eval_return: float | None = None
    seed: int | None = None
    reward: str | None = None
    smoke: dict[str, Any] | None = None
    smoke_s: float | None = None
    train_s: float | None = None
    elapsed_s: float | None = None
    candidate: str | None = None
    executable: bool | None = None
    code: str | None = None
    prescreen_score: float | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    repairs: int = 0
    eval_episodes: int | None = None
    eval_deterministic: bool | None = None

    @property
    def trained(self) -> bool:
        """Trained to the end (the smoke test included): its fitness ranks it."""
        return self.status is Status.OK

    @property
    def ran(self) -> bool:
        """Passed extraction, the allow-list and the smoke test (trained or screened out; older records: trained)."""
        return bool(self.executable) if self.executable is not None else self.trained

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON-able values (enums as their names)."""
        data = dataclasses.asdict(self)
        data["status"] = self.status.value
        data["stage"] = None if self.stage is None else self.stage.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CandidateResult:
        """A record read back from ``result.json`` (keys it does not know, from another version, are ignored).

        Raises:
            ValueError: an unknown ``status`` or ``stage``.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["status"] = Status(data.get("status", Status.FAILED.value))
        values["stage"] = None if data.get("stage") is None else Stage(data["stage"])
        return cls(**values)
