"""Writing music libraries: ``build_library``, ``add_to_library``, ``library_from_embeddings``.

See :mod:`brain2music.reconstruct.library` for the layout. Every write is a compare-and-swap commit of
the manifest (:func:`brain2music._io.commit_json`) listing files written beforehand under unique names,
so any number of processes may build, add to and re-index one library at the same time: each batch of
tracks lands exactly once (a track another writer committed first is dropped from the batch), and an
index is committed only if it covers every committed track.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from brain2music import __version__
from brain2music._checks import check_choice
from brain2music._io import commit_json
from brain2music.errors import ConfigError, DataError, DataFileNotFoundError
from brain2music.reconstruct.clip_embedding import (
    clip_embedding,
    encoder_config,
    encoder_name,
    prepare_clip,
    resolve_encoder,
)
from brain2music.reconstruct.index import INDEX_KINDS, l2_normalize
from brain2music.reconstruct.library.core import MusicLibrary
from brain2music.reconstruct.library.indexes import rebuild_indexes
from brain2music.reconstruct.library.manifest import (
    COVERAGES,
    EMBED_GROUP,
    FORMAT_VERSION,
    MANIFEST,
)
from brain2music.reconstruct.library.metadata import (
    describe_file,
    load_metadata,
    read_fma_tracks,
)
from brain2music.reconstruct.library.shards import ShardWriter, remove_orphans
from brain2music.stimuli import STIMULUS_DURATION, find_audio_files, read_audio, rms_normalize
from brain2music.windows import TR, clip_vectors

__all__ = [
    "add_to_library",
    "build_library",
    "library_from_embeddings",
    "read_fma_tracks",
    "rebuild_indexes",
]


# ------------------------------------------------------------------------------------------- creating
def _recordable_options(options: dict | None) -> dict:
    """The options worth recording with a library: JSON values, without the machine-specific device."""
    out = {}
    for key, value in (options or {}).items():
        if key == "device" or value is None:
            continue
        try:
            json.dumps(value)
        except TypeError:
            continue  # a model object passed from Python: the config's model id still identifies it
        out[key] = value
    return out


def _new_library(path: Path, enc, *, coverage: str, hop: float, options: dict | None = None) -> MusicLibrary:
    """Create the library's manifest unless another process just did; return the opened library."""
    manifest = {
        "format": FORMAT_VERSION,
        "version": __version__,
        "encoder": {
            "name": encoder_name(enc),
            "config": encoder_config(enc),
            "options": _recordable_options(options),
        },
        "dim": int(enc.dim),
        "n_windows": int(getattr(enc, "n_windows", 0) or 0),
        "clip_duration": STIMULUS_DURATION,
        "coverage": coverage,
        "hop": float(hop),
        "vector": "window-average of the (n_windows, dim) embedding, L2-normalised (inner product = cosine)",
        "n_items": 0,
        "shards": [],
        "skipped": [],
        "index": None,
        "space": None,
        "window_store": None,
    }
    path.mkdir(parents=True, exist_ok=True)
    commit_json(path / MANIFEST, lambda doc: manifest if doc is None else None)
    lib = MusicLibrary(path)
    _check_same_library(lib, enc, coverage=coverage, hop=hop)
    return lib


def _check_same_library(lib: MusicLibrary, enc, *, coverage: str | None, hop: float | None) -> None:
    lib.check_encoder(encoder_name(enc), source=f"encoder {encoder_name(enc)!r} for writing:")
    lib.check_encoder_config(enc)
    if coverage is not None and coverage != lib.coverage:
        raise DataError(
            f"{lib.path}: the library has coverage {lib.coverage!r}, not {coverage!r}; build a new library "
            f"for another coverage"
        )
    if hop is not None and abs(float(hop) - lib.hop) > 1e-9:
        raise DataError(f"{lib.path}: the library's windows are on a {lib.hop:g}-s hop, not {hop:g} s")


