"""Shared plumbing of the benchmark scripts: results land in ``benchmarks/results/`` and the last stdout line is
the JSON result. Long sweeps record each finished cell in a JSON-lines file and skip it on rerun."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from llm_reward.jsonio import json_safe

if TYPE_CHECKING:
    import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
#: The labelling and reward-model recipe the stored MiniGrid, NetHack and robot cells were measured with (plain
#: pointwise question, no dense pairs): scripts pass it so that a rerun extends those cells on the same recipe.
PLAIN_RECIPE = ["feedback.strategy=null", "reward_model.dense_pairs=0"]


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "when": time.strftime("%Y-%m-%d %H:%M:%S")}


def train_from_cold(overrides: list[str], root: Path, run_dir: Path | None = None
                    ) -> tuple[subprocess.CompletedProcess, Path, float]:
    """``llm-reward-train <overrides>`` as a fresh machine runs it: an empty data dir and LLM result cache under
    ``root``, with the assembled GGUF judges of the real cache linked in (assembling them is a one-off install step,
    not part of what a benchmark times). The run dir is ``run_dir`` (default: ``root/run``). Returns the finished
    process, its run dir and its wall time in seconds; exits with its stderr if it failed."""
    from llm_reward.llm.cache import default_cache_dir

    cache, models, run_dir = root / "cache", default_cache_dir() / "models", run_dir or root / "run"
    cache.mkdir(parents=True)
    if models.exists():
        (cache / "models").symlink_to(models)
    command = ["llm-reward-train", *overrides, f"run_dir={run_dir}"]
    env = {**os.environ, "LLM_REWARD_CACHE": str(cache), "LLM_REWARD_DATA": str(root / "data")}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return done, run_dir, wall


def emit(name: str, result: dict[str, Any]) -> None:
    """Save ``result`` as ``results/<name>.json`` and print it as one JSON line (the last line of stdout)."""
    result = json_safe(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, sort_keys=True), flush=True)


class CellLog:
    """Finished benchmark cells, appended one JSON line at a time so an interrupted sweep resumes where it was.

    The file is re-read before each membership test, so two processes sharing a sweep (say, one per core) skip each
    other's finished cells, and :meth:`claim` keeps them from starting the same unfinished one.
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

    @contextlib.contextmanager
    def claim(self, cell: str) -> Iterator[bool]:
        """Yields whether this process should run ``cell``: False when it is finished or a live process holds it.

        The claim is a file created exclusively next to the log, holding the owner's pid; it is released on exit,
        whether the cell finished or not, and a claim whose process died (a crash, a killed session) is taken over.
        """
        if cell in self:
            yield False
            return
        claims = self.path.with_name(self.path.name + ".claims")
        claims.mkdir(exist_ok=True)
        path = claims / hashlib.sha1(cell.encode()).hexdigest()
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                break
            except FileExistsError:
                if _alive(_read_pid(path)):
                    yield False
                    return
                path.unlink(missing_ok=True)  # its owner died: take it over
        else:
            yield False
            return
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()}\n{cell}\n")
        try:
            yield cell not in self  # finished by another process between the first test and the claim
        finally:
            path.unlink(missing_ok=True)

    def add(self, cell: str, row: dict[str, Any]) -> None:
        row = json_safe({"cell": cell, **row})
        with self.path.open("a") as fh:
            fh.write(json.dumps(row, sort_keys=True) + "\n")
        self.cells[cell] = row


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return 0


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def read_episodes(run: Path) -> "pd.DataFrame":
    """A run directory's training episodes (``episodes_*.csv``); empty when the directory is gone (run
    directories are local, not committed)."""
    import pandas as pd

    logs = sorted(Path(run).glob("episodes_*.csv"))
    return pd.read_csv(logs[0]) if logs else pd.DataFrame()


def plot_seed_curves(runs: dict[str, list[Path]], path: Path, *, column: str, steps: int, title: str,
                     ylabel: str, unit_range: bool = False, window: int = 100, min_episodes: int = 20) -> None:
    """One line per label: ``column`` of the runs' training episodes (rolling mean over ``window``), mean ± std
    over the runs (seeds) of that label, against environment steps; nothing is drawn without data.

    ``runs`` maps a label to run directories (:func:`read_episodes`): a fresh clone plots what it has. A run counts
    from ``min_episodes`` finished episodes on, as in the per-run plot: one lucky first episode is not a rate.
    ``unit_range`` clips the band to [0, 1] (success rates).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.linspace(0, steps, 101)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, dirs in runs.items():
        curves = []
        for run in dirs:
            episodes = read_episodes(run)
            values = episodes[column].rolling(window, min_periods=min_episodes).mean().dropna() if len(episodes) else []
            if len(values):  # a tiny (--quick) run may not finish enough episodes
                curves.append(np.interp(grid, episodes["timestep"][values.index], values,
                                        left=0.0 if unit_range else np.nan))
        if curves:
            with warnings.catch_warnings():  # all-NaN columns before any run's first counted episode are expected
                warnings.simplefilter("ignore", RuntimeWarning)
                mean, std = np.nanmean(curves, axis=0), np.nanstd(curves, axis=0)
            low, high = mean - std, mean + std
            if unit_range:
                low, high = np.clip(low, 0, 1), np.clip(high, 0, 1)
            ax.plot(grid, mean, label=f"{label} ({len(curves)} seed{'' if len(curves) == 1 else 's'})")
            ax.fill_between(grid, low, high, alpha=0.2)
    if ax.lines:
        ax.set(title=title, xlabel="environment steps", ylabel=ylabel)
        if unit_range:
            ax.set_ylim(-0.02, 1.02)
        ax.legend(loc="upper left", fontsize="small")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    plt.close(fig)
