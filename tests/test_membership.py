"""The machinery under the membership scorers, each piece against an independent computation.

Blocked nearest neighbours and counts against brute force, SSIM against a plain loop over the
paper's equations, shifted NCC against numpy's correlation of every shift, the knn log ratio and the
retrieval votes against their definitions, rank fusion, and calibration's decision rules.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.membership_cases import membership_case
from sklearn.metrics import roc_auc_score

from ganfp.errors import InputError
from ganfp.membership import (
    SPACE_KINDS,
    AutoencoderConfig,
    Candidate,
    Euclidean,
    Neighbours,
    Recipe,
    ShiftedNCC,
    SSIMDistance,
    choose,
    fuse,
    knn_scores,
    local_scores,
    nearest,
    normalised_ranks,
    parse_features,
    reconstruction_scores,
    retrieval_scores,
    soft_count,
    train_autoencoder,
)
from ganfp.membership import distances, scorers, whiten
from ganfp.membership.autoencoder import cached_autoencoder
from ganfp.membership.calibrate import MIN_GAIN, fold_aucs, folds, pick, switch_gain, weighted_auc
from ganfp.membership.features import downsample
from ganfp.membership.scorers import TYPICAL_FIT_MIN, beyond_typical

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")
TINY_AE = AutoencoderConfig(size=16, width=8, code=16, steps=150, batch_size=16)


@pytest.fixture(scope="module")
def case():
    return membership_case(seed=0)


def neighbours(case, spec):
    space = parse_features(spec)
    real = space.features(downsample(torch.from_numpy(case["real"]), space.size))
    gen = space.features(downsample(torch.from_numpy(case["generated"]), space.size))
    return Neighbours(real, gen, space.metric, CPU)


@pytest.mark.parametrize("method", scorers.SCORERS.names(needs="neighbours"))
def test_blocked_passes_give_the_same_scores_as_the_whole_matrix(case, monkeypatch, method):
    scorer = scorers.SCORERS.get(method)
    spec = "std16" if scorers.SCORERS.entry(method).meta.get("vectors_only") else "ssim16"
    whole = scorer(neighbours(case, spec), 3)
    monkeypatch.setattr(scorers, "MATRIX_LIMIT", 0)
    monkeypatch.setitem(distances.BLOCK_BUDGET, "cpu", 2 * 9 * 64 * 5)  # several blocks each way
    blocked = scorer(neighbours(case, spec), 3)
    np.testing.assert_allclose(blocked, whole, rtol=1e-3)  # float32 SSIM near 1, summed in another order
    assert np.array_equal(np.argsort(blocked), np.argsort(whole))


def test_knn_is_the_log_of_the_calibrated_ratio(case):
    nb = neighbours(case, "pixels32")
    d_gen = torch.cdist(nb.real.double(), nb.generated.double()).topk(2, largest=False).values.mean(1)
    within = torch.cdist(nb.real.double(), nb.real.double()).fill_diagonal_(float("inf"))
    d_real = within.topk(2, largest=False).values.mean(1)
    np.testing.assert_allclose(knn_scores(nb, 2), np.log((d_real / d_gen).numpy()), rtol=1e-4, atol=1e-6)


def test_local_is_the_log_ratio_of_least_squares_residuals(case):
    nb = neighbours(case, "std16")
    k, ridge = 2, 0.1  # below the caps for small sets (16 real, 32 generated)

    def residual(x, refs):
        weights = np.linalg.solve(refs @ refs.T + ridge * np.eye(len(refs)), refs @ x)
        return np.linalg.norm(x - weights @ refs)

    real, gen = nb.real.double().numpy(), nb.generated.double().numpy()
    d_gen = ((real[:, None] - gen[None]) ** 2).sum(-1)
    d_real = ((real[:, None] - real[None]) ** 2).sum(-1) + np.diag(np.full(len(real), np.inf))
    expected = [np.log(residual(x, real[np.argsort(dr)[:k]])) - np.log(residual(x, gen[np.argsort(dg)[:k]]))
                for x, dg, dr in zip(real, d_gen, d_real)]
    np.testing.assert_allclose(local_scores(nb, k, ridge), expected, rtol=1e-4, atol=1e-6)


def test_closeness_is_judged_against_its_fit_on_the_real_neighbourhood():
    """With enough real images, log d_G is regressed on log d_R and the score is the shortfall from that fit."""
    rng = np.random.default_rng(0)
    d_real = np.exp(rng.normal(0, 1, 60))
    d_gen = np.exp(0.5 * np.log(d_real) + rng.normal(0, 0.1, 60))
    slope, intercept = np.polyfit(np.log(d_real), np.log(d_gen), 1)
    np.testing.assert_allclose(beyond_typical(d_gen, d_real), slope * np.log(d_real) + intercept - np.log(d_gen))
    few = slice(0, TYPICAL_FIT_MIN - 1)  # too few images to fit a slope: the plain log ratio
    np.testing.assert_allclose(beyond_typical(d_gen[few], d_real[few]), np.log(d_real[few] / d_gen[few]))


def test_the_spread_of_the_generated_set_is_a_second_term_of_the_fit():
    """Closeness to the generated set also follows how tightly the generator draws each region: with the
    spread around x as a second term, what is left is membership; the fit on d_R alone ranks regions."""
    rng = np.random.default_rng(2)
    used = np.repeat([1, 0], 100)
    log_real, log_spread = rng.normal(0, 1, 200), rng.normal(0, 1, 200)
    log_gen = 0.5 * log_real + 0.8 * log_spread - 0.3 * used + rng.normal(0, 0.1, 200)
    d_gen, d_real, spread = np.exp(log_gen), np.exp(log_real), np.exp(log_spread)
    design = np.stack([log_real, log_spread, np.ones(200)], 1)
    expected = design @ np.linalg.lstsq(design, log_gen, rcond=None)[0] - log_gen
    np.testing.assert_allclose(beyond_typical(d_gen, d_real, spread), expected, rtol=1e-6, atol=1e-8)
    with_spread = roc_auc_score(used, beyond_typical(d_gen, d_real, spread))
    without = roc_auc_score(used, beyond_typical(d_gen, d_real))
    assert with_spread > 0.9 and without < 0.75, (with_spread, without)
    # a denser region can only bring images closer: a spread that fits the other way is ignored
    np.testing.assert_allclose(beyond_typical(d_gen, d_real, 1 / spread), beyond_typical(d_gen, d_real))


def test_the_generated_images_beside_each_neighbour_are_outside_the_real_images_set():
    """For each of x's k nearest generated images: its nearest generated images, leaving out x's k (itself too)."""
    case = membership_case(seed=3, n_used=12, n_not_used=12)
    nb = neighbours({**case, "generated": np.concatenate([case["generated"], case["generated"][:5]])}, "pixels16")
    beside = nb.generated_beside(3)
    near, d, idx = beside.near, beside.distances, beside.indices
    np.testing.assert_array_equal(near, nb.real_to_generated(3)[1])
    among = torch.cdist(nb.generated.double(), nb.generated.double())
    for x in range(len(near)):
        others = among[near[x]].clone()
        others[:, near[x]] = float("inf")
        np.testing.assert_allclose(d[x], others.topk(3, largest=False).values, atol=5e-3)  # float32 |a|^2 + |b|^2 - 2ab
        assert not np.isin(idx[x].numpy(), near[x].numpy()).any()
        np.testing.assert_allclose(others.gather(1, idx[x]), d[x], atol=5e-3)
    three = Neighbours(nb.real, nb.generated[:3], nb.metric, CPU)
    assert three.generated_beside(3) is None  # no generated image outside x's three


def test_a_generator_repeating_its_training_images_is_not_explained_away_by_its_spread():
    """Exact copies are each other's nearest generated images; a spread taken among them would say the used
    images sit in a dense region and hide them. Beside x's own neighbours, and only ever adding closeness,
    the copies stay found."""
    case = membership_case(seed=5, n_used=30, n_not_used=30)
    used_images = case["real"][case["used"]]
    generated = np.concatenate([used_images] * 3 + [membership_case(seed=6, n_used=30, n_not_used=0)["real"]])
    for spec in ("pixels16", "wstd16"):
        space = parse_features(spec)
        real, gen = (downsample(torch.from_numpy(a), space.size) for a in (case["real"], generated))
        real, gen = space.pair(real, gen) if space.kind == "wstd" else (space.features(real), space.features(gen))
        nb = Neighbours(real, gen, space.metric, CPU)
        assert roc_auc_score(case["used"], knn_scores(nb, 3)) > 0.99, spec


def test_knn_and_local_read_the_spread_around_each_real_image():
    """With enough real images for a fit, knn's and local's third term is their own measure taken beside x:
    for each of x's generated neighbours, the mean distance to, or the residual fit by, its k nearest
    generated images outside x's k."""
    case = membership_case(seed=4, n_used=12, n_not_used=12)
    nb, k = neighbours(case, "std16"), 3
    real, gen = nb.real.double(), nb.generated.double()
    near = torch.cdist(real, gen).topk(k, largest=False).indices
    beside = []
    for x in range(len(real)):
        others = torch.cdist(gen[near[x]], gen)
        others[:, near[x]] = float("inf")
        beside.append(others.topk(k, largest=False))
    d_gen = torch.cdist(real, gen).topk(k, largest=False).values.mean(1).numpy()
    d_real = torch.cdist(real, real).fill_diagonal_(float("inf")).topk(k, largest=False).values.mean(1).numpy()
    spread = np.array([b.values.mean().item() for b in beside])
    np.testing.assert_allclose(knn_scores(nb, k), beyond_typical(d_gen, d_real, spread), atol=5e-4)  # float32 distances
    e_gen = scorers.reconstruction_error(nb.real, nb.generated, near, scorers.LOCAL_RIDGE)
    real_near = torch.cdist(real, real).fill_diagonal_(float("inf")).topk(k, largest=False).indices
    e_real = scorers.reconstruction_error(nb.real, nb.real, real_near, scorers.LOCAL_RIDGE)
    e_beside = [scorers.reconstruction_error(nb.generated[near[x]], nb.generated, b.indices, scorers.LOCAL_RIDGE).mean()
                for x, b in enumerate(beside)]
    np.testing.assert_allclose(local_scores(nb, k), beyond_typical(e_gen, e_real, np.array(e_beside)), atol=5e-4)


