"""Figures of the report. Each function draws on ``ax`` (created when None) and returns the axes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Published identification accuracies (real ds003720, test set, mean over 5 subjects), all computed in the
# paper's metric space (raw embedding vectors): drawn only beside numbers in that space.
PUBLISHED = {
    "Brain2Music MuLan-music (Denk 2023)": 0.876,
    "Ciferri 2025 CLAP + alignment": 0.914,
    "Ciferri 2025 CLAP, no alignment": 0.796,
    "Ferrante 2024 R&B": 0.901,
}


def _axes(ax, figsize=(6, 3.5)):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def plot_id_acc_by_subject(
    rows: Sequence,
    *,
    chance: float = 0.5,
    published: dict[str, float] | None = None,
    title: str | None = None,
    ax=None,
):
    """Bars of identification accuracy per subject (one group per subject, one bar per method).

    ``rows``: :class:`~brain2music.results.MethodResult` records of one encoder's test split; their
    95 % CIs are drawn as error bars. ``published`` figures are drawn as horizontal lines: pass them only
    when the rows are in the paper's metric space.
    """
    ax = _axes(ax, (7, 3.8))
    subjects = sorted({r.subject for r in rows})
    methods = list(dict.fromkeys(r.method for r in rows))
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(subjects))
    for k, method in enumerate(methods):
        found = [next((r for r in rows if r.subject == s and r.method == method), None) for s in subjects]
        vals = np.array([np.nan if r is None else r.id_acc for r in found])
        err = np.array(
            [[0.0, 0.0] if r is None or r.id_acc_ci is None else [r.id_acc - r.id_acc_ci[0], r.id_acc_ci[1] - r.id_acc]
             for r in found]
        ).T  # fmt: skip
        ax.bar(x + (k - (len(methods) - 1) / 2) * width, vals, width, yerr=err, capsize=2, label=method)
    ax.axhline(chance, color="k", ls="--", lw=1, label=f"chance ({chance})")
    styles = ["-.", ":", (0, (3, 1, 1, 1)), (0, (5, 2))]
    for (name, value), ls in zip((published or {}).items(), styles):
        ax.axhline(value, color="0.4", ls=ls, lw=1, label=f"{name}: {value}")
    ax.set_xticks(x, subjects)
    ax.set_ylim(0.3, 1.0)
    space = rows[0].space if rows else ""
    ax.set_ylabel(f"identification accuracy ({space} space)" if space else "identification accuracy")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return ax


def plot_per_genre(rows: Sequence, *, chance: float = 0.5, title: str | None = None, ax=None):
    """Mean identification accuracy per genre over subjects (error bars: sd over subjects, ddof=1).

    ``rows``: :class:`~brain2music.results.GenreScore` records of one encoder and method.
    """
    from brain2music.evaluate.stats import subject_sd

    ax = _axes(ax)
    genres = sorted({r.genre for r in rows})
    means = [np.nanmean([r.id_acc for r in rows if r.genre == g]) for g in genres]
    sds = [subject_sd([r.id_acc for r in rows if r.genre == g]) or 0.0 for g in genres]
    ax.bar(genres, means, yerr=sds, color="tab:blue", alpha=0.8, capsize=2)
    ax.axhline(chance, color="k", ls="--", lw=1)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("identification accuracy")
    ax.tick_params(axis="x", rotation=45)
    if title:
        ax.set_title(title)
    return ax


def plot_identification_matrix(
    similarity: np.ndarray, labels: Sequence[str] | None = None, *, title=None, ax=None
):
    """The matrix ``C_ij = pearson(predicted_i, target_j)`` of the test clips (diagonal = correct clip)."""
    ax = _axes(ax, (4.6, 4.2))
    c = np.asarray(similarity, dtype=float)
    im = ax.imshow(c, cmap="RdBu_r", vmin=-np.nanmax(np.abs(c)), vmax=np.nanmax(np.abs(c)))
    ax.figure.colorbar(im, ax=ax, shrink=0.8, label="Pearson r")
    ax.set_xlabel("true embedding j")
    ax.set_ylabel("predicted embedding i")
    if labels is not None and len(labels) <= 80:
        # Genre boundaries help read the block structure.
        genres = [str(lab).split(".")[0] for lab in labels]
        ticks = [i for i in range(len(genres)) if i == 0 or genres[i] != genres[i - 1]]
        ax.set_yticks(ticks, [genres[i] for i in ticks], fontsize=6)
        ax.set_xticks([])
    if title:
        ax.set_title(title)
    return ax


def plot_spectrogram(audio: np.ndarray, sr: int, *, ax=None, n_mels: int = 64):
    """Log-mel spectrogram of ``audio`` (shape ``(n_samples,)``)."""
    import librosa

    ax = _axes(ax, (3.2, 1.4))
    mel = librosa.feature.melspectrogram(
        y=np.asarray(audio, dtype=np.float32), sr=sr, n_mels=n_mels, hop_length=512
    )
    db = librosa.power_to_db(mel, ref=np.max(mel) if mel.size and np.max(mel) > 0 else 1.0)
    ax.imshow(
        db,
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=[0, len(audio) / sr, 0, n_mels],
        vmin=-80,
        vmax=0,
    )
    ax.set_yticks([])
    ax.set_xlabel("s", fontsize=6, labelpad=0)
    ax.tick_params(labelsize=6)
    return ax


def plot_encoding_map(
    image, *, title: str | None = None, threshold: float | None = None, axes=None, display_mode="z"
):
    """Encoding-model test correlation per voxel on brain slices (``nilearn.plotting.plot_stat_map``).

    ``image`` is a NIfTI path or image in the subject's space. Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt
    from nilearn import plotting

    fig = plt.figure(figsize=(7, 2.2)) if axes is None else axes.figure
    plotting.plot_stat_map(
        image,
        bg_img=None,
        display_mode=display_mode,
        cut_coords=5,
        threshold=threshold,
        title=title,
        figure=fig,
        axes=axes,
        colorbar=True,
        cmap="inferno",
        black_bg=False,
        draw_cross=False,
        annotate=False,
    )
    return fig
