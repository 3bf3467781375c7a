"""``debug``: a tiny offline method for tests: ridge with one penalty on the first 50 voxels."""

from __future__ import annotations

import numpy as np

from brain2music.study.methods.base import DecoderMethod, FittedMethod
from brain2music.study.methods.subset import fit_on_voxels


class DebugMethod(DecoderMethod):
    """The first 50 voxels, one penalty: fast enough for any test."""

    name = "debug"
    description = "first 50 voxels, one penalty (1.0); for tests"

    def fit(self, ctx, targets) -> FittedMethod:
        """Fit the one-penalty ridge on the first 50 voxels of ``ctx``."""
        return fit_on_voxels(ctx, targets, np.arange(min(50, ctx.n_voxels)), ctx.ridge(alphas=[1.0]))
