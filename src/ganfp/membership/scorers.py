"""Neighbour scorers: how close each real image sits to the generated set (higher = more likely used).

All three read the same distances between real and generated images (and among the real ones),
held by `Neighbours`. At the task's scale (200 x 10,000) the whole matrix is small, so one pass of
an expensive metric such as SSIM serves every scorer and every k; beyond `MATRIX_LIMIT` each
question is answered by its own blocked pass, never holding the full matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ganfp.errors import ArgumentError
from ganfp.membership.distances import Euclidean, Metric, nearest, pairwise_matrix, soft_count
from ganfp.registry import Registry

Progress = Callable[[str, int, int], None]
DENSITY_QUANTILE = 0.5  # the ball holds k generated images for this fraction of the real ones
MATRIX_LIMIT = 1 << 26  # distances (256 MB) up to which a whole matrix is kept
BESIDE_CHUNK = 64  # real or generated images whose (k, candidates, ...) blocks are held at a time

# Every method by name. meta: needs = what it reads ("neighbours": a Neighbours of one feature
# space; "generated": the generated images; "checkpoint": a trained classifier; "members": other
# scorers); uses_k / uses_features = whether k / the feature space change its scores;
# vectors_only = it needs a vector space (not ssim or ncc); log_ratio = its scores are on a log
# scale of closeness to the generated set against closeness to the real images (0 = no more than
# the real images predict), so the ensemble can add them; ks_used (every neighbour scorer that uses
# k) = (k, generated images, other real images) -> the k its passes really use in each set (None in
# a set no pass of it takes k neighbours in), what the scorer reads and classify's k warning says.
# pipeline.py registers the methods that are not neighbour scorers; options, calibration,
# benchmarks and the contract tests all iterate this.
SCORERS: Registry[Callable] = Registry("method")
# the sets ks_used gives a k for, in its order: each one's name (in --json) and what it holds (in words)
KS_USED_SETS = (("generated", "generated image"), ("other_real", "other real image"))


def whole_sets(k: int, n_generated: int, n_other_real: int) -> tuple[int, int]:
    """The k a neighbour pass uses in each set: k, or the whole set where it holds fewer (it cannot find more)."""
    return min(k, n_generated), min(k, n_other_real)


def generated_k_only(k: int, n_generated: int, n_other_real: int) -> tuple[int, None]:
    """density's k: its k-th nearest generated images set the ball's radius; the real images are counted in the
    ball whatever k is, so no k of theirs can be cut (`whole_sets` had a --k above them said to use them all)."""
    return min(k, n_generated), None


@dataclass(frozen=True)
class Beside:
    """The generated images beside each real image's own: for each of x's k nearest generated images
    (`near`, n x k), its nearest other generated images (`candidates[rows]`), of which `picks`
    (n x k x k', positions in those rows) lie outside x's k, at `distances`."""

    near: torch.Tensor
    among: torch.Tensor  # the generated images in `near`, sorted; row i of candidates belongs to among[i]
    candidates: torch.Tensor
    rows: torch.Tensor  # (n, k): the row of candidates of each entry of near
    picks: torch.Tensor
    distances: torch.Tensor

    @property
    def indices(self) -> torch.Tensor:
        """(n, k, k') generated indices of the images beside."""
        return self.candidates[self.rows[..., None], self.picks]


class Neighbours:
    """Real and generated features plus the distance passes the scorers share, each run once."""

    def __init__(self, real: torch.Tensor, generated: torch.Tensor, metric: Metric, device: torch.device,
                 progress: Progress | None = None):
        if len(real) < 2:
            raise ArgumentError("need at least two real images")
        if len(generated) < 1:
            raise ArgumentError("need at least one generated image")
        if isinstance(metric, Euclidean):  # centring changes no distance but keeps float32 exact near 0
            centre = generated.mean(0, keepdim=True)
            real, generated = real - centre, generated - centre
        self.real, self.generated, self.metric, self.device = real, generated, metric, device
        self.progress = progress
        self._matrices: dict[str, torch.Tensor | None] = {}
        self._nearest: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._beside: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def _on_block(self, name: str, total: int):
        return (lambda n: self.progress(f"distances {name}", n, total)) if self.progress else None

    def _refs(self, name: str) -> torch.Tensor:
        return self.generated if name == "generated" else self.real

    def matrix(self, name: str) -> torch.Tensor | None:
        """Distances real x `name` ("generated" or "real", self-pairs inf), when small enough to keep."""
        if name not in self._matrices:
            refs, m = self._refs(name), None
            if len(self.real) * len(refs) <= MATRIX_LIMIT:
                m = pairwise_matrix(self.real, refs, self.metric, self.device, self._on_block(f"real->{name}", len(self.real)))
                if name == "real":
                    m.fill_diagonal_(float("inf"))
            self._matrices[name] = m
        return self._matrices[name]

    def _nearest_pass(self, name: str, queries, refs, k: int, exclude_self: bool = False):
        have = self._nearest.get(name)
        if have is None or have[0].shape[1] < min(k, len(refs) - int(exclude_self)):
            have = nearest(queries, refs, k, self.metric, self.device, exclude_self, self._on_block(name, len(queries)))
            self._nearest[name] = have
        return have[0][:, :k], have[1][:, :k]

    def real_to_generated(self, k: int):
        m = self.matrix("generated")
        if m is None:
            return self._nearest_pass("real->generated", self.real, self.generated, k)
        return m.topk(min(k, m.shape[1]), dim=1, largest=False, sorted=True)

    def real_to_real(self, k: int):
        m = self.matrix("real")
        if m is None:
            return self._nearest_pass("real->real", self.real, self.real, k, exclude_self=True)
        return m.topk(min(k, m.shape[1] - 1), dim=1, largest=False, sorted=True)

    def generated_to_real(self, k: int):
        m = self.matrix("generated")
        if m is None:
            return self._nearest_pass("generated->real", self.generated, self.real, k)
        d, i = m.topk(min(k, m.shape[0]), dim=0, largest=False, sorted=True)
        return d.T, i.T

    def generated_beside(self, k: int) -> Beside | None:
        """For each real image's k nearest generated images, their nearest generated images outside that set
        (k' = k of them where there are enough); None when no generated image lies outside.

        Outside x's set: a generator that emits several copies of one training image would otherwise
        make the copies each other's neighbours, and their closeness would explain the membership away.
        Only generated images near some real image are searched: every one against every other would
        cost more than all the rest.
        """
        near = self.real_to_generated(k)[1]
        k = near.shape[1]
        k_beside = min(k, len(self.generated) - k)
        if k_beside < 1:
            return None
        # at most k - 1 of x's set are among a neighbour's nearest others, so this many always leave k_beside
        wanted = min(k + k_beside - 1, len(self.generated) - 1)
        key = f"generated->generated k={wanted}"
        if key not in self._beside:
            among = torch.unique(near)
            d, i = nearest(self.generated[among], self.generated, wanted + 1, self.metric, self.device,
                           on_block=self._on_block(key, len(among)))
            d, order = d.masked_fill(i == among[:, None], float("inf")).sort(1)  # the image itself, if found, goes last
            self._beside[key] = (among, d[:, :wanted], i.gather(1, order)[:, :wanted])
        among, distances, candidates = self._beside[key]
        rows = torch.searchsorted(among, near)
        picks = torch.empty(*near.shape, k_beside, dtype=torch.long)
        for start in range(0, len(near), BESIDE_CHUNK):
            own, r = near[start : start + BESIDE_CHUNK], rows[start : start + BESIDE_CHUNK]
            inside = (candidates[r][..., None] == own[:, None, None, :]).any(-1)  # (chunk, k, wanted)
            picks[start : start + len(own)] = distances[r].masked_fill(inside, float("inf")).argsort(dim=-1, stable=True)[..., :k_beside]
        return Beside(near, among, candidates, rows, picks, distances[rows[..., None], picks])

    def counts(self, radius: float) -> tuple[np.ndarray, np.ndarray]:
        """Smooth counts of generated and of other real images within `radius` of each real image."""
        out = []
        for name in ("generated", "real"):
            m = self.matrix(name)
            if m is None:
                counts = soft_count(self.real, self._refs(name), radius, self.metric, self.device, exclude_self=name == "real")
            else:
                counts = (1.0 - (m / radius) ** 2).clamp_min_(0).double().sum(1)
            out.append(counts.numpy())
        return out[0], out[1]


TYPICAL_FIT_MIN = 20  # real images below which the slope is not fitted (a ratio: slope 1)


def beyond_typical(to_generated: np.ndarray, to_real: np.ndarray, spread: np.ndarray | None = None) -> np.ndarray:
    """How much closer each real image is to the generated set than its surroundings predict (log scale).

    A typical image is close to everything, generated or not, so closeness to the generated set
    is judged against closeness to the other real images. Dividing by it (a log ratio) assumes the
    two scale 1:1; across the real images they scale by less (a slope of 0.3-0.9 on the zoo),
    because ~200 real neighbours measure typicality with noise that a full division adds to every
    score. So log(to_generated) is regressed on log(to_real) over the real images (least squares,
    no labels: used and not-used images are exchangeable for their real neighbours, so membership
    does not tilt the fit) and the score is the shortfall from that fit. On the zoo this lifted
    `local` by 0.03-0.08 test ROC-AUC on the VAEs, the DCGAN and the memorisers (docs/membership.md).

    `spread`, per real image, is the same closeness measured among the generated images around it
    (each of its generated neighbours against the generated images beside x's, averaged). A
    generator draws some regions densely and sharply and others thinly or blurred, so part of how
    close x is to the generated set says where x lies, not whether it was used; the spread is a
    second term of the fit. Unlike the real neighbours it is not blind to membership (the generated
    set is the generator's), so it is used only with a positive weight: a denser region brings
    images closer, and a fit the other way can only come from membership or noise. On the zoo it
    lifted the default's test ROC-AUC on the VAEs by 0.007-0.040 over four seeds (docs/membership-history.md).
    """
    tiny = 1e-9 * max(float(np.median(to_real)), 1e-12)
    log_gen, log_real = np.log(to_generated + tiny), np.log(to_real + tiny)
    if len(log_real) < TYPICAL_FIT_MIN or np.ptp(log_real) == 0:
        return log_real - log_gen
    design = np.stack([log_real, np.ones_like(log_real)], 1)
    if spread is not None:
        with_spread = np.c_[design, np.log(spread + 1e-9 * max(float(np.median(spread)), 1e-12))]
        coef, *_ = np.linalg.lstsq(with_spread, log_gen, rcond=None)
        if coef[-1] > 0:  # a denser region explains closeness; the other sign can only be membership or noise
            return with_spread @ coef - log_gen
    coef, *_ = np.linalg.lstsq(design, log_gen, rcond=None)
    return design @ coef - log_gen


def spread_around(nb: Neighbours, k: int, closeness: Callable[[Beside], np.ndarray]) -> np.ndarray | None:
    """Per real image, the mean over its k nearest generated images of `closeness` to the generated images beside them.

    `closeness` gets `Neighbours.generated_beside(k)` and returns one value per (real image, generated
    neighbour). None where no generated image lies outside x's k; with too few real images for a
    fit (`beyond_typical` would not read it); and in image metrics (shifted NCC, SSIM): there the
    pass among the generated images costs up to k times the real one (14 s more for `knn white48
    k=5` on 200 x 10,000 on 2 cores), and on the zoo it added nothing to the default's worst case.
    """
    if not isinstance(nb.metric, Euclidean) or len(nb.real) < TYPICAL_FIT_MIN:
        return None
    beside = nb.generated_beside(k)
    return None if beside is None else closeness(beside).mean(1)


@SCORERS.register("knn", needs="neighbours", uses_k=True, uses_features=True, log_ratio=True, ks_used=whole_sets,
                  description="closeness to the k nearest generated images beyond what the k nearest real ones predict")
def knn_scores(nb: Neighbours, k: int) -> np.ndarray:
    """d_G(x), the mean distance to the k nearest generated images, against d_R(x), to the k nearest other real ones.

    Judging d_G against d_R calibrates for typicality: an image in a dense region is close to
    everything, generated or not; a used image is closer to the generated set than its own
    neighbourhood explains (`beyond_typical`: log d_G's shortfall from its fit on log d_R and, in
    vector spaces, on the generated neighbours' own mean distance to the generated images beside
    them). On a log scale, so the ensemble can add scores from several spaces.
    """
    d_gen = nb.real_to_generated(k)[0].double().mean(1).numpy()
    d_real = nb.real_to_real(k)[0].double().mean(1).numpy()
    spread = spread_around(nb, k, lambda beside: beside.distances.double().mean(-1).numpy())
    return beyond_typical(d_gen, d_real, spread)


@SCORERS.register("retrieval", needs="neighbours", uses_k=False, uses_features=True,
                  description="votes: each generated image votes for its nearest real image")
def retrieval_scores(nb: Neighbours, k: int = 1) -> np.ndarray:
    """Votes: each generated image votes for its nearest real image (`k` is not used).

    One vote per generated image: on the demo data, votes spread over k > 1 real images only
    blur the signal. Images with equal votes (most have none) are ordered by their distance to
    the nearest generated image, through a tie-break below 0.5 that never outweighs one vote.
    """
    n = len(nb.real)
    _, idx = nb.generated_to_real(1)
    votes = np.bincount(idx[:, 0].numpy(), minlength=n).astype(np.float64)
    d1 = nb.real_to_generated(1)[0][:, 0].numpy()
    rank = np.argsort(np.argsort(d1, kind="stable"), kind="stable")  # 0 = closest
    return votes + 0.5 * (1.0 - rank / n)


@SCORERS.register("density", needs="neighbours", uses_k=True, uses_features=True, log_ratio=True,
                  ks_used=generated_k_only,
                  description="generated vs real neighbours inside one epsilon-ball (Monte Carlo density ratio)")
def density_scores(nb: Neighbours, k: int, quantile: float = DENSITY_QUANTILE) -> np.ndarray:
    """Monte-Carlo density ratio: generated vs real neighbours inside one epsilon-ball (Hilprecht et al.).

    epsilon is the `quantile` of the real images' distances to their k-th nearest generated image,
    a low percentile of all real-generated distances. score = log of (generated density + 1/N_G)
    over (real density + 1/N_R), each a smooth count divided by its set's size.
    """
    d_k = nb.real_to_generated(k)[0][:, -1].double().numpy()
    radius = max(float(np.quantile(d_k, quantile)), 1e-12)
    gen, real = nb.counts(radius)
    n_gen, n_real = len(nb.generated), len(nb.real) - 1
    return np.log((gen + 1.0) / n_gen) - np.log((real + 1.0) / n_real)


LOCAL_RIDGE = 0.1  # ridge on the k x k Gram matrix: unit-norm features, so relative to one neighbour's energy
LOCAL_CHUNK = 256  # real images solved at a time: (chunk, k, dim) neighbours in memory
# k is capped at a 12th of the generated and a 4th of the other real images: with few images, k
# neighbours that are most of the set span everything and tell used from not used no more.
LOCAL_SHARE = (12, 4)


def local_ks(k: int, n_generated: int, n_other_real: int) -> tuple[int, int]:
    """The k local fits by in each set: k, capped by LOCAL_SHARE (at least one neighbour)."""
    return min(k, max(1, n_generated // LOCAL_SHARE[0])), min(k, max(1, n_other_real // LOCAL_SHARE[1]))


def reconstruction_error(queries: torch.Tensor, refs: torch.Tensor, idx: torch.Tensor, ridge: float) -> np.ndarray:
    """Per query, the residual norm of its ridge least-squares fit by its neighbours refs[idx]."""
    out = []
    for start in range(0, len(queries), LOCAL_CHUNK):
        a = refs[idx[start : start + LOCAL_CHUNK]].double()  # (n, k, d)
        x = queries[start : start + LOCAL_CHUNK].double()[:, :, None]
        gram = a @ a.transpose(1, 2) + ridge * torch.eye(a.shape[1], dtype=torch.double)
        weights = torch.linalg.solve(gram, a @ x)
        out.append((x - a.transpose(1, 2) @ weights).squeeze(-1).norm(dim=1))
    return torch.cat(out).numpy()


def residuals_beside(generated: torch.Tensor, beside: Beside, ridge: float) -> np.ndarray:
    """(n, k): each of x's generated neighbours fitted as in `reconstruction_error` by the generated images beside it.

    The n x k fits share their images: each neighbour's inner products with its candidates are
    computed once and each fit takes its k' x k' block, where n x k separate fits of k' x dim
    gathered k' images apiece (calibration on the 2023 dev shape: 50 s of fits on 2 cores).
    The residual is |g|^2 - 2 w.(A g) + w.(A A^T) w for the ridge weights w.
    """
    out = torch.empty(beside.picks.shape[:2], dtype=torch.double)
    for start in range(0, len(beside.among), BESIDE_CHUNK):
        g = generated[beside.among[start : start + BESIDE_CHUNK]].double()
        a = generated[beside.candidates[start : start + BESIDE_CHUNK]].double()  # (chunk, wanted, dim)
        gram, proj = a @ a.transpose(1, 2), (a @ g[:, :, None]).squeeze(-1)
        at = ((beside.rows >= start) & (beside.rows < start + len(g))).nonzero(as_tuple=True)
        row, pick = beside.rows[at] - start, beside.picks[at]
        block = gram[row[:, None, None], pick[:, :, None], pick[:, None, :]]
        b = proj[row[:, None], pick]
        w = torch.linalg.solve(block + ridge * torch.eye(block.shape[-1], dtype=torch.double), b[..., None])
        fitted = (w.transpose(1, 2) @ block @ w).reshape(-1)
        out[at] = (g[row].square().sum(1) - 2 * (w.squeeze(-1) * b).sum(1) + fitted).clamp_min(0).sqrt()
    return out.numpy()


@SCORERS.register("local", needs="neighbours", uses_k=True, uses_features=True, vectors_only=True, default_k=40, log_ratio=True,
                  ks_used=local_ks,
                  description="how much better x's k nearest generated images rebuild it, linearly, than its k nearest real ones predict")
def local_scores(nb: Neighbours, k: int, ridge: float = LOCAL_RIDGE) -> np.ndarray:
    """e_G against e_R: the residuals of x fitted as a linear combination of its k nearest generated / real images.

    A blurry generator's samples are smooth mixtures around its training images, and a memoriser's
    blends are sums of two: a used image lies in the span of its generated neighbours, while one
    neighbour alone (knn) stays far. Fitting by the real neighbours calibrates, as in knn, and so
    does fitting each generated neighbour by the generated images beside it (`beyond_typical`).
    k is capped for small sets (`local_ks`).
    """
    if not isinstance(nb.metric, Euclidean):
        raise ArgumentError("local reconstruction needs feature vectors")
    k_gen, k_real = local_ks(k, len(nb.generated), len(nb.real) - 1)
    near = nb.real_to_generated(k_gen)[1]
    e_gen = reconstruction_error(nb.real, nb.generated, near, ridge)
    e_real = reconstruction_error(nb.real, nb.real, nb.real_to_real(k_real)[1], ridge)
    spread = spread_around(nb, k_gen, lambda beside: residuals_beside(nb.generated, beside, ridge))
    return beyond_typical(e_gen, e_real, spread)
