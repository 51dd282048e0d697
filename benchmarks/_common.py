"""Shared plumbing of the benchmark scripts: results land in ``benchmarks/results/`` and the last stdout line is
the JSON result. Long sweeps record each finished cell in a JSON-lines file and skip it on rerun."""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    import os

    return {"cpus": os.cpu_count(), "python": platform.python_version(), "when": time.strftime("%Y-%m-%d %H:%M:%S")}


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def emit(name: str, result: dict[str, Any]) -> None:
    """Save ``result`` as ``results/<name>.json`` and print it as one JSON line (the last line of stdout)."""
    result = _clean(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, sort_keys=True), flush=True)


class CellLog:
    """Finished benchmark cells, appended one JSON line at a time so an interrupted sweep resumes where it was.

    The file is re-read before each membership test, so two processes sharing a sweep (say, one per core, seeds in
    opposite orders) skip each other's finished cells.
    """

    def __init__(self, path: Path):
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.cells: dict[str, dict[str, Any]] = {}
        self._read()

    def _read(self) -> None:
        if self.path.exists():
            for line in self.path.read_text().split("\n")[:-1]:  # complete lines: another process may be writing
                if line.strip():
                    row = json.loads(line)
                    self.cells[row["cell"]] = row

    def __contains__(self, cell: str) -> bool:
        if cell not in self.cells:
            self._read()
        return cell in self.cells

    def add(self, cell: str, row: dict[str, Any]) -> None:
        row = _clean({"cell": cell, **row})
        with self.path.open("a") as fh:
            fh.write(json.dumps(row, sort_keys=True) + "\n")
        self.cells[cell] = row
