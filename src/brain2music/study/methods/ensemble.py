"""``ensemble``: the paper's parcel ensemble, one ridge per parcel, the best parcels by CV averaged."""

from __future__ import annotations

import time

import numpy as np

from brain2music.models import EnsembleDecoder, correlation_per_target, grouped_splits
from brain2music.study.methods.base import DecoderMethod, FittedMethod, flat


class EnsembleMethod(DecoderMethod):
    name = "ensemble"
    needs = frozenset({"parcels"})
    description = "one ridge per parcel; the n_top parcels with the best training CV r averaged (Denk et al.)"

    def fit(self, ctx, targets) -> FittedMethod:
        """Fit one ridge per parcel, keep the ``n_top_parcels`` best by training CV r, and record them."""
        from brain2music.results import EnsembleParcels

        x_train, _ = ctx.windowed(targets.window)
        X, Y, groups = flat(x_train), flat(targets.train), ctx.groups(targets.r)
        s = ctx.settings
        t0 = time.perf_counter()
        dec = EnsembleDecoder(
            ctx.parcels, n_top=s.n_top_parcels, alphas=s.alphas, cv=s.cv, backend=ctx.backend
        ).fit(X, Y, groups)
        fit_s = time.perf_counter() - t0
        record = EnsembleParcels(
            subject=ctx.subject, encoder=targets.encoder, parcels=dec.selected_.tolist(),
            cv_scores=dec.selected_scores_.tolist(), all_parcels=dec.parcel_ids_.tolist(),
            all_cv_scores=dec.parcel_scores_.tolist(),
            parcel_names=[ctx.parcel_names.get(int(p), str(int(p))) for p in dec.selected_]
            if ctx.parcel_names else [],
        )  # fmt: skip
        return FittedMethod(
            dec, _ensemble_cv_r(ctx, dec, X, Y, groups), int(sum(v.size for v in dec.voxels_)),
            fit_seconds=fit_s, records=[record],
        )  # fmt: skip


def _ensemble_cv_r(ctx, dec: EnsembleDecoder, X, Y, groups) -> float:
    """Cross-validated r of the averaged prediction of the kept parcels (same run-grouped folds).

    Each kept parcel's ridge is refitted in every fold (penalties chosen inside the fold); which parcels
    are kept was decided on all training clips, so the score is optimistic, like any CV score read after
    a selection: it is recorded as ``train_cv_r_inner``, and the ensemble is selected by its nested score
    (:mod:`brain2music.study.nested`, the parcel ranking refitted in every outer fold).
    """
    scores = []
    for train, test in grouped_splits(groups, ctx.settings.cv):
        inner = max(2, min(ctx.settings.cv, np.unique(groups[train]).size))
        preds = [
            ctx.ridge(cv=inner).fit(X[train][:, cols], Y[train], groups[train]).predict(X[test][:, cols])
            for cols in dec.voxels_
        ]
        scores.append(correlation_per_target(Y[test], np.mean(preds, axis=0)))
    return float(np.mean(scores))