def test_the_fit_finds_members_that_a_full_division_by_typicality_hides():
    """Closeness to the generated set grows more slowly than closeness to the real images (slope 0.5 here):
    dividing by d_R then ranks by typicality, while the fit ranks by what is left, the membership."""
    rng = np.random.default_rng(1)
    used = np.repeat([1, 0], 100)
    log_real = rng.normal(0, 1, 200)
    log_gen = 0.5 * log_real - 0.3 * used + rng.normal(0, 0.1, 200)
    fitted = roc_auc_score(used, beyond_typical(np.exp(log_gen), np.exp(log_real)))
    ratio = roc_auc_score(used, log_real - log_gen)
    assert fitted > 0.9 and ratio < 0.75, (fitted, ratio)


def test_local_refuses_image_metrics(case):
    with pytest.raises(ValueError, match="vectors"):
        local_scores(neighbours(case, "ncc16"), 4)


def test_retrieval_counts_votes_of_generated_images(case):
    nb = neighbours(case, "pixels32")
    votes = np.bincount(torch.cdist(nb.generated, nb.real).argmin(1).numpy(), minlength=len(nb.real))
    assert np.array_equal(np.floor(retrieval_scores(nb, 1)), votes)  # the tie-break stays below one vote


def test_autoencoder_trained_on_generated_images_reconstructs_used_ones_better(case):
    gen, real = downsample(torch.from_numpy(case["generated"]), 16), downsample(torch.from_numpy(case["real"]), 16)
    model = train_autoencoder(gen, TINY_AE, seed=0, device=CPU)
    assert roc_auc_score(case["used"], reconstruction_scores(model, real, CPU)) > 0.9


