"""Config -> objects, in one place for every Hydra app: the judge, the labeler, the rollouts, the reward-model
recipe and its fit, the run context handed to reward kinds, and errors that name the config key."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from pathlib import Path
from typing import Iterator

import gymnasium as gym
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

# litellm fetches its model price table over the network when imported; offline that costs seconds of retries
# and warnings before the missing-API-key check can answer. Its bundled copy is enough here.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from llm_reward.envs import captioner_name, load_adapter, make_env, register_adapter  # noqa: E402
from llm_reward.feedback.labelers import LLMPreferenceLabeler  # noqa: E402
from llm_reward.llm import make_llm  # noqa: E402
from llm_reward.llm.base import LLM  # noqa: E402
from llm_reward.motif.stages import collect_stage, fit_stage, make_labeler  # noqa: E402
from llm_reward.reward_model import RewardArtifact, RewardModelRecipe  # noqa: E402
from llm_reward.feedback.strategies import scores_captions  # noqa: E402
from llm_reward.training.context import PairSampling, RunContext  # noqa: E402

log = logging.getLogger("llm_reward")

CONFIG_PATH = "pkg://llm_reward.conf"
VERSION_BASE = "1.3"


class ConfigError(ValueError):
    """A setting the user chose is wrong; the message starts with its config key (``pairs.n: ...``)."""


@contextlib.contextmanager
def config_key(key: str) -> Iterator[None]:
    """Re-raise a bad-value error from the block as :class:`ConfigError` naming ``key``.

    Example:
        >>> with config_key("pairs.n"):
        ...     raise ValueError("must be >= 1, got 0")
        Traceback (most recent call last):
        ...
        llm_reward.apps._common.ConfigError: pairs.n: must be >= 1, got 0
    """
    try:
        yield
    except ConfigError:
        raise
    except InterpolationResolutionError as err:  # a resolver's own error, not Hydra's wrapping of it
        cause = err.__cause__ or err
        raise ConfigError(f"{key}: {cause}") from cause
    except (ValueError, TypeError, KeyError, FileNotFoundError, gym.error.Error) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise ConfigError(f"{key}: {message}") from err


def use_env_adapter(cfg: DictConfig) -> None:
    """Register ``cfg.env.adapter`` (an import path, see :func:`llm_reward.envs.load_adapter`) for ``cfg.env.id``.

    Every app calls this before it looks at the env (and a baseline process before it builds one): an env with no
    built-in adapter is then usable from the command line and from sweeps. Nothing happens when it is null.
    """
    spec = cfg.env.get("adapter")
    if spec:
        with config_key("env.adapter"):
            register_adapter(cfg.env.id, load_adapter(spec, cfg.env.id))


def make_llm_from_config(cfg: DictConfig) -> LLM:
    """The judge of ``cfg.llm`` (``llm.spec`` and ``llm.options``)."""
    with config_key("llm.spec"):
        return make_llm(cfg.llm.spec, **OmegaConf.to_container(cfg.llm.options, resolve=True))


def labeler_from_config(cfg: DictConfig, llm: LLM) -> LLMPreferenceLabeler:
    """The feedback style of ``cfg.feedback`` (``conf/feedback/``) for ``cfg.env.id``."""
    options = {k: v for k, v in OmegaConf.to_container(cfg.feedback, resolve=True).items() if k != "name"}
    with config_key("feedback.strategy" if options.get("strategy") is not None else "feedback"):
        return make_labeler(llm, env_id=cfg.env.id, **options)


def recipe_from_config(cfg: DictConfig, *, seed: int | None = None) -> RewardModelRecipe:
    """``cfg.reward_model`` as a recipe, seeded with ``data_seed`` unless ``seed`` is given."""
    settings = cfg.reward_model
    encoder_kwargs = {"max_chars": int(settings.max_chars)} if settings.encoder == "char_cnn" else {}
    with config_key("reward_model"):
        return RewardModelRecipe(encoder=settings.encoder, encoder_kwargs=encoder_kwargs, epochs=int(settings.epochs),
                                 n_members=int(settings.n_members), targets=settings.targets,
                                 dense_pairs=int(settings.get("dense_pairs", 0)),
                                 seed=int(cfg.data_seed if seed is None else seed))


def collect_from_config(cfg: DictConfig) -> pd.DataFrame:
    """The ``rollouts`` stage of ``cfg`` (every app collects the same way), cached at ``paths.rollouts``."""
    return collect_stage(cfg.env.id, n_steps=cfg.rollouts.n_steps, n_envs=cfg.rollouts.n_envs, seed=cfg.data_seed,
                         path=Path(cfg.paths.rollouts), max_episode_steps=cfg.env.max_episode_steps,
                         policy=cfg.rollouts.policy, policy_algo=cfg.rollouts.policy_algo, progress=cfg.progress)


def fit_from_config(cfg: DictConfig, labelled: pd.DataFrame, rollouts: pd.DataFrame, path: Path) -> RewardArtifact:
    """The ``fit`` stage with ``cfg``'s recipe, for the env's caption format (the one call every app makes)."""
    return fit_stage(labelled, rollouts, captioner=captioner_name(cfg.env.id), path=path,
                     recipe=recipe_from_config(cfg), progress=cfg.progress)


def pair_sampling(cfg: DictConfig) -> PairSampling:
    """``cfg.pairs`` as the settings a reward kind samples and labels pairs with."""
    with config_key("pairs"):
        return PairSampling(n=int(cfg.pairs.n), unique_captions=bool(cfg.pairs.unique_captions),
                            batch_size=int(cfg.pairs.batch_size))


def run_context(cfg: DictConfig) -> RunContext:
    """The objects a reward kind is built from (see :mod:`llm_reward.training.context`): the config is read here,
    and the judge, labeler and rollouts are built when a kind first asks for them."""
    env_fn = functools.partial(make_env, cfg.env.id, max_episode_steps=cfg.env.max_episode_steps,
                               success=cfg.env.get("success"))
    return RunContext(env_id=cfg.env.id, seed=int(cfg.seed), data_seed=int(cfg.data_seed),
                      captioner=captioner_name(cfg.env.id), make_env=env_fn,
                      make_llm=functools.partial(make_llm_from_config, cfg),
                      paths={k: str(v) for k, v in OmegaConf.to_container(cfg.paths, resolve=True).items()},
                      progress=bool(cfg.progress), make_labeler=functools.partial(labeler_from_config, cfg),
                      labeler_scores_captions=scores_captions(cfg.feedback.mode, cfg.feedback.get("strategy")),
                      goal=str(cfg.feedback.goal), recipe=recipe_from_config(cfg),
                      pairs=pair_sampling(cfg),
                      collect_rollouts=functools.partial(collect_from_config, cfg))


def exit_on_config_error(app: str, err: ConfigError) -> SystemExit:
    """The error as the last line the user sees (no traceback): ``llm-reward-train: pairs.n: ...``."""
    log.debug("config error", exc_info=err)
    return SystemExit(f"{app}: error: {err}")
