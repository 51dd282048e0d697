"""ONI-style online feedback: never blocks the caller, deduplicates, survives a failing judge."""

from __future__ import annotations

import threading
import time
from typing import Iterator

import numpy as np
import pytest

from llm_reward.llm.base import LLM, Sampling
from llm_reward.llm.errors import LLMCapabilityError
from llm_reward.motif.online import OnlineFeedback


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


class SlowJudge(LLM):
    """Says a caption shows progress when it mentions a key; sleeps to mimic a slow model; can fail first."""

    backend = "scripted"

    def __init__(self, delay: float = 0.0, failures: int = 0, gate: threading.Event | None = None):
        super().__init__("slow-judge")
        self.delay, self.failures, self.gate = delay, failures, gate
        self.gate_timed_out = False  # a caller waited for the judge: the gate was never opened in time
        self.asked: list[str] = []
        self.lock = threading.Lock()
        self.busy = threading.Event()  # set when a batch starts

    def _complete(self, conversations, sampling: Sampling) -> Iterator[tuple[int, str]]:
        raise AssertionError("online feedback uses choice probabilities")

    def _choice_probs(self, conversations, choices) -> Iterator[tuple[int, dict[str, float]]]:
        self.busy.set()
        if self.gate is not None and not self.gate.wait(timeout=60):
            self.gate_timed_out = True
        time.sleep(self.delay)
        with self.lock:
            if self.failures > 0:
                self.failures -= 1
                raise ConnectionError("judge unavailable")
        for i, messages in enumerate(conversations):
            text = messages[-1]["content"]
            self.asked.append(text)
            if "Description 1" in text:  # pairwise (ranking)
                first = text.split("Description 1:")[1].split("Description 2:")[0]
                yes = 0.9 if "key" in first else 0.1
            else:
                yes = 0.9 if "key" in text else 0.1
            yield i, {"1": yes, "2": 1 - yes}


def test_slow_judge_never_blocks_the_caller():
    gate = threading.Event()  # the judge answers nothing until the gate opens
    judge = SlowJudge(gate=gate)
    with OnlineFeedback(judge, domain="minigrid", goal="The goal is to open the door.") as feedback:
        for step in range(200):
            out = feedback([f"You see a wall {step % 5}.", "You picked up the key."])
            assert out.dtype == np.float32 and out.shape == (2,)
            assert (out == 0.0).all()  # nothing judged yet: the default, at once
        assert judge.busy.wait(timeout=10) and not feedback.wait_idle(timeout=0.01)  # the judge is stuck...
        gate.set()  # ...and the 200 calls above never waited for it
        assert feedback.wait_idle(timeout=20)
        out = feedback(["You picked up the key.", "You see a wall 1."])
    assert not judge.gate_timed_out
    assert out[0] == pytest.approx(0.9) and out[1] == pytest.approx(0.1)
    # Every distinct caption was judged exactly once, whatever the number of calls.
    assert len(judge.asked) == 6 and feedback.stats.labelled_captions == 6


def test_failing_judge_is_retried_and_counted():
    judge = SlowJudge(failures=2)
    with OnlineFeedback(judge, domain="minigrid", goal=None) as feedback:
        assert (feedback(["You picked up the key."]) == 0.0).all()  # pending: default reward
        assert feedback.wait_idle(timeout=20)
        assert feedback(["You picked up the key."])[0] == pytest.approx(0.9)
    assert feedback.stats.llm_errors == 2 and feedback.stats.dropped == 0


def test_ranking_variant_fits_a_reward_model_online():
    judge = SlowJudge()
    captions = [f"You picked up the key {i}." for i in range(12)] + [f"You see a wall {i}." for i in range(12)]
    with OnlineFeedback(judge, domain="minigrid", goal=None, variant="ranking", min_pairs_to_fit=16,
                        pairs_per_caption=3, epochs=30) as feedback:
        for i in range(0, len(captions), 4):
            feedback(captions[i:i + 4])
            assert feedback.wait_idle(timeout=60)
        assert feedback.stats.fits >= 1
        out = feedback(["You picked up the key 3.", "You see a wall 3."])
        # A caption still waiting for the (now slow) judge gets the model's estimate on every call, not only on
        # the call that queued it: a potential must not flip between the estimate and the default.
        judge.delay = 1.0
        feedback(["You see a wall 0.", "You picked up the key 3."])  # the worker is busy with something else
        first = feedback(["You picked up the key 99."])
        again = feedback(["You picked up the key 99.", "You picked up the key 3."])
    assert out[0] > out[1]
    assert first[0] == again[0] != 0.0


