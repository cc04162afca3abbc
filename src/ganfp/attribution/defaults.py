"""The defaults of `ganfp attribute`, in a module that imports nothing.

The configs in `run` and `methods` fill them in; the command's help states them from here, so
`ganfp --help` stays fast and the help cannot drift from what runs.
"""

DEFAULT_METHOD = "knn"  # 1.00 on demo:attribution-2025, in a second (docs/attribution.md)
DEFAULT_FEATURES = "pixels32"
DEFAULT_CLUSTER_METHOD = "kmeans"
DEFAULT_CLUSTER_FEATURES = "spectrum+residual"  # ARI 0.95+ on demo:attribution-2024, pixels 0.5
DEFAULT_K = 5  # neighbours of knn (and fusion)
DEFAULT_MAX_CLUSTERS = 10  # the largest K that --clusters auto tries
DEFAULT_MODEL = "conv5"  # the network of cnn (and fusion)
DEFAULT_EPOCHS = 30  # the most epochs of cnn (and fusion); early stopping usually ends sooner
