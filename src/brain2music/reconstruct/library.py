"""A music library on disk: track metadata + embeddings in Parquet shards, and a FAISS cosine index.

Layout of a library folder::

    lib/
      manifest.json            the only source of truth: encoder name + config, dim, n_windows,
                               shard list, skipped files, index description, search space,
                               package version
      shards/part-000000.parquet  one file per committed batch of tracks
      index-<id>.faiss         vector index over all committed tracks (see brain2music.reconstruct.index);
                               a new name per build, the manifest names the current one

Each shard is a Parquet table with one row per track: ``item`` (global row number), ``path``,
``track_id``, ``title``, ``artist``, ``genre``, ``duration`` (seconds embedded), ``vector``
(``dim`` float32: the window-average of the track's ``(n_windows, dim)`` embedding, L2-normalised, so
the inner product of two vectors is their cosine similarity) and ``windows`` (``n_windows * dim``
float32: the raw per-window embedding, used to score reconstructions the way the decoders are scored).

Search space: by default cosine similarity of the ``vector`` column (the paper's retrieval). For
descriptors with a large shared offset (``acoustic``), where every raw cosine is ≈ 1, the index is built
on vectors standardised with the library's per-dimension mean and sd (``space="zscore"``, chosen
automatically when the mean cosine between tracks exceeds 0.5; recorded in the manifest with its
statistics and applied to queries too).

Crash safety: tracks are embedded in batches; each batch is written to a new shard (temp file + rename)
and only then listed in the manifest, which is itself replaced atomically. A crash loses at most the
batch in progress, never corrupts what was committed, and rerunning ``build`` or ``add`` resumes (files
already in the library are skipped). Shards that no manifest lists (left by a crash) are deleted on the
next write. The index is rebuilt after ingestion; if it is missing or stale when the library is opened,
it is rebuilt from the shards.

Each track is embedded from its first 15 s (padded with silence if shorter), with the stimuli's 2-s
fades and RMS normalisation, so library tracks and stimuli are comparable.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from brain2music import __version__
from brain2music._io import atomic_path, write_json
from brain2music.errors import ConfigError, DataError, DataFileNotFoundError
from brain2music.reconstruct.encoders import (
    clip_embedding,
    encoder_config,
    encoder_name,
    prepare_clip,
    resolve_encoder,
)
from brain2music.reconstruct.index import (
    INDEX_KINDS,
    build_index,
    index_params,
    l2_normalize,
    load_index,
    save_index,
    search_index,
)
from brain2music.stimuli import AUDIO_EXTENSIONS, STIMULUS_DURATION, read_audio

__all__ = [
    "MusicLibrary",
    "add_to_library",
    "build_library",
    "find_audio_files",
    "library_from_embeddings",
    "open_library",
    "read_fma_tracks",
    "search_library",
]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
INDEX_FILE = "index.faiss"  # legacy name; each build now writes index-<random>.faiss
#: Similarity spaces: ``cosine`` of the window-averaged vectors (the paper's retrieval), or ``zscore``:
#: cosine after standardising each dimension with the library's mean and sd, for descriptors with a large
#: shared offset (e.g. ``acoustic``) where every raw cosine is ≈ 1. ``auto`` picks ``zscore`` when the
#: mean cosine between library tracks exceeds 0.5.
SPACES = ("auto", "cosine", "zscore")
SHARD_DIR = "shards"
EMBED_GROUP = 8  # tracks read and embedded together (encoders with embed_many batch them)
META_COLUMNS = ("item", "path", "track_id", "title", "artist", "genre", "duration")


# ----------------------------------------------------------------------------------------------- metadata
def find_audio_files(music_dir: str | os.PathLike) -> list[Path]:
    """All audio files (by extension, see ``brain2music.stimuli.AUDIO_EXTENSIONS``) under ``music_dir``, sorted."""
    music_dir = Path(music_dir)
    if not music_dir.is_dir():
        raise DataFileNotFoundError(f"music folder not found: {music_dir}")
    files = sorted(
        p
        for p in music_dir.rglob("*")
        if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file() and not p.name.startswith(".")
    )
    if not files:
        raise DataError(
            f"{music_dir}: no audio files found; expected files ending in {', '.join(AUDIO_EXTENSIONS)}"
        )
    return files


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


# ------------------------------------------------------------------------------------------------ library
class MusicLibrary:
    """An opened library folder (see the module docstring). Use :func:`open_library` or :func:`build_library`.

    Attributes
    ----------
    path : Path
    encoder_name : str
        Registry name of the encoder that embedded every track.
    encoder_config : dict
    dim, n_windows : int
        Shape of one track's embedding ``(n_windows, dim)``.
    metadata : DataFrame
        One row per track: item, path, track_id, title, artist, genre, duration.
    skipped : list of dict
        Files that could not be read, with the reason.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        manifest = self.path / MANIFEST
        if not manifest.is_file():
            raise DataFileNotFoundError(
                f"{self.path}: not a music library (no {MANIFEST}); create one with `brain2music library build`"
            )
        try:
            self._manifest = json.loads(manifest.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{manifest}: not valid JSON ({exc})") from exc
        if self._manifest.get("format") != FORMAT_VERSION:
            raise DataError(
                f"{manifest}: library format {self._manifest.get('format')!r}, expected {FORMAT_VERSION}"
            )
        self._vectors = None
        self._metadata = None
        self._index = None

    # -- description
    @property
    def encoder_name(self) -> str:
        return self._manifest["encoder"]["name"]

    @property
    def encoder_config(self) -> dict:
        return dict(self._manifest["encoder"].get("config", {}))

    @property
    def dim(self) -> int:
        return int(self._manifest["dim"])

    @property
    def n_windows(self) -> int:
        return int(self._manifest["n_windows"])

    @property
    def skipped(self) -> list[dict]:
        return list(self._manifest.get("skipped", []))

    @property
    def manifest(self) -> dict:
        return json.loads(json.dumps(self._manifest))

    def __len__(self) -> int:
        return int(self._manifest["n_items"])

    def __repr__(self) -> str:
        return f"MusicLibrary({str(self.path)!r}, encoder={self.encoder_name!r}, n_items={len(self)})"

    # -- contents
    def _shard_paths(self) -> list[Path]:
        return [self.path / s["file"] for s in self._manifest["shards"]]

    def _read_column(self, column: str, width: int) -> np.ndarray:
        import pyarrow.parquet as pq

        # Filled in place: concatenating per-shard arrays would hold the column twice (2 GB per copy
        # for a million 512-d vectors).
        out = np.empty((len(self), width), dtype=np.float32)
        for shard in self._manifest["shards"]:
            col = pq.read_table(self.path / shard["file"], columns=[column]).column(column).combine_chunks()
            start = shard["start"]
            out[start : start + shard["n_items"]] = (
                col.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
            )
            del col
        return out

    @property
    def metadata(self) -> pd.DataFrame:
        if self._metadata is None:
            import pyarrow.parquet as pq

            frames = [pq.read_table(p, columns=list(META_COLUMNS)).to_pandas() for p in self._shard_paths()]
            self._metadata = (
                pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(META_COLUMNS))
            )
        return self._metadata

    @property
    def vectors(self) -> np.ndarray:
        """``(n_items, dim)`` L2-normalised window-averaged embeddings."""
        if self._vectors is None:
            self._vectors = self._read_column("vector", self.dim)
        return self._vectors

    def windows(self, items: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Per-window embeddings ``(n, n_windows, dim)`` of the given item numbers (all when ``None``).

        Only the shards holding requested items are read.
        """
        import pyarrow.parquet as pq

        width = self.n_windows * self.dim
        if items is None:
            return self._read_column("windows", width).reshape(-1, self.n_windows, self.dim)
        items = np.asarray(items, dtype=np.int64).reshape(-1)
        if items.size and (items.min() < 0 or items.max() >= len(self)):
            raise DataError(f"item numbers must lie in [0, {len(self)}); got {items.min()}..{items.max()}")
        out = np.zeros((items.size, width), dtype=np.float32)
        for shard in self._manifest["shards"]:
            start, stop = shard["start"], shard["start"] + shard["n_items"]
            hit = np.flatnonzero((items >= start) & (items < stop))
            if hit.size == 0:
                continue
            col = (
                pq.read_table(self.path / shard["file"], columns=["windows"])
                .column("windows")
                .combine_chunks()
            )
            block = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
            out[hit] = block[items[hit] - start]
        return out.reshape(-1, self.n_windows, self.dim)

    @property
    def index(self):
        """The FAISS index, rebuilt from the shards when missing or stale."""
        if self._index is None:
            info = self._manifest.get("index") or {}
            path = self.path / info.get("file", INDEX_FILE)
            index = None
            if path.is_file() and info.get("n_items") == len(self):
                try:
                    index = load_index(path)
                except DataError:
                    index = None
            if index is None or index.ntotal != len(self):
                warnings.warn(f"{self.path}: vector index missing or stale; rebuilding it", stacklevel=2)
                index = self.rebuild_index(kind=info.get("requested", "auto"))
            self._index = index
        return self._index

    def rebuild_index(self, *, kind: str = "auto", space: str | None = None, **params):
        """Rebuild and save the index over all committed tracks.

        ``kind`` is one of ``INDEX_KINDS``; ``space`` one of ``SPACES`` (default: as requested before,
        else ``"auto"``). The space's statistics are recomputed from all tracks.
        """
        if space is None:
            space = (self._manifest.get("space") or {}).get("requested", "auto")
        if space not in SPACES:
            raise ConfigError(f"space must be one of {', '.join(SPACES)}; got {space!r}")
        vectors = self.vectors
        self._vectors = None
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
        self._manifest["space"] = info
        vectors = self._to_space(vectors)
        index = build_index(vectors, kind=kind, normalized=True, **params)
        del vectors  # the index holds its own copy (2 GB per million 512-d vectors)
        # A new file name per build, listed by the manifest only once complete: a crash between the two
        # writes leaves the old index and its matching manifest (space statistics included) in force.
        name = f"index-{uuid.uuid4().hex[:12]}.faiss"
        save_index(index, self.path / name)
        self._manifest["index"] = {"file": name, "requested": kind, **index_params(index)}
        self._write_manifest()
        for old in self.path.glob("index*.faiss"):
            if old.name != name:
                old.unlink()
        self._index = index
        return index

    def _to_space(self, unit_vectors: np.ndarray) -> np.ndarray:
        """Map L2-normalised window averages ``(n, dim)`` into the search space (see ``SPACES``)."""
        info = self._manifest.get("space") or {"kind": "cosine"}
        if info["kind"] != "zscore":
            return unit_vectors
        mean = np.asarray(info["mean"], dtype=np.float32)
        scale = np.asarray(info["scale"], dtype=np.float32)
        out = np.empty_like(unit_vectors, dtype=np.float32)
        for s in range(0, len(unit_vectors), 100_000):  # in blocks: no second full-size temporary
            out[s : s + 100_000] = l2_normalize((unit_vectors[s : s + 100_000] - mean) / scale)
        return out

    @property
    def space(self) -> str:
        """The search space actually used: ``"cosine"`` or ``"zscore"``."""
        return (self._manifest.get("space") or {"kind": "cosine"})["kind"]

    def _write_manifest(self) -> None:
        self._manifest["version"] = __version__
        write_json(self.path / MANIFEST, self._manifest)

    # -- queries
    def check_encoder(self, name: str | None, *, source: str = "query") -> None:
        """Raise :class:`DataError` if ``name`` is not the library's encoder."""
        if name is not None and name != self.encoder_name:
            raise DataError(
                f"{source} embeddings come from encoder {name!r} but the library {self.path} was built "
                f"with encoder {self.encoder_name!r}; rebuild the library with --encoder {name} or query "
                f"with {self.encoder_name!r} embeddings"
            )

    def check_encoder_config(self, encoder: Any) -> None:
        """Raise :class:`DataError` if ``encoder``'s config differs from the one the library was built with.

        Same name but another checkpoint or window would give incompatible vectors.
        """
        mine = self.encoder_config
        theirs = json.loads(json.dumps(encoder_config(encoder), default=str))
        diff = {k: (mine[k], theirs[k]) for k in set(mine) & set(theirs) if mine[k] != theirs[k]}
        if diff:
            detail = ", ".join(f"{k}: library {a!r} vs given {b!r}" for k, (a, b) in sorted(diff.items()))
            raise DataError(
                f"encoder {self.encoder_name!r} is configured differently from the one that built the "
                f"library {self.path} ({detail})"
            )

    def query_vectors(self, embeddings: np.ndarray, *, encoder: str | None = None) -> np.ndarray:
        """``(n, dim)`` or ``(n, n_windows, dim)`` embeddings → window-averaged, L2-normalised ``(n, dim)``."""
        self.check_encoder(encoder)
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim == 1:
            emb = emb[None]
        if emb.ndim == 3:
            emb = emb.mean(axis=1)
        if emb.ndim != 2 or emb.shape[1] != self.dim:
            raise DataError(
                f"query embeddings have shape {np.shape(embeddings)}; the library (encoder "
                f"{self.encoder_name!r}) expects (n, {self.dim}) or (n, n_windows, {self.dim})"
            )
        return self._to_space(l2_normalize(emb, name="query embeddings"))

    def search(
        self,
        embeddings: np.ndarray,
        k: int = 10,
        *,
        encoder: str | None = None,
        exclude: Sequence[str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` tracks by cosine similarity for a batch of query embeddings.

        Parameters
        ----------
        embeddings : ndarray ``(n, dim)``, ``(n, n_windows, dim)`` or ``(dim,)``
            Predicted or true embeddings; window-averaged and L2-normalised before the search.
        encoder
            Name of the encoder the queries come from; must be the library's.
        exclude
            Track paths never to return (e.g. the stimuli themselves).

        Returns
        -------
        scores : ndarray ``(n, k)`` cosine similarities, best first
        items : ndarray ``(n, k)`` item numbers (rows of :attr:`metadata`), ``-1`` where fewer exist
        """
        queries = self.query_vectors(embeddings, encoder=encoder)
        if len(self) == 0:
            raise DataError(f"{self.path}: the library is empty")
        if not exclude:
            return search_index(self.index, queries, k)
        drop = set(map(str, exclude))
        bad = self.metadata["path"].isin(drop).to_numpy()
        kk = min(len(self), k + int(bad.sum()))
        scores, items = search_index(self.index, queries, kk)
        out_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_i = np.full((len(queries), k), -1, dtype=np.int64)
        for q in range(len(queries)):
            keep = [(s, i) for s, i in zip(scores[q], items[q], strict=True) if i >= 0 and not bad[i]][:k]
            for j, (s, i) in enumerate(keep):
                out_s[q, j], out_i[q, j] = s, i
        return out_s, out_i

    def search_table(self, embeddings: np.ndarray, k: int = 10, **kwargs) -> pd.DataFrame:
        """Like :meth:`search`, as a tidy table: query, rank, score, item and the track's metadata."""
        scores, items = self.search(embeddings, k, **kwargs)
        rows = []
        meta = self.metadata
        for q in range(items.shape[0]):
            for rank, (s, i) in enumerate(zip(scores[q], items[q], strict=True)):
                if i < 0:
                    continue
                m = meta.iloc[int(i)]
                rows.append(
                    {"query": q, "rank": rank + 1, "score": float(s), **{c: m[c] for c in META_COLUMNS}}
                )
        return pd.DataFrame(rows, columns=["query", "rank", "score", *META_COLUMNS])

    def embed_audio(self, audio_path: str | os.PathLike, *, encoder: Any = None) -> np.ndarray:
        """Embed the first 15 s of an audio file with the library's encoder → ``(n_windows, dim)``."""
        enc = resolve_encoder(encoder if encoder is not None else self.encoder_name)
        self.check_encoder(encoder_name(enc))
        audio, sr = read_audio(audio_path, sr=int(enc.sr), duration=STIMULUS_DURATION)
        return clip_embedding(enc, prepare_clip(audio, sr), sr, source=str(audio_path))


# ------------------------------------------------------------------------------------------------ writing
def _new_library(path: Path, enc) -> MusicLibrary:
    dim = int(enc.dim)
    n_win = int(getattr(enc, "n_windows", 0) or 0)
    manifest = {
        "format": FORMAT_VERSION,
        "version": __version__,
        "encoder": {"name": encoder_name(enc), "config": encoder_config(enc)},
        "dim": dim,
        "n_windows": n_win,
        "clip_duration": STIMULUS_DURATION,
        "vector": "window-average of the (n_windows, dim) embedding, L2-normalised (inner product = cosine)",
        "n_items": 0,
        "shards": [],
        "skipped": [],
        "index": None,
        "space": None,
    }
    path.mkdir(parents=True, exist_ok=True)
    write_json(path / MANIFEST, manifest)
    return MusicLibrary(path)


def _write_shard(lib: MusicLibrary, rows: list[dict], vectors: np.ndarray, windows: np.ndarray) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(rows)
    k = len(lib._manifest["shards"])
    name = f"{SHARD_DIR}/part-{k:06d}.parquet"
    start = len(lib)
    cols = {
        "item": pa.array(np.arange(start, start + n, dtype=np.int64)),
        **{
            c: pa.array([r[c] for r in rows], type=pa.string())
            for c in ("path", "track_id", "title", "artist", "genre")
        },
        "duration": pa.array([float(r["duration"]) for r in rows], type=pa.float64()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), lib.dim),
        "windows": pa.FixedSizeListArray.from_arrays(
            pa.array(windows.reshape(-1), pa.float32()), lib.n_windows * lib.dim
        ),
    }
    table = pa.table(cols)
    with atomic_path(lib.path / name) as tmp:
        pq.write_table(table, tmp)
    return {"file": name, "n_items": n, "start": start}


def _remove_orphan_shards(lib: MusicLibrary) -> None:
    listed = {s["file"] for s in lib._manifest["shards"]}
    folder = lib.path / SHARD_DIR
    if folder.is_dir():
        for p in folder.iterdir():
            if f"{SHARD_DIR}/{p.name}" not in listed:
                p.unlink()


def _ingest(
    lib: MusicLibrary,
    files: list[Path],
    enc,
    *,
    music_dir: Path,
    metadata: pd.DataFrame | None,
    batch_size: int,
    progress: bool,
) -> dict:
    from tqdm.auto import tqdm

    _remove_orphan_shards(lib)
    present = set(lib.metadata["path"]) if len(lib) else set()
    todo = [f for f in files if str(f.resolve()) not in present]
    skipped: list[dict] = []
    n_added = 0
    committed_skips = 0
    rows, vecs, wins = [], [], []
    sr = int(enc.sr)
    n_win = lib.n_windows
    bar = tqdm(total=len(todo), desc="embedding library", unit="track", disable=not progress)
    for start in range(0, len(todo), EMBED_GROUP):
        group = todo[start : start + EMBED_GROUP]
        for path, audio, emb, error in _embed_group(enc, group, sr):
            bar.update()
            if error is not None:
                skipped.append({"path": str(path), "error": error})
                continue
            if n_win == 0:  # encoder did not declare n_windows: learn it from the first track
                n_win = lib._manifest["n_windows"] = emb.shape[0]
            if emb.shape != (n_win, lib.dim):
                skipped.append(
                    {"path": str(path), "error": f"embedding shape {emb.shape}, expected {(n_win, lib.dim)}"}
                )
                continue
            info = _describe_file(path, music_dir, metadata)
            info["duration"] = min(len(audio) / sr, STIMULUS_DURATION)
            rows.append(info)
            vecs.append(l2_normalize(emb.mean(axis=0))[0])
            wins.append(emb)
            if len(rows) >= batch_size:
                _commit(lib, rows, vecs, wins, skipped[committed_skips:])
                committed_skips = len(skipped)
                n_added += len(rows)
                rows, vecs, wins = [], [], []
    bar.close()
    _commit(lib, rows, vecs, wins, skipped[committed_skips:])
    n_added += len(rows)
    return {"n_added": n_added, "n_already_present": len(files) - len(todo), "skipped": skipped}


def _embed_group(enc, paths: list[Path], sr: int):
    """Read and embed a few tracks; yields ``(path, audio, embedding, error)`` (error: str or None).

    Encoders with ``embed_many`` (the embeddings layer's neural encoders batch their windows) embed the
    group at once; if that fails, each track is embedded alone so one bad file cannot sink the rest.
    """
    clips: list[tuple[Path, np.ndarray | None, str | None]] = []
    for path in paths:
        try:
            audio, _ = read_audio(path, sr=sr, duration=STIMULUS_DURATION)
            clips.append((path, audio, None))
        except (DataError, DataFileNotFoundError) as exc:
            clips.append((path, None, str(exc)))
    ok = [c for c in clips if c[2] is None]
    batch = None
    if len(ok) > 1 and hasattr(enc, "embed_many"):
        try:
            batch = np.asarray(enc.embed_many([prepare_clip(a, sr) for _, a, _ in ok], sr), dtype=np.float32)
            if batch.ndim != 3 or len(batch) != len(ok) or not np.all(np.isfinite(batch)):
                batch = None
        except (DataError, ValueError, RuntimeError):
            batch = None
    k = 0
    for path, audio, error in clips:
        if error is not None:
            yield path, None, None, error
            continue
        if batch is not None:
            yield path, audio, batch[k], None
        else:
            try:
                yield path, audio, clip_embedding(enc, prepare_clip(audio, sr), sr, source=str(path)), None
            except DataError as exc:
                yield path, audio, None, str(exc)
        k += 1


def _commit(lib: MusicLibrary, rows, vecs, wins, new_skips: list[dict]) -> None:
    """Write one shard (if any rows) and then the manifest that lists it: the commit point."""
    if rows:
        shard = _write_shard(
            lib,
            rows,
            np.asarray(np.stack(vecs) if isinstance(vecs, list) else vecs),
            np.asarray(np.stack(wins) if isinstance(wins, list) else wins),
        )
        lib._manifest["shards"].append(shard)
        lib._manifest["n_items"] = len(lib) + len(rows)
    # A resumed build retries files that failed before: keep one (the latest) entry per path.
    merged = {d["path"]: d for d in [*lib._manifest.get("skipped", []), *new_skips]}
    lib._manifest["skipped"] = list(merged.values())
    lib._write_manifest()
    lib._metadata = lib._vectors = lib._index = None


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


def _ingest_folder(lib, music_dir, enc, *, metadata, index, space, batch_size, progress) -> MusicLibrary:
    music_dir = Path(music_dir)
    files = find_audio_files(music_dir)
    meta = _load_metadata_arg(metadata, music_dir)
    report = _ingest(
        lib, files, enc, music_dir=music_dir, metadata=meta, batch_size=batch_size, progress=progress
    )
    if len(lib) == 0:
        listed = "; ".join(f"{s['path']}: {s['error']}" for s in report["skipped"][:5])
        raise DataError(f"{music_dir}: none of the {len(files)} audio files could be read ({listed})")
    lib.rebuild_index(kind=index, space=space)
    lib.last_ingest_ = report
    return lib


def build_library(
    music_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    encoder: Any,
    metadata: str | os.PathLike | pd.DataFrame | None = None,
    index: str = "auto",
    space: str = "auto",
    batch_size: int = 64,
    progress: bool = True,
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
        files already ingested are skipped.
    encoder
        Registry name (``brain2music.embeddings.get_encoder``) or encoder object.
    metadata
        Optional table (CSV path or DataFrame) with a ``path`` or ``track_id`` column and any of
        ``title``, ``artist``, ``genre``; or an FMA ``tracks.csv``.
    index
        ``"auto"`` (exact below 100,000 tracks, IVF above), ``"flat"``, ``"ivf"`` or ``"hnsw"``.
    space
        Similarity space (``SPACES``): ``"auto"``, ``"cosine"`` or ``"zscore"``.
    batch_size
        Tracks per committed shard.

    Returns
    -------
    MusicLibrary, with ``last_ingest_`` = {"n_added", "n_already_present", "skipped": [{"path", "error"}]}.
    """
    if index not in INDEX_KINDS:
        raise ConfigError(f"--index must be one of {', '.join(INDEX_KINDS)}; got {index!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    out = Path(out)
    enc = resolve_encoder(encoder)
    if (out / MANIFEST).is_file():
        lib = MusicLibrary(out)
        lib.check_encoder(encoder_name(enc), source=f"encoder {encoder_name(enc)!r} for build:")
        lib.check_encoder_config(enc)
    else:
        if out.exists() and any(out.iterdir()):
            raise DataError(
                f"{out}: exists and is not a music library (no {MANIFEST}); choose an empty folder"
            )
        lib = None
    # Fail on an empty folder or a bad metadata table before creating anything.
    find_audio_files(music_dir)
    metadata = _load_metadata_arg(metadata, Path(music_dir))
    if lib is None:
        lib = _new_library(out, enc)
    return _ingest_folder(
        lib,
        music_dir,
        enc,
        metadata=metadata,
        index=index,
        space=space,
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
    batch_size: int = 64,
    progress: bool = True,
) -> MusicLibrary:
    """Append the audio files under ``music_dir`` to an existing library (already-present files skipped).

    ``encoder`` defaults to the library's; another encoder raises :class:`DataError` naming both.
    ``index`` and ``space`` default to what was requested when the library was built.
    """
    lib = MusicLibrary(library)
    enc = resolve_encoder(encoder if encoder is not None else lib.encoder_name)
    lib.check_encoder(encoder_name(enc), source=f"encoder {encoder_name(enc)!r} for add:")
    lib.check_encoder_config(enc)
    if index is None:
        index = (lib._manifest.get("index") or {}).get("requested", "auto")
    return _ingest_folder(
        lib,
        music_dir,
        enc,
        metadata=metadata,
        index=index,
        space=space,
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
    index: str = "auto",
    space: str = "auto",
    batch_size: int = 100_000,
    progress: bool = True,
) -> MusicLibrary:
    """Store precomputed per-window ``embeddings (n, n_windows, dim)`` as a new library (no audio read).

    ``metadata`` has one row per track with a ``path`` column and optionally ``track_id``, ``title``,
    ``artist``, ``genre``, ``duration``. Used for composed libraries whose embeddings already exist and
    for benchmarks. Committed in batches like :func:`build_library`.
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
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out}: exists and is not empty; choose a new library folder")

    class _Spec:
        name = encoder
        dim = embeddings.shape[2]
        n_windows = embeddings.shape[1]

        def config(self):
            return dict(encoder_config or {})

    lib = _new_library(out, _Spec())
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
        _commit(lib, rows, l2_normalize(win.mean(axis=1)), win, [])
    lib.rebuild_index(kind=index, space=space)
    lib.last_ingest_ = {"n_added": len(meta), "n_already_present": 0, "skipped": []}
    return lib


def open_library(path: str | os.PathLike) -> MusicLibrary:
    """Open a library folder written by :func:`build_library`."""
    return MusicLibrary(path)


def search_library(
    library: str | os.PathLike | MusicLibrary,
    *,
    audio: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    embeddings: np.ndarray | None = None,
    k: int = 5,
    encoder: Any = None,
) -> pd.DataFrame:
    """Top-``k`` library tracks for query audio files or query embeddings.

    ``audio`` files are embedded with ``encoder`` (default: the library's); ``embeddings`` are
    ``(n, dim)`` or ``(n, n_windows, dim)``. Returns the table of :meth:`MusicLibrary.search_table`
    with a ``query_path`` column for audio queries.
    """
    lib = library if isinstance(library, MusicLibrary) else MusicLibrary(library)
    if (audio is None) == (embeddings is None):
        raise ConfigError("give exactly one of audio (query files) or embeddings")
    if audio is not None:
        paths = [audio] if isinstance(audio, (str, os.PathLike)) else list(audio)
        enc = encoder if encoder is not None else lib.encoder_name
        if isinstance(enc, str):
            lib.check_encoder(enc)
        embs = np.stack([lib.embed_audio(p, encoder=enc) for p in paths])
        table = lib.search_table(embs, k)
        table.insert(1, "query_path", [str(paths[q]) for q in table["query"]])
        return table
    name = encoder if isinstance(encoder, str) or encoder is None else encoder_name(encoder)
    return lib.search_table(embeddings, k, encoder=name)