def test_bad_variant_or_encoder_fails_at_construction_not_in_the_worker():
    with pytest.raises(ValueError, match="variant"):
        OnlineFeedback(SlowJudge(), domain="minigrid", goal=None, variant="magic")
    with pytest.raises(ValueError, match="max_chars"):
        OnlineFeedback(SlowJudge(), domain="minigrid", goal=None, variant="ranking", encoder_kwargs={"max_chars": 0})


@pytest.mark.parametrize("targets", ["hard", "soft"])
def test_ranking_refits_on_the_offline_pipelines_targets(monkeypatch, targets):
    # The small judge's labels sit near 0.5 while right in sign; the offline reward model trains on their side of
    # 0.5 ("hard"), and the online one must use the same recipe, or it learns a far flatter reward from them.
    import llm_reward.reward_model.recipe as recipe

    fitted: list[np.ndarray] = []
    real_fit = recipe.fit_reward_model

    def spy(a, b, labels, **kwargs):
        fitted.append(np.asarray(labels))
        return real_fit(a, b, labels, **kwargs)

    monkeypatch.setattr(recipe, "fit_reward_model", spy)
    captions = [f"You picked up the key {i}." for i in range(4)] + [f"You see a wall {i}." for i in range(4)]
    with OnlineFeedback(SlowJudge(), domain="minigrid", goal=None, variant="ranking", min_pairs_to_fit=8,
                        epochs=2, targets=targets) as feedback:
        feedback(captions)
        assert feedback.wait_idle(timeout=60)
    assert feedback.stats.fits >= 1
    labels = np.concatenate(fitted)
    if targets == "hard":
        assert set(np.unique(labels)) <= {0.0, 0.5, 1.0}
    else:
        assert not set(np.unique(labels)) <= {0.0, 0.5, 1.0}
    with pytest.raises(ValueError, match="targets"):
        OnlineFeedback(SlowJudge(), domain="minigrid", goal=None, variant="ranking", targets="sharp")


def test_model_estimates_are_memoized_until_the_next_refit():
    # Unjudged captions are asked for at every env step; scoring them afresh each time dominated training.
    judge = SlowJudge()
    captions = [f"You picked up the key {i}." for i in range(4)] + [f"You see a wall {i}." for i in range(4)]
    with OnlineFeedback(judge, domain="minigrid", goal=None, variant="ranking", min_pairs_to_fit=8,
                        epochs=2) as feedback:
        feedback(captions)
        assert feedback.wait_idle(timeout=60) and feedback.stats.fits >= 1
        artifact = feedback.strategy.artifact
        model, scored = artifact.model, []
        artifact.model = lambda cs: scored.append(list(cs)) or model(cs)
        judge.delay = 2.0  # the new caption stays unjudged while we look
        first = feedback(["You see a door.", "You see a door."])
        again = feedback(["You see a door.", "You see a wall 0."])
        feedback(["You see a door.", "You see a wall 0."])
        assert scored == [["You see a door."], ["You see a wall 0."]]  # each scored once until the next refit
    assert first[0] == first[1] == again[0]


def test_newest_captions_are_judged_first_and_the_oldest_forgotten():
    # A judge slower than the env: what the agent sees now matters more than an old backlog.
    judge = SlowJudge(delay=0.3)
    with OnlineFeedback(judge, domain="minigrid", goal=None, batch_size=2, max_pending=4) as feedback:
        feedback(["You see a wall 0."])
        assert judge.busy.wait(timeout=10)  # the worker has taken caption 0 and is judging it
        feedback([f"You see a wall {i}." for i in range(1, 10)])
        assert feedback.wait_idle(timeout=20)
        assert feedback.stats.evicted == 5  # captions 1-5 dropped: only the 4 newest stay pending
        judged = [next(i for i in range(10) if f"wall {i}." in text) for text in judge.asked]
        assert judged == [0, 9, 8, 7, 6]
        # A forgotten caption is offered again when it is seen again.
        feedback(["You see a wall 1."])
        assert feedback.wait_idle(timeout=20)
    assert feedback.stats.labelled_captions == 6


