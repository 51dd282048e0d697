"""The Eureka track: LLM-written reward code, checked, sandboxed and evolved.

Data path: env context (:mod:`.context`) -> prompts (:mod:`.prompts`) -> the LLM writes ``compute_reward`` ->
extraction by name (:mod:`.extract`) -> AST allow-list (:mod:`.allowlist`) -> sandboxed smoke test and short
SB3 training (:mod:`.sandbox`, :mod:`.worker`, :mod:`.candidate`) on local processes or Ray (:mod:`.executors`)
-> fitness and reward reflection (:mod:`.reflection`) -> next prompt (:mod:`.search`) -> the best code in a
reward wrapper (:mod:`.wrappers`). Reward code itself runs only in a jailed reward server (:mod:`.server`,
:mod:`.jail`).

    >>> from llm_reward.eureka import validate_reward_code
    >>> validate_reward_code("def compute_reward(obs, action, next_obs, info):\\n    return 1.0, {}",
    ...                      "Hopper-v5")  # doctest: +SKIP
    (True, 'ok: 100 smoke-test steps, ...')

Exports load lazily: sandbox workers import this package and must not pay for torch or SB3.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "validate_reward_code": "llm_reward.eureka.candidate",
    "evaluate_candidate": "llm_reward.eureka.candidate",
    "CandidateJob": "llm_reward.eureka.records",
    "CandidateResult": "llm_reward.eureka.records",
    "TrainSettings": "llm_reward.eureka.records",
    "EnvContext": "llm_reward.eureka.context",
    "env_context": "llm_reward.eureka.context",
    "SearchConfig": "llm_reward.eureka.search",
    "EurekaSearch": "llm_reward.eureka.search",
    "run_search": "llm_reward.eureka.search",
    "hns_summary": "llm_reward.eureka.search",
    "hns": "llm_reward.eureka.reflection",
    "CodeRewardWrapper": "llm_reward.eureka.wrappers",
    "CodeRewardVecEnv": "llm_reward.eureka.wrappers",
    "CodeRewardError": "llm_reward.eureka.wrappers",
    "code_reward_vec_env": "llm_reward.eureka.wrappers",
    "RewardServer": "llm_reward.eureka.server",
    "SandboxLimits": "llm_reward.eureka.sandbox",
    "SandboxUnavailable": "llm_reward.eureka.jail",
    "extract_reward_code": "llm_reward.eureka.extract",
    "check_code": "llm_reward.eureka.allowlist",
    "CodeRejected": "llm_reward.eureka.allowlist",
    "make_executor": "llm_reward.eureka.executors",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'llm_reward.eureka' has no attribute {name!r}")