def _is_empty_folder(path: Path) -> bool:
    # A concurrent creator's lock file (or any hidden file) does not make a folder "used".
    return not path.exists() or not any(
        p for p in path.iterdir() if not p.name.startswith(".") and p.name != MANIFEST + ".lock"
    )


# ------------------------------------------------------------------------------------------- ingesting
def _embed_group(enc, paths: list[Path], sr: int, *, full: bool, hop: float):
    """Read and embed a few tracks; yields ``(path, duration, clip_emb, span, error)`` (error: str or None).

    ``span`` is ``(embeddings (n, dim), starts (n,))`` of the whole track for ``full`` coverage. Encoders
    with ``embed_many`` embed the group's clips at once; if that fails, each track is embedded alone so one
    bad file cannot sink the rest.
    """
    clips: list[tuple[Path, np.ndarray | None, str | None]] = []
    for path in paths:
        try:
            audio, _ = read_audio(path, sr=sr, duration=None if full else STIMULUS_DURATION)
            clips.append((path, audio, None))
        except (DataError, DataFileNotFoundError) as exc:
            clips.append((path, None, str(exc)))
    n_clip = int(round(STIMULUS_DURATION * sr))
    ok = [c for c in clips if c[2] is None]
    batch = None
    if len(ok) > 1 and hasattr(enc, "embed_many"):
        try:
            prepared = [prepare_clip(a[:n_clip], sr) for _, a, _ in ok]
            batch = np.asarray(enc.embed_many(prepared, sr), dtype=np.float32)
            if batch.ndim != 3 or len(batch) != len(ok) or not np.all(np.isfinite(batch)):
                batch = None
        except (DataError, ValueError, RuntimeError):
            batch = None
    k = 0
    for path, audio, error in clips:
        if error is not None:
            yield path, 0.0, None, None, error
            continue
        try:
            if batch is not None:
                emb = batch[k]
            else:
                emb = clip_embedding(enc, prepare_clip(audio[:n_clip], sr), sr, source=str(path))
            span = None
            if full:
                if not hasattr(enc, "embed_span"):
                    raise ConfigError(
                        f"encoder {encoder_name(enc)!r} has no embed_span(); coverage 'full' needs a "
                        "brain2music.embeddings.Encoder"
                    )
                s = enc.embed_span(rms_normalize(audio), sr, hop=hop)
                span = (s.embeddings, s.starts)
            duration = len(audio) / sr if full else min(len(audio) / sr, STIMULUS_DURATION)
            yield path, duration, emb, span, None
        except DataError as exc:
            yield path, 0.0, None, None, f"{path}: {exc}" if str(path) not in str(exc) else str(exc)
        k += 1


def _ingest(lib, files, enc, *, music_dir, metadata, batch_size, progress) -> dict:
    from tqdm.auto import tqdm

    remove_orphans(lib)
    writer = ShardWriter(lib)
    todo = [f for f in files if str(f.resolve()) not in writer.present]
    full = lib.coverage == "full"
    skipped: list[dict] = []
    n_added = n_dropped = committed_skips = 0
    rows, vecs, wins, spans = [], [], [], []
    n_win = lib.n_windows
    bar = tqdm(total=len(todo), desc="embedding library", unit="track", disable=not progress)

    def flush():
        nonlocal rows, vecs, wins, spans, committed_skips, n_added, n_dropped
        kept, dropped = writer.commit(rows, vecs, wins, spans if full else None, skipped[committed_skips:])
        n_added, n_dropped, committed_skips = n_added + kept, n_dropped + dropped, len(skipped)
        rows, vecs, wins, spans = [], [], [], []

    for start in range(0, len(todo), EMBED_GROUP):
        group = todo[start : start + EMBED_GROUP]
        for path, duration, emb, span, error in _embed_group(enc, group, int(enc.sr), full=full, hop=lib.hop):
            bar.update()
            if error is not None:
                skipped.append({"path": str(path), "error": error})
                continue
            n_win = n_win or emb.shape[0]  # an encoder that did not declare n_windows: the first track's
            if emb.shape != (n_win, lib.dim):
                skipped.append(
                    {"path": str(path), "error": f"embedding shape {emb.shape}, expected {(n_win, lib.dim)}"}
                )
                continue
            info = describe_file(path, music_dir, metadata)
            info["duration"] = duration
            rows.append(info)
            vecs.append(l2_normalize(clip_vectors(emb[None]))[0])
            wins.append(emb)
            spans.append(span)
            if len(rows) >= batch_size:
                flush()
    bar.close()
    flush()
    return {
        "n_added": n_added,
        "n_already_present": len(files) - len(todo) + n_dropped,
        "skipped": skipped,
    }


