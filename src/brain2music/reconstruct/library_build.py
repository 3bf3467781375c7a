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
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from brain2music import __version__
from brain2music._io import atomic_path, commit_json
from brain2music.errors import ConfigError, DataError, DataFileNotFoundError
from brain2music.reconstruct.clip_embedding import (
    clip_embedding,
    encoder_config,
    encoder_name,
    prepare_clip,
    resolve_encoder,
)
from brain2music.reconstruct.index import INDEX_KINDS, build_index, index_params, l2_normalize, save_index
from brain2music.reconstruct.library import (
    COVERAGES,
    EMBED_GROUP,
    FORMAT_VERSION,
    MANIFEST,
    SHARD_DIR,
    SPACES,
    MusicLibrary,
    clip_space_map,
)
from brain2music.reconstruct.window_store import WINDOW_INDEX_KINDS, write_store
from brain2music.stimuli import STIMULUS_DURATION, find_audio_files, read_audio, rms_normalize
from brain2music.windows import TR, clip_vectors

__all__ = [
    "add_to_library",
    "build_library",
    "library_from_embeddings",
    "read_fma_tracks",
    "rebuild_indexes",
]

#: Unlisted shards / indexes older than this (s) are debris of a crashed writer and are deleted; younger
#: ones may belong to a writer that is about to commit them.
ORPHAN_AGE = 3600.0


def read_fma_tracks(path: str | os.PathLike) -> pd.DataFrame:
    """Read FMA's ``tracks.csv`` (3 header rows) → DataFrame indexed by int track id with title, artist, genre."""
    path = Path(path)
    try:
        raw = pd.read_csv(path, index_col=0, header=[0, 1], low_memory=False)
    except Exception as exc:
        raise DataError(f"{path}: cannot read as FMA tracks.csv ({exc})") from exc
    wanted = {("track", "title"): "title", ("artist", "name"): "artist", ("track", "genre_top"): "genre"}
    missing = [f"{a}.{b}" for a, b in wanted if (a, b) not in raw.columns]
    if missing:
        raise DataError(
            f"{path}: not an FMA tracks.csv; expected 3 header rows with columns track.title, "
            f"artist.name, track.genre_top, missing {', '.join(missing)}"
        )
    out = raw[list(wanted)].copy()
    out.columns = list(wanted.values())
    out.index = pd.to_numeric(out.index, errors="coerce")
    out = out[out.index.notna()]
    out.index = out.index.astype(np.int64)
    return out.fillna("").astype(str)


def _find_fma_metadata(music_dir: Path) -> Path | None:
    # FMA ships fma_metadata/tracks.csv beside fma_large/; also accept it inside or next to the folder.
    for cand in (
        music_dir / "tracks.csv",
        music_dir / "fma_metadata" / "tracks.csv",
        music_dir.parent / "tracks.csv",
        music_dir.parent / "fma_metadata" / "tracks.csv",
    ):
        if cand.is_file():
            return cand
    return None


