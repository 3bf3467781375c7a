"""The paper's parcel ensemble: one ridge decoder per parcel, keep the best parcels, average them."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from brain2music.errors import ConfigError, DataError
from brain2music.models._checks import check_2d
from brain2music.models.ridge import DEFAULT_ALPHAS, RidgeDecoder

__all__ = ["EnsembleDecoder"]


class EnsembleDecoder(BaseEstimator):
    """One :class:`RidgeDecoder` per parcel; the ``n_top`` parcels with the best CV correlation are averaged.

    A parcel's score is its decoder's cross-validated Pearson r (grouped folds, best penalty per target),
    averaged over target dimensions, as in Brain2Music (Destrieux parcels, top 6).

    Parameters
    ----------
    labels : array of shape (n_voxels,)
        Parcel id of every voxel (column of X); ``0`` (or negative) = not in any parcel.
    n_top : int
        Number of parcels kept (paper: 6).
    min_voxels : int
        Parcels with fewer voxels are skipped.
    alphas, cv, backend : as :class:`RidgeDecoder`.

    Attributes
    ----------
    parcel_ids_ : ndarray (n_parcels_scored,)    parcels that were scored
    parcel_scores_ : ndarray (n_parcels_scored,) their mean CV r
    selected_ : ndarray (n_top,)                 ids of the kept parcels, best first
    selected_scores_ : ndarray (n_top,)
    decoders_ : list of RidgeDecoder, one per selected parcel
    voxels_ : list of ndarray, the columns of X used by each selected decoder
    """

    def __init__(
        self,
        labels,
        *,
        n_top: int = 6,
        min_voxels: int = 10,
        alphas=DEFAULT_ALPHAS,
        cv: int = 5,
        backend: str = "numpy",
    ):
        self.labels = labels
        self.n_top = n_top
        self.min_voxels = min_voxels
        self.alphas = alphas
        self.cv = cv
        self.backend = backend

    def fit(self, X, Y, groups=None) -> EnsembleDecoder:
        """Fit on ``X (n_samples, n_voxels)`` → ``Y (n_samples, dim)``; ``groups`` = run of each sample."""
        X = check_2d(X, "X")
        Y = check_2d(Y, "Y")
        labels = np.asarray(self.labels)
        if labels.shape != (X.shape[1],):
            raise DataError(
                f"labels must have one parcel id per voxel ({X.shape[1]}); got shape {labels.shape}"
            )
        if int(self.n_top) < 1:
            raise ConfigError(f"n_top must be >= 1; got {self.n_top!r}")
        ids, counts = np.unique(labels[labels > 0], return_counts=True)
        ids = ids[counts >= int(self.min_voxels)]
        if ids.size == 0:
            raise DataError(
                f"no parcel has at least {self.min_voxels} voxels (labels hold {np.unique(labels).size} "
                "distinct values); check that the parcel image is on the BOLD grid"
            )
        columns = [np.flatnonzero(labels == pid) for pid in ids]
        decoders = self._fit_parcels(X, Y, groups, columns)
        fitted = {int(pid): (dec, cols) for pid, dec, cols in zip(ids, decoders, columns)}
        scores = np.asarray([float(np.mean(dec.cv_scores_)) for dec in decoders])
        order = np.argsort(-scores, kind="stable")[: int(self.n_top)]
        self.parcel_ids_ = ids.astype(int)
        self.parcel_scores_ = scores
        self.selected_ = ids[order].astype(int)
        self.selected_scores_ = scores[order]
        self.decoders_ = [fitted[int(p)][0] for p in self.selected_]
        self.voxels_ = [fitted[int(p)][1] for p in self.selected_]
        self.n_features_in_ = X.shape[1]
        return self

    def _fit_parcels(self, X, Y, groups, columns: list[np.ndarray]) -> list[RidgeDecoder]:
        """One ridge per parcel, in order; parcels run concurrently, one per BLAS thread, each on one thread.

        A parcel's fit (tens of voxels) is far too thin for threaded BLAS, so serially it kept one core busy.
        """
        from concurrent.futures import ThreadPoolExecutor

        from brain2music.models import _backend as B

        b = B.get_backend(self.backend)
        workers = min(B.cpu_workers(b), len(columns))

        def fit(cols):
            return RidgeDecoder(alphas=self.alphas, cv=self.cv, backend=self.backend).fit(
                X[:, cols], Y, groups
            )

        if workers <= 1:
            return [fit(cols) for cols in columns]
        with B.single_thread(b), ThreadPoolExecutor(workers) as pool:
            return list(pool.map(fit, columns))

    def predict(self, X) -> np.ndarray:
        """Average of the selected parcels' predictions, ``(n_samples, dim)``."""
        if not hasattr(self, "decoders_"):
            raise DataError("this EnsembleDecoder is not fitted yet; call fit(X, Y, groups) first")
        X = check_2d(X, "X")
        if X.shape[1] != self.n_features_in_:
            raise DataError(f"X has {X.shape[1]} voxels; the ensemble was fitted on {self.n_features_in_}")
        preds = [dec.predict(X[:, cols]) for dec, cols in zip(self.decoders_, self.voxels_)]
        return np.mean(preds, axis=0).astype(np.float32)
