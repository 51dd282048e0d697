"""Every public docstring example of the root API and the shared floors runs, as written (the tiny model where an
LLM is needed): the examples are the documentation users copy first."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "llm_reward",  # the quickstart: every root export on one path
    "llm_reward.types",  # the contracts: Labeler, LabelBatch
    "llm_reward.jsonio",
    "llm_reward.identity",  # the stage-identity hash of every track
    "llm_reward.llm",
    "llm_reward.feedback.prompts",
    "llm_reward.feedback.labelers",
    "llm_reward.feedback.annotate",
    "llm_reward.feedback.judges",
    "llm_reward.rlaif.evaluate",
    "llm_reward.feedback.strategies",
    "llm_reward.apps._common",
    "llm_reward.apps.train",
    "llm_reward.motif.judge_queue",
    "llm_reward.motif.online",
    "llm_reward.motif.stages",
    "llm_reward.reward_model.artifact",
    "llm_reward.reward_model.model",
    "llm_reward.reward_model.recipe",
    "llm_reward.reward_model.train",
    "llm_reward.shaping.captions",
    "llm_reward.shaping.formula",
    "llm_reward.shaping.wrappers",
    "llm_reward.shaping.novelty",
    "llm_reward.training.context",
    "llm_reward.training.loop",
    "llm_reward.training.rollouts",
    "llm_reward.envs.registry",
    "llm_reward.envs.minigrid",
    "llm_reward.envs.minigrid_info",
    "llm_reward.agents.factory",
    "llm_reward.conf.schema",
    "llm_reward.eureka.frames",
    "llm_reward.eureka.records",
    "llm_reward.eureka.reflection",  # the failure diagnosis the coder reads
    "llm_reward.eureka.rundir",
    "llm_reward.eureka.worker",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files leave nothing in the repository
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
    assert result.attempted > 0, f"{name} has no runnable example"


def test_root_api_names_resolve():
    import llm_reward as L

    for name in L.__all__:
        assert getattr(L, name) is not None
        if name != "__version__":
            assert getattr(L, name).__doc__, f"llm_reward.{name} has no docstring"
