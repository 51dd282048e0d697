"""Shared plumbing of the benchmark scripts: results land in ``benchmarks/results/`` and the last stdout line is
the JSON result. Long sweeps record each finished cell in a JSON-lines file and skip it on rerun.

Every cell is stamped (:func:`stamp`) with the code version that computed it, a hash of its resolved config, the
machine and its load: a reader can then tell which cells of a row are comparable (``benchmarks/suite/report.py``
marks the others stale).
"""

from __future__ import annotations

import contextlib
import functools
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


#: What a cell's code version covers: the whole checkout (``llm_reward/`` links some of its packages from the top
#: level) but for what cannot touch the measured path: docs, tests, stored results.
MEASURED_PATHS = (".", ":(exclude)benchmarks/results", ":(exclude)docs", ":(exclude)tests", ":(exclude)README.md",
                  ":(exclude)mkdocs.yml")
#: Config keys that name where a run writes or which seed it runs, not what it computes; left out of config_hash so
#: the seeds of one arm share a hash.
UNHASHED_KEYS = ("run_dir", "data_dir", "seed", "progress")


def machine() -> dict[str, Any]:
    """The machine a cell ran on: cores, Python, the 1/5/15-minute load averages at the time, and the date."""
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "load": load,
            "when": time.strftime("%Y-%m-%d %H:%M:%S")}


@functools.lru_cache(maxsize=None)
def code_version(root: Path | None = None) -> dict[str, Any]:
    """The commit of the checkout whose ``llm_reward`` this process imports, and whether its measured paths
    (:data:`MEASURED_PATHS`) differ from that commit. Read once per process: the code a process runs is the code it
    imported at the start, whatever happens to the tree afterwards.

    Returns ``{"commit": None, "dirty": None}`` outside a git checkout (an installed wheel): such a cell is stale.

    Example:
        >>> sorted(code_version())
        ['commit', 'dirty']
    """
    import llm_reward

    root = root or Path(llm_reward.__file__).resolve().parents[1]
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", *MEASURED_PATHS).strip())
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def version_label(version: dict[str, Any] | None) -> str | None:
    """A short name of a cell's code version (``abc1234`` or ``abc1234+dirty``); None for an unstamped cell.

    Example:
        >>> version_label({"commit": "0123456789abcdef", "dirty": True})
        '0123456789ab+dirty'
    """
    if not version or not version.get("commit"):
        return None
    return version["commit"][:12] + ("+dirty" if version.get("dirty") else "")


def config_hash(config: Any) -> str:
    """A short hash of a run's resolved config (a dict, a DictConfig or a YAML/JSON file's path), without the keys
    that only say where it writes or which seed it is (:data:`UNHASHED_KEYS`).

    Example:
        >>> config_hash({"env": "a", "seed": 1}) == config_hash({"env": "a", "seed": 2})
        True
    """
    if isinstance(config, (str, Path)):
        import yaml

        config = yaml.safe_load(Path(config).read_text())
    else:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(config, DictConfig):
            config = OmegaConf.to_container(config, resolve=True)
    kept = {k: v for k, v in dict(config).items() if k not in UNHASHED_KEYS}
    return hashlib.sha256(json.dumps(json_safe(kept), sort_keys=True, default=str).encode()).hexdigest()[:16]


def stamp(*, config: Any = None, wall_time_s: float | None = None,
          episodes: dict[str, list] | None = None) -> dict[str, Any]:
    """The fields every cell carries: ``code_version``, ``machine`` (cores, load), and where known
    ``config_hash``, ``wall_time_s`` and ``episodes`` (the raw per-episode outcomes behind its score, e.g.
    ``{"success": [...], "return": [...]}`` of its evaluation episodes). :meth:`CellLog.add` adds the first two to
    every cell; a script passes the others.

    Example:
        >>> sorted(stamp(config={"env": "a"}, wall_time_s=1.0))
        ['code_version', 'config_hash', 'machine', 'wall_time_s']
    """
    out: dict[str, Any] = {"code_version": code_version(), "machine": machine()}
    if config is not None:
        out["config_hash"] = config_hash(config)
    if wall_time_s is not None:
        out["wall_time_s"] = float(wall_time_s)
    if episodes is not None:
        out["episodes"] = episodes
    return out


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


