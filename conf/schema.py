"""Structured configs (Hydra's ConfigStore) for the run configs: typed keys, checked where the config is composed.

``base_schema`` types what ``base.yaml`` holds (llm-reward-annotate and llm-reward-fit), ``train_schema`` adds what
``train.yaml`` holds (llm-reward-train). Each app's YAML names its schema first in its defaults list, so a key of
the wrong type (``train.n_envs=four``) or a misspelt section key (``train.n_env=4``) stops the composition with an
error naming the key. Ranges are checked by :func:`check_sections`, also naming the key. The groups (env, llm,
feedback, reward) stay open: each of their files builds its own objects (``_target_``) and checks its own keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig


@dataclass
class RolloutsSection:
    """``rollouts.*``: the captioned steps collected for the pair dataset."""

    n_steps: int = 4000
    n_envs: int = 4
    policy: Optional[str] = None
    policy_algo: str = "ppo"


@dataclass
class PairsSection:
    """``pairs.*``: the caption pairs sent to the judge."""

    n: int = 512
    unique_captions: bool = True
    batch_size: int = 16


@dataclass
class RewardModelSection:
    """``reward_model.*``: the Bradley-Terry fit of the judge's labels."""

    encoder: str = "char_cnn"
    max_chars: int = 512
    epochs: int = 30
    n_members: int = 1
    targets: str = "hard"
    dense_pairs: int = 0


@dataclass
class AgentSection:
    """``agent.*``: the SB3 algorithm, its per-family defaults and the keyword overrides."""

    algo: str = MISSING
    kwargs: Dict[str, Any] = field(default_factory=dict)
    family_defaults: Dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainSection:
    """``train.*``: the RL run and its evaluation."""

    total_timesteps: int = 300_000
    n_envs: int = 8
    subprocess: bool = False
    baseline: bool = True
    parallel_baseline: bool = True
    eval_episodes: int = 50
    eval_info_keys: List[str] = field(default_factory=list)
    eval_every: int = 0
    eval_every_episodes: int = 10
    torch_threads: int = 1


@dataclass
class BaseConfig:
    """What every Motif app reads: the env, the judge and how it is asked, and the offline stages' settings."""

    env: Any = MISSING
    llm: Any = MISSING
    feedback: Any = MISSING
    seed: int = 0
    data_seed: int = 0
    progress: bool = True
    data_dir: str = "data"
    rollouts: RolloutsSection = field(default_factory=RolloutsSection)
    pairs: PairsSection = field(default_factory=PairsSection)
    reward_model: RewardModelSection = field(default_factory=RewardModelSection)
    paths: Dict[str, str] = field(default_factory=dict)


@dataclass
class TrainConfig(BaseConfig):
    """``llm-reward-train``: the base, plus the reward kind, the agent and the RL run."""

    reward: Any = MISSING
    agent: AgentSection = field(default_factory=AgentSection)
    train: TrainSection = field(default_factory=TrainSection)
    run_dir: str = MISSING


#: ``(section, key, lowest allowed value, what it means)``: the range checks of the train app's sections (``pairs.n``
#: is checked by the reward kinds that label pairs: a count bonus needs none).
_AT_LEAST = (("train", "total_timesteps", 1, ""), ("train", "n_envs", 1, ""), ("train", "eval_episodes", 1, ""),
             ("train", "eval_every_episodes", 1, ""),
             ("train", "eval_every", 0, " (0: no evaluation during training)"))


def check_sections(cfg: DictConfig) -> None:
    """Range checks of the typed sections present in ``cfg``; ValueError naming the first key out of range.

    Args:
        cfg: a composed run config (its ``train`` section is checked where present).

    Raises:
        ValueError: ``<section>.<key> must be >= <lowest>, got <value>``.

    Example:
        >>> from omegaconf import OmegaConf
        >>> check_sections(OmegaConf.create({"train": {"n_envs": 0}}))
        Traceback (most recent call last):
        ...
        ValueError: train.n_envs must be >= 1, got 0
    """
    for section, key, lowest, meaning in _AT_LEAST:
        node = cfg.get(section)
        if node is not None and key in node and int(node[key]) < lowest:
            raise ValueError(f"{section}.{key} must be >= {lowest}{meaning}, got {node[key]}")


def schema_keys(schema: type) -> list[str]:
    """The top-level keys of a schema (for tests and docs).

    Example:
        >>> schema_keys(TrainSection)[:2]
        ['total_timesteps', 'n_envs']
    """
    return [f.name for f in fields(schema)]


def register() -> None:
    """Store the schemas under the names the apps' YAML defaults lists use (``base_schema``, ``train_schema``)."""
    store = ConfigStore.instance()
    store.store(name="base_schema", node=BaseConfig)
    store.store(name="train_schema", node=TrainConfig)
