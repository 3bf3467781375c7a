"""The listening section of the report: originals, retrieved and generated music, with spectrograms.

Reads ``reconstruction.json`` written by :func:`brain2music.study.reconstruct.reconstruct` and copies
15-s excerpts of every audio item into the report's asset folder, so the page works on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from brain2music.errors import DataError, DataFileNotFoundError
from brain2music.results.settings import StudySettings

EXCERPT = 15.0
SR = 22050

METRICS = (
    ("retrieval", "retrieval (top-1 track for the predicted embedding)"),
    ("generation", "generation (new audio conditioned on the predicted embedding)"),
    ("chance", "Chance (a random library track)"),
    (
        "true_embedding",
        "retrieval with the true embedding (what this library returns for a perfect decode; "
        "not an upper bound)",
    ),
)
TAG_KINDS = METRICS + (("true_embedding_generation", "generation from the true embedding"),)


def sample_size(stat) -> str:
    """``n = 2 subjects × 60 clips, CI over clips`` for a :class:`~brain2music.results.SummaryStat`."""
    clips = f" × {stat.n_clips} clips" if stat.n_clips else ""
    over = f", CI resamples {stat.ci_resamples}" if stat.ci is not None and stat.ci_resamples else ""
    return f"n = {stat.n_subjects} subject{'s' if stat.n_subjects != 1 else ''}{clips}{over}"


def _stat_cell(recon, key: str) -> str:
    """``mean ± sd [CI] p=…`` and its n for one summary metric; p: the largest over subjects."""
    from brain2music.results.reconstruction import split_name
    from brain2music.results.table import cell

    s = recon.summary.get(key)
    if s is None:
        return "–"
    named = split_name(key)
    per_subject = [x.get(*named) for x in recon.per_subject] if named else []
    ps = [None if score is None else score.p for score in per_subject]
    p = max(ps) if ps and all(v is not None for v in ps) else None
    return f"{cell(s.mean, s.sd, s.ci, p)}<br><small>{sample_size(s)}</small>"


def _summary_table(recon) -> str:
    summary = recon.summary
    chance = [summary.get(f"top{k}_chance") for k in (1, 5)]
    levels = ", ".join(f"top-{k} {c.mean:.3f}" for k, c in zip((1, 5), chance, strict=True) if c is not None)
    rows = [
        f"<p>Identification of the reconstructions among the originals ({recon.space} space; embedding of "
        "each reconstruction vs the embeddings of all reconstructed test originals): pairwise id acc "
        "(chance 0.5) and N-way top-1 / top-5 (chance k / n"
        + (f": {levels}" if levels else "")
        + "). mean ± sd over subjects [95 % hierarchical bootstrap CI of the per-clip scores], p: the "
        "largest over subjects of a permutation test against chance.</p>",
        "<table>",
        "<tr><th>reconstruction</th><th>id acc</th><th>top-1</th><th>top-5</th>"
        "<th>genre agreement with the original (tagger)</th></tr>",
    ]
    for key, label in METRICS:
        keys = [f"{key}_{m}" for m in ("id_acc", "top1_acc", "top5_acc", "genre_agreement")]
        if all(k not in summary for k in keys):
            continue
        rows.append(
            f"<tr><td>{label}</td>" + "".join(f"<td>{_stat_cell(recon, k)}</td>" for k in keys) + "</tr>"
        )
    rows.append("</table>")
    return "\n".join(rows) + _tag_table(recon)


def _tag_table(recon) -> str:
    """The paper's class agreement with the musicnn taggers: kinds × tag groups (mean ± sd [CI], p vs Chance)."""
    info = recon.tag_agreement
    if not info:
        return ""
    if "skipped" in info:
        return f"<p>Class agreement with the musicnn taggers: not computed ({info['skipped']}).</p>"
    groups = list(info.get("taggers", {}))
    head = "".join(f"<th>{g} (top {info['top_k'][g]}, {info['taggers'][g]})</th>" for g in groups)
    rows = [
        "<p>Class agreement of the reconstructions with the originals (the paper's tagger metric, musicnn "
        "tags of the audio; fraction of the original's top-k tags of the group that the reconstruction "
        f"shares; Chance: expected agreement with a random one of {info.get('library_tracks', '?')} "
        "library tracks; p: the largest over subjects of a paired sign-flip test of the difference from "
        "Chance).</p>",
        f"<table><tr><th>reconstruction</th>{head}</tr>",
    ]
    for key, label in TAG_KINDS:
        keys = [f"{key}_tag_agreement_{g}" for g in groups]
        if all(k not in recon.summary for k in keys):
            continue
        rows.append(
            f"<tr><td>{label}</td>" + "".join(f"<td>{_stat_cell(recon, k)}</td>" for k in keys) + "</tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _tag_line(c, kind: str) -> str:
    """`` · musicnn: rock, pop | guitar, male | Mellow`` for one reconstructed clip and kind, or ``""``."""
    classes = (c.tag_classes or {}).get(kind)
    if not classes:
        return ""
    return " · musicnn: " + " | ".join(", ".join(v) for v in classes.values())


def _clip_starts(config: StudySettings | None) -> dict[str, float]:
    """Excerpt start of every experiment clip, from the BIDS events the results were computed on."""
    bids = config.source.bids_root if config is not None else None
    if not bids or not Path(bids).is_dir():
        return {}
    from brain2music.data import clip_table, list_subjects, subject_design

    try:
        _, _, design = subject_design(bids, list_subjects(bids)[0])
    except (DataError, DataFileNotFoundError):
        return {}
    table = clip_table(design)
    return dict(zip(table.clip_id, table.start.astype(float)))


def generator_label(config: dict | None) -> str:
    """A short name of the generator a reconstruction used: ``mosaic``, ``best-of-4 offline``, ..."""
    cfg = config or {}
    name = str(cfg.get("generator") or cfg.get("name") or "?")
    if name == "best-of" and isinstance(cfg.get("base"), dict):
        return f"best-of-{cfg.get('n', '?')} {generator_label(cfg['base'])}"
    return name


def _sources_note(segments) -> str:
    """`` · N segments of K recordings: a, b, ...`` for a mosaic; empty otherwise."""
    if not segments:
        return ""
    names = list(dict.fromkeys(Path(str(s["path"])).stem for s in segments))
    return f" · {len(segments)} segments of {len(names)} recordings: {', '.join(names)}"


def _excerpt(path: str | Path, start: float = 0.0) -> np.ndarray:
    from brain2music.stimuli import apply_fades, read_audio, rms_normalize

    audio, _ = read_audio(path, sr=SR, offset=start, duration=EXCERPT)
    return rms_normalize(apply_fades(audio, SR, 0.05))


class _Assets:
    """Writes the 15-s excerpt and spectrogram of each audio item into the report's asset folder."""

    def __init__(self, folder: Path, prefix: str, write_audio: Callable, spectrogram: Callable):
        self.folder, self.prefix = folder, prefix
        self.write_audio, self.spectrogram = write_audio, spectrogram
        self.n = 0

    def item(self, label: str, source: Path | str | None, start: float, score, detail: str) -> dict | None:
        """The template's record of one audio item, ``None`` (nothing written) when ``source`` is no file."""
        if source is None or not Path(source).is_file():
            return None
        k, self.n = self.n, self.n + 1
        audio = _excerpt(source, start)
        self.write_audio(audio, SR, self.folder / f"audio_{k:04d}.wav")
        self.spectrogram(audio, SR, self.folder / f"spec_{k:04d}.png")
        return {
            "label": label,
            "audio": f"{self.prefix}/audio_{k:04d}.wav",
            "spectrogram": f"{self.prefix}/spec_{k:04d}.png",
            "score": None if score is None else float(score),
            "detail": detail,
        }


def _generated_items(assets: _Assets, versions) -> list:
    """The generated clip of each ``(folder, reconstruction, clip)`` version that has one."""
    items = []
    for folder, rec, clip in versions:
        gen, gen_tags = clip.generated, clip.tags or {}
        if gen and gen.get("path"):
            items.append(
                assets.item(
                    f"generated · {generator_label(rec.generator)}",
                    folder / gen["path"],
                    0.0,
                    gen.get("score"),
                    f"new music · cos to true {gen.get('score_true', float('nan')):.3f} · tagger: "
                    f"{gen_tags.get('generated') or '–'}{_sources_note(clip.segments)}"
                    + _tag_line(clip, "generated"),
                )
            )
    return items


def _clip_items(assets: _Assets, c, start: float, versions) -> list:
    """The original, the top-3 retrieved, every generated version and the true-embedding retrieval of one
    reconstructed clip ``c`` (``start``: the original's excerpt start); items without a file are dropped."""
    tags = c.tags or {}
    items = [
        assets.item(
            "original stimulus",
            (c.original or {}).get("path"),
            start,
            None,
            f"{c.clip_id} · tagger: {tags.get('original') or '–'}{_tag_line(c, 'original')}",
        )
    ]
    for r in c.retrieved[:3]:
        items.append(
            assets.item(
                f"retrieved #{r.get('rank', '?')}",
                r.get("path"),
                0.0,
                r.get("score"),
                f"{r.get('title') or Path(str(r.get('path'))).name} · {r.get('genre') or ''}"
                + (_tag_line(c, "retrieved") if r.get("rank") == 1 else ""),
            )
        )
    items += _generated_items(assets, versions)
    if c.true_embedding:
        items.append(
            assets.item(
                "retrieved with the true embedding",
                c.true_embedding.get("path"),
                0.0,
                c.true_embedding.get("score"),
                f"{c.true_embedding.get('title') or ''} · {c.true_embedding.get('genre') or ''}",
            )
        )
    return [i for i in items if i]


def _compared_clips(compare) -> dict:
    """``{(subject, clip_id): [(folder, reconstruction, clip)]}`` of the other reconstruction folders."""
    from brain2music.results import ResultsFolder

    beside: dict = {}
    for folder in map(Path, compare):
        other = ResultsFolder.read_reconstruction(folder)
        for c in other.clips:
            beside.setdefault((c.subject, c.clip_id), []).append((folder, other, c))
    return beside


def _note(recon, n_clips: int, subject) -> str:
    """The sentence above the clips: how many, of whom, which decoder, encoder and library."""
    how = {"train_cv": "chosen by training cross-validation", "user": "chosen by the user",
           "nested_train_cv": "chosen by nested run-grouped training cross-validation"}  # fmt: skip
    return (
        f"{n_clips} test clip(s) of {subject}, decoder '{recon.method}' "
        f"({how.get(recon.method_selected_by, recon.method_selected_by)}), encoder '{recon.encoder}', library of "
        f"{recon.library.get('n_items', '?')} tracks. Scores are cosine similarities to the predicted embedding. "
        "The evaluation covers every reconstructed clip and subject."
    )


def load_reconstruction(
    recon_dir: Path,
    assets: Path,
    max_clips: int,
    *,
    write_audio: Callable,
    spectrogram: Callable,
    asset_prefix: str,
    results_config: StudySettings | None = None,
    compare: list[Path] = (),
):
    """The listening section of one reconstruction folder, for the report template.

    Parameters
    ----------
    recon_dir : Path
        The folder with ``reconstruction.json``.
    assets : Path
        Where the 15-s excerpts (``audio_NNNN.wav``) and their spectrograms (``spec_NNNN.png``) are written.
    max_clips : int
        Clips shown, all of the first subject.
    write_audio, spectrogram : callable
        ``write_audio(audio, sr, path)`` and ``spectrogram(audio, sr, path)``.
    asset_prefix : str
        The assets' folder as the page links it.
    results_config : StudySettings, optional
        The results' settings; their BIDS root gives each original's excerpt start (else 0).
    compare : list of Path
        Other reconstruction folders of the same results (e.g. another generator): their generated clips
        are played beside this one's, clip by clip.

    Returns
    -------
    clips : list of ``{"title", "items"}``
    note : str
    summary_table_html : str

    Raises
    ------
    DataFileNotFoundError, DataError, ResultsLayoutError
        From :meth:`~brain2music.results.ResultsFolder.read_reconstruction`, for this folder or one of
        ``compare``: no ``reconstruction.json``, not a JSON object, or another schema version.
    """
    from brain2music.results import ResultsFolder

    recon = ResultsFolder.read_reconstruction(recon_dir)
    beside = _compared_clips(compare)
    starts = _clip_starts(results_config)
    first_subject = (recon.subjects or [None])[0]
    entries = [c for c in recon.clips if c.subject == first_subject][:max_clips]
    writer = _Assets(assets, asset_prefix, write_audio, spectrogram)
    clips = []
    for c in entries:
        versions = [(recon_dir, recon, c)] + beside.get((c.subject, c.clip_id), [])
        items = _clip_items(writer, c, starts.get(c.clip_id, 0.0), versions)
        clips.append({"title": f"{c.subject} · {c.clip_id} ({c.genre})", "items": items})
    return clips, _note(recon, len(clips), first_subject), _summary_table(recon)