def _ingest_folder(lib, music_dir, enc, *, metadata, index, space, window_index, batch_size, progress):
    music_dir = Path(music_dir)
    files = find_audio_files(music_dir)
    meta = load_metadata(metadata, music_dir)
    report = _ingest(
        lib, files, enc, music_dir=music_dir, metadata=meta, batch_size=batch_size, progress=progress
    )
    if len(lib) == 0:
        listed = "; ".join(f"{s['path']}: {s['error']}" for s in report["skipped"][:5])
        raise DataError(f"{music_dir}: none of the {len(files)} audio files could be read ({listed})")
    rebuild_indexes(lib, kind=index, space=space, window_index=window_index)
    lib.last_ingest_ = report
    return lib


def _build_hop(enc, hop: float | None, coverage: str) -> float:
    """The search windows' spacing: ``hop`` for ``full`` coverage, else (and by default) the encoder's TR."""
    hop = float(hop) if hop is not None else float(getattr(enc, "tr", TR))
    if hop <= 0:
        raise ConfigError(f"--hop must be a positive number of seconds, got {hop!r}")
    if coverage == "first15" and abs(hop - float(getattr(enc, "tr", TR))) > 1e-9:
        raise ConfigError("--hop applies to --coverage full; first15 uses the paper's windows")
    return hop


def _existing_library(out: Path, enc, *, coverage: str, hop: float) -> MusicLibrary | None:
    """The library a build resumes (checked to match ``enc``, ``coverage``, ``hop``), ``None`` for an empty
    folder; a folder holding anything else is an error."""
    if (out / MANIFEST).is_file():
        lib = MusicLibrary(out)
        _check_same_library(lib, enc, coverage=coverage, hop=hop)
        return lib
    if not _is_empty_folder(out):
        raise DataError(f"{out}: exists and is not a music library (no {MANIFEST}); choose an empty folder")
    return None


