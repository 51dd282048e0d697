"""Novelty bonuses on observations, added to whatever reward the agent already gets (env, judged, reward code).

Two kinds, each as its paper defines it:

* :class:`E3B` — Exploration via Elliptical Episodic Bonuses (Henaff et al., NeurIPS 2022), episodic::

    b_t = phi(s_t)^T C_{t-1}^{-1} phi(s_t),   C_0 = lambda * I,   C_t = C_{t-1} + phi(s_t) phi(s_t)^T

  ``C`` restarts at ``lambda * I`` in every episode and ``C^{-1}`` is kept by rank-one (Sherman–Morrison) updates;
  the episode's first state is counted in ``C`` but earns nothing, as in the paper's code. ``phi`` is the encoder
  of an inverse-dynamics model (predict ``a_t`` from ``phi(s_t), phi(s_{t+1})``) trained on the agent's own
  transitions, so it keeps what the agent's actions control and drops what they do not.

  ``normalize=True`` (the default) makes ``b`` a per-step signal at a steady scale, in two steps:

  1. ``phi`` is scaled to unit length. Nothing in the inverse-dynamics loss bounds the encoder's output, and on
     KeyCorridorS3R3 its norm grew by more than an order of magnitude within tens of updates. ``b`` is unchanged
     by a common scale of ``phi`` except through ``lambda``: in every direction the episode has not yet spanned
     (all of them for the first steps, as ``phi`` has ``latent_dim`` of them) ``b`` is ``|phi_perp|^2 / lambda``,
     so a growing ``phi`` makes the first steps of every episode, not the novel states, dominate the bonus (there,
     the episode's first rewarded step paid orders of magnitude more than a step later in it). With
     ``|phi| = 1``, ``0 <= b <= 1 / lambda`` and ``lambda`` keeps one meaning through training.
  2. ``b`` is divided by the running standard deviation of the per-step ``b`` (the paper's ``--reward_norm int``,
     as rllte-core's ``rms``), not by that of its discounted return as RND's is: the return's spread is ~1/(1-gamma)
     times the per-step one, which left a bonus of a few hundredths per step at most beside a success reward
     of up to 1. The measurements are in the commit message of this change (git log -S reward_norm).

  ``normalize=False`` is the paper's raw ``b`` on the encoder's raw output.

  ``center=True`` (off by default; either kind) subtracts the running mean of the bonus from it, so the bonus is
  zero on average per step and pays for novel states only relative to the usual ones. Why: a bonus that is
  positive at every step pays a policy for every step it stays in the episode, and in a task whose only other
  reward is a success bonus that shrinks with episode length (MiniGrid) that can outweigh finishing; centred,
  staying longer earns nothing in expectation.
* :class:`RND` — Random Network Distillation (Burda et al., ICLR 2019), global: the squared error of a predictor
  network against a fixed, randomly initialised target network on the whitened observation, divided by a running
  standard deviation of the discounted intrinsic return (the paper's normalisation).

:class:`NoveltyVecEnv` adds ``weight * bonus`` to the reward coming from inside, so it composes with any reward
wrapper beneath it (:class:`~llm_reward.shaping.wrappers.LLMRewardVecEnv` for a judged reward, the Eureka track's
reward-code wrapper): ``r = r_inside + weight * b``. :class:`NoveltyTerm` is the ``reward.novelty`` node of a
``conf/reward/*.yaml`` (weight and bonus), which the runner adds to any reward kind.

Why not rllte-core's intrinsic rewards (``rllte.xplore.reward``): its 1.0.1 wheel pins ``matplotlib==3.6.0``,
``seaborn==0.12.2``, ``huggingface-hub==0.14.1`` and ``gymnasium[accept-rom-license]``, and pulls torchvision and a
CUDA torch, which clash with this project's pins (CPU torch 2.13, current hub for TRL/transformers); and its rewards
take a Gymnasium ``VectorEnv`` and PPO-rollout tensors rather than an SB3 VecEnv step. Both bonuses are small, so
they are written here against the papers' definitions and tested against them (``tests/test_novelty.py``).
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn
from torch import nn

EPISODE_NOVELTY_KEY = "episode_novelty"


@runtime_checkable
class NoveltyBonus(Protocol):
    """What :class:`NoveltyVecEnv` drives: episodes start from observations, each step earns a bonus."""

    name: str

    def reset(self, obs: np.ndarray) -> None:
        """Every env starts an episode at ``obs[i]``."""

    def step(self, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray, dones: np.ndarray,
             new_obs: np.ndarray) -> np.ndarray:
        """The bonus ``[n_envs]`` for reaching ``next_obs`` (an episode's last observation where it ended) from
        ``obs`` by ``actions``; envs with ``dones`` then start a new episode at ``new_obs[i]``."""

    def stats(self) -> dict[str, float]:
        """Counters for TensorBoard (training loss, mean bonus, updates)."""


def flat_size(observation_space: spaces.Space, kind: str) -> int:
    """The number of features of a Box observation; ValueError naming ``kind`` for a space it cannot embed.

    Example:
        >>> flat_size(spaces.Box(0, 255, (7, 7, 3), np.uint8), "e3b")
        147
        >>> flat_size(spaces.Dict({"glyphs": spaces.Box(0, 5976, (21, 79))}), "rnd")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: rnd embeds Box observations (arrays of numbers) only, got Dict('glyphs': ...
    """
    if not isinstance(observation_space, spaces.Box):
        raise ValueError(f"{kind} embeds Box observations (arrays of numbers) only, got {observation_space}; give it "
                         f"an env whose observation wrapper yields one array")
    size = int(np.prod(observation_space.shape))
    if size < 1:
        raise ValueError(f"{kind} cannot embed an empty observation space {observation_space}")
    return size


class ObservationWhitener:
    """Flattens observations and whitens them with a running mean and variance, clipped to ``[-clip, clip]`` (RND's
    observation normalisation; E3B's encoder reads the same). The statistics move only when :meth:`update` is
    called (at training), so a bonus is a fixed function of the observation between two updates."""

    def __init__(self, size: int, clip: float = 5.0):
        self.rms = RunningMeanStd(shape=(size,))
        self.clip = clip

    def update(self, flat: np.ndarray) -> None:
        self.rms.update(flat.astype(np.float64))

    def __call__(self, flat: np.ndarray) -> torch.Tensor:
        whitened = (flat - self.rms.mean) / np.sqrt(self.rms.var + 1e-8)
        return torch.as_tensor(np.clip(whitened, -self.clip, self.clip), dtype=torch.float32)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class _Transitions:
    """The last ``capacity`` transitions (flattened obs, action, flattened next obs) a bonus trains on."""

    def __init__(self, size: int, action_shape: tuple[int, ...], capacity: int):
        self.obs = np.zeros((capacity, size), dtype=np.float32)
        self.next_obs = np.zeros((capacity, size), dtype=np.float32)
        self.actions = np.zeros((capacity, *action_shape), dtype=np.float32)
        self.capacity, self.cursor, self.full = capacity, 0, False

    def add(self, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray) -> None:
        rows = (self.cursor + np.arange(len(obs))) % self.capacity
        self.obs[rows], self.actions[rows], self.next_obs[rows] = obs, actions, next_obs
        self.full = self.full or self.cursor + len(obs) >= self.capacity
        self.cursor = int(rows[-1] + 1) % self.capacity

    def __len__(self) -> int:
        return self.capacity if self.full else self.cursor


@dataclass
class _Trainer:
    """When and how a bonus's network trains: every ``train_every`` transitions, ``epochs`` passes over the last
    ``train_every`` of them in minibatches of ``batch_size``, Adam at ``lr``."""

    train_every: int = 2048
    epochs: int = 1
    batch_size: int = 256
    lr: float = 1e-3

    def __post_init__(self) -> None:
        for name in ("train_every", "epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not float(self.lr) > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")

    def batches(self, n: int, rng: np.random.Generator) -> list[np.ndarray]:
        return [order[i:i + self.batch_size] for _ in range(self.epochs)
                for order in [rng.permutation(n)] for i in range(0, n, self.batch_size)]


class _NetworkBonus(abc.ABC):
    """What E3B and RND share: the observation whitener, the transition buffer and the training schedule."""

    name = "novelty"

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, *, n_envs: int, seed: int,
                 trainer: _Trainer, normalize: bool, center: bool = False, clip: float = 5.0):
        self.size = flat_size(observation_space, self.name)
        if n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}")
        self.n_envs, self.trainer, self.normalize, self.center = n_envs, trainer, bool(normalize), bool(center)
        self.spread_rms = RunningMeanStd(shape=())  # of what the bonus is divided by the spread of (_spread_sample)
        self.level_rms = RunningMeanStd(shape=())  # of the (scaled) bonus, subtracted when ``center``
        self.whiten = ObservationWhitener(self.size, clip)
        action_shape = () if isinstance(action_space, spaces.Discrete) else tuple(action_space.shape or ())
        self.buffer = _Transitions(self.size, action_shape, trainer.train_every)
        self.rng = np.random.default_rng(seed)
        self._since_training = 0
        self._stats = {"updates": 0.0, "loss": math.nan, "bonus_mean": math.nan, "raw_bonus_mean": math.nan}

    def flat(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(obs, dtype=np.float32).reshape(len(obs), self.size)

    def _spread_sample(self, raw: np.ndarray) -> np.ndarray:
        """What the bonus's scale is measured on: the per-step bonus itself (E3B's ``--reward_norm int``)."""
        return raw

    def _normalized(self, raw: np.ndarray) -> np.ndarray:
        """``raw`` over the running standard deviation of :meth:`_spread_sample` (``raw`` itself when ``normalize``
        is off), then, when ``center``, minus the running mean of that scaled bonus (this batch included)."""
        bonus = raw
        if self.normalize:
            self.spread_rms.update(self._spread_sample(raw))
            bonus = raw / math.sqrt(float(self.spread_rms.var) + 1e-8)
        if self.center:
            self.level_rms.update(bonus)
            bonus = bonus - float(self.level_rms.mean)
        return bonus

    def _record(self, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray) -> None:
        self.buffer.add(obs, actions, next_obs)
        self._since_training += len(obs)
        if self._since_training >= self.trainer.train_every:
            self._since_training = 0
            n = len(self.buffer)
            self.whiten.update(self.buffer.next_obs[:n])
            losses = [self._train_batch(index) for index in self.trainer.batches(n, self.rng)]
            self._stats["loss"] = float(np.mean(losses))
            self._stats["updates"] += 1

    @abc.abstractmethod
    def _train_batch(self, index: np.ndarray) -> float:
        """One optimiser step of the bonus's network on the buffered transitions ``index``; returns its loss."""

    def stats(self) -> dict[str, float]:
        return dict(self._stats)


class E3B(_NetworkBonus):
    """Elliptical episodic bonus (Henaff et al., 2022) on an inverse-dynamics embedding.

    Args:
        observation_space: a Box (images are flattened); anything else is refused (ValueError).
        action_space: Discrete (the inverse model classifies) or Box (it regresses).
        n_envs: parallel envs, each with its own episode's ``C^{-1}``.
        latent_dim: size of ``phi``.
        hidden: width of the encoder's and the inverse head's hidden layers.
        ridge: ``lambda`` of ``C_0 = lambda * I``.
        normalize: ``phi`` of unit length (so ``b <= 1 / ridge``) and ``b`` over the running standard deviation
            of the per-step ``b`` (the paper code's ``--reward_norm int``); why: the module doc. False: the
            paper's raw ``b`` on the encoder's raw output.
        center: subtract the running mean of the bonus (zero on average per step; the module doc says why).
        train_every, epochs, batch_size, lr: the inverse-dynamics model's training (see the module doc).
        seed: network initialisation and minibatch order.

    Example:
        >>> from gymnasium import spaces
        >>> e3b = E3B(spaces.Box(-1, 1, (4,)), spaces.Discrete(2), n_envs=1, latent_dim=8, normalize=False)
        >>> e3b.reset(np.zeros((1, 4)))
        >>> obs = np.ones((1, 4))
        >>> first = e3b.step(np.zeros((1, 4)), np.array([0]), obs, np.array([False]), obs)
        >>> again = e3b.step(obs, np.array([0]), obs, np.array([False]), obs)
        >>> bool(again[0] < first[0])  # the same state again is less novel within the episode
        True
    """

    name = "e3b"

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, *, n_envs: int = 1,
                 latent_dim: int = 64, hidden: int = 128, ridge: float = 0.1, normalize: bool = True,
                 center: bool = False, train_every: int = 2048, epochs: int = 1, batch_size: int = 256,
                 lr: float = 1e-3, seed: int = 0):
        if not isinstance(action_space, (spaces.Discrete, spaces.Box)):
            raise ValueError(f"e3b's inverse-dynamics model predicts Discrete or Box actions, got {action_space}")
        if not ridge > 0:
            raise ValueError(f"ridge (lambda of C_0 = lambda * I) must be > 0, got {ridge!r}")
        if latent_dim < 1 or hidden < 1:
            raise ValueError(f"latent_dim and hidden must be >= 1, got {latent_dim}, {hidden}")
        super().__init__(observation_space, action_space, n_envs=n_envs, seed=seed,
                         trainer=_Trainer(train_every, epochs, batch_size, lr), normalize=normalize, center=center)
        self.ridge, self.latent_dim = float(ridge), int(latent_dim)
        self.discrete = isinstance(action_space, spaces.Discrete)
        n_out = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.encoder = _mlp([self.size, hidden, hidden, latent_dim])
            self.inverse = _mlp([2 * latent_dim, hidden, n_out])
        self.optimizer = torch.optim.Adam([*self.encoder.parameters(), *self.inverse.parameters()], lr=lr)
        self.cov_inverse = np.zeros((n_envs, latent_dim, latent_dim))

    def _phi(self, encoded: torch.Tensor) -> torch.Tensor:
        """The embedding the bonus and the inverse model share: the encoder's output, of unit length when
        ``normalize`` (the module doc says why)."""
        return nn.functional.normalize(encoded, dim=1) if self.normalize else encoded

    def embed(self, obs: np.ndarray) -> np.ndarray:
        """``phi(obs)`` for a batch of observations, float64 ``[B, latent_dim]``."""
        with torch.no_grad():
            return self._phi(self.encoder(self.whiten(self.flat(obs)))).double().numpy()

    def _start(self, index: np.ndarray, phi: np.ndarray) -> None:
        """New episodes in envs ``index``: ``C^{-1} = I / lambda``, then the first state is counted (unrewarded)."""
        cov_inverse = np.broadcast_to(np.eye(self.latent_dim) / self.ridge, (len(index), *self.cov_inverse.shape[1:]))
        cov_inverse = cov_inverse.copy()
        self._elliptical(cov_inverse, phi)
        self.cov_inverse[index] = cov_inverse

    @staticmethod
    def _elliptical(cov_inverse: np.ndarray, phi: np.ndarray) -> np.ndarray:
        """``b = phi^T C^{-1} phi`` per env, then ``C <- C + phi phi^T`` by Sherman–Morrison on ``C^{-1}`` (in place:
        ``cov_inverse`` is ``[n, d, d]``, symmetric)."""
        u = np.matmul(cov_inverse, phi[:, :, None])[:, :, 0]
        bonus = np.einsum("ni,ni->n", u, phi)
        scaled = u / (1.0 + bonus)[:, None]
        cov_inverse -= u[:, :, None] * scaled[:, None, :]
        return bonus

    def reset(self, obs: np.ndarray) -> None:
        if not self.whiten.rms.count > 1:  # before any training: whiten with the first observations' statistics
            self.whiten.update(self.flat(obs))
        self._start(np.arange(self.n_envs), self.embed(obs))

    def step(self, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray, dones: np.ndarray,
             new_obs: np.ndarray) -> np.ndarray:
        raw = self._elliptical(self.cov_inverse, self.embed(next_obs))  # every env's C^-1, updated in place
        bonus = self._normalized(raw)
        done = np.flatnonzero(dones)
        if len(done):
            self._start(done, self.embed(new_obs[done]))
        self._record(self.flat(obs), np.asarray(actions).reshape(self.n_envs, *self.buffer.actions.shape[1:]),
                     self.flat(next_obs))
        self._stats.update(bonus_mean=float(bonus.mean()), raw_bonus_mean=float(raw.mean()))
        return bonus

    def _train_batch(self, index: np.ndarray) -> float:
        encoded = self.encoder(self.whiten(self.buffer.obs[index]))
        # the encoder's own output norm, which nothing in the loss bounds (the reason for normalize): for TensorBoard
        self._stats["encoder_norm"] = float(encoded.detach().norm(dim=1).mean())
        phi, phi_next = self._phi(encoded), self._phi(self.encoder(self.whiten(self.buffer.next_obs[index])))
        predicted = self.inverse(torch.cat([phi, phi_next], dim=1))
        actions = torch.as_tensor(self.buffer.actions[index])
        if self.discrete:
            loss = nn.functional.cross_entropy(predicted, actions.long())
        else:
            loss = nn.functional.mse_loss(predicted, actions.reshape(predicted.shape))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


class RND(_NetworkBonus):
    """Random Network Distillation (Burda et al., 2019): ``b = ||f_hat(s') - f(s')||^2 / sigma(R_int)``.

    ``f`` is a fixed random network, ``f_hat`` a predictor trained to match it on the agent's observations
    (whitened, clipped to ``[-5, 5]``); ``sigma(R_int)`` is the running standard deviation of the intrinsic return
    discounted by ``gamma`` (the paper's reward normalisation; ``normalize=False`` gives the raw error).

    Args:
        observation_space: a Box (images are flattened); anything else is refused (ValueError).
        action_space: unused (RND looks at states only); any space.
        n_envs: parallel envs (each keeps its own discounted intrinsic return for the normaliser).
        out_dim, hidden: the networks' output and hidden sizes.
        gamma: discount of the intrinsic return whose spread normalises the bonus.
        normalize: divide by that spread.
        center: subtract the running mean of the bonus (see the module doc).
        train_every, epochs, batch_size, lr: the predictor's training.
        seed: network initialisation and minibatch order.

    Example:
        >>> from gymnasium import spaces
        >>> rnd = RND(spaces.Box(-1, 1, (4,)), spaces.Discrete(2), n_envs=2, out_dim=8)
        >>> rnd.reset(np.zeros((2, 4)))
        >>> rnd.step(np.zeros((2, 4)), np.array([0, 1]), np.ones((2, 4)), np.array([False, False]),
        ...          np.ones((2, 4))).shape
        (2,)
    """

    name = "rnd"

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, *, n_envs: int = 1,
                 out_dim: int = 64, hidden: int = 128, gamma: float = 0.99, normalize: bool = True,
                 center: bool = False, train_every: int = 2048, epochs: int = 1, batch_size: int = 256,
                 lr: float = 5e-4, seed: int = 0):
        if out_dim < 1 or hidden < 1:
            raise ValueError(f"out_dim and hidden must be >= 1, got {out_dim}, {hidden}")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
        super().__init__(observation_space, action_space, n_envs=n_envs, seed=seed,
                         trainer=_Trainer(train_every, epochs, batch_size, lr), normalize=normalize, center=center)
        self.gamma = float(gamma)
        self.returns = np.zeros(n_envs)  # per env, the discounted bonus return so far (RND's forward filter)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.target = _mlp([self.size, hidden, hidden, out_dim])
            self.predictor = _mlp([self.size, hidden, hidden, hidden, out_dim])
        self.target.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.predictor.parameters(), lr=lr)

    def error(self, obs: np.ndarray) -> np.ndarray:
        """The raw prediction error ``||f_hat(s) - f(s)||^2 / out_dim`` per observation, float64 ``[B]``."""
        with torch.no_grad():
            x = self.whiten(self.flat(obs))
            return ((self.predictor(x) - self.target(x)) ** 2).mean(dim=1).double().numpy()

    def _spread_sample(self, raw: np.ndarray) -> np.ndarray:
        """RND's normalisation: the spread of the discounted intrinsic return (across episodes: RND's intrinsic
        return is not episodic)."""
        self.returns = self.returns * self.gamma + raw
        return self.returns

    def reset(self, obs: np.ndarray) -> None:
        if not self.whiten.rms.count > 1:
            self.whiten.update(self.flat(obs))

    def step(self, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray, dones: np.ndarray,
             new_obs: np.ndarray) -> np.ndarray:
        raw = self.error(next_obs)
        bonus = self._normalized(raw)
        self._record(self.flat(obs), np.asarray(actions).reshape(self.n_envs, *self.buffer.actions.shape[1:]),
                     self.flat(next_obs))
        self._stats.update(bonus_mean=float(bonus.mean()), raw_bonus_mean=float(raw.mean()))
        return bonus

    def _train_batch(self, index: np.ndarray) -> float:
        x = self.whiten(self.buffer.next_obs[index])
        loss = ((self.predictor(x) - self.target(x)) ** 2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


BonusFactory = Callable[..., NoveltyBonus]


class NoveltyVecEnv(VecEnvWrapper):
    """Adds ``weight * bonus`` to the reward from inside: ``r = r_inside + weight * b``.

    Put it outermost, over :class:`~llm_reward.shaping.wrappers.LLMRewardVecEnv` (a judged reward) or a reward-code
    wrapper; ``r_inside`` is then that wrapper's reward. Adds ``info["r_novelty"]`` (the bonus before ``weight``)
    every step and, at an episode's end, ``info["episode_novelty"]`` (its sum); an inner ``episode_shaped`` gets
    ``r_novelty`` and its ``r_shaped`` includes the weighted bonus. Needs SB3's auto-reset convention
    (``terminal_observation`` in the info of an env that finished).

    Example:
        >>> from llm_reward.envs import make_vec_env
        >>> venv = NoveltyVecEnv(make_vec_env("MiniGrid-DoorKey-5x5-v0", n_envs=2, seed=0),
        ...                      E3B, weight=0.1, seed=0)
        >>> _ = venv.reset()
        >>> _, rewards, _, infos = venv.step(np.array([2, 2]))
        >>> rewards.shape, "r_novelty" in infos[0]
        ((2,), True)
        >>> venv.close()
    """

    def __init__(self, venv: VecEnv, bonus: BonusFactory | NoveltyBonus, weight: float = 1.0, seed: int = 0):
        super().__init__(venv)
        if isinstance(bonus, type) or not isinstance(bonus, NoveltyBonus):  # a factory: E3B, RND or a partial
            bonus = bonus(venv.observation_space, venv.action_space, n_envs=venv.num_envs, seed=seed)
        self.bonus, self.weight = bonus, float(weight)
        self._obs: np.ndarray | None = None
        self._actions: np.ndarray | None = None
        self._sums = np.zeros(venv.num_envs)

    def reset(self) -> Any:
        obs = self.venv.reset()
        self.bonus.reset(obs)
        self._obs, self._sums[:] = obs, 0.0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        if self._obs is None:
            raise RuntimeError("NoveltyVecEnv.step before reset")
        reached = np.array(obs, copy=True)  # an env that finished was auto-reset: its last observation is kept apart
        for i in np.flatnonzero(dones):
            reached[i] = infos[i]["terminal_observation"]
        bonus = self.bonus.step(self._obs, self._actions, reached, np.asarray(dones, dtype=bool), obs)
        self._sums += bonus
        for i, info in enumerate(infos):
            info["r_novelty"] = float(bonus[i])
            if dones[i]:
                info[EPISODE_NOVELTY_KEY] = {"r_novelty": float(self._sums[i])}
                if "episode_shaped" in info:
                    shaped = info["episode_shaped"]
                    info["episode_shaped"] = {**shaped, "r_novelty": float(self._sums[i]),
                                              "r_shaped": shaped["r_shaped"] + self.weight * self._sums[i]}
                self._sums[i] = 0.0
        self._obs = obs
        return obs, (rewards + self.weight * bonus).astype(np.float32), dones, infos

    def stats(self) -> dict[str, float]:
        return self.bonus.stats()


@dataclass
class NoveltyTerm:
    """``reward.novelty`` of a reward config: which bonus, and its weight beside the reward it joins.

    ``bonus`` builds the bonus from the env's spaces (``bonus(observation_space, action_space, n_envs=, seed=)``:
    :class:`E3B`, :class:`RND` or a partial of either, as Hydra's ``_partial_: true`` gives).

    Example:
        >>> import functools
        >>> term = NoveltyTerm(bonus=functools.partial(E3B, latent_dim=16), weight=0.05)
        >>> term.check(spaces.Box(0, 10, (7, 7, 3), np.uint8), spaces.Discrete(7))
        >>> term.check(spaces.Discrete(5), spaces.Discrete(7))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: e3b embeds Box observations (arrays of numbers) only, got Discrete(5); ...
    """

    bonus: BonusFactory
    weight: float = 0.01

    def __post_init__(self) -> None:
        if not callable(self.bonus):
            raise TypeError(f"bonus must build a novelty bonus from the env's spaces, got {type(self.bonus).__name__}")
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) or not math.isfinite(self.weight):
            raise TypeError(f"weight must be a finite number, got {self.weight!r}")
        if not self.weight > 0:
            raise ValueError(f"weight must be > 0, got {self.weight!r}: a weight of 0 switches the novelty bonus off "
                             f"(choose the reward without novelty instead)")

    def check(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        """Build the bonus once for one env: a space it cannot embed fails here, before any training."""
        self.bonus(observation_space, action_space, n_envs=1, seed=0)

    def wrap(self, venv: VecEnv, seed: int = 0) -> NoveltyVecEnv:
        """``venv`` with this bonus added to its reward."""
        return NoveltyVecEnv(venv, self.bonus, weight=self.weight, seed=seed)
