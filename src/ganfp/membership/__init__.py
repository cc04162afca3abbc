"""Membership scorers: which real images trained the generator, judged against the generated set.

Every scorer gives one score per real image, higher = more likely used. See docs/membership.md.
"""

from ganfp.membership.autoencoder import AutoencoderConfig, ConvAutoencoder, reconstruction_scores, train_autoencoder
from ganfp.membership.calibrate import Candidate, Choice, choose
from ganfp.membership.distances import Euclidean, nearest, soft_count
from ganfp.membership.features import FeatureSpace, compute_features, parse_features
from ganfp.membership.fusion import fit_weights, fuse, normalised_ranks, roc_auc
from ganfp.membership.pipeline import FUSION_MEMBERS, METHODS, NEIGHBOUR_METHODS, MembershipScorer, ScoringSetup
from ganfp.membership.scorers import Neighbours, density_scores, knn_scores, retrieval_scores
from ganfp.membership.ssim import SSIMDistance

__all__ = [
    "AutoencoderConfig", "Candidate", "Choice", "ConvAutoencoder", "Euclidean", "FUSION_MEMBERS", "FeatureSpace",
    "METHODS", "MembershipScorer", "NEIGHBOUR_METHODS", "Neighbours", "SSIMDistance", "ScoringSetup", "choose",
    "compute_features", "density_scores", "fit_weights", "fuse", "knn_scores", "nearest", "normalised_ranks",
    "parse_features", "reconstruction_scores", "retrieval_scores", "roc_auc", "soft_count", "train_autoencoder",
]
