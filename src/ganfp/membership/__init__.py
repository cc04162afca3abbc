"""Membership scorers: which real images trained the generator, judged against the generated set.

Every scorer gives one score per real image, higher = more likely used. See docs/membership.md.
"""

from ganfp.membership.autoencoder import AutoencoderConfig, ConvAutoencoder, reconstruction_scores, train_autoencoder
from ganfp.membership.calibrate import Candidate, Choice, choose
from ganfp.membership.distances import Euclidean, nearest, soft_count
from ganfp.membership.features import compute_features
from ganfp.membership.fusion import fuse, normalised_ranks
from ganfp.membership.ncc import ShiftedNCC
from ganfp.membership.pipeline import MembershipScorer, ScoringSetup, member_recipes
from ganfp.membership.recipe import DEFAULT_ENSEMBLE, DEFAULT_FEATURES, DEFAULT_K, DEFAULT_METHOD, Recipe
from ganfp.membership.scorers import SCORERS, Neighbours, density_scores, knn_scores, local_scores, retrieval_scores
from ganfp.membership.spaces import SPACE_KINDS, FeatureSpace, calibration_spaces, parse_features
from ganfp.membership.ssim import SSIMDistance

__all__ = [
    "AutoencoderConfig", "Candidate", "Choice", "ConvAutoencoder", "DEFAULT_ENSEMBLE", "DEFAULT_FEATURES", "DEFAULT_K",
    "DEFAULT_METHOD", "Euclidean", "FeatureSpace", "MembershipScorer", "Neighbours",
    "Recipe", "SCORERS", "SPACE_KINDS", "SSIMDistance", "ScoringSetup", "ShiftedNCC", "calibration_spaces", "choose",
    "compute_features", "density_scores", "fuse", "knn_scores", "local_scores", "member_recipes", "nearest", "normalised_ranks",
    "parse_features", "reconstruction_scores", "retrieval_scores", "soft_count", "train_autoencoder",
]
