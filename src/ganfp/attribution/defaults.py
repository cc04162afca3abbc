"""The defaults of `ganfp attribute`, in a module that imports nothing.

The configs in `run` and `methods` fill them in; the command's help states them from here, so
`ganfp --help` stays fast and the help cannot drift from what runs.
"""

# By the worst case over the zoo's training-subset sets (docs/attribution.md): the nearest labelled image by the
# shifted correlation of whitened images, 0.998 or more on six of eight families and 0.43-0.58 on the two memorisers
# (mean 0.878 and 0.877 on two draws), where linear on pixels32+residual, the previous default, reached 0.996 or more
# and 0.25-0.28 (mean 0.815 and 0.813); 1.00 on demo:attribution-2025 as well.
DEFAULT_METHOD = "knn"
DEFAULT_FEATURES = "white64"  # of knn and fusion, which compare images in pairs
VECTOR_FEATURES = "pixels32+residual"  # of centroid and linear, which need vectors: the best of those on the zoo
# By the worst case over the zoo's clustering sets (docs/attribution.md): ARI 0.52-0.65 on eight generator families
# and 0.96-0.99 on four near-identical VAEs, where k-means on spectrum+residual reached 0.28-0.38 and 0.26-0.31;
# 1.00 on demo:attribution-2024 as well.
DEFAULT_CLUSTER_METHOD = "spectral"
DEFAULT_CLUSTER_FEATURES = "residual"
DEFAULT_K = 1  # neighbours of knn (and fusion): a copy has one sibling; k 5 is within 0.003 in vector spaces
DEFAULT_MAX_CLUSTERS = 10  # the largest K that --clusters auto tries
DEFAULT_MODEL = "conv5"  # the network of cnn (and fusion)
DEFAULT_EPOCHS = 30  # the most epochs of cnn (and fusion); early stopping usually ends sooner
DEFAULT_REPORT_ROWS = 6  # --report-n: images per class (cluster) and end, most and least confident (central)
