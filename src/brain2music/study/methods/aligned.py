"""``aligned``: encsel voxels of every subject mapped into a reference subject's, one pooled ridge.

Ciferri et al. (2025): all subjects heard the same training clips, so a ridge map fitted on the shared
clips takes each subject's selected voxels into the reference subject's selected voxels; one decoder is
trained on the pooled, aligned training data of all subjects.
"""

from __future__ import annotations

import time

import numpy as np

from brain2music.errors import DataError
from brain2music.models import ALIGNMENT_ALPHAS, FunctionalAlignment, SubsetDecoder
from brain2music.models._checks import match_clip_ids
from brain2music.study.methods.base import FittedMethod, GroupMethod


class AlignedMethod(GroupMethod):
    name = "aligned"
    needs = frozenset({"subjects", "encoding"})
    description = (
        "encsel voxels aligned to a reference subject by ridge on shared clips; pooled ridge (Ciferri et al.)"
    )

    def prepare(self, ctx, targets):
        """Keep only the encsel voxels of the subject (the full responses are freed after the loop)."""
        return ctx.subset(ctx.selected_voxels(targets))

    def fit_group(self, states, targets):
        """Map every subject into the reference subject's voxel space (ridge on the shared training clips),
        fit one ridge on the pooled aligned responses; each subject's decoder reads through its own map."""
        subjects = list(states)
        reference = next(iter(states.values())).settings.reference or subjects[0]
        ref, ref_t = states[reference], targets[reference]
        ref_ids = ref.train_clips.clip_id.tolist()
        ref_run = dict(zip(ref_ids, ref.train_runs))
        r, cv = ref_t.r, ref.settings.cv
        parts_x, parts_y, parts_g, maps = [], [], [], {}
        for s in subjects:
            ctx, t = states[s], targets[s]
            ids = ctx.train_clips.clip_id.tolist()
            shared = [c for c in ref_ids if c in set(ids)]
            if len(shared) < cv:
                raise DataError(
                    f"{s} shares only {len(shared)} training clips with the reference {reference}"
                )
            si = match_clip_ids(shared, ids, what=f"{s} training clips", source="reference training clips")
            ri = match_clip_ids(shared, ref_ids, what="reference training clips", source="shared clips")
            g = np.repeat([ref_run[c] for c in shared], r)
            x_train = ctx.windowed(t.window)[0]
            src = x_train[si].reshape(-1, x_train.shape[-1])
            if s == reference:
                maps[s], xs = None, src
            else:
                dst = ref.windowed(ref_t.window)[0][ri].reshape(-1, ref.n_voxels)
                maps[s] = FunctionalAlignment(alphas=ALIGNMENT_ALPHAS, cv=cv, backend=ref.backend).fit(
                    src, dst, g
                )
                xs = maps[s].transform(src)
            parts_x.append(xs)
            parts_y.append(t.train[si].reshape(-1, t.dim))
            parts_g.append(g)
        t0 = time.perf_counter()
        pooled = ref.ridge().fit(np.concatenate(parts_x), np.concatenate(parts_y), np.concatenate(parts_g))
        fit_s = time.perf_counter() - t0
        cv_r = float(np.mean(pooled.cv_scores_))
        out = {}
        for s in subjects:
            ctx = states[s]
            dec = SubsetDecoder(np.arange(ctx.n_voxels), pooled, alignment=maps[s])
            saved = SubsetDecoder(
                ctx.parent_voxels, pooled, alignment=maps[s], n_features=ctx.parent_n_voxels
            )
            out[s] = (ctx, FittedMethod(dec, cv_r, ctx.n_voxels, saved=saved, fit_seconds=fit_s))
        return out
