"""A music library on disk: track metadata + embeddings in Parquet shards, FAISS indexes, and queries.

Layout of a library folder::

    lib/
      manifest.json            the only source of truth: format, generation, encoder name + config, dim,
                               n_windows, coverage, hop, shard list, skipped files, index and window
                               store descriptions, search spaces, package version
      manifest.json.lock       taken for a few milliseconds by each commit (compare-and-swap)
      shards/part-<uuid>.parquet  one file per committed batch of tracks (unique names: concurrent writers)
      index-<id>.faiss         clip-vector index over all committed tracks (brain2music.reconstruct.index)
      windex-<id>/             per-window store + optional window index (brain2music.reconstruct.window_store)

Each shard is a Parquet table with one row per track: ``path``, ``track_id``, ``title``, ``artist``,
``genre``, ``duration`` (seconds of the track embedded), ``vector`` (``dim`` float32: the window-average
of the track's ``(n_windows, dim)`` clip embedding, L2-normalised, so the inner product of two vectors is
their cosine similarity), ``windows`` (``n_windows * dim`` float32: the raw per-window clip embedding,
used to score reconstructions the way the decoders are scored) and, for ``coverage="full"``, ``span``
(list of ``n_span * dim`` float32: every window of the whole track) with ``span_starts`` (the window
starts in seconds). A track's item number is its row in the library: the shard's ``start`` in the
manifest plus its row in the shard.

Two kinds of search:

- **Clip vectors** (:meth:`MusicLibrary.search`): the paper's retrieval for reconstruction. Every track is
  embedded from its first 15 s, padded with silence if shorter, with the stimuli's 2-s fades and RMS
  normalisation, so library tracks and stimuli are comparable; a query is a ``(n_windows, dim)`` (or
  window-averaged) embedding, e.g. a decoder's prediction.
- **Audio queries** (:meth:`MusicLibrary.query`, ``brain2music library search --audio``): a recording of
  any length from one window up is embedded window by window (:meth:`Encoder.embed_span
  <brain2music.embeddings.Encoder.embed_span>`: only the windows it really covers, no padding) and its
  windows are matched against every track's *search windows* at the best-aligning offset: the ``r``
  clip windows of its first 15 s (``coverage="first15"``, the default) or every window of the whole
  track on the ``hop`` grid (``coverage="full"``; no fades, the track RMS-normalised as a whole, like a
  query). Results are (track, offset in s, score) records.

Search space: by default cosine similarity. For descriptors with a large shared offset (``acoustic``),
where every raw cosine is ≈ 1, vectors are standardised with the library's per-dimension mean and sd
first (``space="zscore"``, chosen automatically when the mean cosine between tracks exceeds 0.5;
recorded in the manifest with its statistics, separately for clip vectors and windows, and applied to
queries too).

Crash safety and concurrent writers: tracks are embedded in batches; each batch is written to a shard
with a unique name (temp file + rename) and then listed in the manifest by a compare-and-swap commit
(:func:`brain2music._io.commit_json`): the manifest is replaced atomically, and only if no other writer
committed since it was read; otherwise the commit is redone on the fresh manifest (tracks another
writer added meanwhile are dropped from the batch). So N concurrent ``build``/``add`` runs (a cluster
job array) leave every track in the library exactly once, a crash loses at most the batch in
progress, and rerunning resumes (files already in the library are skipped). Unlisted shards and indexes
older than an hour (left by a crash) are deleted by the next writer. Indexes are rebuilt after
ingestion and committed only if they cover every committed track (else a later writer's rebuild
does); a missing or stale index is rebuilt when the library is used.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from brain2music._io import read_json_generation
from brain2music.errors import ConfigError, DataError, DataFileNotFoundError
from brain2music.reconstruct.clip_embedding import (
    clip_embedding,
    encoder_config,
    encoder_name,
    prepare_clip,
    resolve_encoder,
)
from brain2music.reconstruct.index import l2_normalize, load_index, search_index
from brain2music.reconstruct.window_store import WindowStore, match
from brain2music.stimuli import STIMULUS_DURATION, read_audio, rms_normalize
from brain2music.windows import TR, clip_vectors, embedding_windows

if TYPE_CHECKING:
    from brain2music.embeddings.base import SpanEmbedding

__all__ = ["Match", "MusicLibrary", "open_library", "search_library"]  # + the writers, see the end

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)  # format 1: sequential shard names, no window store (built on first use)
MANIFEST = "manifest.json"
INDEX_FILE = "index.faiss"  # legacy name; each build now writes index-<random>.faiss
#: Similarity spaces: ``cosine`` of the window-averaged vectors (the paper's retrieval), or ``zscore``:
#: cosine after standardising each dimension with the library's mean and sd, for descriptors with a large
#: shared offset (e.g. ``acoustic``) where every raw cosine is ≈ 1. ``auto`` picks ``zscore`` when the
#: mean cosine between library tracks exceeds 0.5.
SPACES = ("auto", "cosine", "zscore")
COVERAGES = ("first15", "full")
SILENCE_PEAK = 10 ** (-80 / 20)  # a query whose loudest sample is below -80 dBFS holds no music
SHARD_DIR = "shards"
EMBED_GROUP = 8  # tracks read and embedded together (encoders with embed_many batch them)
META_COLUMNS = ("item", "path", "track_id", "title", "artist", "genre", "duration")


# ------------------------------------------------------------------------------------------------ library
_BLAS = None


def _one_blas_thread():
    """A context with single-threaded BLAS: one query's matrices are small, and threaded BLAS on busy cores
    spins (a 5-s query took 333 ms instead of 92 ms with 2 BLAS threads under load 7; benchmarks/library.md)."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