def test_autoencoder_same_seed_same_numbers(case):
    gen, real = downsample(torch.from_numpy(case["generated"]), 16), downsample(torch.from_numpy(case["real"]), 16)
    cfg = AutoencoderConfig(size=16, width=8, code=16, steps=20, batch_size=16)
    runs = [reconstruction_scores(train_autoencoder(gen, cfg, seed=s, device=CPU), real, CPU) for s in (3, 3, 4)]
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_autoencoder_leaves_the_callers_rng_alone_on_every_device(case, monkeypatch):
    """Its init is seeded in a fork of the CPU's and the training device's RNG: seeding every GPU (torch.manual_seed)
    reset the random numbers of a notebook's other GPUs, which the fork does not put back."""
    seeded_all = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", seeded_all.append)
    gen = downsample(torch.from_numpy(case["generated"]), 16)
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    train_autoencoder(gen, AutoencoderConfig(size=16, width=8, code=16, steps=2, batch_size=16), seed=0, device=CPU)
    assert torch.equal(torch.rand(3), expected) and seeded_all == [7, 7]  # the test's own two seeds only


def test_a_cached_autoencoder_leaves_the_callers_rng_alone(case, tmp_path):
    """Trained, then loaded from the cache: the net built to load into drew from the caller's RNG, so a notebook's
    random numbers after `classify(..., calibrate_on=...)` depended on whether it had scored."""
    gen = downsample(torch.from_numpy(case["generated"]), 16)
    config = AutoencoderConfig(size=16, width=8, code=16, steps=2, batch_size=16)
    for _ in range(2):
        torch.manual_seed(7)
        expected = torch.rand(3)
        torch.manual_seed(7)
        cached_autoencoder(gen, "generated-key", config, seed=0, device=CPU, cache_dir=tmp_path)
        assert torch.equal(torch.rand(3), expected)
    assert len(list(tmp_path.glob("*.safetensors"))) == 1


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