def test_a_failing_refit_keeps_the_labels(monkeypatch):
    judge = SlowJudge()
    with OnlineFeedback(judge, domain="minigrid", goal=None, variant="ranking", min_pairs_to_fit=4) as feedback:
        monkeypatch.setattr(feedback.strategy, "refit", lambda: 1 / 0)
        feedback([f"You picked up the key {i}." for i in range(4)] + [f"You see a wall {i}." for i in range(4)])
        assert feedback.wait_idle(timeout=60)
    assert feedback.stats.fit_errors >= 1 and feedback.stats.llm_errors == 0
    assert feedback.stats.labelled_captions == 8 and len(set(judge.asked)) == len(judge.asked)  # none judged twice


def test_ranking_judges_each_caption_once_before_any_model_exists():
    judge = SlowJudge()
    captions = [f"You see a wall {i}." for i in range(4)]
    with OnlineFeedback(judge, domain="minigrid", goal=None, variant="ranking", min_pairs_to_fit=1000) as feedback:
        for _ in range(5):
            feedback(captions)
            assert feedback.wait_idle(timeout=20)
    assert feedback.stats.fits == 0 and feedback.stats.labelled_captions == 4
    assert len(judge.asked) == len(set(judge.asked))  # no prompt asked twice (it was 5x before the fix)


class NoLogprobJudge(SlowJudge):
    def _choice_probs(self, conversations, choices):
        raise LLMCapabilityError("remote-model returned no log-probs")


def test_a_judge_that_can_never_label_is_caught_up_front_and_never_crashes_training():
    feedback = OnlineFeedback(NoLogprobJudge(), domain="minigrid", goal=None)
    with pytest.raises(LLMCapabilityError, match="no log-probs"):
        feedback.check_judge()  # what reward=oni runs before training starts
    with feedback:  # the same failure mid-run: logged and recorded, the rewards keep coming
        feedback(["You see a wall 0."])
        deadline = time.monotonic() + 20
        while not feedback.stats.judge_stopped and time.monotonic() < deadline:
            time.sleep(0.01)
        assert feedback.stats.judge_stopped == 1
        for _ in range(3):
            assert (feedback(["You see a wall 0.", "You see a wall 1."]) == 0.0).all()
        assert feedback.wait_idle(timeout=5)  # nothing left waiting for a judge that stopped
    assert feedback.stats.llm_errors == 0  # not retried: retrying cannot help
    OnlineFeedback(SlowJudge(), domain="minigrid", goal=None).check_judge()  # a working judge passes


def test_a_closed_feedback_restarts_its_worker_when_called_again():
    judge = SlowJudge()
    feedback = OnlineFeedback(judge, domain="minigrid", goal=None)
    feedback.close()
    feedback(["You picked up the key."])
    assert feedback.wait_idle(timeout=20)
    assert feedback(["You picked up the key."])[0] == pytest.approx(0.9)
    feedback.close()


def test_stepping_a_shaped_vecenv_never_waits_for_a_slow_judge():
    """The same guarantee at the level training sees it: VecEnv steps, not direct reward calls."""
    from llm_reward.envs import make_env
    from llm_reward.shaping.wrappers import LLMRewardVecEnv
    from stable_baselines3.common.vec_env import DummyVecEnv

    gate = threading.Event()  # the judge answers nothing until the gate opens
    judge = SlowJudge(gate=gate)
    feedback = OnlineFeedback(judge, domain="minigrid", goal=None)
    venv = LLMRewardVecEnv(DummyVecEnv([lambda: make_env("MiniGrid-DoorKey-5x5-v0", seed=0)] * 2),
                           reward_model=feedback, threshold_quantile=None, form="potential", gamma=0.99)
    rng = np.random.default_rng(0)
    try:
        venv.reset()
        venv.step(rng.integers(0, 3, size=2))  # the first rewards queue the first captions
        assert judge.busy.wait(timeout=10)  # the judge is stuck on its first batch from here on
        for _ in range(100):
            _, rewards, _, _ = venv.step(rng.integers(0, 3, size=2))
            assert (rewards == 0.0).all()  # no label yet: stepping went on without one
        still_judging = not feedback.wait_idle(timeout=0.01)
        gate.set()
    finally:
        gate.set()
        venv.close()
        feedback.close()
    assert still_judging  # captions were queued, not waited for
    assert not judge.gate_timed_out  # no step waited for the judge