def _read_metadata_table(path: Path) -> pd.DataFrame:
    """A plain metadata CSV (columns ``path`` or ``track_id``, and any of title/artist/genre), or FMA's."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        head = [fh.readline() for _ in range(3)]
    if head[0].startswith(",") and "track" in head[0] and "track_id" in head[2]:
        tab = read_fma_tracks(path)
        tab.index = tab.index.astype(str).str.zfill(6)
        return tab
    tab = pd.read_csv(path, dtype=str).fillna("")
    key = "path" if "path" in tab.columns else "track_id" if "track_id" in tab.columns else None
    if key is None:
        raise DataError(
            f"{path}: a metadata table needs a 'path' or 'track_id' column; found {list(tab.columns)}"
        )
    return tab.set_index(key)


def _describe_file(path: Path, music_dir: Path, meta: pd.DataFrame | None) -> dict:
    from brain2music.data.events import GENRES

    stem = path.stem
    info = {"path": str(path.resolve()), "track_id": stem, "title": stem, "artist": "", "genre": ""}
    prefix = stem.split(".")[0]
    if prefix in GENRES:  # GTZAN naming: blues.00012.wav
        info["genre"] = prefix
    elif path.parent.name in GENRES:
        info["genre"] = path.parent.name
    if meta is not None:
        rel = str(path.relative_to(music_dir)) if path.is_relative_to(music_dir) else str(path)
        for key in (rel, str(path), stem, stem.lstrip("0") or "0", stem.zfill(6)):
            if key in meta.index:
                row = meta.loc[key]
                if isinstance(row, pd.DataFrame):
                    row = row.iloc[0]
                for col in ("title", "artist", "genre"):
                    if col in row.index and str(row[col]):
                        info[col] = str(row[col])
                break
    return info


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


# ------------------------------------------------------------------------------------------- shards
def _write_shard(lib: MusicLibrary, rows: list[dict], vectors, windows, spans) -> str:
    """Write one batch of tracks to a new, uniquely named shard; returns its name (not yet committed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = {
        **{
            c: pa.array([r[c] for r in rows], type=pa.string())
            for c in ("path", "track_id", "title", "artist", "genre")
        },
        "duration": pa.array([float(r["duration"]) for r in rows], type=pa.float64()),
        "vector": pa.FixedSizeListArray.from_arrays(
            pa.array(np.asarray(vectors, dtype=np.float32).reshape(-1), pa.float32()), lib.dim
        ),
        "windows": pa.FixedSizeListArray.from_arrays(
            pa.array(np.asarray(windows, dtype=np.float32).reshape(-1), pa.float32()), lib.n_windows * lib.dim
        ),
    }
    if spans is not None:
        counts = np.array([len(st) for _, st in spans], dtype=np.int32)
        offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
        flat = np.concatenate([np.asarray(e, dtype=np.float32).reshape(-1) for e, _ in spans])
        cols["span"] = pa.ListArray.from_arrays(
            pa.array(offsets.to_numpy() * lib.dim, pa.int32()), pa.array(flat, pa.float32())
        )
        cols["span_starts"] = pa.ListArray.from_arrays(
            offsets, pa.array(np.concatenate([np.asarray(st, dtype=np.float32) for _, st in spans]))
        )
    name = f"{SHARD_DIR}/part-{uuid.uuid4().hex}.parquet"
    with atomic_path(lib.path / name) as tmp:
        pq.write_table(pa.table(cols), tmp)
    return name


class _Writer:
    """One writer's view of a library: which track paths are committed (refreshed from new shards only)."""

    def __init__(self, lib: MusicLibrary):
        self.lib = lib
        self.seen: set[str] = set()
        self.present: set[str] = set()
        self.refresh(lib._manifest)

    def refresh(self, doc: dict) -> None:
        import pyarrow.parquet as pq

        for shard in doc["shards"]:
            if shard["file"] not in self.seen:
                table = pq.read_table(self.lib.path / shard["file"], columns=["path"])
                self.present.update(table.column("path").to_pylist())
                self.seen.add(shard["file"])

    def commit(self, rows, vecs, wins, spans, new_skips: list[dict]) -> tuple[int, int]:
        """Commit a batch (tracks others committed meanwhile are dropped): ``(n_committed, n_dropped)``."""
        state: dict[str, Any] = {"file": None, "keep": None}

        def update(doc):
            self.refresh(doc)
            keep = [i for i, r in enumerate(rows) if r["path"] not in self.present]
            if keep != state["keep"]:  # first try, or another writer committed some of our tracks
                if state["file"]:
                    (self.lib.path / state["file"]).unlink(missing_ok=True)
                state["file"] = None
                if keep:
                    state["file"] = _write_shard(
                        self.lib,
                        [rows[i] for i in keep],
                        np.stack([vecs[i] for i in keep]),
                        np.stack([wins[i] for i in keep]),
                        None if spans is None else [spans[i] for i in keep],
                    )
                state["keep"] = keep
            if not keep and not new_skips:
                return None
            if keep:
                doc["shards"].append(
                    {"file": state["file"], "n_items": len(keep), "start": int(doc["n_items"])}
                )
                doc["n_items"] = int(doc["n_items"]) + len(keep)
                if not doc.get("n_windows"):
                    doc["n_windows"] = int(np.shape(wins[keep[0]])[0])
            # A resumed build retries files that failed before: keep one (the latest) entry per path.
            merged = {d["path"]: d for d in [*doc.get("skipped", []), *new_skips]}
            doc["skipped"] = list(merged.values())
            doc["version"] = __version__
            return doc

        if not rows and not new_skips:
            return 0, 0
        commit_json(self.lib.path / MANIFEST, update)
        if state["file"]:
            self.seen.add(state["file"])
            self.present.update(rows[i]["path"] for i in state["keep"])
        self.lib.reload()
        kept = len(state["keep"] or [])
        return kept, len(rows) - kept


def _remove_orphans(lib: MusicLibrary) -> None:
    """Delete debris of crashed writers: unlisted shards, indexes and stores older than ORPHAN_AGE."""
    doc = lib._manifest
    listed = {s["file"] for s in doc["shards"]}
    listed.add((doc.get("index") or {}).get("file", ""))
    listed.add((doc.get("window_store") or {}).get("dir", ""))
    cutoff = time.time() - ORPHAN_AGE
    candidates = list((lib.path / SHARD_DIR).iterdir()) if (lib.path / SHARD_DIR).is_dir() else []
    candidates += [*lib.path.glob("index*.faiss"), *lib.path.glob("windex-*"), *lib.path.glob(".*.tmp*")]
    for p in candidates:
        rel = str(p.relative_to(lib.path))
        try:
            if rel not in listed and p.stat().st_mtime < cutoff:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        except FileNotFoundError:  # another writer cleaned it up first
            pass


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

    _remove_orphans(lib)
    writer = _Writer(lib)
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
            info = _describe_file(path, music_dir, metadata)
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


def _load_metadata_arg(metadata, music_dir: Path) -> pd.DataFrame | None:
    if metadata is None:
        found = _find_fma_metadata(music_dir)
        return _read_metadata_table(found) if found else None
    if isinstance(metadata, pd.DataFrame):
        return metadata
    path = Path(metadata)
    if not path.is_file():
        raise DataFileNotFoundError(f"metadata table not found: {path}")
    return _read_metadata_table(path)


def _ingest_folder(lib, music_dir, enc, *, metadata, index, space, window_index, batch_size, progress):
    music_dir = Path(music_dir)
    files = find_audio_files(music_dir)
    meta = _load_metadata_arg(metadata, music_dir)
    report = _ingest(
        lib, files, enc, music_dir=music_dir, metadata=meta, batch_size=batch_size, progress=progress
    )
    if len(lib) == 0:
        listed = "; ".join(f"{s['path']}: {s['error']}" for s in report["skipped"][:5])
        raise DataError(f"{music_dir}: none of the {len(files)} audio files could be read ({listed})")
    rebuild_indexes(lib, kind=index, space=space, window_index=window_index)
    lib.last_ingest_ = report
    return lib


# ------------------------------------------------------------------------------------------- indexes
def _clip_space(vectors: np.ndarray, space: str) -> dict:
    mean = vectors.mean(axis=0, dtype=np.float64)
    resolved = space
    if space == "auto":
        # For unit vectors E[cos(v_i, v_j)] = ||mean||^2: above 0.5 every pair looks alike.
        resolved = "zscore" if float(mean @ mean) > 0.5 else "cosine"
    info = {"requested": space, "kind": resolved}
    if resolved == "zscore":
        sd = vectors.std(axis=0, dtype=np.float64)
        sd = np.where(sd > 1e-6 * max(float(sd.max()), 1e-12), sd, 1.0)
        info.update(mean=mean.tolist(), scale=sd.tolist())
    return info


def _window_layout(lib: MusicLibrary) -> tuple[np.ndarray, np.ndarray]:
    """``starts (n_windows,)`` and ``bounds (n_items + 1,)`` of the search windows, reading no embeddings."""
    import pyarrow.parquet as pq

    if lib.coverage != "full":
        r = lib.n_windows
        return np.tile(lib.clip_window_starts(), len(lib)), np.arange(len(lib) + 1, dtype=np.int64) * r
    starts, counts = [], []
    for shard in lib._manifest["shards"]:
        col = pq.read_table(lib.path / shard["file"], columns=["span_starts"]).column("span_starts")
        col = col.combine_chunks()
        starts.append(col.flatten().to_numpy(zero_copy_only=False))
        counts.append(np.diff(np.asarray(col.offsets)))
    counts = np.concatenate(counts).astype(np.int64)
    return np.concatenate(starts), np.concatenate([[0], np.cumsum(counts)])


def rebuild_indexes(lib: MusicLibrary, *, kind: str = "auto", space=None, window_index=None, **params):
    """Rebuild the clip-vector index and the window store of ``lib`` and commit them (see ``rebuild_index``).

    Returns the clip index, or ``None`` when another writer committed tracks meanwhile (the indexes were
    then discarded: that writer's own rebuild covers everything).
    """
    if kind not in INDEX_KINDS:
        raise ConfigError(f"index must be one of {', '.join(INDEX_KINDS)}; got {kind!r}")
    lib.reload()  # a consistent snapshot: shards are only ever appended
    doc = lib._manifest
    n = len(lib)
    if n == 0:
        raise DataError(f"{lib.path}: the library is empty; nothing to index")
    if space is None:
        space = (doc.get("space") or {}).get("requested", "auto")
    if space not in SPACES:
        raise ConfigError(f"space must be one of {', '.join(SPACES)}; got {space!r}")
    if window_index is None:
        window_index = (doc.get("window_store") or {}).get("requested", "auto")
    if window_index not in WINDOW_INDEX_KINDS:
        raise ConfigError(
            f"window index must be one of {', '.join(WINDOW_INDEX_KINDS)}; got {window_index!r}"
        )
    vectors = lib.vectors
    lib._vectors = None
    clip_space = _clip_space(vectors, space)
    vectors = clip_space_map(vectors, clip_space)
    index = build_index(vectors, kind=kind, normalized=True, **params)
    del vectors  # the index holds its own copy (2 GB per million 512-d vectors)
    # New names per build, listed by the manifest only once complete: a crash in between leaves the old
    # index, store and their matching manifest (space statistics included) in force.
    tag = uuid.uuid4().hex[:12]
    index_file, store_dir = f"index-{tag}.faiss", f"windex-{tag}"
    save_index(index, lib.path / index_file)
    starts, bounds = _window_layout(lib)
    store = write_store(
        lib.path / store_dir,
        lambda: (emb for emb, _, _ in lib.search_window_blocks()),
        starts,
        bounds,
        lib.dim,
        space=space,
        kind=window_index,
        random_state=int(params.get("random_state", 0)),
    )
    replaced: list[str] = []

    def update(cur):
        if int(cur["n_items"]) != n:
            return None
        replaced[:] = [
            (cur.get("index") or {}).get("file", ""),
            (cur.get("window_store") or {}).get("dir", ""),
        ]
        cur["format"] = FORMAT_VERSION
        cur["space"] = clip_space
        cur["index"] = {"file": index_file, "requested": kind, **index_params(index)}
        cur["window_store"] = {
            "dir": store_dir,
            "requested": window_index,
            "n_items": n,
            "n_windows": store["n_windows"],
            "index": store["index"],
            "space": store["space"]["kind"],
        }
        cur.setdefault("coverage", "first15")
        cur.setdefault("hop", lib.hop)
        cur["version"] = __version__
        return cur

    committed = commit_json(lib.path / MANIFEST, update)
    stale = [index_file, store_dir] if committed is None else [r for r in replaced if r]
    for name in stale:
        p = lib.path / name
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    lib.reload()
    if committed is None:
        return None
    lib._index = index
    return index


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
    if index not in INDEX_KINDS:
        raise ConfigError(f"--index must be one of {', '.join(INDEX_KINDS)}; got {index!r}")
    if coverage not in COVERAGES:
        raise ConfigError(f"--coverage must be one of {', '.join(COVERAGES)}; got {coverage!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    out = Path(out)
    enc = resolve_encoder(encoder, **(encoder_options or {}))
    hop = float(hop) if hop is not None else float(getattr(enc, "tr", TR))
    if hop <= 0:
        raise ConfigError(f"--hop must be a positive number of seconds, got {hop!r}")
    if coverage == "first15" and abs(hop - float(getattr(enc, "tr", TR))) > 1e-9:
        raise ConfigError("--hop applies to --coverage full; first15 uses the paper's windows")
    if (out / MANIFEST).is_file():
        lib = MusicLibrary(out)
        _check_same_library(lib, enc, coverage=coverage, hop=hop)
    elif not _is_empty_folder(out):
        raise DataError(f"{out}: exists and is not a music library (no {MANIFEST}); choose an empty folder")
    else:
        lib = None
    # Fail on an empty folder or a bad metadata table before creating anything.
    find_audio_files(music_dir)
    metadata = _load_metadata_arg(metadata, Path(music_dir))
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
    writer = _Writer(lib)
    meta = metadata.reset_index(drop=True)
    for start in tqdm(range(0, len(meta), batch_size), desc="writing library", disable=not progress):
        part = meta.iloc[start : start + batch_size]
        rows = [
            {
                "path": str(r["path"]),
                "track_id": str(r.get("track_id", Path(str(r["path"])).stem)),
                "title": str(r.get("title", Path(str(r["path"])).stem)),
                "artist": str(r.get("artist", "")),
                "genre": str(r.get("genre", "")),
                "duration": float(r.get("duration", STIMULUS_DURATION)),
            }
            for r in part.to_dict(orient="records")
        ]
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
