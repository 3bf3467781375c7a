"""``krr-rbf``: kernel ridge with an RBF kernel on the ``encsel`` voxels (nonlinear counterpart)."""

from __future__ import annotations

import time

import numpy as np

from brain2music.models import SubsetDecoder
from brain2music.study.methods.base import DecoderMethod, FittedMethod, flat


class KernelRbfMethod(DecoderMethod):
    name = "krr-rbf"
    needs = frozenset({"encoding"})
    description = "encsel voxels; RBF kernel ridge (Nystroem above 2,000 samples)"

    def fit(self, ctx, targets) -> FittedMethod:
        x_train, _ = ctx.windowed(targets.window)
        selected = ctx.selected_voxels(targets)
        t0 = time.perf_counter()
        dec = SubsetDecoder(selected, ctx.ridge(kernel="rbf"), n_features=ctx.n_voxels)
        dec.fit(flat(x_train), flat(targets.train), ctx.groups(targets.r))
        return FittedMethod(
            dec,
            float(np.mean(dec.decoder.cv_scores_)),
            int(selected.size),
            fit_seconds=time.perf_counter() - t0,
        )
