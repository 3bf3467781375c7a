"""Leave-one-genre-out with and without the held-out genre in the voxel selection and the metric space.

    python benchmarks/bench_logo.py RESULTS_DIR [--subject sub-001]

Reads the study a results folder was computed on (its config) and its ``embeddings/<encoder>.npz``, and
scores leave-one-genre-out with the ``encsel`` decoder four ways, to say which of the two changes of issue
11 moves the number:

- ``voxels``: encoding-model voxel selection fitted on all training genres (the old leak) or on the other
  genres only;
- ``space``: the standardized metric space fitted on all training clips or on the other genres only.

Prints the mean over genres of each variant and its per-genre values. Penalties are always chosen on the
other genres (they were before too).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from brain2music.evaluate import identification_scores, similarity_matrix
from brain2music.evaluate.space import MetricSpace
from brain2music.results import ResultsFolder
from brain2music.results.settings import DataSource, StudySettings
from brain2music.study.context import SubjectContext, Targets, load_subject_for_study
from brain2music.study.methods.base import flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--subject", default="sub-001")
    parser.add_argument("--encoder", default="acoustic")
    args = parser.parse_args()
    folder = ResultsFolder(args.results)
    study = folder.read()
    cfg = study.config
    source = DataSource(cfg.source.kind, cfg.source.bids_root, delay=cfg.source.delay)
    settings = StudySettings(
        source=source, encoders=[args.encoder], subjects=[args.subject], methods=["encsel"], out=Path(args.results),
        alphas=cfg.alphas, cv=cfg.cv, encsel_threshold=cfg.encsel_threshold, encsel_top=cfg.encsel_top,
        delays=cfg.delays,
    )  # fmt: skip
    t0 = time.perf_counter()
    ctx = SubjectContext(load_subject_for_study(source, args.subject), settings)
    es = folder.read_embeddings(study, args.encoder)
    train, test = es.select(ctx.train_clips.clip_id), es.select(ctx.test_clips.clip_id)
    full = Targets(args.encoder, es.window, train, test, MetricSpace.fit("standardized", train))
    x_train, x_test = ctx.windowed(es.window)
    genres_train = ctx.train_clips.genre.to_numpy().astype(str)
    genres_test = ctx.test_clips.genre.to_numpy().astype(str)
    leaky_voxels = ctx.selected_voxels(full)
    scores = {(v, s): {} for v in ("all genres", "other genres") for s in ("all genres", "other genres")}
    for g in sorted(set(genres_test)):
        drop = genres_train == g
        sub_ctx, sub_t = ctx.without_train(drop), ctx.targets_without_train(full, drop)
        voxels = {"all genres": leaky_voxels, "other genres": sub_ctx.selected_voxels(sub_t)}
        spaces = {"all genres": full.space, "other genres": sub_t.space}
        groups = sub_ctx.groups(sub_t.r)
        for v, cols in voxels.items():
            dec = sub_ctx.ridge().fit(flat(x_train[~drop][..., cols]), flat(sub_t.train), groups)
            pred = dec.predict(flat(x_test[..., cols])).reshape(test.shape)
            held = genres_test == g
            for s, space in spaces.items():
                target = space.transform(test)
                predicted = target.copy()
                predicted[held] = space.transform(pred[held])
                scores[(v, s)][g] = float(
                    identification_scores(similarity_matrix(predicted, target))[held].mean()
                )
    print(f"{args.subject}, {args.encoder}, encsel, leave-one-genre-out ({time.perf_counter() - t0:.0f} s)")
    for (v, s), per_genre in scores.items():
        values = " ".join(f"{g}={a:.2f}" for g, a in per_genre.items())
        print(
            f"  voxels from {v:12s} space from {s:12s} mean {np.mean(list(per_genre.values())):.3f}   {values}"
        )


if __name__ == "__main__":
    main()