def clip_space_map(unit_vectors: np.ndarray, info: dict | None) -> np.ndarray:
    """Map L2-normalised clip vectors ``(n, dim)`` into the space ``info`` describes (``None``: cosine)."""
    if not info or info["kind"] != "zscore":
        return unit_vectors
    mean = np.asarray(info["mean"], dtype=np.float32)
    scale = np.asarray(info["scale"], dtype=np.float32)
    out = np.empty_like(unit_vectors, dtype=np.float32)
    for s in range(0, len(unit_vectors), 100_000):  # in blocks: no second full-size temporary
        out[s : s + 100_000] = l2_normalize((unit_vectors[s : s + 100_000] - mean) / scale)
    return out


@dataclass(frozen=True)
class Match:
    """One result of an audio query: a library track, where in it the query aligns, and how well.

    Attributes
    ----------
    item : int
        Row of the track in :attr:`MusicLibrary.metadata`.
    path, track_id, title, artist, genre : str
    offset : float
        Seconds into the track at which the query begins (best-aligning offset, on the hop grid).
    score : float
        Mean cosine of the aligned query and track windows, in the library's window search space.
    n_windows : int
        Number of aligned window pairs the score averages.
    """

    item: int
    path: str
    track_id: str
    title: str
    artist: str
    genre: str
    offset: float
    score: float
    n_windows: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class MusicLibrary:
    """An opened library folder (see the module docstring). Use :func:`open_library` or :func:`build_library`.

    Attributes
    ----------
    path : Path
    encoder_name : str
        Registry name of the encoder that embedded every track.
    encoder_config : dict
    dim, n_windows : int
        Shape of one track's clip embedding ``(n_windows, dim)``.
    coverage : {"first15", "full"}
        Which windows of a track audio queries match against.
    hop : float
        Spacing (s) of the search windows' ends (and of a query's windows).
    metadata : DataFrame
        One row per track: item, path, track_id, title, artist, genre, duration.
    skipped : list of dict
        Files that could not be read, with the reason.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._encoder = None
        self._load_manifest()

    def _load_manifest(self) -> None:
        manifest = self.path / MANIFEST
        if not manifest.is_file():
            raise DataFileNotFoundError(
                f"{self.path}: not a music library (no {MANIFEST}); create one with `brain2music library build`"
            )
        doc, _ = read_json_generation(manifest)
        if not isinstance(doc, dict) or doc.get("format") not in READABLE_FORMATS:
            found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            raise DataError(f"{manifest}: library format {found!r}, expected one of {READABLE_FORMATS}")
        self._manifest = doc
        self._vectors = None
        self._metadata = None
        self._index = None
        self._store = None

    def reload(self) -> MusicLibrary:
        """Re-read the manifest (another process may have committed tracks or indexes)."""
        self._load_manifest()
        return self

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
    def encoder_options(self) -> dict:
        """The options the library's encoder was built with (``model``, ``layer``, ...; not the device)."""
        return dict(self._manifest["encoder"].get("options", {}))

    def make_encoder(self, **overrides):
        """The library's encoder, built from the registry with the recorded options updated by ``overrides``.

        ``overrides`` typically place it (``device=``, ``dtype=``: ignored by an encoder without weights) or
        point at another copy of the same checkpoint (``model=``); any other option the encoder does not
        take is an error. :meth:`check_encoder_config` still guards against a different encoder.
        """
        from brain2music.embeddings.registry import PLACEMENT_OPTIONS, resolve_encoder_options

        options = {**self.encoder_options, **overrides}
        placement = {k: options.pop(k) for k in PLACEMENT_OPTIONS if k in options}
        kwargs = resolve_encoder_options(
            [self.encoder_name], options, source=f"encoder options for library {self.path}", **placement
        )
        return resolve_encoder(self.encoder_name, **kwargs[self.encoder_name])

    @property
    def coverage(self) -> str:
        return str(self._manifest.get("coverage", "first15"))

    @property
    def hop(self) -> float:
        return float(self._manifest.get("hop") or self.encoder_config.get("tr", TR))

    @property
    def skipped(self) -> list[dict]:
        return list(self._manifest.get("skipped", []))

    @property
    def manifest(self) -> dict:
        return json.loads(json.dumps(self._manifest))

    def __len__(self) -> int:
        return int(self._manifest["n_items"])

    def __repr__(self) -> str:
        return (
            f"MusicLibrary({str(self.path)!r}, encoder={self.encoder_name!r}, n_items={len(self)}, "
            f"coverage={self.coverage!r})"
        )

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

            columns = [c for c in META_COLUMNS if c != "item"]
            frames = [pq.read_table(p, columns=columns).to_pandas() for p in self._shard_paths()]
            meta = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
            # Item numbers come from the manifest's shard order, not from the shards: a shard is written
            # before its commit decides where it goes.
            meta.insert(0, "item", np.arange(len(meta), dtype=np.int64))
            self._metadata = meta
        return self._metadata

    @property
    def vectors(self) -> np.ndarray:
        """``(n_items, dim)`` L2-normalised window-averaged clip embeddings."""
        if self._vectors is None:
            self._vectors = self._read_column("vector", self.dim)
        return self._vectors

    def windows(self, items: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Per-window clip embeddings ``(n, n_windows, dim)`` of the given item numbers (all when ``None``).

        These are the first-15-s clip windows (the paper's protocol) whatever the coverage. Only the
        shards holding requested items are read.
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

    def clip_window_starts(self) -> np.ndarray:
        """``(n_windows,)`` start (s) of each clip window within the first 15 s."""
        window = self.encoder_config.get("window")
        if window:
            starts = embedding_windows(float(window), clip_duration=STIMULUS_DURATION, tr=self.hop)[:, 0]
            if len(starts) == self.n_windows:
                return starts
        return np.arange(self.n_windows) * (STIMULUS_DURATION / max(self.n_windows, 1))

    def search_window_blocks(self):
        """Yield ``(embeddings (n, dim), starts (n,), counts (n_items_in_shard,))`` per shard, in item order.

        The raw search windows of every track: the clip windows (``first15``) or the whole track's
        windows (``full``).
        """
        import pyarrow.parquet as pq

        clip_starts = self.clip_window_starts()
        for shard in self._manifest["shards"]:
            path = self.path / shard["file"]
            if self.coverage == "full":
                tab = pq.read_table(path, columns=["span", "span_starts"])
                span = tab.column("span").combine_chunks()
                starts = tab.column("span_starts").combine_chunks()
                counts = np.diff(np.asarray(starts.offsets)).astype(np.int64)
                emb = span.flatten().to_numpy(zero_copy_only=False).reshape(-1, self.dim)
                yield emb, starts.flatten().to_numpy(zero_copy_only=False), counts
            else:
                col = pq.read_table(path, columns=["windows"]).column("windows").combine_chunks()
                emb = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, self.dim)
                n = shard["n_items"]
                yield emb, np.tile(clip_starts, n), np.full(n, self.n_windows, dtype=np.int64)

    def track_windows(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        """``(starts (n,) s, embeddings (n, dim) float32)``: one track's raw search windows."""
        if not 0 <= int(item) < len(self):
            raise DataError(f"item must lie in [0, {len(self)}), got {item!r}")
        done = 0
        for emb, starts, counts in self.search_window_blocks():
            if item < done + len(counts):
                a = int(counts[: item - done].sum())
                b = a + int(counts[item - done])
                return starts[a:b].astype(np.float32), emb[a:b].astype(np.float32)
            done += len(counts)
        raise DataError(f"{self.path}: item {item} not found in the shards")  # pragma: no cover

    # -- indexes
    def _listed_index(self):
        info = self._manifest.get("index") or {}
        path = self.path / info.get("file", INDEX_FILE)
        if not path.is_file() or info.get("n_items") != len(self):
            return None
        try:
            index = load_index(path)
        except DataError:
            return None
        return index if index.ntotal == len(self) else None

    def _listed_store(self):
        info = self._manifest.get("window_store") or {}
        path = self.path / info.get("dir", "-")
        if info.get("n_items") != len(self) or not path.is_dir():
            return None
        try:
            return WindowStore(path)
        except DataError:
            return None

    def _current(self, listed, what: str):
        """The listed index/store if it covers every track; else re-read the manifest, else rebuild."""
        for attempt in range(4):
            found = listed()
            if found is not None:
                return found
            if attempt == 0:  # another writer may have replaced it since we read the manifest
                self._load_manifest()
                continue
            if attempt == 1:
                warnings.warn(f"{self.path}: {what} missing or stale; rebuilding it", stacklevel=3)
            # A rebuild is discarded when another writer commits tracks meanwhile: then try again.
            self.rebuild_index(kind=(self._manifest.get("index") or {}).get("requested", "auto"))
        raise DataError(f"{self.path}: other processes keep adding tracks; search again when they are done")

    @property
    def index(self):
        """The FAISS clip-vector index, rebuilt from the shards when missing or stale."""
        if self._index is None:
            self._index = self._current(self._listed_index, "vector index")
        return self._index

    @property
    def window_store(self) -> WindowStore:
        """The per-window store (:class:`~brain2music.reconstruct.window_store.WindowStore`), rebuilt if stale."""
        if self._store is None:
            self._store = self._current(self._listed_store, "window store")
        return self._store

    def rebuild_index(
        self, *, kind: str = "auto", space: str | None = None, window_index: str | None = None, **params
    ):
        """Rebuild the clip-vector index and the window store over the committed tracks, and commit them.

        ``kind`` is one of ``INDEX_KINDS``; ``space`` one of ``SPACES`` (default: as requested before,
        else ``"auto"``); ``window_index`` one of ``WINDOW_INDEX_KINDS`` (default: as before, else
        ``"auto"``). The spaces' statistics are recomputed from all tracks. The commit is skipped if
        another writer committed tracks meanwhile (its own rebuild covers them).
        """
        from brain2music.reconstruct.library_build import rebuild_indexes

        return rebuild_indexes(self, kind=kind, space=space, window_index=window_index, **params)

    def _to_space(self, unit_vectors: np.ndarray) -> np.ndarray:
        """Map L2-normalised window averages ``(n, dim)`` into the search space (see ``SPACES``)."""
        return clip_space_map(unit_vectors, self._manifest.get("space"))

    @property
    def space(self) -> str:
        """The clip-vector search space actually used: ``"cosine"`` or ``"zscore"``."""
        return (self._manifest.get("space") or {"kind": "cosine"})["kind"]

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
            emb = clip_vectors(emb)
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
        """Embed the first 15 s of an audio file as a library clip → ``(n_windows, dim)`` (paper protocol)."""
        enc = self._query_encoder(encoder)
        audio, sr = read_audio(audio_path, sr=int(enc.sr), duration=STIMULUS_DURATION)
        return clip_embedding(enc, prepare_clip(audio, sr), sr, source=str(audio_path))

    def _query_encoder(self, encoder: Any = None):
        if encoder is None:
            if self._encoder is None:  # neural encoders load weights: once per opened library
                self._encoder = self.make_encoder()
            return self._encoder
        enc = resolve_encoder(encoder)
        self.check_encoder(encoder_name(enc))
        return enc

    def embed_query(
        self, audio: str | os.PathLike | np.ndarray, sr: int | None = None, *, encoder: Any = None
    ) -> SpanEmbedding:
        """Embed a query recording of any length window by window, on the library's hop grid.

        ``audio`` is a file (any format :func:`brain2music.stimuli.read_audio` reads) or an array with
        ``sr``. The recording is RMS-normalised as a whole (like ``full`` tracks) and only the windows it
        covers are embedded. Raises :class:`DataError` naming the file when it is unreadable, shorter than
        one window, or silent.
        """
        enc = self._query_encoder(encoder)
        source = "query audio" if isinstance(audio, np.ndarray) else str(audio)
        if isinstance(audio, np.ndarray):
            if sr is None:
                raise ConfigError("an audio array needs its sample rate: query(audio, sr)")
            x = np.asarray(audio, dtype=np.float32)
            x = x.mean(axis=1) if x.ndim == 2 and x.shape[1] <= 8 else x
        else:
            x, sr = read_audio(audio, mono=True)
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        if peak < SILENCE_PEAK:
            raise DataError(
                f"{source}: the query is silent (peak {20 * np.log10(max(peak, 1e-12)):.0f} dBFS); "
                "expected a recording of music"
            )
        if not hasattr(enc, "embed_span"):
            raise ConfigError(
                f"encoder {encoder_name(enc)!r} has no embed_span(); audio queries need a "
                "brain2music.embeddings.Encoder"
            )
        try:
            return enc.embed_span(rms_normalize(x), int(sr), hop=self.hop)
        except DataError as exc:
            raise DataError(f"{source}: {exc}") from exc

    def query(
        self,
        audio: str | os.PathLike | np.ndarray,
        sr: int | None = None,
        *,
        k: int = 5,
        encoder: Any = None,
        exact: bool | None = None,
    ) -> list[Match]:
        """Top-``k`` tracks for a query recording, each at its best-aligning offset (see the module docstring).

        Parameters
        ----------
        audio
            Query file or ``(n_samples,)`` / ``(n_samples, n_channels)`` array (with ``sr``): any length
            of at least one encoder window.
        k
            Number of tracks.
        exact
            Score every track (default when the library has no approximate window index) or only the
            candidates the window index proposes.

        Returns
        -------
        list of :class:`Match`, best first.
        """
        if int(k) < 1:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        store = self.window_store
        with _one_blas_thread():
            span = self.embed_query(audio, sr, encoder=encoder)
            hits = match(store, store.to_space(span.embeddings), span.starts, int(k), exact=exact)
        meta = self.metadata
        return [
            Match(
                item=h.item,
                **{c: str(meta.at[h.item, c]) for c in ("path", "track_id", "title", "artist", "genre")},
                offset=h.offset,
                score=h.score,
                n_windows=h.n_pairs,
            )
            for h in hits
        ]

    def read_window(
        self, item: int, start: float, duration: float | None = None, *, sr: int | None = None
    ) -> tuple[np.ndarray, int]:
        """Audio of a track from ``start`` s for ``duration`` s (default: one encoder window), mono.

        What a window found by :meth:`search_windows` sounds like: ``(audio (n_samples,), sr)``.
        """
        if not 0 <= int(item) < len(self):
            raise DataError(f"item must lie in [0, {len(self)}), got {item!r}")
        if duration is None:
            duration = float(self.encoder_config.get("window", STIMULUS_DURATION))
        return read_audio(self.metadata.at[int(item), "path"], sr=sr, offset=float(start), duration=duration)

    def search_windows(
        self, embeddings: np.ndarray, k: int = 10
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nearest single library windows of raw window embeddings ``(n, dim)``.

        Returns ``scores (n, k)`` (cosine in the window space), ``items (n, k)`` and ``starts (n, k)`` (s
        into each track); ``-1`` items where the library has fewer than ``k`` windows.
        """
        store = self.window_store
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[1] != self.dim:
            raise DataError(f"window embeddings must have shape (n, {self.dim}); got {emb.shape}")
        scores, rows = store.nearest(store.to_space(emb), k)
        items = np.where(rows >= 0, store.items[np.maximum(rows, 0)], -1)
        starts = np.where(rows >= 0, store.starts[np.maximum(rows, 0)], np.nan)
        return scores, items.astype(np.int64), starts


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
    exact: bool | None = None,
    encoder_options: dict | None = None,
) -> pd.DataFrame:
    """Top-``k`` library tracks for query audio files or query clip embeddings.

    ``encoder_options`` update the options the library recorded for its encoder (e.g. ``device``).

    ``audio`` files (any length from one window up) are matched window by window with
    :meth:`MusicLibrary.query` (encoder: the library's by default): one row per (query, rank) with
    ``query_path``, ``score``, ``offset`` (s into the track where the query begins), ``n_windows`` and the
    track's metadata. ``embeddings`` (``(n, dim)`` or ``(n, n_windows, dim)``, e.g. decoder predictions)
    are searched by clip vector: the table of :meth:`MusicLibrary.search_table`.
    """
    lib = library if isinstance(library, MusicLibrary) else MusicLibrary(library)
    if (audio is None) == (embeddings is None):
        raise ConfigError("give exactly one of audio (query files) or embeddings")
    if audio is not None:
        paths = [audio] if isinstance(audio, (str, os.PathLike)) else list(audio)
        if isinstance(encoder, str):
            lib.check_encoder(encoder)
        if encoder is None or encoder == lib.encoder_name:
            encoder = lib.make_encoder(**(encoder_options or {}))
        elif encoder_options:
            encoder = resolve_encoder(encoder, **encoder_options)
        rows = []
        for q, p in enumerate(paths):
            for rank, m in enumerate(lib.query(p, k=k, encoder=encoder, exact=exact)):
                meta = lib.metadata.iloc[m.item]
                rows.append(
                    {
                        "query": q,
                        "query_path": str(p),
                        "rank": rank + 1,
                        "score": m.score,
                        "offset": m.offset,
                        "n_windows": m.n_windows,
                        **{c: meta[c] for c in META_COLUMNS},
                    }
                )
        return pd.DataFrame(
            rows, columns=["query", "query_path", "rank", "score", "offset", "n_windows", *META_COLUMNS]
        )
    name = encoder if isinstance(encoder, str) or encoder is None else encoder_name(encoder)
    return lib.search_table(embeddings, k, encoder=name)


# The writers live in their own module (which imports this one); re-exported here, where users look.
_BUILD_EXPORTS = (
    "add_to_library",
    "build_library",
    "library_from_embeddings",
    "read_fma_tracks",
)


def __getattr__(name: str):
    if name in _BUILD_EXPORTS:
        from brain2music.reconstruct import library_build

        return getattr(library_build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
