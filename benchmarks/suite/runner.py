"""Run a suite's unfinished cells as Hydra jobs of ``llm-reward-train``, through any Hydra launcher.

Each cell is one job of the train app, composed from ``pkg://llm_reward.conf`` with the cell's overrides and run
by the launcher the suite names (``launcher=basic`` one at a time in this process, ``joblib`` one per core,
``slurm`` / ``ray_cluster`` on a cluster). The launcher is Hydra's own plugin, set up the way ``-m`` sets it up,
but handed an explicit list of cells instead of a cartesian sweep, so finished cells are left out.

Cells whose reward is built offline (collect -> annotate -> fit) share the data across seeds and rewards through
the stage cache; the first cell of each (task, stage) runs before the others of that stage start, so two jobs
never judge the same pairs at once.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Sequence

from hydra import initialize_config_module
from hydra._internal.callbacks import Callbacks  # what Hydra's own multirun hands its launcher (no public alias)
from hydra.core.global_hydra import GlobalHydra
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig

from benchmarks.suite.cells import cell_log, imported_rows, row_from_run
from benchmarks.suite.config import Cell, expand, out_dir

log = logging.getLogger("benchmarks")


def run_root(cfg: DictConfig) -> Path:
    return out_dir(cfg) / "runs"


def pending_cells(cfg: DictConfig) -> list[Cell]:
    """The suite's cells not yet finished: without a stamped record (``code_version``) in its cells log or among
    the imported rows. An unstamped record is stale and is run again; a run dir left without a record (its runner
    was stopped before recording it) is set aside and run again too, since nothing says which code produced it."""
    log_, imported = cell_log(cfg), imported_rows(cfg)
    return [cell for cell in expand(cfg, run_root(cfg))
            if not log_.finished(cell.key) and not (imported.get(cell.key) or {}).get("code_version")]


def waves(cells: Sequence[Cell]) -> list[list[Cell]]:
    """Cells in launch order: first one cell per (task, stage) that builds offline data (labels, a reward model),
    with the cells that need none beside them; then the other cells of each stage, which reuse that data.

    Example:
        >>> from benchmarks.suite.config import Cell
        >>> stage = {"none": None, "motif": "judge", "shuffled": "judge"}
        >>> cells = [Cell("t", r, s, "e", 1, r, stage[r]) for r in stage for s in (0, 1)]
        >>> [[(c.reward, c.seed) for c in wave] for wave in waves(cells)]
        [[('motif', 0), ('none', 0), ('none', 1)], [('motif', 1), ('shuffled', 0), ('shuffled', 1)]]
    """
    leaders: dict[tuple[str, str], Cell] = {}
    for cell in cells:
        if cell.stage:
            leaders.setdefault((cell.task, cell.stage), cell)
    first = list(leaders.values()) + [cell for cell in cells if not cell.stage]  # builders start first
    rest = [cell for cell in cells if cell not in first]
    return [wave for wave in (first, rest) if wave]


def run_cells(cfg: DictConfig, cells: Sequence[Cell]) -> list[tuple[Cell, str]]:
    """Launch ``cells`` wave by wave and record each finished one; returns the failed cells with their errors.

    Ctrl-C stops the launcher (each job saves what it trained); the cells it finished are recorded, the others
    are run again by the next ``run``.
    """
    from llm_reward.apps.train import main as train_app

    task_function = train_app.__wrapped__  # the app's body, undecorated: the launcher does Hydra's job setup
    failed: list[tuple[Cell, str]] = []
    log_ = cell_log(cfg)
    # In-process (basic) jobs absorb Ctrl-C (the agent saves and the job returns), so they are launched one at a
    # time and the suite stops after an interrupted one; other launchers take a whole wave at once.
    batches = [[c] for wave in waves(cells) for c in wave] if cfg.launcher == "basic" else waves(cells)
    for wave in batches:
        for cell in wave:
            _set_aside_partial(_run_dir(cell))
        sweep_dir = out_dir(cfg) / "hydra" / time.strftime("%Y-%m-%d_%H-%M-%S")
        print(f"launching {len(wave)} cell(s) with hydra/launcher={cfg.launcher}; job logs in {sweep_dir}", flush=True)
        returns: Sequence = ()
        try:
            launcher = [f"hydra/launcher={cfg.launcher}", *cfg.launcher_overrides]
            returns = _launch(launcher, [list(c.overrides) for c in wave], sweep_dir, task_function)
        except (Exception, SystemExit) as err:  # the launcher itself failed, or a job exited: the next wave runs
            error = f"{type(err).__name__}: {err}"
            failed += [(cell, error) for cell in wave if not log_.finished(cell.key) and
                       row_from_run(cell, _run_dir(cell), metric=cfg.metric, curve_column=cfg.curve_column) is None]
        finally:
            for cell in wave:  # what finished is recorded even when the launch was interrupted
                row = row_from_run(cell, _run_dir(cell), metric=cfg.metric, curve_column=cfg.curve_column)
                if row is not None and not log_.finished(cell.key):
                    log_.add(cell.key, row)
                    print(f"  done {cell.key}: {cfg.metric}={row['score']:.3f}", flush=True)
        for cell, ret in zip(wave, returns):
            if ret.status != JobStatus.COMPLETED or not log_.finished(cell.key):
                error = ret._return_value if ret.status == JobStatus.FAILED else "run did not complete"
                failed.append((cell, f"{type(error).__name__}: {error}" if isinstance(error, BaseException)
                               else str(error)))
        if any(_interrupted(_run_dir(cell)) for cell in wave):  # Ctrl-C reached a job
            raise KeyboardInterrupt
    return failed


def _interrupted(run_dir: Path) -> bool:
    path = run_dir / "metrics.json"
    if not path.is_file():
        return False
    runs = json.loads(path.read_text()).get("runs") or {}
    return any(run.get("interrupted") for run in runs.values())


def check_overrides(cells: Sequence[Cell]) -> None:
    """Compose one cell of each task and of each reward: a bad override (an unknown key or group option) fails
    here with Hydra's message, before any cell starts."""
    from hydra import compose

    tasks: set[str] = set()
    rewards: set[str] = set()
    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        for cell in cells:
            if cell.task in tasks and cell.reward in rewards:
                continue
            tasks.add(cell.task)
            rewards.add(cell.reward)
            compose("train", overrides=list(cell.overrides))


