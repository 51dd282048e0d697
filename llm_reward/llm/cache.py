"""A persistent, process-safe cache of LLM results, so rerunning an annotation costs no model calls.

SQLite in WAL mode lets several processes (Hydra multirun jobs, SubprocVecEnv workers) read and write one file at
once; each value is stored as JSON under a SHA-256 key of everything that determines the answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any


def default_cache_dir() -> Path:
    """``$LLM_REWARD_CACHE`` or ``~/.cache/llm_reward``: model files and the result cache live here."""
    return Path(os.environ.get("LLM_REWARD_CACHE", Path.home() / ".cache" / "llm_reward")).expanduser()


def cache_key(**parts: Any) -> str:
    """Stable key of a request: backend, model identity, kind, messages and sampling parameters."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class ResultCache:
    """``get``/``put`` of JSON-able results by key; one connection per thread, safe across processes."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connection() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # A generous timeout rides out another process's write lock instead of failing.
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        conn = self._connection()
        for start in range(0, len(keys), 500):  # SQLite caps the number of bound parameters
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in conn.execute(f"SELECT key, value FROM results WHERE key IN ({marks})", chunk):
                found[key] = json.loads(value)
        return found

    def put(self, key: str, value: Any) -> None:
        self._connection().execute("INSERT OR REPLACE INTO results (key, value) VALUES (?, ?)",
                                   (key, json.dumps(value)))

    def __len__(self) -> int:
        return self._connection().execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def __getstate__(self) -> dict[str, Any]:  # connections do not pickle; reopen lazily on the other side
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = state["path"]
        self._local = threading.local()
