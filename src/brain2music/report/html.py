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
from pathlib import Path
from typing import Any

import numpy as np

from brain2music import __version__
from brain2music._io import to_json, write_text
from brain2music.report.figures import (
    PUBLISHED,
    plot_encoding_map,
    plot_id_acc_by_subject,
    plot_identification_matrix,
    plot_per_genre,
    plot_spectrogram,
)
from brain2music.results import read_results

ASSETS = "report_assets"


def _savefig(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table_html(summary: list[dict], chance: list[dict], oracle: list[dict], split: str = "test") -> str:
    """Paper Table 2 layout: one row per embedding, one column per method, cells ``mean ± sd``."""
    rows = [r for r in summary if r.get("split", "test") == split]
    encoders = list(dict.fromkeys(r["encoder"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    html = [
        "<table>",
        "<tr><th>embedding</th>"
        + "".join(f"<th>{m}</th>" for m in methods)
        + "<th>Chance</th><th>Oracle</th></tr>",
    ]
    for enc in encoders:
        cells = []
        for m in methods:
            r = next((x for x in rows if x["encoder"] == enc and x["method"] == m), None)
            cells.append(
                "<td>–</td>"
                if r is None
                else f"<td>{r['id_acc_mean']:.3f} ± {r.get('id_acc_sd', 0.0):.3f}</td>"
            )
        for ref in (chance, oracle):
            vals = [x["id_acc"] for x in ref if x["encoder"] == enc]
            cells.append(f"<td>{np.mean(vals):.3f} ± {np.std(vals):.3f}</td>" if vals else "<td>–</td>")
        html.append(f"<tr><td>{enc}</td>{''.join(cells)}</tr>")
    html.append("</table>")
    return "\n".join(html)


def _parcels_html(entries: list[dict]) -> str:
    if not entries:
        return ""
    out = ["<table>", "<tr><th>subject</th><th>embedding</th><th>parcels (best first)</th><th>CV r</th></tr>"]
    for e in entries:
        scores = e.get("cv_scores") or []
        out.append(
            f"<tr><td>{e['subject']}</td><td>{e['encoder']}</td><td>{', '.join(map(str, e['parcels']))}</td>"
            f"<td>{', '.join(f'{s:.2f}' for s in scores[: len(e['parcels'])])}</td></tr>"
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
    recon_dir: str | os.PathLike | None = None,
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
        ``results_dir/reconstruction`` when it exists.
    out : output folder (default ``results_dir``).
    max_clips : how many test clips get audio players (the first clips of the first reconstructed subject).
    config : the configuration to print (default: ``results.json``'s ``config``).
    """
    import matplotlib

    matplotlib.use("Agg")
    results_dir = Path(results_dir)
    results = read_results(results_dir)
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


def _context(results, results_dir: Path, recon_dir, assets: Path, max_clips, config, title) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    rows = results.get("rows", [])
    test_rows = [r for r in rows if r.get("split") == "test"]
    encoders = list(dict.fromkeys(r["encoder"] for r in test_rows))
    figures = []
    for enc in encoders:
        fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
        plot_id_acc_by_subject(
            [r for r in test_rows if r["encoder"] == enc],
            published=PUBLISHED,
            title=f"{enc}: identification accuracy per subject",
            ax=ax,
        )
        name = f"id_acc_{enc}.png"
        _savefig(fig, assets / name)
        figures.append(
            {
                "src": f"{ASSETS}/{name}",
                "caption": f"Identification accuracy per subject and method ({enc} embedding), with chance and published figures on real data.",
            }
        )
    per_genre = results.get("per_genre", [])
    for enc in encoders:
        sel = [r for r in per_genre if r["encoder"] == enc]
        if not sel:
            continue
        method = sel[0]["method"]
        sel = [r for r in sel if r["method"] == method]
        fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
        plot_per_genre(sel, title=f"{enc} · {method}: per genre", ax=ax)
        name = f"per_genre_{enc}.png"
        _savefig(fig, assets / name)
        figures.append(
            {
                "src": f"{ASSETS}/{name}",
                "caption": f"Identification accuracy per genre (mean ± sd over subjects), {enc}, {method}.",
            }
        )
    pred_root = results_dir / "predictions"
    for enc in encoders:
        candidates = sorted((pred_root / enc).glob("*/*.npz")) if (pred_root / enc).is_dir() else []
        if not candidates:
            continue
        best = max(
            candidates,
            key=lambda p: next(
                (
                    r["id_acc"]
                    for r in test_rows
                    if r["encoder"] == enc and r["method"] == p.parent.name and r["subject"] == p.stem
                ),
                -1.0,
            ),
        )
        with np.load(best, allow_pickle=False) as z:
            sim = z["similarity"]
            labels = [str(c) for c in z["clip_ids"]]
        fig, ax = plt.subplots(figsize=(4.8, 4.2), layout="constrained")
        plot_identification_matrix(sim, labels, title=f"{best.stem} · {enc} · {best.parent.name}", ax=ax)
        name = f"id_matrix_{enc}.png"
        _savefig(fig, assets / name)
        figures.append(
            {
                "src": f"{ASSETS}/{name}",
                "caption": "Identification matrix of the test clips: Pearson r between each predicted embedding (rows) and every true embedding (columns); clips sorted as in the results, genre labels on the left.",
            }
        )
    brain_figures = []
    for entry in results.get("encoding", []):
        path = results_dir / entry["map"]
        if not path.is_file():
            continue
        fig = plot_encoding_map(str(path), title=f"{entry['subject']} · {entry['encoder']}", threshold=0.1)
        name = f"encoding_{entry['encoder']}_{entry['subject']}.png"
        _savefig(fig, assets / name)
        n_sig = entry.get("n_significant")
        caption = (
            f"{entry['subject']}, {entry['encoder']}: encoding-model test r per voxel (shown where r > 0.1)"
        )
        if n_sig is not None:
            caption += f" ({n_sig} voxels significant after FDR correction)"
        brain_figures.append({"src": f"{ASSETS}/{name}", "caption": caption})
    clips, recon_note, recon_table = _clips(results, recon_dir, assets, max_clips)
    cfg = config if config is not None else results.get("config", {})
    subjects = results.get("subjects") or sorted({r["subject"] for r in test_rows})
    return {
        "title": title or _run_name(cfg, results_dir),
        "version": results.get("version", __version__),
        "written": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "intro": f"Decoding music embeddings ({', '.join(encoders)}) from fMRI of {len(subjects)} subject(s); "
        "retrieval and generation of music from the predicted embeddings.",
        "n_subjects": len(subjects),
        "table_html": _table_html(
            results.get("summary", []), results.get("chance", []), results.get("oracle", [])
        ),
        "published": PUBLISHED,
        "figures": figures,
        "brain_figures": brain_figures,
        "parcels_html": _parcels_html(results.get("ensemble_parcels", [])),
        "clips": clips,
        "recon_note": recon_note,
        "recon_table_html": recon_table,
        "config_text": to_json(cfg),
    }


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

    return load_reconstruction(
        Path(recon_dir),
        assets,
        max_clips,
        write_audio=_write_audio_asset,
        spectrogram=_spectrogram_asset,
        asset_prefix=ASSETS,
        results_config=results.get("config", {}),
    )
