"""The defaults of `ganfp attribute`, in a module that imports nothing.

The configs in `run` and `methods` fill them in; the command's help states them from here, so
`ganfp --help` stays fast and the help cannot drift from what runs.
"""

# By the zoo's training-subset sets (docs/attribution.md): mean accuracy 0.815 and 0.813 over eight families on two
# draws, 0.996 or more on every family but the memorisers (at chance for every method), where knn on pixels32 reached
# 0.776 and 0.778, and 0.922 on the VAE; 1.00 on demo:attribution-2025 as well, in about a second.
DEFAULT_METHOD = "linear"
DEFAULT_FEATURES = "pixels32+residual"
# By the worst case over the zoo's clustering sets (docs/attribution.md): ARI 0.53-0.60 on eight generator families
# and 0.96-1.00 on four near-identical VAEs, where k-means on spectrum+residual reached 0.28-0.38 and 0.27-0.28;
# 1.00 on demo:attribution-2024 as well.
DEFAULT_CLUSTER_METHOD = "spectral"
DEFAULT_CLUSTER_FEATURES = "residual"
DEFAULT_K = 5  # neighbours of knn (and fusion)
DEFAULT_MAX_CLUSTERS = 10  # the largest K that --clusters auto tries
DEFAULT_MODEL = "conv5"  # the network of cnn (and fusion)
DEFAULT_EPOCHS = 30  # the most epochs of cnn (and fusion); early stopping usually ends sooner
