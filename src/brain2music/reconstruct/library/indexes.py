"""The indexes of a library: the FAISS clip-vector index and the per-window store, their search
spaces, and rebuilding them over the committed tracks (a compare-and-swap commit of the manifest)."""

from __future__ import annotations

import shutil
import uuid
import warnings
from typing import TYPE_CHECKING

import numpy as np

from brain2music import __version__
from brain2music._checks import check_choice
from brain2music._io import commit_json
from brain2music.errors import DataError
from brain2music.reconstruct.index import (
    INDEX_KINDS,
    build_index,
    index_params,
    l2_normalize,
    load_index,
    save_index,
)
from brain2music.reconstruct.library.manifest import FORMAT_VERSION, INDEX_FILE, MANIFEST, SPACES
from brain2music.reconstruct.window_store import WINDOW_INDEX_KINDS, WindowStore, write_store

if TYPE_CHECKING:
    from brain2music.reconstruct.library.core import MusicLibrary


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
    check_choice(kind, INDEX_KINDS, what="index")
    lib.reload()  # a consistent snapshot: shards are only ever appended
    doc = lib._manifest
    n = len(lib)
    if n == 0:
        raise DataError(f"{lib.path}: the library is empty; nothing to index")
    if space is None:
        space = (doc.get("space") or {}).get("requested", "auto")
    check_choice(space, SPACES, what="space")
    if window_index is None:
        window_index = (doc.get("window_store") or {}).get("requested", "auto")
    check_choice(window_index, WINDOW_INDEX_KINDS, what="window index")
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


class Indexes:
    """The clip-vector index and the window store of an opened library, rebuilt when missing or stale."""

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
        return rebuild_indexes(self, kind=kind, space=space, window_index=window_index, **params)

    def _to_space(self, unit_vectors: np.ndarray) -> np.ndarray:
        """Map L2-normalised window averages ``(n, dim)`` into the search space (see ``SPACES``)."""
        return clip_space_map(unit_vectors, self._manifest.get("space"))

    @property
    def space(self) -> str:
        """The clip-vector search space actually used: ``"cosine"`` or ``"zscore"``."""
        return (self._manifest.get("space") or {"kind": "cosine"})["kind"]