def _launch(launcher: list[str], job_overrides: list[list[str]], sweep_dir: Path, task_function) -> Sequence:
    """Hydra's multirun machinery (compose in MULTIRUN mode, instantiate the configured launcher, launch) for an
    explicit list of jobs; ``launcher`` holds the hydra/launcher choice and its options."""
    GlobalHydra.instance().clear()
    with initialize_config_module("llm_reward.conf", job_name="llm-reward-train", version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        master = hydra.compose_config("train", overrides=[*launcher, f"hydra.sweep.dir={sweep_dir}"],
                                      run_mode=RunMode.MULTIRUN, with_log_configuration=True)
        context = HydraContext(config_loader=hydra.config_loader, callbacks=Callbacks(master))
        runner = Plugins.instance().instantiate_launcher(hydra_context=context, task_function=task_function,
                                                         config=master)
        return runner.launch(job_overrides, initial_job_idx=0)


def _run_dir(cell: Cell) -> Path:
    return Path(next(o for o in cell.overrides if o.startswith("run_dir=")).split("=", 1)[1])


def _set_aside_partial(run_dir: Path) -> None:
    """A run dir left by an interrupted or failed attempt is kept beside the new one, not overwritten."""
    if run_dir.exists():
        aside = run_dir.with_name(f"{run_dir.name}.partial-{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.move(str(run_dir), aside)
        log.warning("kept an unfinished earlier attempt of this cell as %s", aside)
