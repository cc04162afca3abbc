"""Membership scorers: each one ranks the used images first on a case with a known answer, on the CPU.

Also the machinery under them: blocked nearest neighbours and counts against brute force, SSIM
against a direct implementation, rank fusion, calibration, and seeded reproducibility.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from test_membership_fixtures import membership_case, one_torch_thread  # noqa: F401 (autouse)

from ganfp.membership import (
    AutoencoderConfig,
    Candidate,
    Euclidean,
    Neighbours,
    SSIMDistance,
    choose,
    density_scores,
    fit_weights,
    fuse,
    knn_scores,
    nearest,
    normalised_ranks,
    parse_features,
    reconstruction_scores,
    retrieval_scores,
    roc_auc,
    soft_count,
    train_autoencoder,
)
from ganfp.membership import distances, scorers
from ganfp.membership.features import downsample
from ganfp.membership.ssim import C1, C2, gaussian_window
from ganfp.errors import InputError

CPU = torch.device("cpu")
TINY_AE = AutoencoderConfig(size=16, width=8, code=16, steps=150, batch_size=16)


@pytest.fixture(scope="module")
def case():
    return membership_case(seed=0)


def features(case, spec):
    space = parse_features(spec)
    real, gen = downsample(torch.from_numpy(case["real"]), space.size), downsample(torch.from_numpy(case["generated"]), space.size)
    if space.kind == "pixels":
        real, gen = real.flatten(1), gen.flatten(1)
    return Neighbours(real, gen, space.metric, CPU)


def used_rank_first(scores, used) -> None:
    """Every used image scores above every image that was not used."""
    assert roc_auc_score(used, scores) == 1.0, (np.round(scores, 3), used)


@pytest.mark.parametrize("spec", ["pixels16", "pixels32", "ssim16", "ssim32"])
@pytest.mark.parametrize("scorer", [knn_scores, retrieval_scores, density_scores])
def test_neighbour_scorers_rank_used_images_first(case, spec, scorer):
    used_rank_first(scorer(features(case, spec), 3), case["used"])


@pytest.mark.parametrize("scorer", [knn_scores, retrieval_scores, density_scores])
def test_blocked_passes_give_the_same_scores_as_the_whole_matrix(case, monkeypatch, scorer):
    whole = scorer(features(case, "ssim16"), 3)
    monkeypatch.setattr(scorers, "MATRIX_LIMIT", 0)
    monkeypatch.setitem(distances.BLOCK_BUDGET, "cpu", 2 * 9 * 64 * 5)  # several blocks each way
    blocked = scorer(features(case, "ssim16"), 3)
    np.testing.assert_allclose(blocked, whole, rtol=1e-3)  # float32 SSIM near 1, summed in another order
    assert np.array_equal(np.argsort(blocked), np.argsort(whole))


def test_knn_is_the_calibrated_ratio(case):
    nb = features(case, "pixels32")
    d_gen = torch.cdist(nb.real.double(), nb.generated.double()).topk(2, largest=False).values.mean(1)
    within = torch.cdist(nb.real.double(), nb.real.double()).fill_diagonal_(float("inf"))
    d_real = within.topk(2, largest=False).values.mean(1)
    np.testing.assert_allclose(knn_scores(nb, 2), (d_real / d_gen).numpy(), rtol=1e-4)


def test_retrieval_counts_votes_of_generated_images(case):
    nb = features(case, "pixels32")
    votes = np.bincount(torch.cdist(nb.generated, nb.real).argmin(1).numpy(), minlength=len(nb.real))
    assert np.array_equal(np.floor(retrieval_scores(nb, 1)), votes)  # the tie-break stays below one vote


def test_autoencoder_trained_on_generated_images_reconstructs_used_ones_better(case):
    gen, real = downsample(torch.from_numpy(case["generated"]), 16), downsample(torch.from_numpy(case["real"]), 16)
    model = train_autoencoder(gen, TINY_AE, seed=0, device=CPU)
    used_rank_first(reconstruction_scores(model, real, CPU), case["used"])


def test_autoencoder_same_seed_same_numbers(case):
    gen, real = downsample(torch.from_numpy(case["generated"]), 16), downsample(torch.from_numpy(case["real"]), 16)
    cfg = AutoencoderConfig(size=16, width=8, code=16, steps=20, batch_size=16)
    runs = [reconstruction_scores(train_autoencoder(gen, cfg, seed=s, device=CPU), real, CPU) for s in (3, 3, 4)]
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


@pytest.mark.parametrize("exclude_self", [False, True])
def test_blocked_nearest_matches_brute_force(monkeypatch, exclude_self):
    monkeypatch.setitem(distances.BLOCK_BUDGET, "cpu", 3 * 64 * 7)  # force many small blocks
    g = torch.Generator().manual_seed(0)
    queries = torch.randn(50, 8, generator=g)
    refs = queries if exclude_self else torch.randn(300, 8, generator=g)
    d, i = nearest(queries, refs, 4, Euclidean(), CPU, exclude_self=exclude_self)
    full = torch.cdist(queries.double(), refs.double())
    if exclude_self:
        full.fill_diagonal_(float("inf"))
    expected = full.topk(4, largest=False)
    np.testing.assert_allclose(d.numpy(), expected.values.numpy(), atol=1e-4)
    assert torch.equal(i, expected.indices)


def test_soft_count_matches_brute_force(monkeypatch):
    monkeypatch.setitem(distances.BLOCK_BUDGET, "cpu", 3 * 64 * 5)
    g = torch.Generator().manual_seed(1)
    queries, refs = torch.randn(40, 4, generator=g), torch.randn(200, 4, generator=g)
    d = torch.cdist(queries.double(), refs.double())
    expected = (1 - (d / 1.5) ** 2).clamp_min(0).sum(1)
    np.testing.assert_allclose(soft_count(queries, refs, 1.5, Euclidean(), CPU).numpy(), expected.numpy(), atol=1e-4)


def ssim_direct(x: torch.Tensor, y: torch.Tensor, window: int = 7, stride: int = 3) -> float:
    """SSIM of one pair by convolution (Wang et al.'s formula, Gaussian windows every `stride` px)."""
    w = gaussian_window(window, 1.5).view(1, 1, window, window)
    x, y = x[None, None].double(), y[None, None].double()
    w = w.double()
    mx, my = F.conv2d(x, w, stride=stride), F.conv2d(y, w, stride=stride)
    vx = F.conv2d(x * x, w, stride=stride) - mx**2
    vy = F.conv2d(y * y, w, stride=stride) - my**2
    cov = F.conv2d(x * y, w, stride=stride) - mx * my
    return float((((2 * mx * my + C1) * (2 * cov + C2)) / ((mx**2 + my**2 + C1) * (vx + vy + C2))).mean())


def test_batched_ssim_matches_the_direct_formula():
    g = torch.Generator().manual_seed(2)
    a, b = torch.rand(4, 24, 24, generator=g), torch.rand(5, 24, 24, generator=g)
    metric = SSIMDistance(24)
    expected = torch.tensor([[ssim_direct(x, y) for y in b] for x in a])
    np.testing.assert_allclose(metric.similarity(a, b).numpy(), expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(metric.pairwise(a, a).diagonal().numpy(), 0.0, atol=1e-5)  # identical: distance 0


def test_ranks_and_fusion():
    assert normalised_ranks([3.0, 1.0, 3.0, 2.0]).tolist() == [5 / 6, 0.0, 5 / 6, 1 / 3]
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([40.0, 30.0, 20.0, 10.0])
    np.testing.assert_allclose(fuse({"a": a, "b": b}), 0.5)  # opposite rankings cancel
    np.testing.assert_allclose(fuse({"a": a, "b": b}, {"a": 1.0, "b": 0.0}), normalised_ranks(a))
    with pytest.raises(ValueError):
        fuse({"a": a}, {"a": 0.0})


def test_roc_auc_and_weights():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    s = rng.normal(size=60) + y
    s[:5] = s[5]  # ties
    assert roc_auc(s, y) == pytest.approx(roc_auc_score(y, s))
    good, bad = y + rng.normal(0, 0.1, 60), -y.astype(float)
    weights = fit_weights({"good": good, "bad": bad}, y)
    assert weights["good"] == pytest.approx(0.5) and weights["bad"] == 0.0


def test_calibration_prefers_the_informative_scorer():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(20, int), np.zeros(20, int)]
    informative = y + rng.normal(0, 0.3, 40)
    noise = rng.normal(size=40)
    candidates = [Candidate("noise", None, {"noise": noise}), Candidate("knn", 3, {"knn": informative}),
                  Candidate("fusion", 3, {"knn": informative, "noise": noise})]
    choice = choose(candidates, y, seed=0)
    assert choice.method in ("knn", "fusion") and choice.cv_f1 > 0.8
    assert 0.3 <= choice.used_fraction <= 0.7
    assert choice.table[-1]["method"] == "noise"
    assert choose(candidates, y, seed=0).table == choice.table  # seeded folds: same choice every time
    with pytest.raises(InputError, match="at least 2 used"):
        choose(candidates[:1], np.r_[1, np.zeros(39, int)])


@pytest.mark.parametrize("spec,label", [("pixels", "pixels64"), ("ssim24", "ssim24"), ("checkpoint", "checkpoint"),
                                        ("resnet18", "resnet18 (imagenet)")])
def test_feature_specs(spec, label):
    assert parse_features(spec).label == label


@pytest.mark.parametrize("spec", ["pixels4", "nonsense-model", "ssimx"])
def test_bad_feature_specs_are_input_errors(spec):
    with pytest.raises(InputError, match="--features"):
        parse_features(spec)
