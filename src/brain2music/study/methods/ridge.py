"""``ridge``: the paper's decoder, one ridge on every mask voxel, a penalty per embedding dimension."""

from __future__ import annotations

import time

import numpy as np

from brain2music.study.methods.base import DecoderMethod, FittedMethod, flat


class RidgeMethod(DecoderMethod):
    name = "ridge"
    description = "all mask voxels; ridge, one penalty per dimension by run-grouped CV (Denk et al.)"

    def fit(self, ctx, targets) -> FittedMethod:
        x_train, _ = ctx.windowed(targets.window)
        t0 = time.perf_counter()
        dec = ctx.ridge().fit(flat(x_train), flat(targets.train), ctx.groups(targets.r))
        return FittedMethod(
            dec, float(np.mean(dec.cv_scores_)), ctx.n_voxels, fit_seconds=time.perf_counter() - t0
        )
