"""A suite's definition (``benchmarks/suites/<name>.yaml``, composed by Hydra) and the cells it expands to.

A cell is one training run: a task (env, budget, task overrides), a reward (its overrides) and a seed. Its key,
``env|reward[:variant]|seed|steps``, is the one the stored cells of ``benchmarks/minigrid_sparse.py`` use, so a
cell measured by either is finished for both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

SUITES_DIR = Path(__file__).resolve().parents[1] / "suites"
RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml") if not p.stem.startswith("_"))


def load_suite(name: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Compose ``benchmarks/suites/<name>.yaml`` with Hydra-style ``overrides`` (a typo in a key fails with
    Hydra's own message).

    Example:
        >>> cfg = load_suite("smoke", ["seeds=[0]"])
        >>> cfg.name, list(cfg.seeds)
        ('smoke', [0])
    """
    if name not in available_suites():
        raise ValueError(f"unknown suite={name!r}; choose one of {available_suites()} (files in {SUITES_DIR})")
    with initialize_config_dir(config_dir=str(SUITES_DIR), version_base="1.3"):
        cfg = compose(name, overrides=[f"name={name}", f"results_dir={RESULTS_DIR}", *overrides])
    for key in ("only_tasks", "only_rewards"):
        known = cfg.tasks if key == "only_tasks" else cfg.rewards
        unknown = sorted(set(cfg[key] or []) - set(known))
        if unknown:
            raise ValueError(f"{key}={unknown} are not in this suite; choose from {list(known)}")
    for reward in cfg.rewards:
        if reward not in cfg.reward_defs:
            raise ValueError(f"rewards: {reward!r} has no entry in reward_defs (suite {name})")
    return cfg


def out_dir(cfg: DictConfig) -> Path:
    """``benchmarks/results/<suite>/``: summary.json, summary.md, PNGs, the suite's own cells.jsonl."""
    return Path(cfg.results_dir) / cfg.name


def task_names(cfg: DictConfig) -> list[str]:
    return [t for t in cfg.tasks if not cfg.only_tasks or t in cfg.only_tasks]


def reward_names(cfg: DictConfig) -> list[str]:
    return [r for r in cfg.rewards if not cfg.only_rewards or r in cfg.only_rewards]


def reward_available(cfg: DictConfig, reward: str) -> bool:
    """Whether every ``reward=<option>`` the reward's overrides name has a config in ``llm_reward.conf``."""
    conf = resources.files("llm_reward.conf")
    options = [o.split("=", 1)[1] for o in cfg.reward_defs[reward].overrides if o.startswith("reward=")]
    return all(conf.joinpath("reward", f"{option}.yaml").is_file() for option in options)


def reward_label(cfg: DictConfig, task: str, reward: str) -> str:
    variant = cfg.tasks[task].get("variant")
    return f"{reward}:{variant}" if variant else reward


def cell_key(env: str, label: str, seed: int, steps: int) -> str:
    return f"{env}|{label}|{seed}|{steps}"


@dataclass(frozen=True)
class Cell:
    """One ``llm-reward-train`` job of a suite."""

    task: str
    reward: str
    seed: int
    env: str
    steps: int
    label: str
    stage: str | None  # the offline data its reward is built from (judge, oracle), shared across seeds
    overrides: tuple[str, ...] = field(default=())

    @property
    def key(self) -> str:
        return cell_key(self.env, self.label, self.seed, self.steps)


def expand(cfg: DictConfig, run_root: Path) -> list[Cell]:
    """Every cell of the suite (its selected tasks and available rewards, each seed), in run order: task by task,
    controls first. ``run_dir`` of each goes under ``run_root/<task>/<reward>_seed<seed>``."""
    cells = []
    for task in task_names(cfg):
        spec = cfg.tasks[task]
        for reward in reward_names(cfg):
            if not reward_available(cfg, reward):
                continue
            for seed in cfg.seeds:
                run_dir = run_root / task / f"{reward}_seed{seed}"
                overrides = (f"env={spec.env}", *cfg.common, *spec.get("overrides", []),
                             *cfg.reward_defs[reward].overrides, f"seed={seed}",
                             f"train.total_timesteps={spec.steps}", f"data_dir={cfg.data_dir}", f"run_dir={run_dir}")
                cells.append(Cell(task, reward, int(seed), spec.env, int(spec.steps), reward_label(cfg, task, reward),
                                  cfg.reward_defs[reward].get("stage"), overrides))
    return cells


def to_plain(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)
