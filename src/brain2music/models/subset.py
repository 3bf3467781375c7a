"""A decoder on a subset of voxels, optionally mapped into a reference subject's space first."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from brain2music.errors import DataError
from brain2music.models._checks import check_2d

__all__ = ["SubsetDecoder"]


class SubsetDecoder(BaseEstimator):
    """``decoder.predict(alignment.transform(X[:, voxels]))`` (alignment optional).

    Used for the encoding-selected (``encsel``) and functionally aligned (``aligned``) decoders so the saved
    object takes a subject's full voxel vector and does its own selection and alignment.

    Parameters
    ----------
    voxels : array of int, columns of X to keep (subject space)
    decoder : estimator with fit/predict (fitted already, or fitted by :meth:`fit`)
    alignment : fitted :class:`~brain2music.models.FunctionalAlignment` or None
    n_features : int or None, number of columns expected in X (checked when given)
    """

    def __init__(self, voxels, decoder, *, alignment=None, n_features: int | None = None):
        self.voxels = voxels
        self.decoder = decoder
        self.alignment = alignment
        self.n_features = n_features

    def _prepare(self, X) -> np.ndarray:
        X = check_2d(X, "X")
        if self.n_features is not None and X.shape[1] != self.n_features:
            raise DataError(f"X has {X.shape[1]} voxels; this decoder expects {self.n_features}")
        voxels = np.asarray(self.voxels, dtype=int)
        if voxels.size and voxels.max() >= X.shape[1]:
            raise DataError(f"voxel index {voxels.max()} out of range for X with {X.shape[1]} voxels")
        Xs = X[:, voxels]
        return self.alignment.transform(Xs) if self.alignment is not None else Xs

    def fit(self, X, Y, groups=None) -> SubsetDecoder:
        """Fit the wrapped decoder on ``X[:, voxels]`` (aligned when an alignment is set) and ``Y``.

        Parameters
        ----------
        X : ndarray ``(n_samples, n_voxels)``
            Full voxel vectors of the subject.
        Y : ndarray ``(n_samples, dim)``
        groups : ndarray ``(n_samples,)``, optional
            Cross-validation groups passed on to the decoder's ``fit``.

        Raises
        ------
        DataError
            When ``X`` is not 2-d, has other than ``n_features`` columns, or a voxel index is out of range.
        """
        self.decoder.fit(self._prepare(X), Y, groups)
        return self

    def predict(self, X) -> np.ndarray:
        """Predict from full voxel vectors ``X (n_samples, n_voxels)``: ``(n_samples, dim)`` float32.

        Raises the same :class:`~brain2music.errors.DataError` as :meth:`fit` for a bad ``X``.
        """
        return np.asarray(self.decoder.predict(self._prepare(X)), dtype=np.float32)
