"""``reward=eureka`` for ``llm-reward-train``: train on a saved reward code file (a search's ``best_reward.py``).

    llm-reward-train env=robotics/hopper reward=eureka reward.builder.code_path=runs/eureka/hopper/best_reward.py

The code is checked (extraction by name, allow-list) when the run is validated, before any training, and runs in
a sandbox worker beside the training loop (:class:`~llm_reward.eureka.wrappers.CodeRewardVecEnv`). The info keys
it was searched without (the env's own reward terms) stay hidden.
"""

from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_reward.eureka.context import ALWAYS_HIDDEN
from llm_reward.eureka.wrappers import CodeRewardVecEnv, load_code
from llm_reward.training.context import BuiltReward, RunContext


@dataclass
class EurekaCodeReward:
    """The reward kind: ``check(run)`` validates the file, ``build(run)`` returns a VecEnv wrapper factory.

    Example:
        >>> kind = EurekaCodeReward(code_path="runs/eureka/hopper/best_reward.py")  # doctest: +SKIP
        >>> built = kind.build(run)  # doctest: +SKIP
        >>> venv = built.wrap_venv(venv)  # doctest: +SKIP
    """

    code_path: str | None = None
    call_timeout_s: float = 10.0

    def check(self, run: RunContext) -> None:
        if not self.code_path:
            raise ValueError("reward.builder.code_path: set it to a reward code file (a search's best_reward.py)")
        try:
            load_code(code_path=self.code_path)
        except (ValueError, FileNotFoundError) as exc:
            raise ValueError(f"reward.builder.code_path: {exc}") from None

    def build(self, run: RunContext) -> BuiltReward:
        self.check(run)
        hidden = _hidden_keys(run.env_id)
        wrap = functools.partial(CodeRewardVecEnv, code_path=self.code_path, hidden_info_keys=hidden,
                                 call_timeout_s=self.call_timeout_s)
        return BuiltReward(None, metrics={"reward_code": str(self.code_path)}, keep=self._keep, wrap_venv=wrap)

    def _keep(self, run_dir: Path) -> None:
        shutil.copyfile(self.code_path, Path(run_dir) / "reward_code.py")


def _hidden_keys(env_id: str) -> list[str]:
    from llm_reward.envs import task_spec

    try:
        terms: list[Any] = list(task_spec(env_id).reward_terms or [])
    except ValueError:
        terms = []
    return [*ALWAYS_HIDDEN, *terms]
