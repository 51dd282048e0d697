"""Bradley–Terry distillation of caption-pair preferences into a reward model (Motif phase 2, RLAIF's distilled RM).

Loss: ``BCEWithLogits(r(a) - r(b), y)`` with soft targets ``y = P(a preferred)`` (ties are 0.5, unknown labels are
dropped). Captions repeat heavily in rollout data, so every caption of the dataset is featurized once into a unique
table and each batch scores only the unique captions it touches; pairs are indices into that table.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from llm_reward.feedback.judges import sigmoid
from llm_reward.reward_model.model import RewardModel

log = logging.getLogger(__name__)


def fit_reward_model(captions_a: Sequence[str], captions_b: Sequence[str], labels: np.ndarray, *,
                     encoder: str = "char_cnn", epochs: int = 30, n_members: int = 1, seed: int = 0,
                     progress: bool = True, oracle_labels: np.ndarray | None = None, val_fraction: float = 0.2,
                     batch_size: int = 256, lr: float = 1e-3, patience: int | None = 5,
                     encoder_kwargs: Mapping[str, Any] | None = None, caption_scores: Mapping[str, float] | None = None,
                     dense_pairs: int = 0, dense_targets: str = "hard",
                     exclude_pairs: Sequence[tuple[str, str]] = ()) -> tuple[RewardModel, dict[str, Any]]:
    """Train a Bradley-Terry reward model on labelled caption pairs.

    A seeded ``val_fraction`` of the known pairs is held out; training stops early after ``patience`` epochs
    without a better validation loss and keeps the best epoch's weights. A pointwise judge has already ranked every
    caption it saw, and with one pair per caption the plain pairs keep one bit of that ranking: ``dense_pairs``
    adds pairs among the training pairs' scored captions, labelled by the judge's own scores. No held-out pair (in
    either order), nor any of ``exclude_pairs``, is drawn, so ``heldout_accuracy`` measures pairs the model was not
    trained on (their captions may have been compared with others, as they may be when captions repeat).

    Args:
        captions_a: the first caption of each pair.
        captions_b: the second caption of each pair.
        labels: P(first preferred) in [0, 1] per pair; 0.5 is a tie, NaN unknown (dropped, counted).
        encoder: ``char_cnn`` or ``sentence_embedding`` (the ``[embeddings]`` extra).
        epochs: the most epochs to train.
        n_members: ensemble members (their mean is the reward).
        seed: seeds the split, the initialization and the dense pairs.
        progress: show a progress bar.
        oracle_labels: labels of the same pairs from a ground truth (e.g. the game score), for
            ``oracle_agreement``.
        val_fraction: the share of known pairs held out.
        batch_size: pairs per gradient step.
        lr: Adam's learning rate.
        patience: epochs without a better validation loss before stopping; None runs all ``epochs``.
        encoder_kwargs: the encoder's hyper-parameters (char_cnn: ``max_chars``, ``truncate``, sizes).
        caption_scores: a pointwise judge's score per caption (the label store's ``caption_scores()``).
        dense_pairs: how many judge-score-labelled pairs to add (needs ``caption_scores``).
        dense_targets: ``hard`` (the side of the score gap) or ``soft`` (the sigmoid of it).
        exclude_pairs: caption pairs never drawn as dense pairs (e.g. a test fold fitted apart).

    Returns:
        ``(model, metrics)``: the trained :class:`RewardModel` and a dict of pair counts (``n_pairs``, ``n_train``,
        ``n_val``, ``n_dense_pairs``, ...), ``heldout_accuracy``, ``train_accuracy``, losses, timings and
        ``oracle_agreement`` (NaN without ``oracle_labels``).

    Raises:
        ValueError: labels of the wrong length or outside [0, 1], no pair with a preferred side, or a bad
            hyper-parameter, before any training.

    Example:
        >>> import numpy as np
        >>> gold, wall = ["You find 3 gold pieces."] * 8, ["It's a wall."] * 8
        >>> model, metrics = fit_reward_model(gold, wall, np.ones(8), epochs=5, progress=False)
        >>> reward = model(["You find 3 gold pieces.", "It's a wall."])
        >>> bool(reward[0] > reward[1]), metrics["n_pairs"]
        (True, 8)
    """
    a, b = list(captions_a), list(captions_b)
    y = _check_labels(labels, "labels", len(a), len(b))
    oracle = None if oracle_labels is None else _check_labels(oracle_labels, "oracle_labels", len(a), len(a))
    known = ~np.isnan(y)
    if not (known & (y != 0.5)).any():
        raise ValueError(f"nothing to learn: all {len(y)} labels are ties ({int((y == 0.5).sum())}) or unknown "
                         f"({int((~known).sum())}); a reward model needs pairs with a preferred side")
    _check_hyper(epochs=epochs, batch_size=batch_size, lr=lr, val_fraction=val_fraction, patience=patience,
                 dense_pairs=dense_pairs)
    model = RewardModel(encoder, n_members, seed=seed, **dict(encoder_kwargs or {}))

    ids: dict[str, int] = {}
    inverse = np.array([ids.setdefault(c, len(ids)) for c in a + b], dtype=np.int64)  # pairs index unique captions
    table = list(ids)
    features = model.featurize(table)  # also rejects over-long captions, before any training
    ia, ib = torch.from_numpy(inverse[: len(a)]), torch.from_numpy(inverse[len(a) :])
    target = torch.from_numpy(np.nan_to_num(y, nan=0.5)).float()
    rng = np.random.default_rng(seed)
    keep = rng.permutation(np.flatnonzero(known))
    n_val = min(int(round(val_fraction * len(keep))), len(keep) - 1)
    val, train = np.sort(keep[:n_val]), keep[n_val:]
    n_dense = 0
    if dense_pairs and caption_scores:
        held_out = {(int(i), int(j)) for i, j in zip(inverse[: len(a)][val], inverse[len(a) :][val])}
        held_out |= {(ids[x], ids[y]) for x, y in exclude_pairs if x in ids and y in ids}
        da, db, dy = _dense_pairs(inverse[: len(a)][train], inverse[len(a) :][train], table, caption_scores,
                                  n=dense_pairs, targets=dense_targets, rng=np.random.default_rng(seed + 1),
                                  exclude=held_out)
        n_dense = len(dy)
        train = np.concatenate([train, len(a) + np.arange(n_dense)])
        ia, ib = torch.cat([ia, torch.from_numpy(da)]), torch.cat([ib, torch.from_numpy(db)])
        target = torch.cat([target, torch.from_numpy(dy).float()])

    bar = _progress_bar(progress, epochs * n_members)
    start, epochs_run = time.perf_counter(), []
    try:
        for member in model.members:
            epochs_run.append(_train_member(model, member, features, ia, ib, target, train, val, epochs=epochs,
                                            batch_size=batch_size, lr=lr, patience=patience, rng=rng, bar=bar))
            if bar is not None:
                bar.update(epochs - epochs_run[-1])  # epochs skipped by early stopping
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - start

    model.eval()
    reward = model.score(features).numpy().astype(np.float64)
    margin = reward[inverse[: len(a)]] - reward[inverse[len(a) :]]
    train = train[train < len(a)]  # the judge's own pairs: what train accuracy is measured on
    metrics: dict[str, Any] = {
        "encoder": encoder, "encoder_kwargs": dict(model.encoder.config), "n_members": n_members,
        "n_pairs": len(a), "n_unique_captions": len(table), "n_train": len(train), "n_val": n_val,
        "n_dense_pairs": n_dense,
        "n_unknown_dropped": int((~known).sum()), "n_ties": int((y[known] == 0.5).sum()),
        "epochs": epochs, "epochs_run": max(epochs_run), "epochs_run_members": epochs_run,
        "train_accuracy": _accuracy(margin[train], y[train]), "heldout_accuracy": _accuracy(margin[val], y[val]),
        "train_loss": _loss(margin[train], y[train]), "val_loss": _loss(margin[val], y[val]),
        "oracle_agreement": float("nan") if oracle is None else _accuracy(margin[val], oracle[val]),
        "oracle_agreement_all": float("nan") if oracle is None else _accuracy(margin, oracle),
        "train_time_s": elapsed, "train_pairs_per_s": (len(train) + n_dense) * sum(epochs_run) / max(elapsed, 1e-9),
        "n_params": sum(p.numel() for p in model.parameters()),
    }
    log.info("reward model: held-out accuracy %.3f, train accuracy %.3f, %d epochs, %.0f pairs/s",
             metrics["heldout_accuracy"], metrics["train_accuracy"], metrics["epochs_run"],
             metrics["train_pairs_per_s"])
    return model, metrics


def _dense_pairs(train_a: np.ndarray, train_b: np.ndarray, table: list[str], scores: Mapping[str, float], *, n: int,
                 targets: str, rng: np.random.Generator,
                 exclude: set[tuple[int, int]] = frozenset()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to ``n`` random pairs of distinct scored captions among the training pairs' (indices into ``table``), none
    of ``exclude`` in either order, and their targets from the score gap; empty when fewer than two captions have
    scores."""
    if targets not in ("hard", "soft"):
        raise ValueError(f"dense_targets must be 'hard' or 'soft', got {targets!r}")
    captions = np.unique(np.concatenate([train_a, train_b]))
    pool = np.array([i for i in captions if table[i] in scores], dtype=np.int64)
    empty = np.zeros(0, dtype=np.int64)
    unscored = len(captions) - len(pool)
    if unscored:
        log.warning("dense pairs: %d training captions have no judge score (labelled before scores were kept); "
                    "drawing among the %d that have one", unscored, len(pool))
    if len(pool) < 2:
        return empty, empty, np.zeros(0)
    first = rng.integers(0, len(pool), 2 * n)  # twice as many: some are held-out pairs, dropped below
    second = (first + rng.integers(1, len(pool), 2 * n)) % len(pool)  # never the same caption
    a, b = pool[first], pool[second]
    kept = np.array([(i, j) not in exclude and (j, i) not in exclude for i, j in zip(a, b)], dtype=bool)
    a, b = a[kept][:n], b[kept][:n]
    gap = np.array([scores[table[i]] - scores[table[j]] for i, j in zip(a, b)])
    y = sigmoid(gap) if targets == "soft" else np.where(gap > 0, 1.0, np.where(gap < 0, 0.0, 0.5))
    return a, b, y


