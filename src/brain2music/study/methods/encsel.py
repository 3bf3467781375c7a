"""``encsel``: ridge on the voxels an encoding model predicts well (Ciferri et al., without alignment)."""

from __future__ import annotations

import time

import numpy as np

from brain2music.models import SubsetDecoder
from brain2music.study.methods.base import DecoderMethod, FittedMethod, flat


class EncselMethod(DecoderMethod):
    name = "encsel"
    needs = frozenset({"encoding"})
    description = "voxels with encoding-model CV r > threshold on the training clips; ridge"

    def fit(self, ctx, targets) -> FittedMethod:
        x_train, _ = ctx.windowed(targets.window)
        selected = ctx.selected_voxels(targets)  # from this context's training clips only
        t0 = time.perf_counter()
        dec = SubsetDecoder(selected, ctx.ridge(), n_features=ctx.n_voxels)
        dec.fit(flat(x_train), flat(targets.train), ctx.groups(targets.r))
        return FittedMethod(
            dec,
            float(np.mean(dec.decoder.cv_scores_)),
            int(selected.size),
            fit_seconds=time.perf_counter() - t0,
        )
