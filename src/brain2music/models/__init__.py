"""Decoders (fMRI → embedding), encoding models (embedding → voxels) and functional alignment.

Estimators follow scikit-learn: ``fit(X, Y, groups)`` returns self, ``predict(X)``; ``X`` is
``(n_samples, n_voxels)``, ``Y`` ``(n_samples, dim)``; ``groups`` (the run of each sample) keeps runs
together in the cross-validation folds.
"""

from brain2music.models.alignment import ALIGNMENT_ALPHAS, FunctionalAlignment
from brain2music.models.encoding import (
    EncodingModel,
    delay_features,
    fdr_bh,
    permutation_test,
    select_voxels,
    tr_features,
    voxel_correlations,
)
from brain2music.models.ensemble import EnsembleDecoder
from brain2music.models.io import load_decoder, load_decoder_record, save_decoder
from brain2music.models.ridge import DEFAULT_ALPHAS, RidgeDecoder, correlation_per_target, grouped_splits
from brain2music.models.subset import SubsetDecoder

__all__ = [
    "ALIGNMENT_ALPHAS",
    "DEFAULT_ALPHAS",
    "EncodingModel",
    "EnsembleDecoder",
    "FunctionalAlignment",
    "RidgeDecoder",
    "SubsetDecoder",
    "correlation_per_target",
    "delay_features",
    "fdr_bh",
    "grouped_splits",
    "load_decoder",
    "load_decoder_record",
    "permutation_test",
    "save_decoder",
    "select_voxels",
    "tr_features",
    "voxel_correlations",
]
