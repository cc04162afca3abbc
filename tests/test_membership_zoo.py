"""The default membership recipe on tiny versions of the generator zoo's families.

Each fixture is a real generator fitted on "used" slices (ganfp.data.zoo), small enough for CI and
hard enough that the scorers differ: the default must rank used above not-used images on every
family and beat GAN-Leaks there, while 0.1.0's default (knn in SSIM space) fails the memoriser
whose shifts are drawn uniformly.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ganfp.classify import dev_sets
from ganfp.data.zoo import build_split, write_split
from ganfp.membership import DEFAULT_METHOD, MembershipScorer, Recipe, ScoringSetup, parse_features
from ganfp.membership.scorers import LOCAL_SHARE

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FAMILIES = {  # name: build_split arguments of a tiny split at 32 px
    "memoriser": dict(used=40, not_used=40, generated=300, quick=True),
    "memoriser-uniform": dict(used=40, not_used=40, generated=300, quick=True),
    "pcagmm": dict(used=60, not_used=60, generated=240),
    "vae": dict(used=60, not_used=60, generated=240),
}


def tiny_family(name: str, root):
    """(name, scorer, used labels) of a tiny dev split of one zoo family."""
    write_split(build_split(name, 1, size=32, **FAMILIES[name]), root / "dev", layout="dev")
    real, generated = dev_sets(str(root / "dev"))
    y = (real.labels == real.classes.index("used")).astype(int)
    return name, MembershipScorer(real, generated, ScoringSetup(32, data_root=root / "data")), y


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    return tiny_family(request.param, tmp_path_factory.mktemp(request.param))


def auc_of(family, recipe: Recipe) -> float:
    _, scorer, y = family
    return roc_auc_score(y, scorer.score(recipe))


def gan_leaks_auc(family) -> float:
    _, scorer, y = family
    return roc_auc_score(y, -scorer.neighbours(parse_features("pixels32")).real_to_generated(1)[0][:, 0].numpy())


def test_the_default_finds_the_used_images_and_beats_gan_leaks(family):
    default = auc_of(family, Recipe(DEFAULT_METHOD))
    assert default >= 0.85 and default >= gan_leaks_auc(family) + 0.04, (family[0], default, gan_leaks_auc(family))


def test_the_fixture_separates_the_scorers(family):
    """Some single recipe falls clearly below the default, so the test above can tell scorers apart."""
    default = auc_of(family, Recipe(DEFAULT_METHOD))
    singles = [Recipe("knn", "pixels32", 10), Recipe("knn", "ssim32", 10), Recipe("knn", "ncc32", 10)]
    assert min(auc_of(family, r) for r in singles) < default - 0.05


def test_the_old_ssim_default_misses_the_memorisers_shifted_copies(tmp_path):
    """SSIM compares without a shift search: copies shifted by up to the memoriser's bound escape it."""
    memoriser = tiny_family("memoriser-uniform", tmp_path)
    assert auc_of(memoriser, Recipe("knn", "ssim32", 10)) < 0.85
    assert auc_of(memoriser, Recipe(DEFAULT_METHOD)) > 0.95


def test_local_with_k_above_the_set_sizes_still_ranks(family):
    """k is capped for small sets: 1,000 neighbours of 80 real images must not span everything."""
    _, scorer, _ = family
    capped = max(len(scorer.generated) // LOCAL_SHARE[0], (len(scorer.real) - 1) // LOCAL_SHARE[1])
    np.testing.assert_allclose(scorer.score(Recipe("local", "std32", 1000)), scorer.score(Recipe("local", "std32", capped)))
    assert auc_of(family, Recipe("local", "std32", 1000)) > 0.7


def test_no_leak_control_stays_near_chance(tmp_path):
    write_split(build_split("noleak", 1, used=60, not_used=60, generated=240, size=32), tmp_path / "dev", layout="dev")
    real, generated = dev_sets(str(tmp_path / "dev"))
    y = (real.labels == real.classes.index("used")).astype(int)
    scores = MembershipScorer(real, generated, ScoringSetup(32, data_root=tmp_path / "data")).score(Recipe(DEFAULT_METHOD))
    assert abs(roc_auc_score(y, scores) - 0.5) < 0.15  # 120 images: chance has a standard error of about 0.05
    assert np.isfinite(scores).all()
