"""``ensemble``: the paper's parcel ensemble, one ridge per parcel, the best parcels by CV averaged."""

from __future__ import annotations

import time

import numpy as np

from brain2music.models import EnsembleDecoder
from brain2music.study.methods.base import DecoderMethod, FittedMethod, flat


class EnsembleMethod(DecoderMethod):
    name = "ensemble"
    needs = frozenset({"parcels"})
    description = "one ridge per parcel; the n_top parcels with the best training CV r averaged (Denk et al.)"

    def fit(self, ctx, targets) -> FittedMethod:
        from brain2music.study.results import EnsembleParcels

        x_train, _ = ctx.windowed(targets.window)
        s = ctx.settings
        t0 = time.perf_counter()
        dec = EnsembleDecoder(ctx.parcels, n_top=s.n_top_parcels, alphas=s.alphas, cv=s.cv)
        dec.fit(flat(x_train), flat(targets.train), ctx.groups(targets.r))
        record = EnsembleParcels(
            subject=ctx.subject, encoder=targets.encoder, parcels=dec.selected_.tolist(),
            cv_scores=dec.selected_scores_.tolist(), all_parcels=dec.parcel_ids_.tolist(),
            all_cv_scores=dec.parcel_scores_.tolist(),
        )  # fmt: skip
        # The ensemble's own CV r is not computed (it would refit 150 parcels per fold); the mean CV r
        # of the kept parcels stands in for it.
        return FittedMethod(
            dec, float(np.mean(dec.selected_scores_)), int(sum(v.size for v in dec.voxels_)),
            fit_seconds=time.perf_counter() - t0, records=[record],
        )  # fmt: skip
