"""One experiment from a composed config: build the reward, train shaped + baseline agents, evaluate, report.

Used by ``llm-reward-train`` and by the benchmarks, so a benchmark cell is exactly a main-job run. The config is
read here, at the top: the reward kind (``reward.builder``, see :mod:`llm_reward.apps.rewards`) is instantiated
and handed a :class:`~llm_reward.training.context.RunContext`; the floors below get objects.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from llm_reward.agents import agent_defaults, evaluate_success, make_agent, make_eval_callback, validate_algo
from llm_reward.agents.evaluation import missing_info_keys
from llm_reward.apps._common import ConfigError, config_key, run_context, use_env_adapter
from llm_reward.apps.baseline import baseline_runner
from llm_reward.conf.schema import check_sections
from llm_reward.envs import get_adapter, make_env, make_vec_env, success_rule
from llm_reward.jsonio import write_json
from llm_reward.shaping.formula import ShapingConfig
from llm_reward.shaping.novelty import NoveltyTerm
from llm_reward.shaping.wrappers import LLMRewardVecEnv
from llm_reward.training.context import BuiltReward, RunContext
from llm_reward.training.loop import CounterLogger, plot_curves, train_agent

log = logging.getLogger(__name__)


def reward_kind(cfg: DictConfig) -> Any:
    """The reward kind object of ``reward.builder`` (its constructor checks its own settings)."""
    if "builder" not in cfg.reward:
        raise ValueError(f"reward: the {cfg.reward.get('name', '?')!r} reward config has no 'builder' node "
                         f"(conf/reward/*.yaml: builder: {{_target_: ...}})")
    with config_key("reward"):
        try:
            return instantiate(cfg.reward.builder)
        except Exception as err:  # Hydra wraps the constructor's own error: show that one
            cause = err.__cause__ if err.__cause__ is not None else err
            raise ValueError(str(cause)) from cause


def novelty_term(cfg: DictConfig) -> NoveltyTerm | None:
    """``reward.novelty`` (E3B, RND: :mod:`llm_reward.shaping.novelty`) as an object, or None when the reward
    config has none. Any reward kind can carry one; the runner adds it outermost."""
    if cfg.reward.get("novelty") is None:
        return None
    with config_key("reward.novelty"):
        try:
            term = instantiate(cfg.reward.novelty)
        except Exception as err:  # Hydra wraps the constructor's own error: show that one
            cause = err.__cause__ if err.__cause__ is not None else err
            raise ValueError(str(cause)) from cause
        if not isinstance(term, NoveltyTerm):
            raise TypeError(f"_target_ must build a llm_reward.shaping.novelty.NoveltyTerm, got {type(term).__name__}")
    return term


def validate(cfg: DictConfig) -> tuple[Any, RunContext]:
    """Every check that can fail before minutes of annotation or training are spent; returns the reward kind and
    the run context it is built from."""
    use_env_adapter(cfg)
    with config_key("env.id"):
        adapter = get_adapter(cfg.env.id)
    with config_key("paths"):
        run = run_context(cfg)  # resolves the stage paths, keyed on the env's caption format
    with config_key("env.success"):  # a robot env without a success flag needs a criterion
        success_rule(adapter, cfg.env.id, cfg.env.get("success"))
    with config_key("agent.algo"):
        validate_algo(cfg.agent.algo, cfg.env.id)
    try:  # types and key names were checked when the config was composed (conf/schema.py); ranges here
        check_sections(cfg)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    kind = reward_kind(cfg)
    check = getattr(kind, "check", None)
    if check is not None:
        check(run)
    _dry_build_agent(cfg, novelty_term(cfg))
    return kind, run


def _dry_build_agent(cfg: DictConfig, novelty: NoveltyTerm | None = None) -> None:
    """Build the agent once on a single env: catches bad agent kwargs and observation/policy mismatches (and a
    novelty bonus on an observation space it cannot embed) in a second, instead of after minutes of annotation."""
    with config_key("env.id"):  # an id the family's adapter accepts may still be unknown to Gymnasium
        venv = make_vec_env(cfg.env.id, n_envs=1, seed=cfg.seed, max_episode_steps=cfg.env.max_episode_steps,
                            success=cfg.env.get("success"))
    try:
        with warnings.catch_warnings():  # SB3's batch-size advice concerns the real n_envs, not this one env
            warnings.filterwarnings("ignore", message="You have specified a mini-batch size", category=UserWarning)
            with config_key("agent.kwargs"):
                make_agent(cfg.agent.algo, venv, seed=cfg.seed, **_agent_kwargs(cfg))
        if "shaping" in cfg.reward:  # the shaping exactly as training will build it, the agent's gamma included
            with config_key("reward.shaping"):
                shaping = ShapingConfig(**_shaping_kwargs(cfg, venv))
                if shaping.alpha_ext == 0 and shaping.alpha_int == 0 and novelty is None:
                    raise ValueError("alpha_ext and alpha_int are both 0, and there is no reward.novelty: the "
                                     "agent's reward would be 0 on every step")
        if novelty is not None:
            with config_key("reward.novelty.bonus"):
                novelty.check(venv.observation_space, venv.action_space)
        _check_eval_info_keys(cfg, venv)
    finally:
        venv.close()


def _check_eval_info_keys(cfg: DictConfig, venv: Any) -> None:
    """One random step: every ``train.eval_info_keys`` entry must be in the env's step info, or evaluation would
    fail only after training."""
    keys = list(cfg.train.eval_info_keys or ())
    if not keys:
        return
    venv.reset()
    _, _, _, infos = venv.step(np.array([venv.action_space.sample()]))
    if problem := missing_info_keys(infos[0], keys):
        raise ConfigError(f"train.eval_info_keys: {cfg.env.id}: {problem}")


def _agent_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """``make_agent``'s keywords: the family defaults of the run's ``agent`` config and its ``kwargs``."""
    kwargs = OmegaConf.to_container(cfg.agent.kwargs, resolve=True)
    return {"family_defaults": cfg.agent.get("family_defaults"), **kwargs}


def _shaping_kwargs(cfg: DictConfig, venv: Any) -> dict[str, Any]:
    """``reward.shaping`` with ``gamma: null`` replaced by the agent's discount: a potential-based shaping term
    cancels out over an episode only under the discount the agent optimizes."""
    shaping = OmegaConf.to_container(cfg.reward.shaping, resolve=True) if "shaping" in cfg.reward else {}
    if "gamma" in shaping and shaping["gamma"] is None:
        kwargs = _agent_kwargs(cfg)
        agent = {**agent_defaults(cfg.agent.algo, venv.observation_space, venv.action_space,
                                  table=kwargs.pop("family_defaults")), **kwargs}
        shaping["gamma"] = agent.get("gamma", 0.99)
    return shaping


def build_reward(kind: Any, run: RunContext) -> BuiltReward:
    """The reward the shaped agent sees, built by the configured reward kind."""
    build = getattr(kind, "build", kind)
    built = build(run)
    if not isinstance(built, BuiltReward):
        raise TypeError(f"reward builder {type(kind).__name__} returned {type(built).__name__}, not BuiltReward")
    return built


def train_and_evaluate(cfg: DictConfig, run_dir: Path, name: str, built: BuiltReward | None,
                       on_interrupt: Callable[[], None] | None = None) -> dict[str, Any]:
    """Train one agent (shaped by ``built.reward``, or on the env reward alone), then evaluate it unshaped."""
    use_env_adapter(cfg)  # a baseline process starts with none registered
    reward = built.reward if built is not None else None
    novelty = built.novelty if built is not None else None
    venv = make_vec_env(cfg.env.id, n_envs=cfg.train.n_envs, seed=cfg.seed, subprocess=cfg.train.subprocess,
                        max_episode_steps=cfg.env.max_episode_steps, success=cfg.env.get("success"))
    if built is not None and built.wrap_venv is not None:  # reward code (reward=eureka) replaces the env reward
        venv = built.wrap_venv(venv)
    counters: dict[str, Callable[[], Any]] = {}
    shaped_venv = None
    if reward is not None:
        venv = shaped_venv = LLMRewardVecEnv(venv, reward_model=reward, **_shaping_kwargs(cfg, venv))
        counters = {"reward_model": venv.shaper.reward.stats, **built.counters}
    if novelty is not None:  # outermost: r = (the kind's reward) + weight * bonus
        venv = novelty.wrap(venv, seed=cfg.seed)
        counters["novelty"] = venv.stats
    model = make_agent(cfg.agent.algo, venv, seed=cfg.seed, tensorboard_log=str(run_dir / "tb"), **_agent_kwargs(cfg))
    callbacks, eval_venv, extra = ([CounterLogger(counters)] if counters else []), None, {}
    try:
        if int(cfg.train.eval_every) > 0:  # periodic evaluation on unshaped envs: eval/success_rate in TensorBoard
            eval_venv = make_vec_env(cfg.env.id, n_envs=1, seed=cfg.seed + 20_000,
                                     max_episode_steps=cfg.env.max_episode_steps, success=cfg.env.get("success"))
            callbacks.append(make_eval_callback(model, eval_venv, every_steps=int(cfg.train.eval_every),
                                                n_episodes=int(cfg.train.eval_every_episodes),
                                                log_path=str(run_dir / f"eval_{name}")))
        result = train_agent(model, total_timesteps=cfg.train.total_timesteps, run_dir=run_dir, name=name,
                             extra_callbacks=callbacks, progress=cfg.progress, on_interrupt=on_interrupt)
    finally:
        venv.close()
        if eval_venv is not None:
            eval_venv.close()
        if built is not None and built.finish is not None:
            try:
                extra.update(built.finish(run_dir))
            except Exception as err:  # must not hide why training stopped
                log.error("could not finish the %s reward (%s: %s)", name, type(err).__name__, err)
    if shaped_venv is not None:
        extra["reward_cache"] = shaped_venv.shaper.reward.stats()
    episodes = result.episodes
    metrics = {
        "steps_per_s": result.steps_per_s, "interrupted": result.interrupted,
        "timesteps": int(model.num_timesteps), "train_episodes": len(episodes),
        "train_success_last100": float(episodes["success"].tail(100).mean()) if len(episodes) else 0.0,
        "intrinsic_return_mean": float(episodes["return_intrinsic"].mean()) if len(episodes) else float("nan"),
        "episodes": episodes, **extra,
    }
    try:
        env_fn = functools.partial(make_env, cfg.env.id, max_episode_steps=cfg.env.max_episode_steps,
                                   success=cfg.env.get("success"))
        metrics["eval"] = evaluate_success(model, env_fn, n_episodes=cfg.train.eval_episodes, seed=cfg.seed + 10_000,
                                           progress=cfg.progress, info_keys=cfg.train.eval_info_keys)
    except KeyboardInterrupt:  # the trained agent is saved; report the run without its evaluation
        log.warning("interrupted during evaluation: %s is saved, its evaluation is skipped", name)
        metrics["eval"] = {key: float("nan") for key in ("success_rate", "mean_return", "std_return", "mean_length")}
        metrics["eval"]["n_episodes"], metrics["interrupted"] = 0, True
    return metrics


def run_experiment(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run the configured experiment into ``run_dir``; returns (and writes) ``metrics.json``.

    Bad settings raise :class:`~llm_reward.apps._common.ConfigError` before anything is written. ``completed`` is
    false when a Ctrl-C stopped any run (it is then reported with what it reached); a crash writes
    ``metrics.json`` with ``failed`` (the error) before the exception propagates. Trained agents and episode logs
    are saved by the training loop itself.
    """
    kind, run = validate(cfg)
    torch.set_num_threads(int(cfg.train.torch_threads))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    start = time.perf_counter()
    metrics: dict[str, Any] = {"env": cfg.env.id, "reward": cfg.reward.name, "llm": cfg.llm.spec, "seed": cfg.seed,
                               "completed": False}
    results: dict[str, dict[str, Any]] = {}
    try:
        built = build_reward(kind, run)
        if (novelty := novelty_term(cfg)) is not None:  # judged (or coded) reward + novelty, in one VecEnv stack
            built = dataclasses.replace(built, novelty=novelty)
        metrics.update(built.metrics)
        if built.keep is not None:
            built.keep(run_dir)
        shapes = built.reward is not None or built.wrap_venv is not None or built.novelty is not None
        first = "shaped" if shapes else "extrinsic"
        wanted = bool(cfg.train.baseline) and shapes
        with baseline_runner(cfg, run_dir, train_and_evaluate, wanted=wanted, parallel=not built.needs_core) as base:
            results[first] = train_and_evaluate(cfg, run_dir, first, built if shapes else None,
                                                on_interrupt=base.interrupt if base is not None else None)
            if base is not None and (extrinsic := base.result(results[first]["interrupted"])) is not None:
                results["extrinsic"] = extrinsic
        curves = {name: res.pop("episodes") for name, res in results.items()}
        plot_curves(curves, run_dir / "learning_curve.png",
                    title=f"{cfg.env.id}: {cfg.reward.name} reward ({cfg.llm.name}) vs extrinsic only, seed {cfg.seed}")
        metrics.update(success_rate=results[first]["eval"]["success_rate"],
                       completed=not any(res["interrupted"] for res in results.values()))
        if "extrinsic" in results and first == "shaped":
            metrics["comparison"] = _comparison(results["shaped"]["eval"], results["extrinsic"]["eval"])
    except BaseException as err:
        if not isinstance(err, KeyboardInterrupt):
            metrics["failed"] = f"{type(err).__name__}: {err}"
        _write_metrics(run_dir, metrics, results, start, failing=True)
        raise
    _write_metrics(run_dir, metrics, results, start, failing=False)
    return metrics


def _comparison(shaped: dict[str, Any], extrinsic: dict[str, Any]) -> dict[str, Any]:
    """The shaped agent against the extrinsic-only baseline of the same seed, on the same evaluation episodes."""
    gap = float(shaped["success_rate"]) - float(extrinsic["success_rate"])
    return {"shaped_success_rate": float(shaped["success_rate"]),
            "extrinsic_success_rate": float(extrinsic["success_rate"]), "success_rate_gain": gap,
            "shaped_beats_extrinsic": bool(gap > 0),
            "mean_length": {"shaped": float(shaped["mean_length"]), "extrinsic": float(extrinsic["mean_length"])}}


def _write_metrics(run_dir: Path, metrics: dict[str, Any], results: dict[str, dict[str, Any]], start: float, *,
                   failing: bool) -> None:
    for res in results.values():
        res.pop("episodes", None)  # in episodes_<name>.csv already
    metrics.update(runs=results, wall_time_s=time.perf_counter() - start)
    try:
        write_json(run_dir / "metrics.json", metrics)
    except Exception as err:
        if not failing:
            raise
        # e.g. a full disk: log it rather than hide the exception that is ending the experiment
        log.error("could not write %s (%s: %s)", run_dir / "metrics.json", type(err).__name__, err)
