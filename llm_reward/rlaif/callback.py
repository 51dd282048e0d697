"""A win-rate callback for ``transformers.Trainer`` and every trainer built on it (TRL's GRPO, RLOO, DPO ...).

At the start of training it samples reference answers to a fixed set of prompts from the model as it is; at each
evaluation (and every ``every_n_steps`` optimiser steps, if given) it samples the model's current answers with the
same seeds and logs the win rate against the reference under a judge that is checked for position bias: a
:class:`~llm_reward.feedback.judges.PairwiseJudge` (both orders averaged) or a
:class:`~llm_reward.rlaif.judging.PositionFreeJudge` (each answer scored alone). With constraints it also logs the
checker-measured instruction success. This plays the role TRL's removed ``WinRateCallback`` played.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from transformers import TrainerCallback

from llm_reward.rlaif.constraints import Constraint
from llm_reward.rlaif.evaluate import Answers, checker_comparison, generate_answers, judge_answers
from llm_reward.rlaif.judging import ComparingJudge
from llm_reward.rlaif.policy import Policy


class WinRateCallback(TrainerCallback):
    """Log ``<prefix>win_rate`` (trained vs the model at train start) and, with constraints, checker success.

    Example:
        >>> from trl import GRPOTrainer  # doctest: +SKIP
        >>> judge = PositionFreeJudge(ScoreJudge(make_llm("local"), ResponseScorePrompt()))  # doctest: +SKIP
        >>> callback = WinRateCallback(judge, prompts.heldout[:16], constraints=prompts.constraints)  # doctest: +SKIP
        >>> trainer = GRPOTrainer(..., callbacks=[callback])  # doctest: +SKIP
        >>> trainer.train(); callback.history[-1]["win_rate"]  # doctest: +SKIP
        0.62

    Args:
        judge: P(first better) for answer pairs (``label(pairs, contexts) -> LabelBatch``).
        prompts: the prompts answered at every measurement.
        max_new_tokens: answer length cap.
        temperature: sampling temperature (the same seeds every time, so only the weights differ).
        seed: sampling seed.
        every_n_steps: also measure every this many optimiser steps (``None``: only at evaluations).
        constraints: prompt -> verifiable instructions, for checker success beside the win rate.
        prefix: prepended to the logged keys.
    """

    def __init__(self, judge: ComparingJudge, prompts: Sequence[str], *, max_new_tokens: int = 48,
                 temperature: float = 0.9, seed: int = 1234, every_n_steps: int | None = None,
                 constraints: Mapping[str, Sequence[Constraint]] | None = None, prefix: str = "eval_"):
        if not prompts:
            raise ValueError("WinRateCallback needs at least one prompt")
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"every_n_steps must be a positive integer or None, got {every_n_steps}")
        self.judge, self.prompts = judge, list(prompts)
        self.settings = dict(samples_per_prompt=1, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        self.every_n_steps, self.constraints, self.prefix = every_n_steps, dict(constraints or {}), prefix
        self.reference: Answers | None = None
        self.history: list[dict[str, Any]] = []
        self._measured_at = -1

    def _policy(self, model: Any, tokenizer: Any) -> Policy:
        if tokenizer is None:
            raise ValueError("WinRateCallback needs the trainer's tokenizer (processing_class)")
        return Policy(model, getattr(tokenizer, "tokenizer", tokenizer), "trained")

    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        if self.reference is None:
            policy = self._policy(model, processing_class or kwargs.get("tokenizer"))
            self.reference, _ = generate_answers(policy, self.prompts, **self.settings)

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if self.every_n_steps and state.global_step % self.every_n_steps == 0:
            self.measure(model, processing_class or kwargs.get("tokenizer"), state)

    def on_evaluate(self, args, state, control, model=None, processing_class=None, **kwargs):
        self.measure(model, processing_class or kwargs.get("tokenizer"), state)

    def measure(self, model: Any, tokenizer: Any, state: Any) -> dict[str, Any]:
        """Sample, judge against the reference, append to ``history`` and the trainer's ``log_history``."""
        if state.global_step == self._measured_at and self.history:
            return self.history[-1]
        if self.reference is None:
            raise RuntimeError("WinRateCallback.measure before on_train_begin: no reference answers yet")
        answers, _ = generate_answers(self._policy(model, tokenizer), self.prompts, **self.settings)
        judged = judge_answers(self.judge, answers, self.reference)
        record: dict[str, Any] = {"step": state.global_step, "win_rate": judged["win_rate"],
                                  "win_rate_ci": judged["win_rate_ci"],
                                  "position_consistency": judged["position_consistency"],
                                  "mean_length": float(answers.lengths.mean())}
        if self.constraints:
            checker = checker_comparison(answers, self.reference, self.constraints, {})
            record["checker_success"] = checker.get("checker_success_trained", float("nan"))
        self.history.append(record)
        self._measured_at = state.global_step
        state.log_history.append({"step": state.global_step,
                                  **{f"{self.prefix}{k}": v for k, v in record.items() if k != "step"}})
        return record
