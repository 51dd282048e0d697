"""The RLAIF training loop: sample answers, reward them, RLOO step with a KL penalty, checkpoint, repeat.

Written by hand rather than through TRL's trainers: on this 2-core CPU the measured step time of TRL's
GRPOTrainer with the same model and batch is in ``docs/rlaif.md``; this loop batches every answer of a step into
one judge call (answers served from the judge's result cache on reruns), checkpoints atomically and resumes, and
keeps the frozen start for KL and evaluation. TRL users plug our judges into their own trainers through
:func:`llm_reward.rlaif.as_reward_funcs`.

Outputs in ``out_dir``: ``checkpoint/`` (latest trainable weights, optimizer, history; Ctrl-C saves it, a rerun
resumes), ``samples.jsonl`` (answers at intervals), ``metrics.json``, ``curve.png``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from llm_reward.jsonio import replaced_directory
from llm_reward.rlaif.evaluate import within_prompt_agreement
from llm_reward.rlaif.policy import Policy
from llm_reward.rlaif.rewards import TextReward
from llm_reward.rlaif.rloo import (RunningBaseline, penalised_advantages, policy_gradient_loss, sampled_kl)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings (config group ``train``)."""

    steps: int = 40
    prompts_per_step: int = 4
    samples_per_prompt: int = 4  # k answers per prompt: RLOO's leave-one-out baseline (k = 1: running mean)
    max_new_tokens: int = 32
    temperature: float = 0.9
    beta: float = 0.05
    lr: float = 1e-5
    max_grad_norm: float = 1.0
    checkpoint_every: int = 5
    sample_every: int = 5
    seed: int = 0

    def check(self) -> None:
        for key in ("steps", "prompts_per_step", "samples_per_prompt", "max_new_tokens", "checkpoint_every",
                    "sample_every"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"train.{key} must be a positive integer, got {value!r}")
        if not 0.0 < self.temperature <= 2.0:
            raise ValueError(f"train.temperature must be in (0, 2], got {self.temperature}")
        if self.beta < 0 or self.lr <= 0 or self.max_grad_norm <= 0:
            raise ValueError(f"train.beta must be >= 0 and train.lr, train.max_grad_norm > 0; got {self.beta}, "
                             f"{self.lr}, {self.max_grad_norm}")


