"""``ridge``: the paper's decoder, one ridge on every mask voxel, a penalty per embedding dimension."""

from __future__ import annotations

import time

import numpy as np

from brain2music.study.methods.base import DecoderMethod, FittedMethod, flat


class RidgeMethod(DecoderMethod):
    name = "ridge"
    description = "all mask voxels; ridge, one penalty per dimension by run-grouped CV (Denk et al.)"

    def fit(self, ctx, targets) -> FittedMethod:
        """Fit one ridge on every voxel of ``ctx``, reusing the subject's kernel of this window."""
        x_train, _ = ctx.windowed(targets.window)
        t0 = time.perf_counter()
        dec = ctx.ridge()
        # The subject's kernel of this window: one X X^T (and, with a second embedding of the same window,
        # one set of factorisations) for every fit on these samples.
        dec.fit(
            flat(x_train), flat(targets.train), ctx.groups(targets.r), kernel=ctx.kernel(targets.window, dec)
        )
        return FittedMethod(
            dec, float(np.mean(dec.cv_scores_)), ctx.n_voxels, fit_seconds=time.perf_counter() - t0
        )
