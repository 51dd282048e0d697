"""``llm-reward-eureka``: search reward code for an env with an LLM (Eureka), sandboxed, resumable.

    llm-reward-eureka env=robotics/hopper llm=local search.samples=4 search.iterations=2
    llm-reward-eureka env=robotics/fetch_reach search=paper run_dir=runs/eureka/fetch
    llm-reward-eureka env=minigrid/doorkey_8x8 search=quick
    llm-reward-eureka env=robotics/inverted_pendulum search=quick search.executor=ray

Prints the run directory; ``<run_dir>/best_reward.py`` trains with ``llm-reward-train reward=eureka
reward.code_path=<run_dir>/best_reward.py`` or :class:`llm_reward.eureka.CodeRewardVecEnv`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from llm_reward.apps._common import CONFIG_PATH, VERSION_BASE, make_llm_from_config
from llm_reward.eureka.context import ContextError, env_context
from llm_reward.eureka.executors import ExecutorError
from llm_reward.eureka.jail import ISOLATION_ENV, SandboxUnavailable, check_isolation
from llm_reward.eureka.prescreen import PrescreenError
from llm_reward.eureka.search import EurekaSearch, SearchConfig


def search_config(cfg: DictConfig) -> SearchConfig:
    """``cfg.search`` as a checked :class:`SearchConfig` (unknown keys name ``search.<key>``)."""
    values: dict[str, Any] = OmegaConf.to_container(cfg.search, resolve=True)
    known = {f.name for f in dataclasses.fields(SearchConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown key(s) {['search.' + k for k in unknown]}; allowed: {sorted(known)}")
    return SearchConfig(**values)


def prepare(cfg: DictConfig) -> EurekaSearch:
    """Every check first (config, sandbox, executor, env context, LLM): bad input fails here, before any LLM call."""
    config = search_config(cfg)
    isolation = str(cfg.sandbox.isolation) if cfg.get("sandbox") else os.environ.get(ISOLATION_ENV, "os")
    check_isolation(isolation)  # before the coder loads: reward code must have a jail that starts here
    os.environ[ISOLATION_ENV] = isolation  # every sandbox this search starts reads it (local and Ray workers)
    overrides = OmegaConf.to_container(cfg.context, resolve=True) if cfg.get("context") else {}
    context = env_context(cfg.env.id, overrides, success=config.success, seed=config.seed)
    llm = make_llm_from_config(cfg)
    run_dir = Path(cfg.run_dir) if cfg.get("run_dir") else None  # None: keyed on what decides the search
    return EurekaSearch(cfg.env.id, llm, config, run_dir, context=context, progress=bool(cfg.progress))


def run(cfg: DictConfig) -> dict[str, Any]:
    """:func:`prepare`, then the search; returns its summary."""
    return prepare(cfg).run()


@hydra.main(config_path=CONFIG_PATH, config_name="eureka", version_base=VERSION_BASE)
def main(cfg: DictConfig) -> None:
    try:
        search = prepare(cfg)
    except (ValueError, ContextError, FileNotFoundError, SandboxUnavailable) as err:  # one line naming the key
        print(f"llm-reward-eureka: {err}", file=sys.stderr)
        sys.exit(2)
    try:
        summary = search.run()
    except (ExecutorError, PrescreenError) as err:  # an executor that cannot start, an env without an oracle
        print(f"llm-reward-eureka: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"llm-reward-eureka: interrupted; finished candidates are kept in {search.run_dir}; rerun the same "
              f"command to continue", file=sys.stderr)
        sys.exit(130)
    keys = ("task", "candidates", "execute_rate_first_try", "execute_rate", "best_training_fitness_per_iteration",
            "prescreen_spearman", "eval_episodes", "eval_success", "eval_return", "hns")
    print(json.dumps({k: summary[k] for k in keys}))
    print(search.run_dir.resolve())


if __name__ == "__main__":
    main()
