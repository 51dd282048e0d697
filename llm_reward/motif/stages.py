"""The offline Motif stages — collect, annotate, fit — each cached on disk so reruns skip finished work.

The Hydra apps (``llm-reward-annotate``, ``llm-reward-fit``, ``llm-reward-train``) and the benchmarks are thin
shells around these functions; each takes plain values so it can be called from Python as well.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from llm_reward.feedback.annotate import AnnotationReport, annotate, sample_pairs, summarize
from llm_reward.feedback.labelers import LLMPreferenceLabeler, oracle_labels
from llm_reward.feedback.prompts import PairPrompt, goal_sentence
from llm_reward.feedback.store import LabelStore

log = logging.getLogger(__name__)


def collect_stage(env_id: str, *, n_steps: int, n_envs: int, seed: int, path: Path,
                  max_episode_steps: int | None = None, policy: str | None = None, policy_algo: str = "ppo",
                  progress: bool = True) -> pd.DataFrame:
    """Captioned rollouts, read from ``path`` when it already exists.

    ``policy``: None for uniform random actions, or a saved SB3 agent (``.zip``, of algorithm ``policy_algo``) whose
    stochastic actions collect the data instead: Motif annotated an RL agent's experience, which reaches states
    (a door unlocked) that random actions almost never do.
    """
    from llm_reward.training.rollouts import collect_captions, load_rollouts, save_rollouts

    agent = None
    if policy is not None:
        from llm_reward.agents import algo_class

        if not Path(policy).is_file():
            raise FileNotFoundError(f"rollouts.policy: no saved agent at {policy}")
        agent_class = algo_class(policy_algo)  # an unknown algorithm fails before the reuse check, like a missing file
    if path.exists():
        log.info("rollouts: reusing %s", path)
        rollouts = load_rollouts(path)
        stored = rollouts.attrs.get("env_id", env_id)  # files from before the id was recorded: trust the path
        if stored != env_id:  # cache paths are keyed on the env config's name, which an env.id override keeps
            raise ValueError(f"{path} holds rollouts of {stored!r}, not {env_id!r}: when overriding env.id, also set "
                             f"env.name to a new name so every stage cache is keyed on it")
        return rollouts
    if policy is not None:
        agent = agent_class.load(policy, device="cpu")
        agent.set_random_seed(seed)  # its sampled actions too: a deleted cache is rebuilt identically
    env_kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    rollouts = collect_captions(env_id, n_steps=n_steps, n_envs=n_envs, seed=seed, policy=agent, progress=progress,
                                **env_kwargs)
    rollouts.attrs["env_id"] = env_id  # kept in the parquet metadata: a reuse under another id is refused
    save_rollouts(rollouts, path)
    return rollouts


def collect_from_config(cfg: Any) -> pd.DataFrame:
    """:func:`collect_stage` with the ``rollouts`` settings of a Hydra config (every app collects the same way)."""
    return collect_stage(cfg.env.id, n_steps=cfg.rollouts.n_steps, n_envs=cfg.rollouts.n_envs, seed=cfg.data_seed,
                         path=Path(cfg.paths.rollouts), max_episode_steps=cfg.env.max_episode_steps,
                         policy=cfg.rollouts.policy, policy_algo=cfg.rollouts.policy_algo, progress=cfg.progress)


def encoder_settings(cfg: Any) -> tuple[str, dict[str, Any]]:
    """The reward model's encoder name and hyper-parameters from the ``reward_model`` group of a Hydra config."""
    encoder = cfg.reward_model.encoder
    return encoder, ({"max_chars": int(cfg.reward_model.max_chars)} if encoder == "char_cnn" else {})


def check_encodable(rollouts: pd.DataFrame, encoder: str, encoder_kwargs: Mapping[str, Any] | None = None) -> None:
    """Fail now, not after the judge has labelled every pair, when the encoder could not read the longest caption."""
    from llm_reward.reward_model import make_encoder

    config = make_encoder(encoder, **dict(encoder_kwargs or {})).config
    limit = config.get("max_chars")
    if limit is None or config.get("truncate") or rollouts.empty:
        return
    longest = int(rollouts["caption"].map(lambda caption: len(caption.encode("utf-8"))).max())
    if longest > limit:
        raise ValueError(f"the rollouts' longest caption has {longest} UTF-8 bytes, more than the {encoder} encoder's "
                         f"max_chars={limit}: set reward_model.max_chars (or caption_max_chars in the env config) to "
                         f"at least {longest}")


