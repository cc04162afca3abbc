"""Clustering generated images by their source generator (2024 task 2), with scikit-learn.

`kmeans`, `agglomerative` (Ward linkage) and `spectral` (a k-nearest-neighbour graph) are
registered by name. With `auto`, K is the one of 2..max whose clustering has the highest mean
silhouette (Rousseeuw 1987): how much closer each image sits to its own cluster than to the next.
"""

from __future__ import annotations

import warnings

import numpy as np

from ganfp.registry import Registry

CLUSTERERS = Registry("clustering method")
SPECTRAL_NEIGHBOURS = 10


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

    model = SpectralClustering(n_clusters=k, affinity="nearest_neighbors", assign_labels="cluster_qr",
                               n_neighbors=min(SPECTRAL_NEIGHBOURS, len(x) - 1), random_state=seed)
    with warnings.catch_warnings():  # well-separated generators make a disconnected graph: the goal, not a fault
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        return model.fit_predict(x)


def silhouette(x: np.ndarray, labels: np.ndarray) -> float | None:
    """Mean silhouette; None when it is undefined (one cluster, or every image its own)."""
    from sklearn.metrics import silhouette_score

    n_clusters = len(np.unique(labels))
    return float(silhouette_score(x, labels)) if 1 < n_clusters < len(x) else None


def choose_k(x: np.ndarray, method: str, max_k: int, seed: int) -> tuple[int, np.ndarray, dict[int, float | None]]:
    """(K, its labels, silhouette of every K tried): K in 2..min(max_k, N - 1) with the best silhouette."""
    fit = CLUSTERERS.get(method)
    tried: dict[int, float | None] = {}
    best = (-np.inf, 0, None)
    for k in range(2, min(max_k, len(x) - 1) + 1):
        labels = fit(x, k, seed)
        tried[k] = silhouette(x, labels)
        if tried[k] is not None and tried[k] > best[0]:
            best = (tried[k], k, labels)
    if best[2] is None:
        raise ValueError("no K gave a defined silhouette")
    return best[1], best[2], tried
