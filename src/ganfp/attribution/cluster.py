"""Clustering generated images by their source generator (2024 task 2), with scikit-learn.

`kmeans`, `agglomerative` (Ward linkage) and `spectral` (a k-nearest-neighbour graph) are
registered by name. With `auto`, K is read off the eigenvalues of the images' k-nearest-neighbour graph
(its normalised Laplacian, the graph spectral clustering cuts): K groups that are each tightly linked
inside and loosely linked to the others give K eigenvalues near 0 and a jump after them (the
eigengap; von Luxburg 2007, section 8.3). The mean silhouette, ganfp 0.1.0's rule, falls almost
steadily with K on images of related generators, so it chose K = 2 on nearly every set of the
generator zoo (docs/attribution.md).
"""

from __future__ import annotations

import warnings

import numpy as np

from ganfp.registry import Registry

CLUSTERERS = Registry("clustering method")
# Of each image, in spectral clustering's graph and in the one K is read from. 5 read K better on the zoo's sets but
# split well-separated blobs of 20-40 images that 10 count right (docs/attribution.md, "Choosing K").
GRAPH_NEIGHBOURS = 10
# Eigenvalues are compared on a log scale above this floor: a jump from 0.001 to 0.01 among eigenvalues
# that are all near 0 is sampling noise, one from 0.03 to 0.2 is a cluster boundary. Picked on an earlier build of
# the zoo's clustering sets, where 0.005-0.02 missed the four VAEs on one draw and 0.2 let the spread among large
# eigenvalues win on demo:attribution-2024; on the current build no floor from 0.02 to 0.2 has a better worst case
# over five draws (docs/attribution.md, "Choosing K").
EIGENGAP_FLOOR = 0.05
APART = 1e-6  # an eigenvalue this close to 0 is a group with no link to the rest
DENSE_EIGEN_LIMIT = 1000  # images; above it the few smallest eigenvalues come from LOBPCG, not a full solve


@CLUSTERERS.register("kmeans")
def kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)


@CLUSTERERS.register("agglomerative")
def agglomerative(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    return AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(x)


@CLUSTERERS.register("spectral")
def spectral(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import SpectralClustering

    if k == len(x):  # every image its own cluster; the spectral embedding cannot have N dimensions (a traceback)
        return np.arange(k)
    # no more neighbours than a cluster holds on average: in 3 groups of 3 images, 10 neighbours linked nearly every
    # pair and groups far apart were split at random (ARI 0.2); from 10 images per cluster up, the graph is unchanged
    neighbours = min(GRAPH_NEIGHBOURS, max(2, len(x) // k), len(x) - 1)
    model = SpectralClustering(n_clusters=k, affinity="nearest_neighbors", assign_labels="cluster_qr",
                               n_neighbors=neighbours, random_state=seed)
    with warnings.catch_warnings():  # well-separated generators make a disconnected graph: the goal, not a fault
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        return model.fit_predict(x)


def silhouette(x: np.ndarray, labels: np.ndarray) -> float | None:
    """Mean silhouette; None when it is undefined (one cluster, or every image its own)."""
    from sklearn.metrics import silhouette_score

    n_clusters = len(np.unique(labels))
    return float(silhouette_score(x, labels)) if 1 < n_clusters < len(x) else None


def laplacian_eigenvalues(x: np.ndarray, count: int, seed: int) -> np.ndarray:
    """The `count` smallest eigenvalues of the normalised Laplacian of the symmetrised k-nearest-neighbour
    graph, built as scikit-learn's SpectralClustering builds its affinity (self-loops are ignored)."""
    from scipy.linalg import eigh
    from scipy.sparse import csgraph
    from sklearn.neighbors import kneighbors_graph

    graph = kneighbors_graph(x, n_neighbors=min(GRAPH_NEIGHBOURS, len(x) - 1), include_self=True)
    laplacian = csgraph.laplacian(0.5 * (graph + graph.T), normed=True)
    if len(x) <= DENSE_EIGEN_LIMIT:
        return eigh(laplacian.toarray(), eigvals_only=True, subset_by_index=[0, count - 1])
    from scipy.sparse import identity
    from scipy.sparse.linalg import lobpcg

    # the largest of I - L: a block method, so a value shared by several disconnected groups is found each time
    start = np.random.default_rng(seed).standard_normal((len(x), count))
    with warnings.catch_warnings():
        # (?s): scipy puts the residuals between "Exited at iteration N with accuracies" and this, on lines of their own
        warnings.filterwarnings("ignore", message="(?s).*not reaching the requested tolerance")
        # a large --max-clusters: scipy solves densely instead, as below DENSE_EIGEN_LIMIT, and said so in two lines
        warnings.filterwarnings("ignore", message=".*too small relative to the block size.*")
        values = lobpcg(identity(len(x)) - laplacian, start, largest=True, tol=1e-8, maxiter=500)[0]
    return np.sort(1 - values)


def choose_k(x: np.ndarray, method: str, max_k: int, seed: int) -> tuple[int, np.ndarray, dict[int, float]]:
    """(K, its labels, the eigengap of every K tried): K in 2..min(max_k, N - 1) with the largest eigengap
    log((l[K+1] + floor) / (l[K] + floor)), l[1] <= l[2] <= ... the eigenvalues. K is read from the images
    alone, whatever the method; when more groups than max_k are entirely apart, K is max_k."""
    max_k = min(max_k, len(x) - 1)
    values = np.clip(laplacian_eigenvalues(x, max_k + 1, seed), 0, None)
    steps = np.diff(np.log(values + EIGENGAP_FLOOR))  # steps[i]: from the (i+1)-th eigenvalue to the (i+2)-th
    gaps = {k: float(steps[k - 1]) for k in range(2, max_k + 1)}
    k = max_k if values[-1] < APART else max(gaps, key=gaps.get)
    return k, CLUSTERERS.get(method)(x, k, seed), gaps