def make_labeler(feedback: Mapping[str, Any], llm: Any, *, env_id: str) -> LLMPreferenceLabeler:
    """An LLM judge configured from a ``feedback`` config group (see ``conf/feedback/``)."""
    from llm_reward.envs import get_adapter

    adapter = get_adapter(env_id)
    goal = goal_sentence(adapter.family, feedback.get("goal", "default"), env_goal=adapter.goal)
    prompt = PairPrompt(domain=adapter.family, goal=goal, chain_of_thought=bool(feedback.get("chain_of_thought", True)))
    return LLMPreferenceLabeler(
        llm, prompt, mode=feedback["mode"], both_orders=bool(feedback.get("both_orders", True)),
        temperature=float(feedback.get("temperature", 0.1)), top_p=float(feedback.get("top_p", 0.95)),
        max_tokens=int(feedback.get("max_tokens", 320)),
    )


def annotate_stage(pairs: pd.DataFrame, labeler: LLMPreferenceLabeler, *, store_path: Path,
                   batch_size: int = 16, progress: bool = True) -> tuple[pd.DataFrame, AnnotationReport]:
    """Label ``pairs`` with an LLM judge into a resumable store; returns all stored labels and a report."""
    store = LabelStore(store_path, labeler.fingerprint)
    try:
        report = annotate(pairs, labeler, store, batch_size=batch_size, progress=progress)
        return store.load(), report
    finally:
        store.close()


def oracle_stage(pairs: pd.DataFrame) -> tuple[pd.DataFrame, AnnotationReport]:
    """Label pairs with the env's progress oracle instead of an LLM (the ``oracle`` reward baseline)."""
    label = oracle_labels(pairs["progress_a"], pairs["progress_b"])
    labelled = pairs.assign(label=label, forward=label, reverse=float("nan"))
    return labelled, summarize(labelled)



def to_targets(label: np.ndarray, targets: str = "hard") -> np.ndarray:
    """Training targets from stored labels: ``soft`` as stored, ``hard`` = 1 / 0 / 0.5 by side of 0.5 (NaN kept)."""
    if targets not in ("hard", "soft"):
        raise ValueError(f"targets must be 'hard' or 'soft', got {targets!r}")
    label = np.asarray(label, dtype=np.float32)
    if targets == "soft":
        return label
    return np.where(label > 0.5, 1.0, np.where(label < 0.5, 0.0, label)).astype(np.float32)


def fit_stage(labelled: pd.DataFrame, rollouts: pd.DataFrame, *, captioner: str, path: Path,
              encoder: str = "char_cnn", encoder_kwargs: Mapping[str, Any] | None = None, epochs: int = 30,
              n_members: int = 1, seed: int = 0, targets: str = "hard", progress: bool = True) -> Any:
    """Distil labels into a reward model artifact at ``path`` (loaded instead when it already exists).

    ``targets="soft"`` trains on the stored P(first preferred) as is (RLAIF); ``"hard"`` trains on its side of 0.5
    (Motif's 1 / 0 / tie). A small judge's both-order-averaged labels are right in sign far more often than they
    are confident (on our probe: 16/18 right with labels within 0.02 of 0.5), so hard targets keep that signal.
    """
    to_targets(np.zeros(0), targets)  # validates before any work
    from llm_reward.reward_model import RewardArtifact, build_artifact, fit_reward_model

    if (path / "config.json").exists():
        log.info("reward model: reusing %s", path)
        return RewardArtifact.load(path)
    has_oracle = labelled[["progress_a", "progress_b"]].notna().all(axis=None)
    oracle = oracle_labels(labelled["progress_a"], labelled["progress_b"]) if has_oracle else None
    label = to_targets(labelled["label"].to_numpy(dtype=np.float32), targets)
    model, metrics = fit_reward_model(
        labelled["caption_a"].tolist(), labelled["caption_b"].tolist(), label,
        encoder=encoder, epochs=epochs, n_members=n_members, seed=seed, progress=progress, oracle_labels=oracle,
        encoder_kwargs=encoder_kwargs,
    )
    artifact = build_artifact(model, rollouts["caption"].tolist(), captioner=captioner,
                              metrics={**metrics, "targets": targets})
    artifact.save(path)
    return artifact


__all__ = ["collect_stage", "collect_from_config", "encoder_settings", "check_encodable", "make_labeler",
           "annotate_stage", "oracle_stage", "fit_stage", "sample_pairs", "to_targets"]
