"""The runner's contracts without training: reward kinds built from config, stage identity in one place, config
errors that name the key, run directories never shared."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from llm_reward.apps._common import ConfigError
from llm_reward.apps.experiment import reward_kind, validate
from llm_reward.apps.rewards import CountBonus, ExtrinsicOnly, OfflineReward, OnlineReward
from llm_reward.apps.train import claim_run_dir
from llm_reward.conf.schema import TrainSection
from llm_reward.training.context import BuiltReward

CONF = Path(__file__).parents[1] / "conf"


def config(*overrides: str):
    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        return compose("train", overrides=["experiment=smoke", *overrides])


def test_every_reward_config_builds_its_kind_from_its_target():
    expected = {"none": ExtrinsicOnly, "count": CountBonus, "oracle": OfflineReward, "motif": OfflineReward,
                "shuffled": OfflineReward, "oni": OnlineReward}
    for name in sorted(p.stem for p in (CONF / "reward").glob("*.yaml")):
        if name not in expected:  # a track's own kind (e.g. eureka) is tested with its track
            continue
        kind = reward_kind(config(f"reward={name}"))
        assert type(kind) is expected[name], name
    assert reward_kind(config("reward=oracle")).labels == "oracle"
    assert reward_kind(config("reward=shuffled")).labels == "shuffled"
    assert reward_kind(config("reward=oni", "reward.variant=ranking")).variant == "ranking"


def test_a_kind_is_a_class_or_a_build_function(tmp_path):
    """The hook other tracks use: a YAML builder node naming any callable that returns a BuiltReward."""
    cfg = config("reward=none", f"data_dir={tmp_path}")
    kind, run = validate(cfg)
    assert kind.build(run).reward is None
    assert CountBonus().build(run).reward(["a", "b"]).tolist() == [1.0, 1.0]
    assert isinstance(ExtrinsicOnly().build(run), BuiltReward)


def doubled_count(run, scale: float = 2.0) -> BuiltReward:
    """A reward kind written as a function (``builder: {_target_: ..., _partial_: true}``)."""
    return BuiltReward(lambda captions: [scale] * len(captions), metrics={"scale": scale})


def test_a_build_function_is_a_kind_too(tmp_path):
    from llm_reward.apps.experiment import build_reward

    from omegaconf import open_dict

    cfg = config("reward=count", f"data_dir={tmp_path}")
    with open_dict(cfg):  # what conf/reward/<kind>.yaml would say
        cfg.reward.builder = {"_target_": f"{__name__}.doubled_count", "_partial_": True, "scale": 3.0}
    kind, run = validate(cfg)
    built = build_reward(kind, run)
    assert built.metrics == {"scale": 3.0} and built.reward(["a"]) == [3.0]


def test_stage_identity_names_its_labels_in_one_place():
    motif, oracle, shuffled = (config(f"reward={r}").paths for r in ("motif", "oracle", "shuffled"))
    assert motif.labels == shuffled.labels  # the control asks the judge the very same pairs...
    assert len({motif.reward_model, oracle.reward_model, shuffled.reward_model}) == 3  # ...but fits its own model
    assert f"_{motif.labeler}_" in motif.reward_model and "_oracle_" in oracle.reward_model
    assert f"_{motif.labeler}-shuffled0_" in shuffled.reward_model
    # old caches stay valid: the oracle's path is the judge's with its labeler swapped (oracle labels: no dense pairs)
    plain = config("reward=motif", "reward_model.dense_pairs=0").paths
    assert oracle.reward_model == plain.reward_model.replace(f"_{motif.labeler}_", "_oracle_")
    assert motif.reward_model == plain.reward_model + "_dense2000"
    assert "shuffled3_" in config("reward=shuffled", "reward.shuffle_seed=3").paths.reward_model


@pytest.mark.parametrize("overrides, key", [
    (["pairs.n=0"], "pairs.n"),
    (["env.id=NoSuchEnv-v0"], "env.id"),
    (["reward=oni", "reward.variant=magic"], "reward.variant"),
    (["reward.builder.labels=guess"], "reward.builder.labels"),
    (["agent.algo=trpo"], "agent.algo"),
    (["train.n_envs=0"], "train.n_envs"),
    (["reward=oracle", "reward.shaping.beta=-1"], "reward.shaping"),
    (["reward=oracle", "+agent.kwargs.bogus=1"], "agent.kwargs"),
    (["reward=oracle", "reward_model.targets=sharp"], "reward_model"),
    (["reward=none", "train.eval_info_keys=[gold]"], "train.eval_info_keys"),
    (["reward=oracle", "reward_model.dense_pairs=100"], "reward_model.dense_pairs"),
    (["reward=motif", "feedback=rlaif", "llm=tiny", "reward_model.dense_pairs=100"], "reward_model.dense_pairs"),
    (["reward=oni", "llm=tiny", "reward_model.dense_pairs=100"], "reward_model.dense_pairs"),
])
def test_config_errors_name_the_key_before_any_work(overrides, key, tmp_path):
    cfg = config(*overrides, f"data_dir={tmp_path}")
    with pytest.raises(ConfigError) as error:
        validate(cfg)
    assert str(error.value).startswith(key) or f" {key}" in str(error.value), str(error.value)
    assert not any(tmp_path.iterdir())  # nothing collected, nothing written


@pytest.mark.parametrize("override, key", [("train.n_envs=four", "train.n_envs"),
                                           ("train.subprocess=maybe", "train.subprocess"),
                                           ("rollouts.n_steps=1.5", "rollouts.n_steps")])
def test_typed_sections_refuse_a_wrong_type_when_composed(override, key):
    """conf/schema.py: a value of the wrong type in a typed section stops the composition, naming the key."""
    with pytest.raises(Exception, match=key.replace(".", r"\.")):
        config(override)
    assert OmegaConf.get_type(config().train) is TrainSection


@pytest.mark.parametrize("overrides, dense_pairs", [
    ([], 2000),                                      # pointwise feedback recommends dense pairs to offline rewards
    (["reward=shuffled"], 2000),
    (["feedback=rlaif", "llm=tiny"], 0),             # pairwise labels have no caption scores to draw them from
    (["reward=oni", "llm=tiny"], 0),                 # online labels refit as they come
    (["reward=oracle"], 0),
    (["feedback.strategy=pairwise_bc", "llm=tiny"], 0),
    (["feedback=rlaif", "feedback.strategy=pointwise_fewshot", "llm=tiny"], 2000),
])
def test_dense_pairs_default_to_what_the_labels_allow(overrides, dense_pairs, tmp_path):
    cfg = config(*overrides, f"data_dir={tmp_path}")
    assert cfg.reward_model.dense_pairs == dense_pairs
    validate(cfg)  # a default never trips the key's own checks


def test_two_jobs_never_share_a_run_dir(tmp_path):
    first, second, third = (claim_run_dir(tmp_path / "runs" / "motif-seed0-20261202") for _ in range(3))
    assert len({first, second, third}) == 3 and all(p.is_dir() for p in (first, second, third))
    assert second.name.endswith("-2") and third.name.endswith("-3")
