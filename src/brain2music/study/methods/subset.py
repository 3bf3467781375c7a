"""One ridge on a subset of the subject's voxels: the fit shared by ``encsel``, ``krr-rbf`` and ``debug``."""

from __future__ import annotations

import time

import numpy as np

from brain2music.models import SubsetDecoder
from brain2music.study.methods.base import FittedMethod, flat

__all__ = ["fit_on_voxels"]


def fit_on_voxels(ctx, targets, voxels: np.ndarray, ridge) -> FittedMethod:
    """Fit ``ridge`` (built by ``ctx.ridge(...)``) on the columns ``voxels`` of ``ctx``'s training windows.

    The decoder is a :class:`~brain2music.models.SubsetDecoder`, so it reads the context's full voxel
    vector and selects the columns itself; ``train_cv_r`` is the ridge's run-grouped CV r averaged over
    the embedding dimensions, and ``fit_seconds`` times the fit alone (not the choice of ``voxels``).
    """
    x_train, _ = ctx.windowed(targets.window)
    t0 = time.perf_counter()
    dec = SubsetDecoder(voxels, ridge, n_features=ctx.n_voxels)
    dec.fit(flat(x_train), flat(targets.train), ctx.groups(targets.r))
    return FittedMethod(
        dec,
        float(np.mean(dec.decoder.cv_scores_)),
        int(np.asarray(voxels).size),
        fit_seconds=time.perf_counter() - t0,
    )
