"""REINFORCE with a leave-one-out baseline (RLOO) and a KL penalty to the frozen starting policy.

RLAIF's objective (Lee et al. 2023): maximise ``R(x, y) - beta * KL(pi(.|x) || pi_start(.|x))`` with the reward
given once, on the final token. Per sampled answer the KL is estimated by ``sum_t log pi(y_t) - log pi_start(y_t)``
(unbiased for the sequence KL), subtracted from the reward, and the answer's advantage is its penalised reward
minus the mean of the other ``k - 1`` answers to the same prompt (Ahmadian et al. 2024). With ``k = 1`` a running
mean of past rewards is the baseline (plain REINFORCE with a baseline).
"""

from __future__ import annotations

import torch


def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """Leave-one-out advantages for rewards ``[B, k]`` (k answers per prompt): ``r_i - mean_{j != i} r_j``.

    Example:
        >>> rloo_advantages(torch.tensor([[1.0, 0.0, 2.0]]))
        tensor([[ 0.0000, -1.5000,  1.5000]])
    """
    if rewards.dim() != 2 or rewards.shape[1] < 2:
        raise ValueError(f"RLOO needs rewards shaped [prompts, k >= 2], got {tuple(rewards.shape)}")
    k = rewards.shape[1]
    others = (rewards.sum(dim=1, keepdim=True) - rewards) / (k - 1)
    return rewards - others


def sampled_kl(logp: torch.Tensor, logp_start: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sequence KL estimate ``sum_t (log pi - log pi_start)`` over generated tokens ``[N, T] -> [N]``."""
    return ((logp - logp_start) * mask).sum(-1)


def exact_kl(logits: torch.Tensor, logits_start: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sequence ``sum_t KL(pi(.|y_<t) || pi_start(.|y_<t))`` over the full vocabulary, ``[N, T, V] -> [N]``.

    Exact at every visited position (no sampling noise within a position); used for evaluation.

    Example:
        >>> same = torch.zeros(1, 2, 3)
        >>> exact_kl(same, same, torch.ones(1, 2))
        tensor([0.])
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    logq = torch.log_softmax(logits_start.float(), dim=-1)
    per_token = (logp.exp() * (logp - logq)).sum(-1)
    return (per_token * mask).sum(-1)


def policy_gradient_loss(logp: torch.Tensor, mask: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """REINFORCE loss ``-mean_i A_i * sum_t log pi(y_it)`` (advantages are constants)."""
    return -(advantages.detach() * (logp * mask).sum(-1)).mean()


class RunningBaseline:
    """Exponential moving average of rewards: REINFORCE's baseline when only one answer per prompt is sampled."""

    def __init__(self, decay: float = 0.9, value: float | None = None):
        self.decay, self.value = decay, value

    def advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        """``r - b`` with ``b`` the average before this batch (0 on the first), then ``b`` moves towards the batch."""
        baseline = 0.0 if self.value is None else self.value
        batch = float(rewards.mean())
        self.value = batch if self.value is None else self.decay * self.value + (1 - self.decay) * batch
        return rewards - baseline


def penalised_advantages(rewards: torch.Tensor, kl: torch.Tensor, beta: float, k: int,
                         baseline: RunningBaseline | None = None) -> torch.Tensor:
    """Advantages of ``reward - beta * KL`` for ``N = B * k`` prompt-major answers (RLOO if ``k >= 2``)."""
    total = (rewards - beta * kl.detach()).view(-1, k)
    if k >= 2:
        return rloo_advantages(total).reshape(-1)
    return (baseline or RunningBaseline()).advantages(total.reshape(-1))
