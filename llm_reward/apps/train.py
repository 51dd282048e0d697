"""``llm-reward-train``: the main job. Collect -> annotate -> fit -> train -> evaluate, one run directory.

    llm-reward-train                                   # DoorKey-8x8, Motif reward from the embedded judge
    llm-reward-train experiment=smoke                  # the same path in about a minute and a half
    llm-reward-train env=minigrid/keycorridor_s3r3 reward=oracle seed=1
    llm-reward-train -m hydra/launcher=joblib experiment=smoke seed=0,1   # a sweep: one run directory per job
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from llm_reward.apps._common import CONFIG_PATH, VERSION_BASE, ConfigError, exit_on_config_error
from llm_reward.apps.experiment import run_experiment


def claim_run_dir(path: Path) -> Path:
    """Create ``path`` (or ``path-2``, ``path-3``, ... when taken): two jobs of a sweep started in the same second
    must never share a run directory. ``mkdir`` is atomic, so parallel jobs cannot claim the same one.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> claim_run_dir(root / "run").name, claim_run_dir(root / "run").name
        ('run', 'run-2')
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 10_000):
        candidate = path if attempt == 1 else path.with_name(f"{path.name}-{attempt}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"run_dir: {path} and 9,999 numbered variants exist already")


@hydra.main(config_path=CONFIG_PATH, config_name="train", version_base=VERSION_BASE)
def main(cfg: DictConfig) -> None:
    run_dir = claim_run_dir(Path(cfg.run_dir))
    cfg.run_dir = str(run_dir)  # config.yaml records where this run really is
    try:
        run_experiment(cfg, run_dir)  # a crash after the checks writes metrics.json with "failed" first
    except BaseException as err:
        if not any(run_dir.iterdir()):  # nothing was started: leave no empty run directory behind
            run_dir.rmdir()
        if isinstance(err, ConfigError):
            raise exit_on_config_error("llm-reward-train", err) from None
        raise
    print(run_dir.resolve())


if __name__ == "__main__":
    main()
