"""The offline Motif stages — collect, annotate, fit — each cached on disk so reruns skip finished work.

The Hydra apps (``llm-reward-annotate``, ``llm-reward-fit``, ``llm-reward-train``) and the benchmarks are thin
shells around these functions; each takes plain values and objects (never a config), so it can be called from
Python as well::

    rollouts = collect_stage("MiniGrid-DoorKey-5x5-v0", n_steps=2000, n_envs=4, seed=0, path=Path("r.parquet"))
    pairs = sample_pairs(rollouts, 500, unique_captions=True, seed=0)
    labelled, report = annotate_stage(pairs, make_labeler(make_llm("local"), env_id=...), store_path=...)
    artifact = fit_stage(labelled, rollouts, captioner=captioner_name(env_id), path=Path("rm"))
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from llm_reward.agents import algo_class
from llm_reward.envs import get_adapter, make_env
from llm_reward.feedback.annotate import AnnotationReport, annotate, sample_pairs, summarize
from llm_reward.feedback.labelers import LLMPreferenceLabeler, oracle_labels
from llm_reward.feedback.prompts import PairPrompt, goal_sentence
from llm_reward.feedback.store import LabelStore
from llm_reward.feedback.strategies import JudgingSpec, judging_spec
from llm_reward.llm.base import LLM
from llm_reward.reward_model import RewardArtifact, RewardModelRecipe, build_artifact, to_targets
from llm_reward.training.rollouts import collect_captions, load_rollouts, save_rollouts
from llm_reward.types import Labeler

log = logging.getLogger(__name__)


def collect_stage(env_id: str, *, n_steps: int, n_envs: int, seed: int, path: Path,
                  max_episode_steps: int | None = None, policy: str | None = None, policy_algo: str = "ppo",
                  progress: bool = True) -> pd.DataFrame:
    """Captioned rollouts, read from ``path`` when it already exists.

    Args:
        env_id: a Gymnasium id with an adapter.
        n_steps: environment steps in total, over all envs.
        n_envs: envs stepped side by side.
        seed: seeds the envs and the actions; the same arguments give the same rollouts.
        path: the parquet cache (reused when it exists; refused when it holds another env's rollouts).
        max_episode_steps: the episode limit (None: the env's own).
        policy: None for uniform random actions, or a saved SB3 agent (``.zip``, of algorithm ``policy_algo``)
            whose stochastic actions collect the data instead: Motif annotated an RL agent's experience, which
            reaches states (a door unlocked) that random actions almost never do.
        policy_algo: the algorithm that saved ``policy``.
        progress: show a progress bar.

    Returns:
        One row per observation: ``caption``, ``progress`` (the oracle, NaN without one), ``episode``, ``step``,
        ``env_index``, ``extrinsic_reward``, ``done``.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "rollouts.parquet"
        >>> frame = collect_stage("MiniGrid-DoorKey-5x5-v0", n_steps=40, n_envs=2, seed=0, path=path, progress=False)
        >>> frame.equals(collect_stage("MiniGrid-DoorKey-5x5-v0", n_steps=40, n_envs=2, seed=0, path=path))
        True
    """
    get_adapter(env_id)  # an unknown id fails here, before any env is built
    if policy is not None:
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
    agent = None
    if policy is not None:
        agent = agent_class.load(policy, device="cpu")
        agent.set_random_seed(seed)  # its sampled actions too: a deleted cache is rebuilt identically
    env_fn = functools.partial(make_env, env_id, max_episode_steps=max_episode_steps)
    rollouts = collect_captions(env_fn, n_steps=n_steps, n_envs=n_envs, seed=seed, policy=agent, progress=progress,
                                desc=f"captions {env_id}")
    rollouts.attrs["env_id"] = env_id  # kept in the parquet metadata: a reuse under another id is refused
    save_rollouts(rollouts, path)
    return rollouts


def resolve_goal(env_id: str, variant: str = "default") -> str | None:
    """The judge's goal sentence for ``env_id`` under a goal ``variant`` (``default``, ``zero_knowledge``, a domain
    variant such as ``gold``, or ``text:<sentence>``): the one place offline and online feedback get it from.

    Example:
        >>> resolve_goal("NetHackScore-v0", "zero_knowledge") is None
        True
    """
    adapter = get_adapter(env_id)
    return goal_sentence(adapter.family, variant, env_goal=adapter.goal)


def make_labeler(llm: LLM, *, env_id: str, mode: str = "pointwise", goal: str = "default", both_orders: bool = True,
                 chain_of_thought: bool = True, temperature: float = 0.1, top_p: float = 0.95,
                 max_tokens: int = 320, strategy: str | JudgingSpec | Mapping[str, Any] | None = None) -> Labeler:
    """An LLM judge for ``env_id``'s captions; the keywords are those of a ``conf/feedback/`` group.

    Args:
        llm: the judge.
        env_id: the env whose captions are judged (its adapter gives the domain and the default goal).
        mode: without a ``strategy``: ``pointwise`` (one question per caption), ``rlaif`` (P("1") vs P("2") in both
            orders) or ``motif`` (free-text verdicts).
        goal: the goal variant (``default``, ``zero_knowledge``, a domain variant, ``text:<sentence>``).
        both_orders, chain_of_thought, temperature, top_p, max_tokens: the ``mode`` labeler's settings.
        strategy: how the judge is asked, replacing ``mode`` and the sampling keywords: a question of
            :mod:`~llm_reward.feedback.strategies` (``PointwiseQuestion(exemplars=True)``), a ``_target_`` node of
            one, or a measured combination by name (:data:`~llm_reward.feedback.strategies.STRATEGIES`). The apps
            ask with ``pointwise_fewshot`` by default (``conf/feedback/pointwise.yaml``), the best of
            ``benchmarks/judge_quality.py`` on every env family.

    Returns:
        A :class:`~llm_reward.types.Labeler`.

    Example:
        >>> from llm_reward.llm import make_llm
        >>> judge = make_labeler(make_llm("local:tiny"), env_id="MiniGrid-DoorKey-5x5-v0", mode="pointwise")
        >>> labels = judge([("You pick up the key.", "You see a wall."), ("A wall.", "A wall.")])
        >>> labels.shape, float(labels[1])  # identical captions: a tie, without asking the model
        ((2,), 0.5)
    """
    adapter = get_adapter(env_id)
    spec = judging_spec(strategy)
    if spec is not None:
        return spec.build(llm, domain=adapter.family, goal=resolve_goal(env_id, goal))
    prompt = PairPrompt(domain=adapter.family, goal=resolve_goal(env_id, goal), chain_of_thought=bool(chain_of_thought))
    return LLMPreferenceLabeler(llm, prompt, mode=mode, both_orders=bool(both_orders), temperature=float(temperature),
                                top_p=float(top_p), max_tokens=int(max_tokens))


def annotate_stage(pairs: pd.DataFrame, labeler: Labeler, *, store_path: Path,
                   batch_size: int = 16, progress: bool = True) -> tuple[pd.DataFrame, AnnotationReport]:
    """Label ``pairs`` with an LLM judge into a resumable store; returns all stored labels and a report.

    Args:
        pairs: from :func:`sample_pairs`.
        labeler: any :class:`~llm_reward.types.Labeler` (its ``fingerprint`` keys the store: labels made another
            way are refused, never mixed).
        store_path: the SQLite label store; pairs already in it are not asked again (resumable after a crash).
        batch_size: pairs per committed batch.
        progress: show a progress bar.

    Returns:
        Every stored pair with ``label``, ``forward`` and ``reverse`` (a pointwise judge's per-caption scores ride
        along in ``labels.attrs["caption_scores"]``, for ``reward_model.dense_pairs``), and an
        :class:`~llm_reward.feedback.annotate.AnnotationReport` of this call.

    Example:
        >>> import tempfile
        >>> from llm_reward.llm import make_llm
        >>> pairs = pd.DataFrame({"pair_id": [0, 1], "caption_a": ["You see a key.", "A wall."],
        ...                       "caption_b": ["A wall.", "A wall."], "progress_a": [1.0, 0.0],
        ...                       "progress_b": [0.0, 0.0]})
        >>> judge = make_labeler(make_llm("local:tiny"), env_id="MiniGrid-DoorKey-5x5-v0", mode="pointwise")
        >>> store = Path(tempfile.mkdtemp()) / "labels.sqlite"
        >>> labelled, report = annotate_stage(pairs, judge, store_path=store, progress=False)
        >>> len(labelled), report.identical_ties, float(labelled["label"].iloc[1])  # the identical pair: a tie
        (2, 1, 0.5)
        >>> annotate_stage(pairs, judge, store_path=store, progress=False)[1].pairs_new  # all stored already
        0
    """
    store = LabelStore(store_path, labeler.fingerprint)
    try:
        report = annotate(pairs, labeler, store, batch_size=batch_size, progress=progress)
        return _with_scores(store), report
    finally:
        store.close()


def load_labels(store_path: Path, labeler: Labeler) -> pd.DataFrame:
    """The labels an earlier :func:`annotate_stage` stored (refused when made under another judge config)."""
    if not Path(store_path).exists():
        raise FileNotFoundError(f"no labels at {store_path}: run llm-reward-annotate with the same overrides first")
    store = LabelStore(store_path, labeler.fingerprint)
    try:
        return _with_scores(store)
    finally:
        store.close()


def _with_scores(store: LabelStore) -> pd.DataFrame:
    labelled = store.load()
    labelled.attrs["caption_scores"] = store.caption_scores()
    return labelled


def oracle_stage(pairs: pd.DataFrame) -> tuple[pd.DataFrame, AnnotationReport]:
    """Label pairs with the env's progress oracle instead of an LLM (the ``oracle`` reward baseline)."""
    label = oracle_labels(pairs["progress_a"], pairs["progress_b"])
    labelled = pairs.assign(label=label, forward=label, reverse=float("nan"))
    return labelled, summarize(labelled)


def shuffle_labels(labelled: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The same pairs with their labels permuted across pairs (``reward=shuffled``, the control that keeps the
    label distribution and every caption but breaks which caption a label belongs to). A pointwise judge's caption
    scores (``reward_model.dense_pairs``) are permuted across captions too, so the control's dense pairs carry no
    more of the judge's knowledge than its labels.

    Example:
        >>> frame = pd.DataFrame({"caption_a": list("abcd"), "caption_b": list("wxyz"), "label": [1.0, 0, 0, 0]})
        >>> shuffled = shuffle_labels(frame, seed=0)
        >>> sorted(shuffled["label"]) == sorted(frame["label"]), shuffled["caption_a"].tolist()
        (True, ['a', 'b', 'c', 'd'])
    """
    order = np.random.default_rng(seed).permutation(len(labelled))
    columns = [c for c in ("label", "forward", "reverse") if c in labelled.columns]
    shuffled = labelled.copy()
    for column in columns:
        shuffled[column] = labelled[column].to_numpy()[order]
    scores = labelled.attrs.get("caption_scores") or {}
    permuted = np.random.default_rng(seed).permutation(np.array(list(scores.values()), dtype=np.float64))
    shuffled.attrs["caption_scores"] = dict(zip(scores, permuted.tolist()))
    return shuffled


def fit_stage(labelled: pd.DataFrame, rollouts: pd.DataFrame, *, captioner: str, path: Path,
              recipe: RewardModelRecipe | None = None, progress: bool = True) -> RewardArtifact:
    """Distil labels into a reward model artifact at ``path`` (loaded instead when it already exists).

    Args:
        labelled: pairs with a ``label`` column (:func:`annotate_stage`, :func:`oracle_stage`).
        rollouts: the captioned rollouts: normalization and the threshold table come from all their captions
            (:func:`build_artifact`).
        captioner: the caption format's name (:func:`~llm_reward.envs.captioner_name`), kept with the model.
        path: the artifact's directory.
        recipe: encoder, epochs, ensemble, seed and hard/soft targets
            (:class:`~llm_reward.reward_model.RewardModelRecipe`; None: its defaults).
        progress: show a progress bar.

    Returns:
        The :class:`~llm_reward.reward_model.RewardArtifact`, also saved at ``path``.

    Example:
        >>> import tempfile
        >>> rollouts = pd.DataFrame({"caption": ["You see a key.", "A wall.", "You open the door."] * 4})
        >>> pairs = sample_pairs(rollouts.assign(progress=[1.0, 0.0, 2.0] * 4), 24, unique_captions=True, seed=0)
        >>> labelled, _ = oracle_stage(pairs)
        >>> path = Path(tempfile.mkdtemp()) / "reward_model"
        >>> reward = fit_stage(labelled, rollouts, captioner="demo", path=path, progress=False,
        ...                    recipe=RewardModelRecipe(epochs=20, seed=0))
        >>> scores = reward(["A wall.", "You open the door."])
        >>> bool(scores[1] > scores[0]), fit_stage(labelled, rollouts, captioner="demo", path=path).captioner
        (True, 'demo')
    """
    recipe = recipe or RewardModelRecipe()
    if (path / "config.json").exists():
        log.info("reward model: reusing %s", path)
        return RewardArtifact.load(path)
    has_oracle = labelled[["progress_a", "progress_b"]].notna().all(axis=None)
    oracle = oracle_labels(labelled["progress_a"], labelled["progress_b"]) if has_oracle else None
    model, metrics = recipe.fit(labelled["caption_a"].tolist(), labelled["caption_b"].tolist(),
                                labelled["label"].to_numpy(dtype=np.float32), progress=progress, oracle_labels=oracle,
                                caption_scores=labelled.attrs.get("caption_scores"))
    artifact = build_artifact(model, rollouts["caption"].tolist(), captioner=captioner, metrics=metrics)
    artifact.save(path)
    return artifact


__all__ = ["collect_stage", "resolve_goal", "make_labeler", "annotate_stage", "load_labels", "oracle_stage",
           "shuffle_labels", "fit_stage", "sample_pairs", "to_targets"]
