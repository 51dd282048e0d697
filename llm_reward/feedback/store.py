"""A durable, resumable store of annotated pairs (sqlite, one row per pair, committed batch by batch).

A crash or Ctrl-C loses at most the batch being labelled; the LLM layer's cache makes even that batch free to
redo. A store remembers the labeler fingerprint it was written with and refuses to mix in labels made differently.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

PAIR_COLUMNS = ["pair_id", "caption_a", "caption_b", "progress_a", "progress_b"]
LABEL_COLUMNS = ["label", "forward", "reverse"]


class StoreMismatchError(ValueError):
    """The store on disk was written by a different labeler config or for different pairs."""


class LabelStore:
    """Pairs and their labels on disk.

    Example:
        >>> store = LabelStore("labels.sqlite", fingerprint={"llm": "local", "mode": "rlaif"})  # doctest: +SKIP
        >>> todo = store.missing(pairs)                  # pairs not labelled yet  # doctest: +SKIP
        >>> batch = todo.iloc[:16]  # doctest: +SKIP
        >>> result = labeler.label(list(zip(batch.caption_a, batch.caption_b)))  # doctest: +SKIP
        >>> store.write(batch, result.label, result.forward, result.reverse)  # one transaction  # doctest: +SKIP
    """

    def __init__(self, path: str | Path, fingerprint: Mapping[str, Any]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS pairs (
                pair_id INTEGER PRIMARY KEY, caption_a TEXT NOT NULL, caption_b TEXT NOT NULL,
                progress_a REAL, progress_b REAL, label REAL, forward REAL, reverse REAL);
            CREATE TABLE IF NOT EXISTS caption_scores (caption TEXT PRIMARY KEY, score REAL NOT NULL);
            """
        )
        self._check_fingerprint(dict(fingerprint))

    def _check_fingerprint(self, fingerprint: dict[str, Any]) -> None:
        encoded = json.dumps(fingerprint, sort_keys=True)
        row = self._db.execute("SELECT value FROM meta WHERE key='fingerprint'").fetchone()
        if row is None:
            with self._db:
                self._db.execute("INSERT INTO meta VALUES ('fingerprint', ?)", (encoded,))
            return
        stored = json.loads(row[0])
        if stored != fingerprint:
            diffs = {k: (stored.get(k), fingerprint.get(k)) for k in {*stored, *fingerprint}
                     if stored.get(k) != fingerprint.get(k)}
            detail = "; ".join(f"{k}: stored {a!r}, now {b!r}" for k, (a, b) in sorted(diffs.items()))
            raise StoreMismatchError(f"{self.path} was written by a different labeler config ({detail}). "
                                     "Use another store path, or delete this one to relabel.")

    def missing(self, pairs: pd.DataFrame) -> pd.DataFrame:
        """The pairs with no label yet. Raises if a stored pair id holds different captions."""
        stored = pd.read_sql("SELECT pair_id, caption_a, caption_b FROM pairs", self._db).set_index("pair_id")
        known = pairs[pairs["pair_id"].isin(stored.index)]
        if len(known):
            expected = stored.loc[known["pair_id"]]
            differ = (expected["caption_a"].to_numpy() != known["caption_a"].to_numpy()) | (
                expected["caption_b"].to_numpy() != known["caption_b"].to_numpy())
            if differ.any():
                pid = int(known["pair_id"].to_numpy()[differ][0])
                raise StoreMismatchError(f"{self.path} holds other captions for pair {pid}: it was written for a "
                                         "different pair sample (rollouts or seed changed). Use another store path.")
        return pairs[~pairs["pair_id"].isin(stored.index)]

    def write(self, pairs: pd.DataFrame, label: np.ndarray, forward: np.ndarray, reverse: np.ndarray,
              caption_scores: Mapping[str, float] | None = None) -> None:
        """Store one labelled batch atomically, with the pointwise judge's per-caption scores if it has them."""
        rows = [
            (int(p.pair_id), p.caption_a, p.caption_b, _nullable(p.progress_a), _nullable(p.progress_b),
             _nullable(lab), _nullable(fwd), _nullable(rev))
            for p, lab, fwd, rev in zip(pairs.itertuples(index=False), label, forward, reverse)
        ]
        scores = [(c, float(s)) for c, s in (caption_scores or {}).items() if np.isfinite(s)]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO pairs VALUES (?,?,?,?,?,?,?,?)", rows)
            self._db.executemany("INSERT OR REPLACE INTO caption_scores VALUES (?,?)", scores)

    def load(self) -> pd.DataFrame:
        """All stored pairs and labels (NaN = unknown), ordered by pair id."""
        return pd.read_sql("SELECT * FROM pairs ORDER BY pair_id", self._db).astype(
            {c: "float64" for c in ["progress_a", "progress_b", *LABEL_COLUMNS]})

    def caption_scores(self) -> dict[str, float]:
        """The pointwise judge's score per caption (empty for pairwise judges and stores written before scores were
        kept): ``label = sigmoid(score_a - score_b)`` for every stored pair of two scored captions."""
        return dict(self._db.execute("SELECT caption, score FROM caption_scores").fetchall())

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM pairs").fetchone()[0])

    def close(self) -> None:
        self._db.close()


def _nullable(value: Any) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value