def test_ranking_gives_up_on_a_caption_without_pinning_it_to_the_default():
    judge = SlowJudge()
    with OnlineFeedback(judge, domain="minigrid", goal=None, variant="ranking", min_pairs_to_fit=8,
                        pairs_per_caption=2, epochs=20, max_retries=0) as feedback:
        feedback([f"You picked up the key {i}." for i in range(4)] + [f"You see a wall {i}." for i in range(4)])
        assert feedback.wait_idle(timeout=60) and feedback.stats.fits >= 1
        judge.failures = 10  # the next batch fails and, with max_retries=0, is given up at once
        feedback(["You picked up the key 42."])
        assert feedback.wait_idle(timeout=20) and feedback.stats.dropped == 1
        first = feedback(["You picked up the key 42."])[0]
        assert first != 0.0 and first == feedback(["You picked up the key 42."])[0]  # the model's estimate, stable
        assert first == feedback.strategy.rewards(["You picked up the key 42."])[0]  # not pinned to the default


def test_save_writes_the_label_table_pairs_and_a_reloadable_reward_model(tmp_path):
    from llm_reward.reward_model import RewardArtifact

    judge = SlowJudge()
    captions = [f"You picked up the key {i}." for i in range(6)] + [f"You see a wall {i}." for i in range(6)]
    with OnlineFeedback(judge, domain="minigrid", goal=None, variant="ranking", min_pairs_to_fit=8,
                        pairs_per_caption=2, epochs=30) as feedback:
        feedback(captions)
        assert feedback.wait_idle(timeout=60) and feedback.stats.fits >= 1
    feedback.save(tmp_path / "online", captioner="test-captions")
    import pandas as pd

    table = pd.read_parquet(tmp_path / "online" / "captions.parquet")
    assert set(table["caption"]) == set(captions)
    assert len(pd.read_parquet(tmp_path / "online" / "pairs.parquet")) == feedback.stats.labelled_pairs
    artifact = RewardArtifact.load(tmp_path / "online" / "reward_model")
    assert artifact.captioner == "test-captions"
    key, wall = artifact(["You picked up the key 0.", "You see a wall 0."])
    assert key > wall


def test_oni_ranking_judges_with_the_runs_labeler_from_the_same_feedback_key(tmp_path):
    """reward=oni and reward=motif read one ``feedback`` config: the ranked pairs are judged by the labeler offline
    Motif would use (the few-shot pointwise question by default, a pairwise strategy when one is named)."""
    import dataclasses

    from hydra import compose, initialize_config_module

    from llm_reward.apps._common import run_context
    from llm_reward.apps.rewards import OnlineReward
    from llm_reward.feedback.strategies import PairwiseStrategy, PointwiseStrategy

    chosen = {}
    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        for strategy in ("default", "pairwise_bc"):
            overrides = ["env=minigrid/doorkey_5x5", "reward=oni", "reward.variant=ranking", f"data_dir={tmp_path}"]
            cfg = compose("train", overrides=overrides + ([f"feedback.strategy={strategy}"] if strategy != "default"
                                                          else []))
            run = dataclasses.replace(run_context(cfg), make_llm=SlowJudge)
            built = OnlineReward(variant="ranking").build(run)
            try:
                chosen[strategy] = built.reward.strategy.labeler
                assert chosen[strategy] is run.labeler()
            finally:
                built.finish(tmp_path / strategy)
    assert isinstance(chosen["default"], PointwiseStrategy) and chosen["default"].name == "pointwise_fewshot"
    assert isinstance(chosen["pairwise_bc"], PairwiseStrategy) and chosen["pairwise_bc"].calibration == "batch"