def test_nearest_in_groups_matches_brute_force_per_group(monkeypatch):
    """Groups that straddle blocks, one smaller than k (padded) and one empty: each group's own k nearest."""
    monkeypatch.setitem(distances.BLOCK_BUDGET, "cpu", 3 * 64 * 7)  # reference blocks of 7
    g = torch.Generator().manual_seed(2)
    queries, refs = torch.randn(50, 8, generator=g), torch.randn(300, 8, generator=g)
    bounds = [0, 2, 100, 100, 300]
    d, i = distances.nearest_in_groups(queries, refs, 4, Euclidean(), CPU, bounds)
    full = torch.cdist(queries.double(), refs.double())
    assert torch.equal(i[:, 0, 2:], torch.full((50, 2), -1)) and torch.isinf(d[:, 0, 2:]).all()
    assert torch.equal(i[:, 2], torch.full((50, 4), -1))
    for group, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        if hi > lo:
            expected = full[:, lo:hi].topk(min(4, hi - lo), largest=False)
            width = expected.indices.shape[1]
            np.testing.assert_allclose(d[:, group, :width].numpy(), expected.values.numpy(), atol=1e-4)
            assert torch.equal(i[:, group, :width], expected.indices + lo)


def test_soft_count_matches_brute_force(monkeypatch):
    monkeypatch.setitem(distances.BLOCK_BUDGET, "cpu", 3 * 64 * 5)
    g = torch.Generator().manual_seed(1)
    queries, refs = torch.randn(40, 4, generator=g), torch.randn(200, 4, generator=g)
    d = torch.cdist(queries.double(), refs.double())
    expected = (1 - (d / 1.5) ** 2).clamp_min(0).sum(1)
    np.testing.assert_allclose(soft_count(queries, refs, 1.5, Euclidean(), CPU).numpy(), expected.numpy(), atol=1e-4)