# ------------------------------------------------------------------------------------------- public
def build_library(
    music_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    encoder: Any,
    metadata: str | os.PathLike | pd.DataFrame | None = None,
    coverage: str = "first15",
    hop: float | None = None,
    index: str = "auto",
    space: str = "auto",
    window_index: str = "auto",
    batch_size: int = 64,
    progress: bool = True,
    encoder_options: dict | None = None,
) -> MusicLibrary:
    """Embed every audio file under ``music_dir`` and store them as a library in ``out``.

    Parameters
    ----------
    music_dir
        Folder searched recursively for audio files (any format :func:`brain2music.stimuli.read_audio`
        reads). FMA's ``tracks.csv`` (in the folder, beside it, or in ``fma_metadata/``) is used for
        title/artist/genre; GTZAN names give the genre.
    out
        Library folder. If it already holds a library built with the same encoder, the build resumes:
        files already ingested are skipped. Several processes may build into one folder at once.
    encoder
        Registry name (``brain2music.embeddings.get_encoder``) or encoder object.
    metadata
        Optional table (CSV path or DataFrame) with a ``path`` or ``track_id`` column and any of
        ``title``, ``artist``, ``genre``; or an FMA ``tracks.csv``.
    coverage
        ``"first15"`` (the paper's protocol: audio queries match each track's first 15 s) or ``"full"``:
        every window of the whole track is stored with its offset, so a query matches anywhere.
    hop
        Spacing (s) of the search windows' ends for ``full`` (default: the encoder's ``tr``, 1.5 s).
    index
        Clip-vector index: ``"auto"`` (exact below 100,000 tracks, IVF above), ``"flat"``, ``"ivf"``,
        ``"hnsw"``.
    space
        Similarity space (``SPACES``): ``"auto"``, ``"cosine"`` or ``"zscore"``.
    window_index
        Window index (``WINDOW_INDEX_KINDS``): ``"auto"`` (exact scoring below 200,000 windows, IVF-PQ
        above), ``"exact"``, ``"ivfpq"``, ``"ivfsq8"``, ``"hnsw"``.
    batch_size
        Tracks per committed shard.
    encoder_options
        Keyword arguments of a named encoder (``model``, ``device``, ``dtype``, ``batch_size``, ...;
        see :func:`brain2music.embeddings.registry.encoder_parameters`). They are recorded in the
        manifest (all but ``device``), so ``add``, ``search`` and ``reconstruct`` rebuild the same encoder.

    Returns
    -------
    MusicLibrary, with ``last_ingest_`` = {"n_added", "n_already_present", "skipped": [{"path", "error"}]}.
    """
    check_choice(index, INDEX_KINDS, what="--index")
    check_choice(coverage, COVERAGES, what="--coverage")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    out = Path(out)
    enc = resolve_encoder(encoder, **(encoder_options or {}))
    hop = _build_hop(enc, hop, coverage)
    lib = _existing_library(out, enc, coverage=coverage, hop=hop)
    # Fail on an empty folder or a bad metadata table before creating anything.
    find_audio_files(music_dir)
    metadata = load_metadata(metadata, Path(music_dir))
    if lib is None:
        options = encoder_options if isinstance(encoder, str) else None
        lib = _new_library(out, enc, coverage=coverage, hop=hop, options=options)
    return _ingest_folder(
        lib,
        music_dir,
        enc,
        metadata=metadata,
        index=index,
        space=space,
        window_index=window_index,
        batch_size=batch_size,
        progress=progress,
    )


def add_to_library(
    library: str | os.PathLike,
    music_dir: str | os.PathLike,
    *,
    encoder: Any = None,
    metadata: str | os.PathLike | pd.DataFrame | None = None,
    index: str | None = None,
    space: str | None = None,
    window_index: str | None = None,
    batch_size: int = 64,
    progress: bool = True,
    encoder_options: dict | None = None,
) -> MusicLibrary:
    """Append the audio files under ``music_dir`` to an existing library (already-present files skipped).

    ``encoder`` defaults to the library's, built with its recorded options updated by ``encoder_options``
    (e.g. ``device``); another encoder raises :class:`DataError` naming both.
    ``index``, ``space`` and ``window_index`` default to what was requested when the library was
    built. Concurrent adds (of the same or different folders) leave every track in the library once.
    """
    lib = MusicLibrary(library)
    if encoder is None or encoder == lib.encoder_name:
        enc = lib.make_encoder(**(encoder_options or {}))
    else:
        enc = resolve_encoder(encoder, **(encoder_options or {}))
    _check_same_library(lib, enc, coverage=None, hop=None)
    if index is None:
        index = (lib._manifest.get("index") or {}).get("requested", "auto")
    return _ingest_folder(
        lib,
        music_dir,
        enc,
        metadata=metadata,
        index=index,
        space=space,
        window_index=window_index,
        batch_size=batch_size,
        progress=progress,
    )


