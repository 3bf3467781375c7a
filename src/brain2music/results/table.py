"""The paper's Table 2 from a :class:`~brain2music.results.StudyResults`: CSV and plain text.

One block per metric (:data:`METRICS`): the paper's pairwise identification accuracy, the peers' N-way
top-1 and top-5 identification among the test clips, and Pearson r. In each block the rows are the
embeddings, then ``Chance`` and ``Split-half`` (the ``ridge`` decoder's split-half reproducibility; with
several embeddings ``Chance (<enc>)`` …; in the r block also ``Split-half, all repeats``, its
Spearman–Brown correction); columns are the metric space, the n behind the interval and the methods.

A method's cell is ``mean ± sd [95 % CI] p=...`` over subjects: sd ``ddof=1``; CI the hierarchical
bootstrap of :func:`~brain2music.evaluate.stats.hierarchical_bootstrap_ci` (clips within subjects, and
subjects from 3 on: the ``n`` column says which); p the permutation test against chance. Chance and
Split-half cells are mean ± sd over subjects with no interval (there are no per-clip scores of them to
resample); the Chance cell of a top-k block also prints the expected value ``k/N``.
"""

from __future__ import annotations

import csv
import io

import numpy as np

from brain2music.evaluate.stats import subject_sd

__all__ = ["METRICS", "format_table", "table_csv", "table_rows", "cell", "n_text"]

#: ``(key, title)`` of every block of Table 2, in order.
METRICS = (
    ("id_acc", "identification accuracy, pairwise (paper Eq. 3; chance 0.5)"),
    ("top1_acc", "top-1 identification among the test clips (N-way; chance 1/N)"),
    ("top5_acc", "top-5 identification among the test clips (N-way; chance 5/N)"),
    ("pearson_r", "Pearson r"),
)
_TOP_K = {"top1_acc": 1, "top5_acc": 5}


def cell(mean, sd=None, ci=None, p=None) -> str:
    """``"0.874 ± 0.012 [0.860, 0.889] p=0.001"``; ``n/a`` for a missing mean."""
    if mean is None or not np.isfinite(mean):
        return "n/a"
    text = f"{mean:.3f} ± {sd:.3f}" if sd is not None else f"{mean:.3f} ± n/a"
    if ci is not None:
        text += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    if p is not None:
        text += f" p={p:.2g}"
    return text


def n_text(n_subjects: int, n_clips: int, resamples: str | None, *, interval: bool = True) -> str:
    """``"2 subjects × 60 clips; CI resamples clips"`` (``"no CI"`` where nothing was resampled; without
    the CI part for a block that prints no interval, ``interval=False``)."""
    text = f"{n_subjects} subject{'s' if n_subjects != 1 else ''}" + (
        f" × {n_clips} clips" if n_clips else ""
    )
    if not interval:
        return text
    return f"{text}; " + (f"CI resamples {resamples}" if resamples else "no CI")


def _values_cell(values, chance: float | None = None) -> str:
    v = [x for x in values if x is not None and np.isfinite(x)]
    text = cell(float(np.mean(v)), subject_sd(v)) if v else "n/a"
    return text if chance is None else f"{text} (k/N = {chance:.3f})"


def _summary_cell(s, key: str) -> str:
    if s is None:
        return "n/a"
    if key == "pearson_r":
        return cell(s.r_mean, s.r_sd)
    return cell(getattr(s, f"{key}_mean"), getattr(s, f"{key}_sd"), getattr(s, f"{key}_ci"),
                getattr(s, f"{key}_p"))  # fmt: skip


def _n_cell(results, enc: str, key: str) -> str:
    s = next((x for x in results.summary if x.encoder == enc and x.split == "test"), None)
    if s is None:
        return "n/a"
    # A folder whose summary records no ci_resamples may still hold intervals: say so, not "no CI".
    resamples = s.ci_resamples or ("not recorded" if s.id_acc_ci is not None else None)
    return n_text(s.n_subjects, s.n_clips, resamples, interval=key != "pearson_r")


