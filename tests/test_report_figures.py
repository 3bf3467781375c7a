"""Figure functions: they draw what their rows say on the axes they are given and return those axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from brain2music.report import figures  # noqa: E402
from brain2music.results import GenreScore, MethodResult  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _genre_rows():
    values = {"blues": (0.9, 0.7), "rock": (0.6, 0.4)}
    return [
        GenreScore(subject=s, encoder="acoustic", method="ridge", genre=g, id_acc=v[i], space="paper")
        for g, v in values.items()
        for i, s in enumerate(("sub-001", "sub-002"))
    ]


def test_per_genre_bars_are_means_with_subject_sd():
    fig, ax = plt.subplots()
    assert figures.plot_per_genre(_genre_rows(), chance=0.5, ax=ax) is ax
    bars = ax.patches
    assert [b.get_height() for b in bars] == pytest.approx([0.8, 0.5])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["blues", "rock"]
    assert ax.lines[-1].get_ydata()[0] == pytest.approx(0.5)  # the chance line
    # Error bars: sd over the two subjects (ddof=1) = |a - b| / sqrt(2).
    segments = ax.collections[0].get_segments()
    assert [seg[1][1] - seg[0][1] for seg in segments] == pytest.approx([2 * 0.2 / np.sqrt(2)] * 2)


def test_identification_matrix_is_symmetric_in_colour_and_labels_genres():
    sim = np.array([[0.9, -0.2, 0.1], [0.0, 0.5, -0.4], [0.3, 0.2, 0.8]])
    ax = figures.plot_identification_matrix(sim, ["blues.00001", "blues.00002", "rock.00003"])
    image = ax.images[0]
    np.testing.assert_allclose(image.get_array(), sim)
    assert image.get_clim() == pytest.approx((-0.9, 0.9))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["blues", "rock"]
    assert list(ax.get_yticks()) == [0, 2]


def test_id_acc_by_subject_draws_one_bar_per_subject_and_method():
    rows = []
    for s, base in (("sub-001", 0.8), ("sub-002", 0.7)):
        for m, delta in (("ridge", 0.0), ("ensemble", 0.05)):
            rows.append(_method_result(s, m, base + delta))
    ax = figures.plot_id_acc_by_subject(rows, chance=0.5, published={"paper": 0.85})
    heights = sorted(round(b.get_height(), 6) for b in ax.patches)
    assert heights == pytest.approx([0.7, 0.75, 0.8, 0.85])
    assert ax.get_ylabel() == "identification accuracy (paper space)"
    assert {t.get_text() for t in ax.get_xticklabels()} == {"sub-001", "sub-002"}


def _method_result(subject, method, id_acc):
    return MethodResult(
        subject=subject, encoder="acoustic", method=method, split="test", space="paper", id_acc=id_acc,
        pearson_r=0.0, id_acc_ci=[id_acc - 0.05, id_acc + 0.05],
    )  # fmt: skip
