"""Build the one-page HTML report of a finished run: numbers, figures, brain maps and audio.

The page works offline: figures are PNG files and audio WAV files in ``report_assets/`` beside
``report.html`` (relative links, no CDN, no scripts). Everything is written to a temporary folder first and
moved into place at the end, so an interrupted build leaves no half-written report.

Inputs are the results folder of ``brain2music reproduce`` (``results.json``, ``predictions/``,
``encoding/``; see ``docs/results_layout.md``) and, optionally, the folder of ``brain2music reconstruct``
(``reconstruction.json``).
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
from html import escape as _escape
from pathlib import Path
from typing import Any

import numpy as np

from brain2music._io import to_json, write_text
from brain2music.errors import DataError
from brain2music.report.figures import (
    PUBLISHED,
    plot_encoding_map,
    plot_id_acc_by_subject,
    plot_identification_matrix,
    plot_per_genre,
    plot_spectrogram,
)
from brain2music.results import ResultsFolder, StudyResults
from brain2music.results.table import METRICS, table_rows

ASSETS = "report_assets"


def _savefig(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table_html(results: StudyResults, split: str = "test") -> str:
    """Paper Table 2 layout, one table per metric of :data:`~brain2music.results.table.METRICS` (the rows
    and cells of ``table2.csv``): embeddings, Chance and Split-half; the n behind each interval."""
    html = []
    for key, title in METRICS:
        header, lines = table_rows(results, key, split)
        html.append(f"<h3>{_escape(title[:1].upper() + title[1:])}</h3>")
        html.append("<table>")
        html.append("<tr>" + "".join(f"<th>{_escape(h)}</th>" for h in header) + "</tr>")
        html += ["<tr>" + "".join(f"<td>{_escape(c)}</td>" for c in line) + "</tr>" for line in lines]
        html.append("</table>")
    return "\n".join(html)


def _paired_html(results: StudyResults) -> str:
    """The best method by training CV against ``ridge``, on the same test clips (mean over subjects)."""
    lines = []
    for enc in results.encoders:
        try:
            best = results.select_method(enc)
        except DataError:  # no training-CV scores: nothing to compare
            continue
        if best == "ridge":
            continue
        test = next(
            (t for t in results.paired_tests if t.encoder == enc and {t.method_a, t.method_b} == {best, "ridge"}
             and t.subject == ("mean" if len(results.subjects) > 1 else results.subjects[0])),
            None,
        )  # fmt: skip
        if test is None:
            continue
        sign = 1.0 if test.method_a == best else -1.0
        lo, hi = sorted(sign * np.asarray(test.diff_ci)) if test.diff_ci else (np.nan, np.nan)
        lines.append(
            f"<tr><td>{enc}</td><td>{best} − ridge</td><td>{sign * test.diff:+.3f} [{lo:+.3f}, {hi:+.3f}]</td>"
            f"<td>{test.p_value:.3g}</td><td>{test.n_clips}</td><td>{test.space}</td></tr>"
        )
    if not lines:
        return ""
    head = (
        "<table><tr><th>embedding</th><th>difference (best by training CV − ridge)</th>"
        "<th>id acc difference [95 % CI]</th><th>p (paired sign flip)</th><th>test clips</th>"
        "<th>metric space</th></tr>"
    )
    return head + "".join(lines) + "</table>"


def _parcels_html(entries) -> str:
    if not entries:
        return ""
    out = ["<table>", "<tr><th>subject</th><th>embedding</th><th>parcels (best first)</th><th>CV r</th></tr>"]
    for e in entries:
        # Named parcels (e.g. Destrieux) read as "name (label)"; unnamed ones as their label.
        names = getattr(e, "parcel_names", None) or []
        shown = [
            f"{_escape(n)} ({p})" if n and n != str(p) else str(p)
            for p, n in zip(e.parcels, list(names) + [""] * (len(e.parcels) - len(names)))
        ]
        out.append(
            f"<tr><td>{e.subject}</td><td>{e.encoder}</td><td>{', '.join(shown)}</td>"
            f"<td>{', '.join(f'{s:.2f}' for s in e.cv_scores[: len(e.parcels)])}</td></tr>"
        )
    out.append("</table>")
    return "\n".join(out)


def _write_audio_asset(audio: np.ndarray, sr: int, path: Path) -> None:
    from brain2music.stimuli import write_audio

    write_audio(path, np.clip(audio, -1.0, 1.0), sr)


def _spectrogram_asset(audio: np.ndarray, sr: int, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.2, 1.15), layout="constrained")
    plot_spectrogram(audio, sr, ax=ax)
    _savefig(fig, path)


def build_report(
    results_dir: str | os.PathLike,
    *,
    recon_dir: str | os.PathLike | list | None = None,
    out: str | os.PathLike | None = None,
    max_clips: int = 12,
    config: dict | None = None,
    title: str | None = None,
) -> Path:
    """Write ``report.html`` (+ ``report_assets/``) for a finished run and return the HTML path.

    Parameters
    ----------
    results_dir : folder written by ``brain2music reproduce`` (holds ``results.json``).
    recon_dir : folder written by ``brain2music reconstruct`` (holds ``reconstruction.json``); default
        ``results_dir/reconstruction`` when it exists. A list of folders (e.g. one per generator): the
        first gives the summary table, the generated clips of every folder are played side by side.
    out : output folder (default ``results_dir``).
    max_clips : how many test clips get audio players (the first clips of the first reconstructed subject).
    config : the configuration to print (default: ``results.json``'s ``config``).
    """
    import matplotlib

    matplotlib.use("Agg")
    results_dir = Path(results_dir)
    results = ResultsFolder(results_dir).read()
    out = Path(out) if out is not None else results_dir
    out.mkdir(parents=True, exist_ok=True)
    if recon_dir is None and (results_dir / "reconstruction" / "reconstruction.json").is_file():
        recon_dir = results_dir / "reconstruction"
    tmp_assets = out / f".{ASSETS}.partial"
    shutil.rmtree(tmp_assets, ignore_errors=True)
    tmp_assets.mkdir(parents=True)
    try:
        context = _context(results, results_dir, recon_dir, tmp_assets, max_clips, config, title)
        html = _render(context)
        final_assets = out / ASSETS
        if final_assets.exists():
            shutil.rmtree(final_assets)
        os.replace(tmp_assets, final_assets)
        return write_text(out / "report.html", html)
    finally:
        shutil.rmtree(tmp_assets, ignore_errors=True)


def _render(context: dict) -> str:
    from importlib.resources import files

    import jinja2

    template = (files("brain2music") / "resources" / "report" / "report.html.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(template).render(**context)


def _context(
    results: StudyResults, results_dir: Path, recon_dir, assets: Path, max_clips, config, title
) -> dict[str, Any]:
    """Everything the template shows: the tables, the figures, the listening section, the config."""
    encoders = list(results.encoders)
    paper_space = [e for e in encoders if results.space(e) == "paper"]
    figures = _id_acc_figures(results, assets) + _per_genre_figures(results, assets)
    figures += _matrix_figures(results, ResultsFolder(results_dir), assets)
    clips, recon_note, recon_table = _clips(results, recon_dir, assets, max_clips)
    cfg = config if config is not None else results.config.to_dict()
    return {
        "title": title or _run_name(cfg, results_dir),
        "version": results.version,
        "written": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "intro": f"Decoding music embeddings ({', '.join(encoders)}) from fMRI of {len(results.subjects)} "
        "subject(s); retrieval and generation of music from the predicted embeddings.",
        "n_subjects": len(results.subjects),
        "spaces": {e: results.space(e) for e in encoders},
        "table_html": _table_html(results),
        "paired_html": _paired_html(results),
        # Published figures are in the paper's space: shown only beside numbers in that space.
        "published": PUBLISHED if paper_space else {},
        "not_comparable": [e for e in encoders if e not in paper_space],
        "figures": figures,
        "brain_figures": _brain_figures(results, results_dir, assets),
        "parcels_html": _parcels_html(results.ensemble_parcels),
        "clips": clips,
        "recon_note": recon_note,
        "recon_table_html": recon_table,
        "config_text": to_json(cfg),
    }


def _id_acc_figures(results: StudyResults, assets: Path) -> list[dict]:
    import matplotlib.pyplot as plt

    figures = []
    for enc in results.encoders:
        paper = results.space(enc) == "paper"
        fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
        plot_id_acc_by_subject(
            results.results_for(enc), published=PUBLISHED if paper else None,
            title=f"{enc}: identification accuracy per subject ({results.space(enc)} space)", ax=ax,
        )  # fmt: skip
        name = f"id_acc_{enc}.png"
        _savefig(fig, assets / name)
        reference = (
            "with chance and published figures on real data (same metric space)"
            if paper
            else "with chance; published figures are not drawn: they are in the paper's space, these are not"
        )
        caption = f"Identification accuracy per subject and method ({enc}, error bars: 95 % CI over test clips), {reference}."
        figures.append({"src": f"{ASSETS}/{name}", "caption": caption})
    return figures


def _per_genre_figures(results: StudyResults, assets: Path) -> list[dict]:
    import matplotlib.pyplot as plt

    figures = []
    for enc in results.encoders:
        method = _shown_method(results, enc)
        sel = [r for r in results.per_genre if r.encoder == enc and r.method == method]
        if not sel:
            continue
        fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
        plot_per_genre(sel, title=f"{enc} · {method}: per genre", ax=ax)
        name = f"per_genre_{enc}.png"
        _savefig(fig, assets / name)
        caption = f"Identification accuracy per genre (mean ± sd over subjects, ddof=1), {enc}, {method}."
        figures.append({"src": f"{ASSETS}/{name}", "caption": caption})
    return figures


def _matrix_figures(results: StudyResults, folder: ResultsFolder, assets: Path) -> list[dict]:
    import matplotlib.pyplot as plt

    figures = []
    for enc in results.encoders:
        method = _shown_method(results, enc)
        subjects = folder.prediction_subjects(enc, method)
        if not subjects:
            continue
        pred = folder.read_predictions(enc, method, subjects[0])
        fig, ax = plt.subplots(figsize=(4.8, 4.2), layout="constrained")
        plot_identification_matrix(
            pred.similarity, list(pred.clip_ids), title=f"{subjects[0]} · {enc} · {method}", ax=ax
        )
        name = f"id_matrix_{enc}.png"
        _savefig(fig, assets / name)
        caption = (
            f"Identification matrix of the test clips ({pred.space.name} space): Pearson r between each predicted "
            "embedding (rows) and every true embedding (columns); clips sorted as in the results, genre labels on the left."
        )
        figures.append({"src": f"{ASSETS}/{name}", "caption": caption})
    return figures


def _shown_method(results: StudyResults, enc: str) -> str:
    """The method the figures show: the best by training CV (never chosen by a test score)."""
    try:
        return results.select_method(enc)
    except DataError:  # no training-CV scores recorded: the first method
        return results.methods[0]


def _brain_figures(results: StudyResults, results_dir: Path, assets: Path) -> list[dict]:
    figures = []
    folder = ResultsFolder(results_dir)
    for entry in results.encoding:
        image = folder.encoding_map(entry.subject, entry.encoder, results)
        if image is None:
            continue
        fig = plot_encoding_map(image, title=f"{entry.subject} · {entry.encoder}", threshold=0.1)
        name = f"encoding_{entry.encoder}_{entry.subject}.png"
        _savefig(fig, assets / name)
        caption = (
            f"{entry.subject}, {entry.encoder}: encoding-model test r per voxel (shown where r > 0.1) "
            f"({entry.n_significant} voxels significant after FDR correction)"
        )
        figures.append({"src": f"{ASSETS}/{name}", "caption": caption})
    return figures


def _run_name(cfg: dict, results_dir: Path) -> str:
    experiment = cfg.get("experiment") if isinstance(cfg, dict) else None
    if isinstance(experiment, dict) and experiment.get("name"):
        return str(experiment["name"])
    return results_dir.resolve().name


def _clips(results, recon_dir, assets: Path, max_clips: int):
    """Audio players and spectrograms for the reconstructed clips (empty when there is no reconstruction)."""
    if recon_dir is None:
        return [], "", ""
    from brain2music.report.recon import load_reconstruction

    dirs = [Path(d) for d in recon_dir] if isinstance(recon_dir, (list, tuple)) else [Path(recon_dir)]
    return load_reconstruction(
        dirs[0],
        assets,
        max_clips,
        write_audio=_write_audio_asset,
        spectrogram=_spectrogram_asset,
        asset_prefix=ASSETS,
        results_config=results.config,
        compare=dirs[1:],
    )