def _train_member(model: RewardModel, member: torch.nn.Module, features: tuple, ia: torch.Tensor, ib: torch.Tensor,
                  target: torch.Tensor, train: np.ndarray, val: np.ndarray, *, epochs: int, batch_size: int,
                  lr: float, patience: int | None, rng: np.random.Generator, bar: Any) -> int:
    """Adam on one member; returns the number of epochs run (the best epoch's weights are kept)."""
    optimizer = torch.optim.Adam(member.parameters(), lr=lr)
    best_loss, best_state, stale = math.inf, None, 0
    val_t = torch.from_numpy(val)
    for epoch in range(1, epochs + 1):
        member.train()
        order = torch.from_numpy(rng.permutation(train))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            unique, inverse = torch.unique(torch.cat([ia[idx], ib[idx]]), return_inverse=True)
            reward = member(*model.select(features, unique))
            margin = reward[inverse[: len(idx)]] - reward[inverse[len(idx) :]]
            loss = F.binary_cross_entropy_with_logits(margin, target[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if bar is not None:
            bar.update(1)
        if len(val) == 0 or patience is None and epoch < epochs:
            continue
        val_loss = _member_val_loss(model, member, features, ia[val_t], ib[val_t], target[val_t])
        if bar is not None:
            bar.set_postfix(val_loss=f"{val_loss:.4f}")
        if val_loss < best_loss - 1e-5:
            best_loss, best_state, stale = val_loss, copy.deepcopy(member.state_dict()), 0
        else:
            stale += 1
        if patience is not None and stale >= patience:
            break
    if best_state is not None:
        member.load_state_dict(best_state)
    return epoch


def _member_val_loss(model: RewardModel, member: torch.nn.Module, features: tuple, ia: torch.Tensor,
                     ib: torch.Tensor, target: torch.Tensor) -> float:
    member.eval()
    unique, inverse = torch.unique(torch.cat([ia, ib]), return_inverse=True)
    with torch.no_grad():
        reward = torch.cat([member(*model.select(features, unique[s : s + 2048])) for s in range(0, len(unique), 2048)])
        margin = reward[inverse[: len(ia)]] - reward[inverse[len(ia) :]]
        return float(F.binary_cross_entropy_with_logits(margin, target))


def _accuracy(margin: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of decided pairs (label known and not a tie) whose reward margin has the label's sign."""
    decided = ~np.isnan(labels) & (labels != 0.5)
    if not decided.any():
        return float("nan")
    return float(np.mean(np.sign(margin[decided]) == np.sign(labels[decided] - 0.5)))


def _loss(margin: np.ndarray, labels: np.ndarray) -> float:
    known = ~np.isnan(labels)
    if not known.any():
        return float("nan")
    return float(F.binary_cross_entropy_with_logits(torch.from_numpy(margin[known]), torch.from_numpy(labels[known])))


def _check_labels(labels: Any, name: str, n_a: int, n_b: int) -> np.ndarray:
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one per pair), got shape {y.shape}")
    if not n_a == n_b == len(y):
        raise ValueError(f"length mismatch: {n_a} captions_a, {n_b} captions_b, {len(y)} {name}")
    if len(y) == 0:
        raise ValueError("empty dataset: no caption pairs to train on")
    bad = ~np.isnan(y) & ((y < 0) | (y > 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be P(first preferred) in [0, 1] (0.5 tie, NaN unknown); "
                         f"{name}[{i}] = {y[i]} ({int(bad.sum())} out of range)")
    return y


def check_dense_pairs(dense_pairs: int) -> None:
    """Raise unless ``dense_pairs`` is an int >= 0 (the recipe checks it at config time, the fit again)."""
    if isinstance(dense_pairs, bool) or not isinstance(dense_pairs, (int, np.integer)) or dense_pairs < 0:
        raise ValueError(f"dense_pairs must be an int >= 0, got {dense_pairs!r}")


def _check_hyper(*, epochs: int, batch_size: int, lr: float, val_fraction: float, patience: int | None,
                 dense_pairs: int = 0) -> None:
    check_dense_pairs(dense_pairs)
    checked = [("epochs", epochs), ("batch_size", batch_size)]
    if patience is not None:
        checked.append(("patience", patience))
    for key, value in checked:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{key} must be a positive int, got {value!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite float, got {lr!r}")
    if not (isinstance(val_fraction, (int, float)) and 0 <= val_fraction < 1):
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")


def _progress_bar(progress: bool, total: int) -> Any:
    if not progress:
        return None
    return tqdm(total=total, desc="reward model", unit="epoch")