def _check_precomputed(embeddings, metadata: pd.DataFrame, span):
    """``embeddings`` as float32 ``(n, n_windows, dim)`` and ``span`` with int64 bounds, both checked."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim == 2:
        embeddings = embeddings[:, None, :]
    if embeddings.ndim != 3 or len(embeddings) != len(metadata) or len(metadata) == 0:
        raise DataError(
            f"embeddings must be (n, n_windows, dim) with n = len(metadata) = {len(metadata)} > 0; "
            f"got shape {embeddings.shape}"
        )
    if "path" not in metadata.columns:
        raise DataError(f"metadata needs a 'path' column; found {list(metadata.columns)}")
    if span is not None:
        s_emb, s_starts, s_bounds = span
        s_bounds = np.asarray(s_bounds, dtype=np.int64)
        if len(s_bounds) != len(metadata) + 1 or s_bounds[-1] != len(s_emb) or len(s_starts) != len(s_emb):
            raise DataError(
                "span must be (embeddings (N, dim), starts (N,), bounds (n + 1,)) with bounds[-1] = N"
            )
        span = (s_emb, s_starts, s_bounds)
    return embeddings, span


def _track_row(r: dict) -> dict:
    """A shard row's metadata from one row of a precomputed library's table (defaults from the path)."""
    stem = Path(str(r["path"])).stem
    return {
        "path": str(r["path"]),
        "track_id": str(r.get("track_id", stem)),
        "title": str(r.get("title", stem)),
        "artist": str(r.get("artist", "")),
        "genre": str(r.get("genre", "")),
        "duration": float(r.get("duration", STIMULUS_DURATION)),
    }


def library_from_embeddings(
    out: str | os.PathLike,
    embeddings: np.ndarray,
    metadata: pd.DataFrame,
    *,
    encoder: str,
    encoder_config: dict | None = None,
    span: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    hop: float = TR,
    index: str = "auto",
    space: str = "auto",
    window_index: str = "auto",
    batch_size: int = 100_000,
    progress: bool = True,
) -> MusicLibrary:
    """Store precomputed per-window clip ``embeddings (n, n_windows, dim)`` as a new library (no audio read).

    ``metadata`` has one row per track with a ``path`` column and optionally ``track_id``, ``title``,
    ``artist``, ``genre``, ``duration``. ``span = (window_embeddings (N, dim), starts (N,), bounds
    (n + 1,))`` gives every track's whole-track windows (rows ``bounds[i]:bounds[i + 1]``) and makes a
    ``coverage="full"`` library. Used for composed libraries whose embeddings already exist and for
    benchmarks. Committed in batches like :func:`build_library`.
    """
    from tqdm.auto import tqdm

    embeddings, span = _check_precomputed(embeddings, metadata, span)
    if span is not None:
        s_emb, s_starts, s_bounds = span
    out = Path(out)
    if not _is_empty_folder(out):
        raise DataError(f"{out}: exists and is not empty; choose a new library folder")

    class _Spec:
        name = encoder
        dim = embeddings.shape[2]
        n_windows = embeddings.shape[1]

        def config(self):
            return dict(encoder_config or {})

    lib = _new_library(out, _Spec(), coverage="first15" if span is None else "full", hop=hop)
    writer = ShardWriter(lib)
    meta = metadata.reset_index(drop=True)
    for start in tqdm(range(0, len(meta), batch_size), desc="writing library", disable=not progress):
        part = meta.iloc[start : start + batch_size]
        rows = [_track_row(r) for r in part.to_dict(orient="records")]
        win = embeddings[start : start + batch_size]
        spans = None
        if span is not None:
            spans = [
                (s_emb[s_bounds[i] : s_bounds[i + 1]], s_starts[s_bounds[i] : s_bounds[i + 1]])
                for i in range(start, start + len(part))
            ]
        writer.commit(rows, list(l2_normalize(clip_vectors(win))), list(win), spans, [])
    rebuild_indexes(lib, kind=index, space=space, window_index=window_index)
    lib.last_ingest_ = {"n_added": len(meta), "n_already_present": 0, "skipped": []}
    return lib
