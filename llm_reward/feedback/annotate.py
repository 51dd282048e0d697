"""Phase 1 of Motif: sample caption pairs from rollouts and have a labeler annotate them into a durable store."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from llm_reward.feedback.labelers import agreement, oracle_labels, position_consistency
from llm_reward.feedback.store import LabelStore
from llm_reward.types import Labeler


def sample_pairs(rollouts: pd.DataFrame, n_pairs: int, *, unique_captions: bool = False, seed: int = 0) -> pd.DataFrame:
    """Draw ``n_pairs`` pairs of distinct observations (uniformly, or uniformly over distinct captions).

    Args:
        rollouts: a ``caption`` column, and ``progress`` (the oracle) if there is one.
        n_pairs: how many pairs to draw.
        unique_captions: draw over distinct captions (rare events still get judged) rather than observations.
        seed: the same inputs and seed give the same pairs.

    Returns:
        Columns ``pair_id, caption_a, caption_b, progress_a, progress_b``. Two different observations may share a
        caption: such a pair is a tie, never sent to the judge.

    Example:
        >>> frame = pd.DataFrame({"caption": ["a wall", "a key", "a door", "a wall"], "progress": [0, 1, 2, 0]})
        >>> pairs = sample_pairs(frame, 3, unique_captions=True, seed=0)
        >>> list(pairs.columns), bool((pairs["caption_a"] != pairs["caption_b"]).all())
        (['pair_id', 'caption_a', 'caption_b', 'progress_a', 'progress_b'], True)
    """
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
    if "caption" not in rollouts.columns:
        raise ValueError(f"rollouts need a 'caption' column, got columns {list(rollouts.columns)}")
    pool = rollouts[["caption"]].assign(progress=rollouts.get("progress", np.nan))
    if unique_captions:
        pool = pool.groupby("caption", sort=True, as_index=False)["progress"].mean()
    if len(pool) < 2:
        raise ValueError(f"need at least 2 observations to make pairs, got {len(pool)} (collect more rollout steps)")
    rng = np.random.default_rng(seed)
    first = rng.integers(0, len(pool), n_pairs)
    # Offset in [1, len) guarantees two different observations (they may still share a caption: a tie).
    second = (first + rng.integers(1, len(pool), n_pairs)) % len(pool)
    a, b = pool.iloc[first], pool.iloc[second]
    return pd.DataFrame({
        "pair_id": np.arange(n_pairs), "caption_a": a["caption"].to_numpy(), "caption_b": b["caption"].to_numpy(),
        "progress_a": a["progress"].to_numpy(dtype=float), "progress_b": b["progress"].to_numpy(dtype=float),
    })


@dataclass
class AnnotationReport:
    pairs_labelled: int  # stored pairs with a usable label (ties included)
    pairs_new: int  # labelled during this call
    pairs_per_s: float  # new pairs per second of this call
    llm_prompts: int  # prompts sent to the LLM layer (identical-caption ties never are)
    llm_calls: int  # prompts that reached the model (cache misses)
    cache_hits: int
    identical_ties: int  # pairs with identical captions: tie without asking
    unknown_rate: float  # fraction of all stored pairs the judge gave no verdict for
    position_consistency: float  # same preferred side in both orders (NaN if judged one way)
    oracle_agreement: float  # judge vs progress oracle on pairs both decide (NaN without an oracle)

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def annotate(pairs: pd.DataFrame, labeler: Labeler, store: LabelStore, *,
             batch_size: int = 16, progress: bool = True) -> AnnotationReport:
    """Label every pair not yet in ``store``, committing after each batch (resumable after a crash or Ctrl-C)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    todo = store.missing(pairs)
    stats_before = (labeler.llm.stats.cache_misses, labeler.llm.stats.cache_hits)
    prompts = identical = 0
    start = time.perf_counter()
    with tqdm(total=len(pairs), initial=len(pairs) - len(todo), unit="pair", desc="annotating",
              disable=not progress) as bar:
        for lo in range(0, len(todo), batch_size):
            batch = todo.iloc[lo:lo + batch_size]
            result = labeler.label(list(zip(batch["caption_a"], batch["caption_b"])))
            store.write(batch, result.label, result.forward, result.reverse, result.caption_scores)
            prompts += result.llm_prompts
            identical += int((batch["caption_a"] == batch["caption_b"]).sum())
            bar.update(len(batch))
            bar.set_postfix(cache_hits=labeler.llm.stats.cache_hits - stats_before[1],
                            unknown=f"{np.isnan(result.label).mean():.0%}")
    elapsed = time.perf_counter() - start
    return summarize(store.load(), new=len(todo), elapsed=elapsed, prompts=prompts, identical=identical,
                     calls=labeler.llm.stats.cache_misses - stats_before[0],
                     hits=labeler.llm.stats.cache_hits - stats_before[1])


def summarize(labelled: pd.DataFrame, *, new: int = 0, elapsed: float = 0.0, prompts: int = 0,
              identical: int = 0, calls: int = 0, hits: int = 0) -> AnnotationReport:
    label = labelled["label"].to_numpy(dtype=np.float32)
    has_oracle = labelled[["progress_a", "progress_b"]].notna().all(axis=None) and len(labelled) > 0
    oracle = oracle_labels(labelled["progress_a"], labelled["progress_b"]) if has_oracle else None
    return AnnotationReport(
        pairs_labelled=int((~np.isnan(label)).sum()), pairs_new=new,
        pairs_per_s=new / elapsed if elapsed > 0 else float("nan"),
        llm_prompts=prompts, llm_calls=calls, cache_hits=hits, identical_ties=identical,
        unknown_rate=float(np.isnan(label).mean()) if len(label) else float("nan"),
        position_consistency=position_consistency(labelled["forward"].to_numpy(np.float32),
                                                  labelled["reverse"].to_numpy(np.float32)),
        oracle_agreement=agreement(label, oracle) if oracle is not None else float("nan"),
    )