def oracle_reward_model(env_id: str, max_chars: int = 512) -> Any:
    """A real char-CNN reward model (5 epochs, captions up to ``max_chars`` UTF-8 bytes) fitted on 1,000
    oracle-labelled pairs of 2,000 random-policy captioned steps of ``env_id``: what the speed benchmarks put in the
    shaping wrapper."""
    import tempfile

    from llm_reward.envs import captioner_name
    from llm_reward.motif.stages import collect_stage, fit_stage, oracle_stage, sample_pairs
    from llm_reward.reward_model import RewardModelRecipe

    with tempfile.TemporaryDirectory() as tmp:
        rollouts = collect_stage(env_id, n_steps=2000, n_envs=4, seed=0, path=Path(tmp) / "r.parquet", progress=False)
        labelled, _ = oracle_stage(sample_pairs(rollouts, 1000, seed=0))
        return fit_stage(labelled, rollouts, captioner=captioner_name(env_id), path=Path(tmp) / "rm",
                         recipe=RewardModelRecipe(epochs=5, encoder_kwargs={"max_chars": max_chars}), progress=False)


def interleaved_learning_times(agents: dict[str, Any], *, reps: int, chunk: int, seed: int = 0
                               ) -> dict[str, list[float]]:
    """Seconds per ``learn(chunk)`` of each SB3 agent, ``reps`` rounds, the agents in a shuffled order each round,
    so the load of a shared machine (which moves steps/s by 30 % within a minute) hits all alike: compare them as
    ratios of their sums."""
    import numpy as np

    times: dict[str, list[float]] = {name: [] for name in agents}
    rng = np.random.default_rng(seed)
    for _ in range(reps):
        for name in rng.permutation(list(agents)):
            start = time.perf_counter()
            agents[name].learn(chunk, reset_num_timesteps=False)
            times[name].append(time.perf_counter() - start)
    return times


def emit(name: str, result: dict[str, Any]) -> None:
    """Save ``result`` as ``results/<name>.json`` and print it as one JSON line (the last line of stdout)."""
    result = json_safe(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, sort_keys=True), flush=True)


class CellLog:
    """Finished benchmark cells, appended one JSON line at a time so an interrupted sweep resumes where it was.

    The file is re-read before each membership test, so two processes sharing a sweep (say, one per core) skip each
    other's finished cells, and :meth:`claim` keeps them from starting the same unfinished one. A cell counts as
    finished only when it is stamped with a code version: an older unstamped record is stale, and :meth:`claim`
    runs it again (the new record replaces it; the last record of a cell wins).
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
        """Whether ``cell`` has a record, stamped or not (what a report reads; see :meth:`finished`)."""
        if cell not in self.cells:
            self._read()
        return cell in self.cells

    def finished(self, cell: str) -> bool:
        """Whether ``cell`` has a record stamped with a code version. An unstamped record is stale: it is reported
        (and marked so by the suite report) but does not count as finished, so :meth:`claim` runs it again."""
        def stamped() -> bool:
            return bool(((self.cells.get(cell) or {}).get("code_version") or {}).get("commit"))

        if not stamped():
            self._read()
        return stamped()

    @contextlib.contextmanager
    def claim(self, cell: str) -> Iterator[bool]:
        """Yields whether this process should run ``cell``: False when it is finished or a live process holds it.

        The claim is a file created exclusively next to the log, holding the owner's pid; it is released on exit,
        whether the cell finished or not, and a claim whose process died (a crash, a killed session) is taken over.
        """
        if self.finished(cell):
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
            yield not self.finished(cell)  # finished by another process between the first test and the claim
        finally:
            path.unlink(missing_ok=True)

    def add(self, cell: str, row: dict[str, Any]) -> None:
        """Append ``cell``'s record, stamped (:func:`stamp`) with the code version and machine unless ``row`` has
        them already."""
        row = json_safe({"cell": cell, **stamp(), **row})
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
