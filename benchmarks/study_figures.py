"""Print the figures of a results folder written by ``brain2music reproduce`` (for benchmarks/decoding.md).

    python benchmarks/study_figures.py RESULTS_DIR

Prints Table 2 as stored, per-subject test id acc with 95 % CIs and p-values, the training-CV r each
method is selected by, leave-one-genre-out, the split-half reproducibility, the paired test of every method
against ridge, and the test id acc of the same saved predictions re-scored in the *other* metric space
(``paper`` ↔ ``standardized``), so both spaces can be quoted from one run.
"""

from __future__ import annotations

import argparse

import numpy as np

from brain2music.evaluate import identification_accuracy
from brain2music.evaluate.space import MetricSpace
from brain2music.results import ResultsFolder
from brain2music.results.table import cell, format_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    args = parser.parse_args()
    folder = ResultsFolder(args.results)
    study = folder.read()
    print(format_table(study))
    print(f"\nelapsed {study.elapsed_s} s")
    for enc in study.encoders:
        print(f"\n== {enc} ({study.space(enc)} space)")
        for r in study.results_for(enc):
            print(
                f"  {r.subject} {r.method:9s} id acc {r.id_acc:.3f} [{r.id_acc_ci[0]:.3f}, {r.id_acc_ci[1]:.3f}] "
                f"p={r.id_acc_p:.2g}  train-CV r {r.train_cv_r:.3f}  fit {r.fit_seconds:.0f} s  voxels {r.n_voxels}"
            )
        print(f"  selected by training CV: {study.select_method(enc)}")
        for h in study.split_half:
            if h.encoder == enc:
                print(
                    f"  split-half {h.subject}: id acc {h.id_acc:.3f}, r {h.pearson_r:.3f}, "
                    f"Spearman-Brown r (4 repeats) {h.pearson_r_full:.3f}"
                )
        for s in study.subjects:
            logo = [g.id_acc for g in study.leave_one_genre_out if g.encoder == enc and g.subject == s]
            if logo:
                print(
                    f"  leave-one-genre-out {s}: {np.mean(logo):.3f} (min {min(logo):.3f}, max {max(logo):.3f})"
                )
        for t in study.paired_tests:
            if t.encoder == enc and "ridge" in (t.method_a, t.method_b) and t.subject == "mean":
                other = t.method_b if t.method_a == "ridge" else t.method_a
                sign = -1.0 if t.method_a == "ridge" else 1.0
                lo, hi = sorted(sign * np.asarray(t.diff_ci))
                print(
                    f"  paired {other} - ridge: {sign * t.diff:+.3f} [{lo:+.3f}, {hi:+.3f}] p={t.p_value:.2g}"
                )
        other = "paper" if study.space(enc) == "standardized" else "standardized"
        es = folder.read_embeddings(study, enc)
        for m in study.methods:
            accs = []
            for s in folder.prediction_subjects(enc, m):
                p = folder.read_predictions(enc, m, s)
                train = es.embeddings[~np.isin(es.clip_ids, p.clip_ids)]
                space = MetricSpace.fit(other, train)
                accs.append(identification_accuracy(space.transform(p.predicted), space.transform(p.target)))
            if accs:
                sd = float(np.std(accs, ddof=1)) if len(accs) > 1 else None
                print(f"  re-scored in the {other} space: {m:9s} {cell(float(np.mean(accs)), sd)}")


if __name__ == "__main__":
    main()
