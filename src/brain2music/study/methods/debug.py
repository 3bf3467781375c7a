"""``debug``: a tiny offline method for tests: ridge with one penalty on the first 50 voxels."""

from __future__ import annotations

import time

import numpy as np

from brain2music.models import SubsetDecoder
from brain2music.study.methods.base import DecoderMethod, FittedMethod, flat


class DebugMethod(DecoderMethod):
    name = "debug"
    description = "first 50 voxels, one penalty (1.0); for tests"

    def fit(self, ctx, targets) -> FittedMethod:
        x_train, _ = ctx.windowed(targets.window)
        voxels = np.arange(min(50, ctx.n_voxels))
        t0 = time.perf_counter()
        dec = SubsetDecoder(voxels, ctx.ridge(alphas=[1.0]), n_features=ctx.n_voxels)
        dec.fit(flat(x_train), flat(targets.train), ctx.groups(targets.r))
        return FittedMethod(
            dec,
            float(np.mean(dec.decoder.cv_scores_)),
            int(voxels.size),
            fit_seconds=time.perf_counter() - t0,
        )
