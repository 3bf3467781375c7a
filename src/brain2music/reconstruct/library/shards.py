"""The shards of a library: writing a batch of tracks to a Parquet shard, committing it to the manifest
(compare-and-swap), and deleting what crashed writers left behind."""

from __future__ import annotations

import shutil
import time
import uuid
from typing import Any

import numpy as np

from brain2music import __version__
from brain2music._io import atomic_path, commit_json
from brain2music.reconstruct.library.core import MusicLibrary
from brain2music.reconstruct.library.manifest import (
    MANIFEST,
    SHARD_DIR,
)

#: Unlisted shards / indexes older than this (s) are debris of a crashed writer and are deleted; younger
#: ones may belong to a writer that is about to commit them.
ORPHAN_AGE = 3600.0


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


class ShardWriter:
    """One writer's view of a library: which track paths are committed (refreshed from new shards only)."""

    def __init__(self, lib: MusicLibrary):
        self.lib = lib
        self.seen: set[str] = set()
        self.present: set[str] = set()
        self.refresh(lib._manifest)

    def refresh(self, doc: dict) -> None:
        """Add to ``present`` the track paths of the shards of manifest ``doc`` not read before (their
        ``path`` column only)."""
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


def remove_orphans(lib: MusicLibrary) -> None:
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
