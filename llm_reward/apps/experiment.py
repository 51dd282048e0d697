"""One experiment from a composed config: build the reward, train shaped + baseline agents, evaluate, report.

Used by ``llm-reward-train`` and by the benchmarks, so a benchmark cell is exactly a main-job run.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import os
import signal
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from llm_reward.motif.stages import (annotate_stage, check_encodable, collect_from_config, encoder_settings, fit_stage,
                                 make_labeler, oracle_stage, sample_pairs, to_targets)
from llm_reward.jsonio import write_json
from llm_reward.reward_model import RewardArtifact
from llm_reward.training.loop import make_vec_env, plot_curves, train_agent

log = logging.getLogger(__name__)

REWARD_KINDS = ("none", "count", "oracle", "motif", "oni")


def validate(cfg: DictConfig) -> None:
    """Every check that can fail before minutes of annotation or training are spent."""
    from llm_reward.agents import validate_algo
    from llm_reward.envs import get_adapter

    if cfg.reward.kind not in REWARD_KINDS:
        raise ValueError(f"unknown reward kind {cfg.reward.kind!r}; choose one of {list(REWARD_KINDS)}")
    get_adapter(cfg.env.id)
    validate_algo(cfg.agent.algo, cfg.env.id)
    to_targets(np.zeros(0), cfg.reward_model.targets)
    for key in ("total_timesteps", "n_envs", "eval_episodes", "eval_every_episodes"):
        if int(cfg.train[key]) < 1:
            raise ValueError(f"train.{key} must be >= 1, got {cfg.train[key]}")
    if int(cfg.train.eval_every) < 0:
        raise ValueError(f"train.eval_every must be >= 0 (0: no evaluation during training), got {cfg.train.eval_every}")
    if cfg.reward.kind == "oni" and cfg.reward.variant not in ("retrieval", "ranking"):
        raise ValueError(f"reward.variant must be 'retrieval' or 'ranking', got {cfg.reward.variant!r}")
    if cfg.reward.kind in ("motif", "oni"):  # a bad model spec, option or missing API key fails now, not after rollouts
        from llm_reward.apps._common import make_llm_from_config

        make_llm_from_config(cfg)
    _dry_build_agent(cfg)


def _dry_build_agent(cfg: DictConfig) -> None:
    """Build the agent once on a single env: catches bad agent kwargs and observation/policy mismatches in a
    second, instead of after minutes of annotation."""
    from llm_reward.agents import make_agent
    from llm_reward.shaping.formula import ShapingConfig

    venv = make_vec_env(cfg.env.id, n_envs=1, seed=cfg.seed, max_episode_steps=cfg.env.max_episode_steps)
    try:
        with warnings.catch_warnings():  # SB3's batch-size advice concerns the real n_envs, not this one env
            warnings.filterwarnings("ignore", message="You have specified a mini-batch size", category=UserWarning)
            make_agent(cfg.agent.algo, venv, seed=cfg.seed, **OmegaConf.to_container(cfg.agent.kwargs, resolve=True))
        if cfg.reward.kind != "none":  # the shaping exactly as training will build it, the agent's gamma included
            ShapingConfig(**_shaping_kwargs(cfg, venv))
    finally:
        venv.close()


def build_reward(cfg: DictConfig) -> tuple[Any, dict[str, Any]]:
    """The reward the shaped agent sees (``None`` for extrinsic only) and the metrics of building it."""
    from llm_reward.envs import captioner_name

    kind = cfg.reward.kind
    if kind == "none":
        return None, {}
    if kind == "count":
        return _constant_reward, {}
    if kind == "oni":
        return _online_feedback(cfg), {}
    rollouts = collect_from_config(cfg)
    encoder, encoder_kwargs = encoder_settings(cfg)
    check_encodable(rollouts, encoder, encoder_kwargs)
    pairs = sample_pairs(rollouts, cfg.pairs.n, unique_captions=cfg.pairs.unique_captions, seed=cfg.data_seed)
    if kind == "oracle":
        labelled, report = oracle_stage(pairs)
        model_path = Path(str(cfg.paths.reward_model).replace(f"_{cfg.paths.labeler}_", "_oracle_"))
    else:
        from llm_reward.apps._common import make_llm_from_config

        labeler = make_labeler(cfg.feedback, make_llm_from_config(cfg), env_id=cfg.env.id)
        labelled, report = annotate_stage(pairs, labeler, store_path=Path(cfg.paths.labels),
                                          batch_size=cfg.pairs.batch_size, progress=cfg.progress)
        model_path = Path(cfg.paths.reward_model)
    artifact = fit_stage(labelled, rollouts, captioner=captioner_name(cfg.env.id), path=model_path,
                         encoder=encoder, encoder_kwargs=encoder_kwargs, epochs=cfg.reward_model.epochs,
                         n_members=cfg.reward_model.n_members, seed=cfg.data_seed,
                         targets=cfg.reward_model.targets, progress=cfg.progress)
    return artifact, {"annotation": report.as_dict(), "reward_model": artifact.metrics, "reward_model_dir": str(model_path)}


def _online_feedback(cfg: DictConfig) -> Any:
    from llm_reward.apps._common import make_llm_from_config
    from llm_reward.envs import get_adapter
    from llm_reward.feedback.prompts import goal_sentence
    from llm_reward.motif.online import OnlineFeedback

    adapter = get_adapter(cfg.env.id)
    goal = goal_sentence(adapter.family, cfg.feedback.get("goal", "default"), env_goal=adapter.goal)
    encoder, encoder_kwargs = encoder_settings(cfg)
    feedback = OnlineFeedback(make_llm_from_config(cfg), domain=adapter.family, goal=goal, variant=cfg.reward.variant,
                              batch_size=cfg.reward.batch_size, max_pending=cfg.reward.max_pending, seed=cfg.seed,
                              encoder=encoder, encoder_kwargs=encoder_kwargs, epochs=cfg.reward_model.epochs,
                              targets=cfg.reward_model.targets,  # the offline reward model's training recipe
                              # ranking pairs: pointwise answers, or pairwise probabilities (motif's free text is slow)
                              pair_mode="pointwise" if cfg.feedback.mode == "pointwise" else "rlaif")
    feedback.check_judge()  # a judge that can never label fails here, not silently during training
    return feedback


def _constant_reward(captions: list[str]) -> np.ndarray:
    """Reward 1 for every caption: with count decay it becomes the count bonus 1 / N(caption)^beta."""
    return np.ones(len(captions), dtype=np.float32)


def _shaping_kwargs(cfg: DictConfig, venv: Any) -> dict[str, Any]:
    """``reward.shaping`` with ``gamma: null`` replaced by the agent's discount: a potential-based shaping term
    cancels out over an episode only under the discount the agent optimizes."""
    from llm_reward.agents import agent_defaults

    shaping = OmegaConf.to_container(cfg.reward.shaping, resolve=True)
    if "gamma" in shaping and shaping["gamma"] is None:
        agent = {**agent_defaults(cfg.agent.algo, venv.observation_space, venv.action_space),
                 **OmegaConf.to_container(cfg.agent.kwargs, resolve=True)}
        shaping["gamma"] = agent.get("gamma", 0.99)
    return shaping


def train_and_evaluate(cfg: DictConfig, run_dir: Path, name: str, reward: Any) -> dict[str, Any]:
    from llm_reward.agents import evaluate_success, make_agent, make_eval_callback
    from llm_reward.envs import captioner_name
    from llm_reward.shaping.wrappers import LLMRewardVecEnv

    venv = make_vec_env(cfg.env.id, n_envs=cfg.train.n_envs, seed=cfg.seed, subprocess=cfg.train.subprocess,
                        max_episode_steps=cfg.env.max_episode_steps)
    if reward is not None:
        venv = LLMRewardVecEnv(venv, reward_model=reward, **_shaping_kwargs(cfg, venv))
    model = make_agent(cfg.agent.algo, venv, seed=cfg.seed, tensorboard_log=str(run_dir / "tb"),
                       **OmegaConf.to_container(cfg.agent.kwargs, resolve=True))
    callbacks, eval_venv = [], None
    try:
        if int(cfg.train.eval_every) > 0:  # periodic evaluation on unshaped envs: eval/success_rate in TensorBoard
            eval_venv = make_vec_env(cfg.env.id, n_envs=1, seed=cfg.seed + 20_000,
                                     max_episode_steps=cfg.env.max_episode_steps)
            callbacks.append(make_eval_callback(model, eval_venv, every_steps=int(cfg.train.eval_every),
                                                n_episodes=int(cfg.train.eval_every_episodes),
                                                log_path=str(run_dir / f"eval_{name}")))
        result = train_agent(model, total_timesteps=cfg.train.total_timesteps, run_dir=run_dir, name=name,
                             extra_callbacks=callbacks, progress=cfg.progress)
    finally:
        venv.close()
        if eval_venv is not None:
            eval_venv.close()
        if hasattr(reward, "close"):  # online feedback: stop the judge thread, keep what it learned
            reward.close()
            try:
                reward.save(run_dir / "online_feedback", captioner=captioner_name(cfg.env.id))
            except Exception as err:  # must not hide why training stopped
                log.error("could not save the online feedback (%s: %s)", type(err).__name__, err)
    extra: dict[str, Any] = {}
    if reward is not None:
        extra["reward_cache"] = venv.shaper.reward.stats()
    if hasattr(reward, "stats"):  # online feedback
        extra["online_feedback"] = {**reward.stats.as_dict(), "llm": reward.llm.stats.as_dict()}
    episodes = result.episodes
    metrics = {
        "steps_per_s": result.steps_per_s, "interrupted": result.interrupted,
        "timesteps": int(model.num_timesteps), "train_episodes": len(episodes),
        "train_success_last100": float(episodes["success"].tail(100).mean()) if len(episodes) else 0.0,
        "intrinsic_return_mean": float(episodes["return_intrinsic"].mean()) if len(episodes) else float("nan"),
        "episodes": episodes, **extra,
    }
    try:
        metrics["eval"] = evaluate_success(model, functools.partial(_eval_env, cfg.env.id, cfg.env.max_episode_steps),
                                           n_episodes=cfg.train.eval_episodes, seed=cfg.seed + 10_000,
                                           progress=cfg.progress)
    except KeyboardInterrupt:  # the trained agent is saved; report the run without its evaluation
        log.warning("interrupted during evaluation: %s is saved, its evaluation is skipped", name)
        metrics["eval"] = {key: float("nan") for key in ("success_rate", "mean_return", "std_return", "mean_length")}
        metrics["eval"]["n_episodes"], metrics["interrupted"] = 0, True
    return metrics


def _eval_env(env_id: str, max_episode_steps: int | None) -> Any:
    from llm_reward.envs import make_env

    return make_env(env_id, max_episode_steps=max_episode_steps)


@contextlib.contextmanager
def _baseline_runner(cfg: DictConfig, run_dir: Path, *,
                     wanted: bool) -> Iterator[Callable[[bool], dict[str, Any] | None] | None]:
    """Yields a function, called with whether the shaped run was interrupted, returning the extrinsic-only
    baseline's results (None if it failed or was never started), or None when no baseline is wanted.

    With ``train.parallel_baseline`` the baseline trains in a second process while the shaped agent trains in this
    one: each is single-threaded, so on two cores the comparison costs no extra wall time. Not with ``reward=oni``,
    whose judge thread needs that core (its labelling speed is what online feedback lives on).
    """
    if not wanted:
        yield None
        return
    if not cfg.train.parallel_baseline or cfg.reward.kind == "oni":
        def after(shaped_interrupted: bool) -> dict[str, Any] | None:
            if shaped_interrupted:  # the user stopped the run: do not start a new training
                log.warning("interrupted: the extrinsic-only baseline is not trained")
                return None
            return train_and_evaluate(cfg, run_dir, "extrinsic", None)

        yield after
        return
    resolved = OmegaConf.to_container(cfg, resolve=True)  # the child has no Hydra context to resolve ${now:} etc.
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_train_baseline, args=(resolved, str(run_dir), sender), name="baseline")
    child.start()
    sender.close()  # the child holds the only sending end: recv() raises EOFError if it dies
    log.info("training the extrinsic-only baseline in a second process")

    def result(shaped_interrupted: bool) -> dict[str, Any] | None:
        # Ctrl-C reaches both processes: each stops learning and saves; wait for the child's save once more.
        for _ in range(2):
            try:
                return receiver.recv()
            except KeyboardInterrupt:
                log.warning("interrupted: waiting for the baseline process to save its model and episodes")
            except EOFError:  # a crashed baseline must not cost the shaped run its metrics
                child.join()
                log.error("the extrinsic-only baseline process failed (exit code %s); keeping the shaped run's "
                          "results", child.exitcode)
                return None
        return None

    try:
        yield result
    except BaseException:  # the shaped run failed: stop the baseline instead of waiting out its budget
        if child.is_alive():
            os.kill(child.pid, signal.SIGINT)
        if receiver.poll(120):  # it saves, evaluates and sends what it has: take it so it can exit
            with contextlib.suppress(Exception):
                receiver.recv()
        raise
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.terminate()
        receiver.close()


def _train_baseline(resolved: dict[str, Any], run_dir: str, sender: Any) -> None:
    cfg = OmegaConf.create(resolved)
    cfg.progress = False  # one progress bar on the terminal: the shaped agent's
    torch.set_num_threads(int(cfg.train.torch_threads))
    sender.send(train_and_evaluate(cfg, Path(run_dir), "extrinsic", None))
    sender.close()


def run_experiment(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run the configured experiment into ``run_dir``; returns (and writes) ``metrics.json``.

    ``completed`` is false when a Ctrl-C stopped any run (it is then reported with what it reached) or when a
    crash or Ctrl-C outside training ended the experiment: ``metrics.json`` is written before that exception
    propagates. Trained agents and episode logs are saved by the training loop itself.
    """
    validate(cfg)
    torch.set_num_threads(int(cfg.train.torch_threads))
    start = time.perf_counter()
    metrics: dict[str, Any] = {"env": cfg.env.id, "reward": cfg.reward.name, "llm": cfg.llm.spec, "seed": cfg.seed,
                               "completed": False}
    results: dict[str, dict[str, Any]] = {}
    try:
        reward, reward_metrics = build_reward(cfg)
        metrics.update(reward_metrics)
        if isinstance(reward, RewardArtifact):  # keep the frozen reward with the run (the data/ copy is a cache)
            reward.save(run_dir / "reward_model")
        first = "shaped" if reward is not None else "extrinsic"
        with _baseline_runner(cfg, run_dir, wanted=bool(cfg.train.baseline) and reward is not None) as baseline:
            results[first] = train_and_evaluate(cfg, run_dir, first, reward)
            if baseline is not None and (extrinsic := baseline(results[first]["interrupted"])) is not None:
                results["extrinsic"] = extrinsic
        curves = {name: res.pop("episodes") for name, res in results.items()}
        plot_curves(curves, run_dir / "learning_curve.png",
                    title=f"{cfg.env.id}: {cfg.reward.name} reward ({cfg.llm.name}) vs extrinsic only, seed {cfg.seed}")
        metrics.update(success_rate=results[first]["eval"]["success_rate"],
                       completed=not any(res["interrupted"] for res in results.values()))
    except BaseException:
        _write_metrics(run_dir, metrics, results, start, failing=True)
        raise
    _write_metrics(run_dir, metrics, results, start, failing=False)
    return metrics


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