def ssim_by_loops(x: np.ndarray, y: np.ndarray, window: int = 7, stride: int = 3, sigma: float = 1.5) -> float:
    """Mean SSIM written from Wang et al. (2004), eq. 13-14, with plain loops over window positions."""
    c1, c2 = (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2
    offsets = np.arange(window) - (window - 1) / 2
    g1 = np.exp(-offsets**2 / (2 * sigma**2))
    w = np.outer(g1, g1) / np.outer(g1, g1).sum()
    values = []
    for top in range(0, x.shape[0] - window + 1, stride):
        for left in range(0, x.shape[1] - window + 1, stride):
            a, b = x[top : top + window, left : left + window], y[top : top + window, left : left + window]
            mu_a, mu_b = (w * a).sum(), (w * b).sum()
            var_a, var_b = (w * (a - mu_a) ** 2).sum(), (w * (b - mu_b) ** 2).sum()
            cov = (w * (a - mu_a) * (b - mu_b)).sum()
            values.append((2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return float(np.mean(values))


def test_batched_ssim_matches_the_papers_equations():
    rng = np.random.default_rng(2)
    a, b = rng.random((3, 20, 20)), rng.random((4, 20, 20))
    b[0] = np.clip(a[0] + rng.normal(0, 0.05, (20, 20)), 0, 1)  # one similar pair, far from 0
    metric = SSIMDistance(20)
    got = metric.similarity(torch.from_numpy(a).float(), torch.from_numpy(b).float()).numpy()
    expected = np.array([[ssim_by_loops(x, y) for y in b] for x in a])
    np.testing.assert_allclose(got, expected, atol=2e-5)
    assert expected[0, 0] > 0.5


def test_shifted_ncc_is_the_best_correlation_over_shifts():
    rng = np.random.default_rng(3)
    a, b = rng.random((3, 16, 16)), rng.random((5, 16, 16))
    b[1] = 3.0 * np.roll(a[0], (2, -1), axis=(0, 1)) + 7.0  # shifted and re-contrasted copy of a[0]
    metric = ShiftedNCC(16, 2)
    got = metric.pairwise(torch.from_numpy(a).float(), torch.from_numpy(b).float()).numpy()
    crop = 12
    for i in range(3):
        for j in range(5):
            centre = b[j, 2 : 2 + crop, 2 : 2 + crop].ravel()
            best = max(np.corrcoef(a[i, dy : dy + crop, dx : dx + crop].ravel(), centre)[0, 1]
                       for dy in range(5) for dx in range(5))
            assert got[i, j] == pytest.approx(1 - best, abs=1e-5)
    assert got[0, 1] == pytest.approx(0.0, abs=1e-5)


def smooth_images(rng, n: int, size: int = 32) -> torch.Tensor:
    """Random fields with most of their power at low frequencies, like CT slices."""
    x = torch.from_numpy(rng.normal(size=(n, 1, size // 4, size // 4))).float()
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)[:, 0]


def low_frequency_share(images: torch.Tensor) -> float:
    """Share of the images' power below 1/8 cycle per pixel (about 5% of the frequencies)."""
    power = torch.fft.fft2(images - images.mean((-2, -1), keepdim=True)).abs().square().mean(0)
    f = torch.fft.fftfreq(images.shape[-1]).abs()
    return float(power[torch.maximum(f[:, None], f[None, :]) < 0.125].sum() / power.sum())


def test_whitening_takes_the_power_away_from_the_outline():
    """Raw slices put most power in the lowest frequencies; whitened, fine detail weighs as much."""
    rng = np.random.default_rng(0)
    real, generated = smooth_images(rng, 40), smooth_images(rng, 200)
    assert low_frequency_share(generated) > 0.5
    assert low_frequency_share(whiten.whiten_by_generated(real, generated)[1]) < 0.15


def test_whitening_turns_down_noise_the_real_images_do_not_have():
    """Where only the generated images have power (added noise), whitening must not amplify it."""
    rng = np.random.default_rng(1)
    real, generated = smooth_images(rng, 60), smooth_images(rng, 200)
    noisy = generated + torch.from_numpy(rng.normal(0, 0.05, generated.shape)).float()
    guard = whiten.whitening_filter(real, noisy) * whiten.mean_power(noisy).clamp_min(1e-30).sqrt()
    rows, cols = torch.fft.fftfreq(guard.shape[0]).abs(), torch.fft.rfftfreq(guard.shape[0])  # a half spectrum
    radius = torch.maximum(rows[:, None], cols[None, :])
    assert float(guard[radius > 0.25].median()) < 0.05  # the noise band: turned down
    assert float(guard[(radius > 0) & (radius < 0.05)].median()) > 0.5  # the outline's band: plain whitening


def test_whitening_leaves_out_detail_the_generator_does_not_make():
    """A blurry generator's missing detail holds no copy of a training image: it gets no weight, not the most."""
    rng = np.random.default_rng(2)
    real = smooth_images(rng, 60) + torch.from_numpy(rng.normal(0, 0.05, (60, 32, 32))).float()  # slices with fine detail
    blurry = smooth_images(rng, 200)
    gain = whiten.whitening_filter(real, blurry)
    rows, cols = torch.fft.fftfreq(gain.shape[0]).abs(), torch.fft.rfftfreq(gain.shape[0])
    radius = torch.maximum(rows[:, None], cols[None, :])
    assert float((gain[radius > 0.3] == 0).double().mean()) > 0.95
    assert float(gain[(radius > 0) & (radius < 0.05)].min()) > 0.0


def test_a_spectral_space_never_works_above_the_decoded_size():
    assert parse_features("white48").at_most(32).size == 32
    assert parse_features("white48").at_most(256).size == 48
    assert parse_features("ncc48").at_most(32).size == 48  # interpolating is harmless where nothing is fitted


def test_ranks_and_fusion():
    assert normalised_ranks([3.0, 1.0, 3.0, 2.0]).tolist() == [5 / 6, 0.0, 5 / 6, 1 / 3]
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([40.0, 30.0, 20.0, 10.0])
    np.testing.assert_allclose(fuse({"a": a, "b": b}), 0.5)  # opposite rankings cancel
    np.testing.assert_allclose(fuse({"a": a, "b": a * 10}), normalised_ranks(a))  # scale does not matter
    np.testing.assert_allclose(fuse({"a": a, "b": b}, {"a": 3.0, "b": 1.0}), (3 * normalised_ranks(a) + normalised_ranks(b)) / 4)
    with pytest.raises(ValueError):
        fuse({})


def labelled(seed: int = 0, n: int = 40):
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n // 2, int), np.zeros(n // 2, int)]
    return rng, y


def test_calibration_prefers_the_informative_scorer():
    rng, y = labelled()
    informative, noise = y + rng.normal(0, 0.5, 40), rng.normal(size=40)
    candidates = [Candidate(Recipe("knn", "std16", 1), noise, 1), Candidate(Recipe("knn", "std32", 3), informative, 2)]
    choice = choose(candidates, y, seed=0)
    assert choice.recipe == Recipe("knn", "std32", 3) and choice.cv_auc > 0.8 and choice.leak_evidence
    assert choice.table[-1]["candidate"] == "knn std16 k=1"
    assert choose(candidates, y, seed=0).table == choice.table  # seeded folds: same choice every time
    with pytest.raises(InputError, match="at least 2 used"):
        choose(candidates[:1], np.r_[1, np.zeros(39, int)])


def test_calibration_keeps_the_default_unless_beaten_beyond_noise():
    rng, y = labelled(1, 80)
    base = y + rng.normal(0, 0.8, 80)
    default, lucky = Recipe("ensemble"), Recipe("knn", "std16", 1)
    slightly_better = base + 0.02 * y  # within noise of the default
    choice = choose([Candidate(lucky, slightly_better, 1), Candidate(default, base, 1000)], y, default=default)
    assert choice.recipe == default
    much_better = y + rng.normal(0, 0.1, 80)
    choice = choose([Candidate(lucky, much_better, 1), Candidate(default, base, 1000)], y, default=default)
    assert choice.recipe == lucky


def test_calibration_keeps_the_default_when_the_best_of_many_candidates_is_only_the_luckiest():
    """Hundreds of candidates that are the default plus noise: the best beats it in cross-validation by
    more than MIN_MARGIN by luck alone, and replaying the choice on resamples shows no gain on the
    images each resample left out, so the default stays (and the choice says why)."""
    rng, y = labelled(7, 80)
    base = y + rng.normal(0, 1.0, 80)
    default = Recipe("ensemble")
    candidates = [Candidate(default, base, 1000)]
    candidates += [Candidate(Recipe("knn", f"std{8 + i}", 1), base + rng.normal(0, 0.8, 80), 1) for i in range(200)]
    per_fold = [fold_aucs(c.scores, y, folds(y, 0)) for c in candidates]
    rows = [{"candidate": c, "order": i, "cv_auc": float(f.mean()), "noise": float(f.std(ddof=1) / np.sqrt(len(f)))}
            for i, (c, f) in enumerate(zip(candidates, per_fold))]
    assert pick(rows, default)["candidate"].recipe != default  # the margin alone would leave the default
    choice = choose(candidates, y, seed=0, default=default)
    assert choice.recipe == default and choice.switch_gain is not None and choice.switch_gain <= MIN_GAIN
    assert "the default stays" in choice.describe()


def test_weighted_auc_is_roc_auc_of_the_resample_ties_included():
    """Folds, the bootstrap interval and the switch replay read ROC-AUC from weights (how often each image
    is drawn); it must equal roc_auc_score on the resample written out, ties counted half."""
    rng, y = labelled(8, 60)
    y = y[rng.permutation(60)]
    scores = np.round(y * 0.7 + rng.normal(size=60), 1)  # rounded: many ties, across the classes too
    draws = [rng.integers(0, 60, 60) for _ in range(5)]
    counts = np.stack([np.bincount(d, minlength=60) for d in draws]).astype(float)
    got = weighted_auc(scores, y, counts[:, y == 1], counts[:, y == 0])
    np.testing.assert_allclose(got, [roc_auc_score(y[d], scores[d]) for d in draws], atol=1e-12)


def test_calibration_switch_gain_replays_a_real_improvement():
    rng, y = labelled(7, 80)
    base, better = y + rng.normal(0, 1.0, 80), y + rng.normal(0, 0.3, 80)
    scores = np.stack([base, better, base + rng.normal(0, 0.8, 80)])
    gain = switch_gain(scores, y, default=0, seed=0)
    assert gain > 0.1  # AUC about 0.76 -> 0.99 on the images each resample left out
    assert switch_gain(scores, y, default=0, seed=0) == gain  # seeded
    assert switch_gain(scores[[1, 0]], y, default=0, seed=0) == 0.0  # the default is already the best: nothing to gain


def test_calibration_never_trades_the_default_for_a_simpler_candidate_that_does_not_beat_it():
    """Once the default is beaten, the simplest candidate within noise of the best wins, but only among
    those that beat the default too: a simple candidate no better than the default is no reason to leave it."""
    default, simple, strong = Recipe("ensemble"), Recipe("knn", "std16", 1), Recipe("knn", "pixels64", 10)

    def row(recipe, cv, simplicity, order):
        return {"candidate": Candidate(recipe, np.zeros(1), simplicity), "cv_auc": cv, "noise": 0.03, "order": order}

    rows = [row(simple, 0.81, 1, 0), row(strong, 0.84, 80, 1), row(default, 0.80, 1000, 2)]
    assert pick(rows, default)["candidate"].recipe == strong  # simple is within noise of strong, not above the default
    rows[0]["cv_auc"] = 0.835  # now it beats the default beyond noise as well: the simpler one wins
    assert pick(rows, default)["candidate"].recipe == simple


def test_calibration_used_fraction_is_the_prevalence_never_the_f1_maximiser():
    rng = np.random.default_rng(4)
    y = np.r_[np.ones(30, int), np.zeros(50, int)]
    weak = y * 0.3 + rng.normal(size=80)  # F1 would be maximised by calling almost everything used
    choice = choose([Candidate(Recipe("knn", "std16", 1), weak, 1)], y)
    assert choice.used_fraction == pytest.approx(30 / 80)
    assert choose([Candidate(Recipe("knn", "std16", 1), weak, 1)], y, used_fraction=0.5).used_fraction == 0.5


def test_calibration_says_when_the_dev_set_shows_no_leak():
    rng, y = labelled(5, 80)
    choice = choose([Candidate(Recipe("knn", "std16", 1), rng.normal(size=80), 1)], y)
    lo, hi = choice.interval
    assert lo < 0.5 < hi and not choice.leak_evidence
    assert "no evidence of leakage" in choice.describe()


@pytest.mark.parametrize("kind", SPACE_KINDS.names())
def test_every_space_kind_parses_with_and_without_a_resolution(kind):
    entry = SPACE_KINDS.entry(kind)
    assert parse_features(kind).label == f"{kind}{entry.obj.default_size}"
    assert parse_features(f"{kind}24").label == f"{kind}24"


@pytest.mark.parametrize("spec,label", [("checkpoint", "checkpoint"), ("resnet18", "resnet18 (imagenet)")])
def test_deep_feature_specs(spec, label):
    assert parse_features(spec).label == label


@pytest.mark.parametrize("spec", ["pixels4", "nonsense-model", "ssimx", "std2000"])
def test_bad_feature_specs_are_input_errors(spec):
    with pytest.raises(InputError, match="--features"):
        parse_features(spec)