def _chance_value(results, enc: str, key: str) -> float | None:
    """The expected top-k accuracy ``k/N`` of ``enc``'s Chance rows (``None`` where unknown)."""
    found = [getattr(c, key.replace("_acc", "_chance"), None) for c in results.chance if c.encoder == enc]
    found = [x for x in found if x is not None]
    if found:
        return float(np.mean(found))
    s = next((x for x in results.summary if x.encoder == enc and x.split == "test" and x.n_clips), None)
    return None if s is None else min(_TOP_K[key], s.n_clips) / s.n_clips


def _reference_rows(results, enc: str, key: str, label) -> list[list[str]]:
    chance = [c for c in results.chance if c.encoder == enc]
    halves = [h for h in results.split_half if h.encoder == enc]
    k_over_n = _chance_value(results, enc, key) if key in _TOP_K else None
    n_subj = f"{len(chance)} subject{'s' if len(chance) != 1 else ''}; no CI"
    rows = [
        [label("Chance"), n_subj, _values_cell([getattr(c, key, None) for c in chance], k_over_n)],
        [label("Split-half"), n_subj, _values_cell([getattr(h, key, None) for h in halves])],
    ]
    if key == "pearson_r":
        reps = sorted({h.n_repeats for h in halves})
        what = f" ({'/'.join(map(str, reps))} repeats)" if reps else ""
        rows.append([label(f"Split-half, all repeats{what}"), n_subj,
                     _values_cell([h.pearson_r_full for h in halves])])  # fmt: skip
    return rows


def table_rows(results, key: str = "id_acc", split: str = "test") -> tuple[list[str], list[list[str]]]:
    """The header and rows of one block of Table 2 (``key`` of :data:`METRICS`), as printed."""
    methods = results.methods
    encs = list(results.encoders)
    header = ["embedding", "space", "n", *methods]
    lines = []
    for enc in encs:
        cells = [_summary_cell(results.summary_for(enc, m, split), key) for m in methods]
        lines.append([enc, results.space(enc), _n_cell(results, enc, key), *cells])
    for enc in encs:

        def label(name, enc=enc):
            return name if len(encs) == 1 else f"{name} ({enc})"

        for name, n, value in _reference_rows(results, enc, key, label):
            lines.append([name, results.space(enc), n, *([value] * len(methods))])
    return header, lines


def table_csv(results) -> str:
    """Table 2 as CSV: column ``metric`` (:data:`METRICS`) then the columns of the printed table."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for i, (key, _) in enumerate(METRICS):
        header, lines = table_rows(results, key)
        if i == 0:
            writer.writerow(["metric", *header])
        writer.writerows([key, *line] for line in lines)
    return buf.getvalue()


def format_table(results) -> str:
    """Plain-text Table 2 (every block of :data:`METRICS`), with the conventions underneath."""
    out = []
    n = len(results.subjects)
    for key, title in METRICS:
        header, lines = table_rows(results, key)
        widths = [max(len(str(row[i])) for row in [header] + lines) for i in range(len(header))]
        what = "mean ± sd" if key == "pearson_r" else "mean ± sd [95 % CI] p vs chance"
        out.append(f"Test {title} ({what} over {n} subject{'s' if n != 1 else ''})")
        out.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        out.append("  ".join("-" * w for w in widths))
        out.extend("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in lines)
        out.append("")
    out.append(
        "sd: sample sd over subjects (ddof=1); CI: hierarchical bootstrap (clips resampled within each "
        "subject, subjects too from 3 on; n says which); Chance and Split-half: mean ± sd over subjects, no "
        "interval. Top-k: the true clip among the k most correlated of the N test clips. Split-half: "
        "reproducibility of the ridge decoder between halves of the test repeats (not a noise ceiling); "
        "'all repeats' is its Spearman–Brown correction. Only numbers in the 'paper' space compare with "
        "published figures."
    )
    return "\n".join(out)
