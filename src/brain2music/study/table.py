"""The paper's Table 2 from a :class:`~brain2music.study.results.StudyResults`: CSV and plain text.

Rows are the embeddings, then ``Chance`` and ``Split-half`` (the ``ridge`` decoder's split-half
reproducibility; with several embeddings ``Chance (<enc>)`` …); columns are the metric space and the
methods. A cell is ``mean ± sd [95 % CI] p=...`` over subjects (sd: ``ddof=1``; CI: bootstrap over
subjects; p: permutation test against chance, every subject's clip labels shuffled).
"""

from __future__ import annotations

import csv
import io

import numpy as np

from brain2music.evaluate.stats import bootstrap_ci, subject_sd

__all__ = ["format_table", "table_csv", "cell"]


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


def _values_cell(values) -> str:
    v = [x for x in values if x is not None and np.isfinite(x)]
    if not v:
        return "n/a"
    return cell(float(np.mean(v)), subject_sd(v), bootstrap_ci(v))


def _rows(results, key: str = "id_acc", split: str = "test") -> tuple[list[str], list[list[str]]]:
    methods = results.methods
    encs = list(results.encoders)
    header = ["embedding", "space", *methods]
    lines = []
    for enc in encs:
        cells = []
        for m in methods:
            s = results.summary_for(enc, m, split)
            if s is None:
                cells.append("n/a")
            elif key == "id_acc":
                cells.append(cell(s.id_acc_mean, s.id_acc_sd, s.id_acc_ci, s.id_acc_p))
            else:
                cells.append(cell(s.r_mean, s.r_sd))
        lines.append([enc, results.space(enc), *cells])
    refs = (("Chance", results.chance), ("Split-half", results.split_half))
    for name, records in refs:
        for enc in encs:
            label = name if len(encs) == 1 else f"{name} ({enc})"
            value = _values_cell([getattr(r, "id_acc" if key == "id_acc" else "pearson_r") for r in records
                                  if r.encoder == enc])  # fmt: skip
            lines.append([label, results.space(enc), *([value] * len(methods))])
    return header, lines


def table_csv(results) -> str:
    """Table 2 as CSV: test id acc ``mean ± sd [95 % CI]`` over subjects, one column per method."""
    header, lines = _rows(results)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(lines)
    return buf.getvalue()


def format_table(results) -> str:
    """Plain-text Table 2 (test identification accuracy and Pearson r), with the conventions underneath."""
    out = []
    n = len(results.subjects)
    for key, title in (("id_acc", "identification accuracy"), ("pearson_r", "Pearson r")):
        header, lines = _rows(results, key)
        widths = [max(len(str(row[i])) for row in [header] + lines) for i in range(len(header))]
        what = "mean ± sd [95 % CI] p vs chance" if key == "id_acc" else "mean ± sd"
        out.append(f"Test {title} ({what} over {n} subject{'s' if n != 1 else ''})")
        out.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        out.append("  ".join("-" * w for w in widths))
        out.extend("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in lines)
        out.append("")
    out.append(
        "sd: sample sd over subjects (ddof=1); CI: bootstrap over subjects. Split-half: reproducibility of "
        "the ridge decoder between halves of the test repeats (not a noise ceiling). Only numbers in the "
        "'paper' space compare with published figures."
    )
    return "\n".join(out)
