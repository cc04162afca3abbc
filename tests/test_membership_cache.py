"""Deep features and the classifier scorer from a ganfp checkpoint; the embedding and autoencoder caches.

A second run must not run the model at all; changing an image or the checkpoint must recompute.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score
from helpers.membership_cases import write_case

from ganfp import inference
from ganfp.checkpoint import model_meta, save_model
from ganfp.data.generated import generated_manifest
from ganfp.data.real import read_real
from ganfp.membership import AutoencoderConfig, MembershipScorer, Recipe, ScoringSetup, parse_features
from ganfp.membership import features as features_module
from ganfp.membership import pipeline as pipeline_module
from ganfp.metrics import used_class_index
from ganfp.models import create_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CPU = torch.device("cpu")


def save_checkpoint(folder, seed: int = 0, classes=("not_used", "used")):
    torch.manual_seed(seed)
    model = create_model("conv5", 2, 32)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(folder / "model.safetensors", model, model_meta(model, list(classes), 32))
    return folder, model


@pytest.fixture
def case(tmp_path):
    real_dir, gen_dir, labels = write_case(tmp_path / "case")
    real, gen = read_real(str(real_dir)), generated_manifest(gen_dir)
    y = np.array([labels[i] for i in real.ids])
    return real, gen, y


@pytest.fixture
def count_embeds(monkeypatch):
    calls = []
    original = inference.embed

    def counting(model, images, *args, **kwargs):
        calls.append(len(images))
        return original(model, images, *args, **kwargs)

    monkeypatch.setattr(inference, "embed", counting)
    return calls


def checkpoint_features(manifest, tmp_path, stage):
    return features_module.deep_features(parse_features("checkpoint"), manifest, image_size=32, device=CPU,
                                         batch_size=8, data_root=tmp_path / "data", checkpoint=stage)


def test_checkpoint_features_rank_used_images_first(case, tmp_path):
    real, gen, y = case
    stage, _ = save_checkpoint(tmp_path / "stage")
    setup = ScoringSetup(32, CPU, batch_size=8, data_root=tmp_path / "data", checkpoint=stage)
    scores = MembershipScorer(real, gen, setup).score(Recipe("knn", "checkpoint", 3))
    assert roc_auc_score(y, scores) == 1.0


def test_embedding_cache_is_reused_without_a_forward_pass(case, tmp_path, count_embeds, monkeypatch):
    real, _, _ = case
    stage, _ = save_checkpoint(tmp_path / "stage")
    first = checkpoint_features(real, tmp_path, stage)
    assert sum(count_embeds) == len(real)
    assert len(list((tmp_path / "data" / "cache" / "embeddings").glob("*.npy"))) == 1

    count_embeds.clear()
    monkeypatch.setattr("ganfp.checkpoint.load_checkpoint", lambda *a, **k: pytest.fail("model loaded on a cache hit"))
    second = checkpoint_features(real, tmp_path, stage)
    assert count_embeds == [] and torch.equal(first, second)


@pytest.mark.parametrize("damage", ["empty", "cut short", "zero-filled"])
def test_a_damaged_embedding_file_is_computed_again(case, tmp_path, count_embeds, damage):
    """An empty `.npy` (a power cut's leftover of a file renamed before its data was on disk) failed every later run
    with numpy's EOFError; any damaged one is a miss, embedded again."""
    real, _, _ = case
    stage, _ = save_checkpoint(tmp_path / "stage")
    first = checkpoint_features(real, tmp_path, stage)
    (array,) = (tmp_path / "data" / "cache" / "embeddings").glob("*.npy")
    data = array.read_bytes()
    array.write_bytes({"empty": b"", "cut short": data[: len(data) // 2], "zero-filled": bytes(len(data))}[damage])
    count_embeds.clear()
    again = checkpoint_features(real, tmp_path, stage)
    assert sum(count_embeds) == len(real) and torch.equal(again, first)
    assert array.read_bytes() == data


def test_embedding_cache_invalidated_when_an_image_changes(case, tmp_path, count_embeds):
    real, _, _ = case
    stage, _ = save_checkpoint(tmp_path / "stage")
    first = checkpoint_features(real, tmp_path, stage)
    changed = real.items[0].path
    Image.fromarray(255 - np.asarray(Image.open(changed))).save(changed)
    count_embeds.clear()
    second = checkpoint_features(real, tmp_path, stage)
    assert sum(count_embeds) == len(real)
    assert not torch.equal(first[0], second[0]) and torch.equal(first[1:], second[1:])


def test_embedding_cache_invalidated_when_the_checkpoint_changes(case, tmp_path, count_embeds):
    real, _, _ = case
    stage, _ = save_checkpoint(tmp_path / "stage", seed=0)
    first = checkpoint_features(real, tmp_path, stage)
    save_checkpoint(tmp_path / "stage", seed=1)
    st = os.stat(stage / "model.safetensors")
    os.utime(stage / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a coarse clock still sees it
    count_embeds.clear()
    second = checkpoint_features(real, tmp_path, stage)
    assert sum(count_embeds) == len(real) and not torch.equal(first, second)


def test_autoencoder_cache_skips_training_on_the_second_run(case, tmp_path, monkeypatch):
    real, gen, y = case
    setup = ScoringSetup(32, CPU, batch_size=8, data_root=tmp_path / "data", seed=5,
                         autoencoder=AutoencoderConfig(size=16, width=8, code=16, steps=30, batch_size=16))
    first = MembershipScorer(real, gen, setup).score(Recipe("autoencoder"))
    monkeypatch.setattr("ganfp.membership.autoencoder.train_autoencoder", lambda *a, **k: pytest.fail("trained again"))
    second = MembershipScorer(real, gen, setup).score(Recipe("autoencoder"))
    assert np.array_equal(first, second)


@pytest.mark.parametrize("classes,column", [(("not_used", "used"), 1), (("used", "not_used"), 0)])
def test_classifier_score_is_the_probability_of_used(case, tmp_path, classes, column):
    real, _, _ = case
    stage, model = save_checkpoint(tmp_path / "stage", classes=classes)
    setup = ScoringSetup(32, CPU, batch_size=8, data_root=tmp_path / "data", checkpoint=stage)
    scores = MembershipScorer(real, None, setup).score(Recipe("classifier"))
    images = features_module.load_checked(real, 32, tmp_path / "data")
    expected = inference.predict_proba(model.eval(), images, 8, CPU)[:, column]
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert used_class_index(list(classes)) == column


def test_one_neighbour_pass_per_space_as_used(case, tmp_path):
    """Spaces that work at the same resolution share one pass: std and std32, and white64 on 32 px images."""
    real, gen, _ = case
    scorer = MembershipScorer(real, gen, ScoringSetup(32, CPU, batch_size=8, data_root=tmp_path / "data"))
    assert scorer.neighbours(parse_features("white64")) is scorer.neighbours(parse_features("white32"))
    assert scorer.neighbours(parse_features("std")) is scorer.neighbours(parse_features("std32"))
    assert scorer.neighbours(parse_features("ncc48")) is not scorer.neighbours(parse_features("ncc32"))


def test_each_set_is_decoded_once_and_small_sides_averaged_once(case, tmp_path, monkeypatch):
    """Spaces at one side share its area-averaged copy (kept at half the decoded size or less).

    Sharing changes no score."""
    real, gen, _ = case
    setup = ScoringSetup(32, CPU, batch_size=8, data_root=tmp_path / "data")
    recipes = [Recipe("knn", "pixels16", 3), Recipe("knn", "std16", 3), Recipe("knn", "std32", 3),
               Recipe("local", "wstd32", 5)]
    alone = [MembershipScorer(real, gen, setup).score(r) for r in recipes]
    decoded, averaged = [], []
    load, downsample = pipeline_module.load_checked, pipeline_module.downsample
    monkeypatch.setattr(pipeline_module, "load_checked", lambda m, *a, **k: decoded.append(m.name) or load(m, *a, **k))
    monkeypatch.setattr(pipeline_module, "downsample", lambda x, side: averaged.append(side) or downsample(x, side))
    shared = MembershipScorer(real, gen, setup)
    for recipe, expected in zip(recipes, alone):
        np.testing.assert_array_equal(shared.score(recipe), expected)
    assert sorted(decoded) == sorted([real.name, gen.name])
    assert sorted(averaged) == [16, 16] + [32] * 4  # 16 px kept for std16; 32 px (full size) made per space


@pytest.mark.parametrize("recipe", [Recipe("knn", "checkpoint", 3), Recipe("classifier")])
def test_scoring_leaves_the_callers_torch_rng_alone(recipe, case, tmp_path):
    """A notebook's later random numbers must not depend on whether it scored: the model built before its weights
    load draws its random init from a fork of torch's global RNG, not from the caller's."""
    real, gen, _ = case
    stage, _ = save_checkpoint(tmp_path / "stage")
    setup = ScoringSetup(32, CPU, batch_size=8, data_root=tmp_path / "data", checkpoint=stage)
    torch.manual_seed(7)
    expected = torch.rand(4)
    torch.manual_seed(7)
    MembershipScorer(real, gen, setup).score(recipe)
    assert torch.equal(torch.rand(4), expected)


def test_attributions_deep_features_leave_the_callers_torch_rng_alone(case, tmp_path, monkeypatch):
    from ganfp.attribution import features as attribution_features

    real, _, _ = case
    stage, _ = save_checkpoint(tmp_path / "stage")
    monkeypatch.setattr(attribution_features, "_checkpoint", lambda ctx: stage)
    ctx = attribution_features.FeatureContext(32, "cpu", 8, str(tmp_path / "data"))
    torch.manual_seed(7)
    expected = torch.rand(4)
    torch.manual_seed(7)
    vectors = attribution_features.membership_space("checkpoint")(real, ctx)
    assert vectors.shape[0] == len(real) and torch.equal(torch.rand(4), expected)