class RLAIFTrainer:
    """RLOO / REINFORCE with KL to the frozen start, on any :class:`TextReward`.

    ``checker`` (optional) gives a ground-truth score per answer, ``checker(prompts, answers)``; it is never trained
    on, only logged beside the reward at every step: its mean (``checker``) and how the reward orders each prompt's
    answers against it (``checker_agreeing`` of ``checker_pairs`` within-prompt pairs where it differs), which is
    what tells a reward that moves the policy the right way from one that does not.

    Example:
        >>> trainer = RLAIFTrainer(policy, DirectReward(score_judge), prompts.train, TrainSettings(steps=20),
        ...                        out_dir="runs/direct")  # doctest: +SKIP
        >>> history = trainer.train()  # doctest: +SKIP
    """

    def __init__(self, policy: Policy, reward: TextReward, prompts: Sequence[str], settings: TrainSettings,
                 out_dir: str | os.PathLike, *, fingerprint: dict[str, Any] | None = None,
                 start_model: Any = None, checker: Callable[[list[str], list[str]], Sequence[float]] | None = None):
        settings.check()
        if len(prompts) < settings.prompts_per_step:
            raise ValueError(f"train.prompts_per_step={settings.prompts_per_step} exceeds the {len(prompts)} "
                             "training prompts")
        self.policy, self.reward, self.prompts, self.settings = policy, reward, list(prompts), settings
        self.out_dir = Path(out_dir)
        self.checker = checker
        self.fingerprint = {"settings": asdict(settings), **(fingerprint or {})}
        self.start_model = start_model if start_model is not None else copy.deepcopy(policy.model).eval()
        for p in self.start_model.parameters():
            p.requires_grad_(False)
        params = [p for p in policy.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=settings.lr)
        self.baseline = RunningBaseline()
        self.history: list[dict[str, float]] = []
        self.step = 0

    # -- checkpoints ------------------------------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / "checkpoint"

    def save(self) -> None:
        """Write the checkpoint to a temporary directory, then swap it in: a crash never leaves a half one."""
        state = {"step": self.step, "history": self.history, "baseline": self.baseline.value,
                 "fingerprint": self.fingerprint}
        with replaced_directory(self.checkpoint_dir) as tmp:
            torch.save(self.policy.trainable_state(), tmp / "trainable.pt")
            torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
            # json.dumps, not jsonio's strict JSON: a NaN in the history must come back as NaN on resume
            (tmp / "state.json").write_text(json.dumps(state, indent=1))

    def resume(self) -> bool:
        """Load the checkpoint if one exists (refusing one written under different settings); True if loaded."""
        state_file = self.checkpoint_dir / "state.json"
        if not state_file.exists():
            return False
        state = json.loads(state_file.read_text())
        theirs = {k: v for k, v in state["fingerprint"].items() if k != "settings"}
        ours = {k: v for k, v in self.fingerprint.items() if k != "settings"}
        mine = {k: v for k, v in self.fingerprint["settings"].items() if k != "steps"}
        old = {k: v for k, v in state["fingerprint"]["settings"].items() if k != "steps"}
        if theirs != ours or mine != old:
            raise ValueError(f"{self.checkpoint_dir} was written by another configuration; use another out_dir or "
                             "delete it")
        self.policy.model.load_state_dict(torch.load(self.checkpoint_dir / "trainable.pt"), strict=False)
        self.optimizer.load_state_dict(torch.load(self.checkpoint_dir / "optimizer.pt"))
        self.step, self.history, self.baseline.value = state["step"], state["history"], state["baseline"]
        log.info("resumed %s at step %d", self.checkpoint_dir, self.step)
        return True

    # -- training ---------------------------------------------------------------------------------------------
    def train(self, progress: bool = True) -> list[dict[str, float]]:
        """Run until ``settings.steps``; Ctrl-C or a crash saves the checkpoint first, then re-raises."""
        from tqdm.auto import tqdm

        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.resume()
        bar = tqdm(total=self.settings.steps, initial=self.step, desc="rlaif", unit="step", disable=not progress)
        saved_at = self.step
        try:
            while self.step < self.settings.steps:
                record = self.train_step()
                bar.update(1)
                bar.set_postfix(reward=f"{record['reward']:.3f}", kl=f"{record['kl']:.3f}")
                if self.step % self.settings.checkpoint_every == 0 or self.step == self.settings.steps:
                    self.save()
                    saved_at = self.step
        except BaseException:
            if self.step > saved_at:
                log.warning("interrupted at step %d: saving the checkpoint before stopping", self.step)
                self.save()
            raise
        finally:
            bar.close()
        return self.history

    def train_step(self) -> dict[str, float]:
        """One RLOO update on ``prompts_per_step`` prompts x ``samples_per_prompt`` answers."""
        s = self.settings
        rng = np.random.default_rng([s.seed, self.step])
        prompts = [self.prompts[i] for i in rng.choice(len(self.prompts), size=s.prompts_per_step, replace=False)]
        t0 = time.perf_counter()
        samples = self.policy.sample(prompts, k=s.samples_per_prompt, max_new_tokens=s.max_new_tokens,
                                     temperature=s.temperature, seed=int(rng.integers(2**31)))
        t1 = time.perf_counter()
        rows = [p for p in prompts for _ in range(s.samples_per_prompt)]
        rewards = torch.as_tensor(np.asarray(self.reward.score(rows, samples.texts), dtype=np.float32))
        t2 = time.perf_counter()
        self.policy.model.train()
        with torch.no_grad():
            logp_start = Policy.token_logprobs(self.policy.logits(samples, model=self.start_model,
                                                                  temperature=s.temperature), samples)
        logp = Policy.token_logprobs(self.policy.logits(samples, temperature=s.temperature), samples)
        kl = sampled_kl(logp.detach(), logp_start, samples.completion_mask)
        advantages = penalised_advantages(rewards, kl, s.beta, s.samples_per_prompt, self.baseline)
        loss = policy_gradient_loss(logp, samples.completion_mask, advantages)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]],
                                                   s.max_grad_norm)
        self.optimizer.step()
        t3 = time.perf_counter()
        self.step += 1
        record = {"step": self.step, "reward": float(rewards.mean()), "reward_std": float(rewards.std()),
                  "kl": float(kl.mean()), "objective": float((rewards - s.beta * kl).mean()), "loss": loss.item(),
                  "grad_norm": float(grad_norm), "length": float(samples.lengths.mean()),
                  "sample_s": t1 - t0, "reward_s": t2 - t1, "optimize_s": t3 - t2,
                  "answers": len(samples.texts), "tokens": float(samples.lengths.sum())}
        truth = None
        if self.checker is not None:
            truth = np.asarray(self.checker(rows, samples.texts), dtype=np.float64)
            agreeing, pairs = within_prompt_agreement(rewards.numpy(), truth, s.samples_per_prompt)
            record.update(checker=float(np.nanmean(truth)) if (~np.isnan(truth)).any() else float("nan"),
                          checker_agreeing=agreeing, checker_pairs=pairs)
        self.history.append(record)
        if self.step % s.sample_every == 0 or self.step == 1:
            with open(self.out_dir / "samples.jsonl", "a", encoding="utf-8") as f:
                for i in range(0, len(rows), s.samples_per_prompt):
                    row = {"step": self.step, "prompt": rows[i], "answer": samples.texts[i],
                           "reward": float(rewards[i])}
                    if truth is not None:
                        row["checker"] = float(truth[i])
                    f.write(json.dumps(row) + "\n")
        return record


def timing_summary(history: Sequence[dict[str, float]]) -> dict[str, float]:
    """Where the time went: answers/s and tokens/s of sampling, judged answers/s, optimizer steps/s."""
    if not history:
        return {}
    total = lambda key: float(sum(h[key] for h in history))  # noqa: E731
    answers, tokens = total("answers"), total("tokens")
    return {"policy_answers_per_s": answers / max(total("sample_s"), 1e-9),
            "policy_tokens_per_s": tokens / max(total("sample_s"), 1e-9),
            "reward_answers_per_s": answers / max(total("reward_s"), 1e-9),
            "optimizer_steps_per_s": len(history) / max(total("optimize_s"), 1e-9),
            "train_steps_per_s": len(history) / max(total("sample_s") + total("reward_s") + total("optimize_s"), 1e-9),
            "sample_s": total("sample_s"), "reward_s": total("reward_s"), "optimize_s": total("optimize_s")}


def plot_curve(history: Sequence[dict[str, float]], path: str | os.PathLike, title: str = "") -> Path:
    """Reward, KL to start and answer length per step, in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, key, label in zip(axes, ("reward", "kl", "length"), ("reward", "KL to start (nats)", "answer tokens")):
        ax.plot(steps, [h[key] for h in history], marker=".")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
