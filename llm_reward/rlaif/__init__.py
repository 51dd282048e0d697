"""Text RLAIF (Lee et al. 2023): a small LM policy trained from an AI judge's feedback, on CPU.

prompts (optionally with verifiable instructions) -> policy samples k answers -> reward (direct: the judge's 1-10
score; distilled: a reward model of its pairwise preferences) -> RLOO with a KL penalty to the frozen start ->
policy; evaluated by win rate against the start under a probe-checked held-out judge, by a programmatic checker of
the instructions, and against a null control.

    >>> from llm_reward.rlaif import as_reward_funcs
    >>> reward_func = as_reward_funcs(score_judge)  # doctest: +SKIP
    >>> reward_func(prompts=["HP 2/30. What now?"], completions=["Drink a healing potion."])  # doctest: +SKIP
    [0.52]

Heavy dependencies (transformers, peft) load only with the policy or :class:`WinRateCallback`:
``pip install "llm_reward[rlaif]"``.
"""

from typing import Any

from llm_reward.rlaif.constraints import Constraint, checker_success, parse_constraint
from llm_reward.rlaif.data import PromptSet, load_prompts
from llm_reward.rlaif.judging import ChecklistJudge, PositionFreeJudge, ProbeResult, probe_judge, require_probe
from llm_reward.rlaif.rewards import DirectReward, DistilledReward, TextReward, as_reward_funcs, fit_distilled_reward
from llm_reward.rlaif.rloo import exact_kl, penalised_advantages, rloo_advantages, sampled_kl

__all__ = ["as_reward_funcs", "DirectReward", "DistilledReward", "TextReward", "fit_distilled_reward",
           "load_prompts", "PromptSet", "rloo_advantages", "penalised_advantages", "sampled_kl", "exact_kl",
           "Constraint", "parse_constraint", "checker_success", "ChecklistJudge", "PositionFreeJudge", "ProbeResult",
           "probe_judge", "require_probe", "WinRateCallback"]


def __getattr__(name: str) -> Any:
    if name == "WinRateCallback":  # imports transformers: only when asked for
        from llm_reward.rlaif.callback import WinRateCallback

        return WinRateCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
