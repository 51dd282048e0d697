"""What a reward kind is given and what it gives back: the contract between the runner and every reward kind.

A reward kind is a YAML file under ``conf/reward/`` whose ``builder`` node names (``_target_``) an object with
``check(run)`` (cheap: fail on bad settings before minutes of work) and ``build(run) -> BuiltReward``, or a plain
function ``build(run) -> BuiltReward`` (``_partial_: true``). The runner builds a :class:`RunContext` from the
config at the top, so a kind (in ``apps``, or in a track such as ``eureka``) is handed objects (the judge, the
labeler, the reward-model recipe, the rollouts stage, the stage paths), never the config tree; a kind's own settings
are its constructor's arguments::

    # conf/reward/mykind.yaml
    name: mykind
    builder:
      _target_: my_package.rewards.MyKind     # MyKind(scale=2.0).build(run) -> BuiltReward
      scale: 2.0
    shaping: {alpha_int: 0.1, threshold_quantile: null}
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from llm_reward.llm.base import LLM
from llm_reward.reward_model import RewardModelRecipe
from llm_reward.shaping.novelty import NoveltyTerm
from llm_reward.training.loop import EnvFactory
from llm_reward.types import CaptionRewardFn, Labeler


@dataclass(frozen=True)
class PairSampling:
    """How caption pairs are drawn from the rollouts and sent to the judge (``conf/base.yaml``'s ``pairs``).

    Args:
        n: pairs sent to the judge.
        unique_captions: draw uniformly over distinct captions rather than over observations.
        batch_size: pairs per committed batch of the label store (at most one batch is redone after a crash).

    Example:
        >>> PairSampling(n=32).batch_size
        16
    """

    n: int = 512
    unique_captions: bool = True
    batch_size: int = 16


@dataclass
class RunContext:
    """One run's environment, judge and stage identity, built once from the config by the runner.

    ``paths`` is the stage identity (``conf/base.yaml``'s ``paths``: which ``rollouts``, ``labels`` and
    ``reward_model`` this run reads or writes), computed in one place. The judge and the labeler are built on first
    use (:meth:`llm`, :meth:`labeler`), so a kind that needs no judge never loads one.

    Example:
        >>> import functools
        >>> from llm_reward.envs import make_env
        >>> run = RunContext(env_id="MiniGrid-DoorKey-5x5-v0", seed=0, data_seed=0, captioner="demo",
        ...                  make_env=functools.partial(make_env, "MiniGrid-DoorKey-5x5-v0"), make_llm=lambda: None)
        >>> run.llm() is None and run.paths == {} and run.pairs.n == 512
        True
    """

    env_id: str
    seed: int
    data_seed: int
    captioner: str  #: the env's caption format (reward models refuse another's)
    make_env: EnvFactory  #: ``make_env(seed=...)``: one env of this run (episode limit included)
    make_llm: Callable[[], LLM]  #: builds the judge; :meth:`llm` builds it once
    paths: Mapping[str, str] = field(default_factory=dict)
    progress: bool = True
    #: ``make_labeler(llm) -> Labeler``: the run's one way of judging caption pairs (``feedback``), offline and online
    make_labeler: Callable[[LLM], Labeler] | None = None
    #: whether the labeler's batches carry a score per caption (pointwise judges), which dense pairs draw on
    labeler_scores_captions: bool = False
    #: the judge's goal variant (``feedback.goal``: ``default``, ``zero_knowledge``, a domain variant, ``text:...``)
    goal: str = "default"
    recipe: RewardModelRecipe = field(default_factory=RewardModelRecipe)  #: the reward model's, seeded with data_seed
    pairs: PairSampling = field(default_factory=PairSampling)
    #: ``collect_rollouts() -> DataFrame``: the captioned rollouts stage (cached at ``paths["rollouts"]``)
    collect_rollouts: Callable[[], pd.DataFrame] | None = None

    def llm(self) -> LLM:
        """The run's judge, built on first use and shared by every later caller (one model load)."""
        return self._llm()

    @functools.cached_property
    def _llm(self) -> Callable[[], LLM]:
        return functools.cache(self.make_llm)

    def labeler(self) -> Labeler:
        """The run's labeler on the run's judge, built on first use (a bad judging config fails here)."""
        return self._labeler()

    @functools.cached_property
    def _labeler(self) -> Callable[[], Labeler]:
        if self.make_labeler is None:
            raise ValueError("this run has no labeler (RunContext.make_labeler is None)")
        return functools.cache(lambda: self.make_labeler(self.llm()))

    def rollouts(self) -> pd.DataFrame:
        """The captioned rollouts of this run (collected once, then read from their cache)."""
        if self.collect_rollouts is None:
            raise ValueError("this run collects no rollouts (RunContext.collect_rollouts is None)")
        return self.collect_rollouts()

    def path(self, stage: str) -> Path:
        """``paths[stage]`` as a Path, with an error naming the config key when it is missing."""
        if stage not in self.paths:
            raise KeyError(f"paths.{stage} is not set; stages known: {sorted(self.paths)}")
        return Path(self.paths[stage])


@dataclass
class BuiltReward:
    """A reward kind's product: the reward the shaped agent sees and what the run should keep of it.

    ``reward`` is None for extrinsic-only training. ``keep(run_dir)`` saves what belongs with the run (a frozen
    reward model); ``finish(run_dir)`` runs after the shaped agent trained (stop a judge thread, save its labels)
    and returns metrics for the run; ``counters`` are logged as TensorBoard scalars during training (e.g.
    ``{"llm": lambda: llm.stats.as_dict()}``); ``needs_core`` keeps the baseline from training alongside (a
    background judge lives on the second core).

    Example:
        >>> import numpy as np
        >>> built = BuiltReward(lambda captions: np.ones(len(captions), dtype=np.float32))
        >>> built.reward(["a", "b"]).tolist(), built.metrics
        ([1.0, 1.0], {})
    """

    reward: CaptionRewardFn | None
    metrics: dict[str, Any] = field(default_factory=dict)
    keep: Callable[[Path], Any] | None = None
    finish: Callable[[Path], dict[str, Any]] | None = None
    counters: dict[str, Callable[[], Mapping[str, Any]]] = field(default_factory=dict)
    needs_core: bool = False
    #: ``wrap_venv(venv) -> venv`` replaces the env reward inside the training VecEnv (reward code: reward=eureka)
    wrap_venv: Callable[[Any], Any] | None = None
    #: a novelty bonus added outermost, to whatever reward the kind gives (``reward.novelty``: E3B, RND); set by
    #: the runner, so any kind's reward joins it (:class:`~llm_reward.shaping.novelty.NoveltyTerm`)
    novelty: NoveltyTerm | None = None
