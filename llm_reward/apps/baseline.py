"""The extrinsic-only baseline of a run: trained after the shaped agent, or alongside it in a second process.

With ``train.parallel_baseline`` the baseline trains in a second process while the shaped agent trains in this
one: each is single-threaded, so on two cores the comparison costs no extra wall time. Not when the reward needs
that core (``BuiltReward.needs_core``: ONI's judge thread, whose labelling speed is what online feedback lives on).

The child runs in its own process group, so a terminal's Ctrl-C reaches this process only, and every SIGINT this
process receives (a terminal's, or a scheduler's ``kill -INT <pid>``) is passed on to the child exactly once.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("llm_reward.apps.experiment")

#: ``train(cfg, run_dir, name, built_reward, on_interrupt)`` -> the run's metrics (``experiment.train_and_evaluate``).
Trainer = Callable[..., dict[str, Any]]


class Baseline:
    """What the runner holds while the shaped agent trains: ``result(shaped_interrupted)`` returns the baseline's
    metrics (None if it failed or never started); ``interrupt()`` passes a Ctrl-C on to a parallel baseline."""

    def __init__(self, result: Callable[[bool], dict[str, Any] | None], interrupt: Callable[[], None] | None = None):
        self.result = result
        self.interrupt = interrupt


@contextlib.contextmanager
def baseline_runner(cfg: DictConfig, run_dir: Path, train: Trainer, *, wanted: bool,
                    parallel: bool = True) -> Iterator[Baseline | None]:
    """Yields a :class:`Baseline` (None when no baseline is wanted); ``parallel=False`` trains it after the shaped
    agent, in this process."""
    if not wanted:
        yield None
        return
    if not (cfg.train.parallel_baseline and parallel):
        def after(shaped_interrupted: bool) -> dict[str, Any] | None:
            if shaped_interrupted:  # the user stopped the run: do not start a new training
                log.warning("interrupted: the extrinsic-only baseline is not trained")
                return None
            return train(cfg, run_dir, "extrinsic", None)

        yield Baseline(after)
        return
    resolved = OmegaConf.to_container(cfg, resolve=True)  # the child has no Hydra context to resolve ${now:} etc.
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_train_baseline, args=(resolved, str(run_dir), sender, train), name="baseline")
    child.start()
    sender.close()  # the child holds the only sending end: recv() raises EOFError if it dies
    log.info("training the extrinsic-only baseline in a second process")

    def interrupt() -> None:
        if child.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGINT)

    def result(shaped_interrupted: bool) -> dict[str, Any] | None:
        for _ in range(2):  # a Ctrl-C while waiting: wait once more for the child to save what it has
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

    with _forward_sigint(interrupt):
        try:
            yield Baseline(result, interrupt)
        except BaseException:  # the shaped run failed: stop the baseline instead of waiting out its budget
            interrupt()
            if receiver.poll(120):  # it saves, evaluates and sends what it has: take it so it can exit
                with contextlib.suppress(Exception):
                    receiver.recv()
            raise
        finally:
            child.join(timeout=30)
            if child.is_alive():
                child.terminate()
            receiver.close()


@contextlib.contextmanager
def _forward_sigint(forward: Callable[[], None]) -> Iterator[None]:
    """While the block runs, a SIGINT outside training (where ``StopOnInterrupt`` handles it) is passed on to the
    child, then handled as before (Python's default: ``KeyboardInterrupt``)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        forward()
        if callable(previous):
            previous(signum, frame)
        else:
            signal.default_int_handler(signum, frame)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _train_baseline(resolved: dict[str, Any], run_dir: str, sender: Any, train: Trainer) -> None:
    os.setpgrp()  # out of the terminal's process group: the parent passes each Ctrl-C on exactly once
    cfg = OmegaConf.create(resolved)
    cfg.progress = False  # one progress bar on the terminal: the shaped agent's
    torch.set_num_threads(int(cfg.train.torch_threads))
    sender.send(train(cfg, Path(run_dir), "extrinsic", None))
    sender.close()
