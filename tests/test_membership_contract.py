"""One contract for every registered membership method and feature space (style rule 4).

Each method, through the same pipeline `ganfp classify` uses, gives finite float64 scores, one
per real image, follows the images when they are shuffled, repeats itself for the same seed,
and ranks used images above unused ones on a fixture where the scorers do not all reach 1.0.
The classifier needs a trained checkpoint and has its own tests (test_membership_cache.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.membership_cases import hard_case, save
from sklearn.metrics import roc_auc_score

from ganfp.data.generated import generated_manifest
from ganfp.data.real import read_real
from ganfp.membership import DEFAULT_ENSEMBLE, SCORERS, SPACE_KINDS, AutoencoderConfig, MembershipScorer, Recipe, ScoringSetup

pytestmark = pytest.mark.usefixtures("one_torch_thread")
METHODS = [name for name in SCORERS.names() if SCORERS.entry(name).meta["needs"] != "checkpoint"]
TINY_AE = AutoencoderConfig(size=16, width=8, code=16, steps=150, batch_size=16)


@pytest.fixture(scope="module")
def hard(tmp_path_factory):
    root = tmp_path_factory.mktemp("hard")
    case = hard_case(seed=0)
    ids = save(root / "real", "real", case["real"])
    save(root / "generated", "gen", case["generated"])
    real, gen = read_real(str(root / "real")), generated_manifest(root / "generated")
    used = dict(zip(ids, case["used"]))
    return real, gen, np.array([used[i] for i in real.ids]), root


def scores_of(real, gen, recipe: Recipe, data_root, seed: int = 0) -> np.ndarray:
    setup = ScoringSetup(32, torch.device("cpu"), data_root=data_root, seed=seed, autoencoder=TINY_AE)
    return MembershipScorer(real, gen, setup).score(recipe)


def recipe_for(method: str) -> Recipe:
    meta = SCORERS.entry(method).meta
    return Recipe(method, "std16" if meta["uses_features"] else None, 3 if meta["uses_k"] else None)


@pytest.mark.parametrize("method", METHODS)
def test_scores_are_finite_float64_one_per_real_image(hard, method):
    real, gen, _, root = hard
    s = scores_of(real, gen, recipe_for(method), root / "data")
    assert s.dtype == np.float64 and s.shape == (len(real),) and np.isfinite(s).all()


@pytest.mark.parametrize("method", METHODS)
def test_shuffling_the_real_images_shuffles_their_scores(hard, method):
    real, gen, _, root = hard
    perm = np.random.default_rng(1).permutation(len(real))
    s = scores_of(real, gen, recipe_for(method), root / "data")
    shuffled = scores_of(real.subset(perm), gen, recipe_for(method), root / "data")
    np.testing.assert_allclose(shuffled, s[perm], rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_scores(hard, method, tmp_path):
    real, gen, _, _ = hard
    a = scores_of(real, gen, recipe_for(method), tmp_path / "a", seed=7)
    b = scores_of(real, gen, recipe_for(method), tmp_path / "b", seed=7)  # separate caches: computed twice
    assert np.array_equal(a, b)


@pytest.mark.parametrize("method", METHODS)
def test_used_images_rank_above_unused_ones(hard, method):
    real, gen, used, root = hard
    assert roc_auc_score(used, scores_of(real, gen, recipe_for(method), root / "data")) > 0.7


@pytest.mark.parametrize("method", [e.name for e in SCORERS if e.meta["uses_k"] and e.meta["needs"] != "members"])
def test_every_scorer_of_k_says_the_k_it_uses(method):
    """classify's k warning reads `ks_used` of each member of a recipe: a scorer of k without it failed the warning
    after the scoring, and one whose ks were more than asked or than a set holds would have it name ks never used.
    None: no pass of the scorer takes k neighbours in that set (density's real images); k is used in one at least."""
    ks_used = SCORERS.entry(method).meta["ks_used"]
    for k, n_generated, n_other_real in ((1, 1, 1), (5, 3, 40), (40, 300, 99), (40, 10_000, 199)):
        used = ks_used(k, n_generated, n_other_real)
        assert len(used) == 2 and any(n_used is not None for n_used in used), used
        assert all(n_used is None or 1 <= n_used <= min(k, n)
                   for n_used, n in zip(used, (n_generated, n_other_real))), used


@pytest.mark.parametrize("kind", SPACE_KINDS.names())
def test_every_feature_space_ranks_used_images_first(hard, kind):
    real, gen, used, root = hard
    assert roc_auc_score(used, scores_of(real, gen, Recipe("knn", f"{kind}16", 3), root / "data")) > 0.75


def test_the_fixture_separates_the_scorers(hard):
    """Not every recipe reaches AUC 1.0 here, so the ordering tests above can tell scorers apart."""
    real, gen, used, root = hard
    aucs = [roc_auc_score(used, scores_of(real, gen, recipe_for(m), root / "data")) for m in METHODS]
    assert min(aucs) < 0.97 and max(aucs) - min(aucs) > 0.05


def test_classify_help_names_every_registered_method_and_space(run_cli):
    """The help is static text (importing the registries would cost `ganfp --help` its speed): it must not drift."""
    code, out, _ = run_cli("classify", "--help")
    help_text = " ".join(out.split())
    assert code == 0
    for name in SCORERS.names():
        assert name in help_text, name
    for kind in SPACE_KINDS.names():
        assert f"{kind}[N]" in help_text, kind


def test_the_ensemble_adds_log_ratios_of_its_members(hard):
    """Members must share one scale (log closeness ratios, 0 = no evidence) for their sum to mean anything."""
    real, gen, _, root = hard
    scorer = MembershipScorer(real, gen, ScoringSetup(32, torch.device("cpu"), data_root=root))
    members = scorer.members(Recipe("ensemble"))
    assert all(SCORERS.entry(r.method).meta.get("log_ratio") for r, _ in DEFAULT_ENSEMBLE)
    expected = sum(w * members[r.label] for r, w in DEFAULT_ENSEMBLE) / sum(w for _, w in DEFAULT_ENSEMBLE)
    np.testing.assert_allclose(scorer.score(Recipe("ensemble")), expected)
