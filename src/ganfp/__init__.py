"""ganfp: find the training-data fingerprints in synthetic medical images."""

__version__ = "0.1.0"
