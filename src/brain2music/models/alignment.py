"""Functional alignment: map one subject's responses into a reference subject's voxel space.

All subjects of ds003720 heard the same training clips, so a ridge map ``R_ref ≈ R_src M`` fitted on the
shared training clips (window samples) takes any response of the source subject into the reference
subject's voxels (Ciferri et al. 2025 align every subject to sub-001). A decoder trained on the pooled,
aligned training data of all subjects then decodes any of them.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from brain2music.errors import DataError
from brain2music.models.ridge import RidgeDecoder

__all__ = ["FunctionalAlignment", "ALIGNMENT_ALPHAS"]

#: Penalty grid of Ciferri et al. for the alignment maps (0.1 .. 1e4).
ALIGNMENT_ALPHAS = np.logspace(-1, 4, 11)


class FunctionalAlignment(BaseEstimator):
    """Ridge map from a source subject's voxels to a reference subject's voxels (penalty per reference voxel).

    Parameters
    ----------
    alphas, cv, backend : as :class:`~brain2music.models.RidgeDecoder` (penalties: Ciferri et al.'s grid).

    Attributes
    ----------
    ridge_ : fitted RidgeDecoder
    cv_r_ : ndarray (n_reference_voxels,) cross-validated r of each reference voxel
    """

    def __init__(self, alphas=ALIGNMENT_ALPHAS, *, cv: int = 5, backend: str = "numpy"):
        self.alphas = alphas
        self.cv = cv
        self.backend = backend

    def fit(self, source, reference, groups=None) -> FunctionalAlignment:
        """``source (n_samples, n_source_voxels)`` and ``reference (n_samples, n_ref_voxels)``: same stimuli, same order."""
        source = np.asarray(source)
        reference = np.asarray(reference)
        if source.shape[0] != reference.shape[0]:
            raise DataError(
                f"source and reference must hold the same shared samples; got {source.shape[0]} and "
                f"{reference.shape[0]} rows"
            )
        self.ridge_ = RidgeDecoder(alphas=self.alphas, cv=self.cv, backend=self.backend).fit(
            source, reference, groups
        )
        self.cv_r_ = self.ridge_.cv_scores_
        return self

    def transform(self, source) -> np.ndarray:
        """Responses ``(n_samples, n_source_voxels)`` → reference space ``(n_samples, n_ref_voxels)``."""
        if not hasattr(self, "ridge_"):
            raise DataError("this FunctionalAlignment is not fitted yet; call fit(source, reference, groups)")
        return self.ridge_.predict(source)
