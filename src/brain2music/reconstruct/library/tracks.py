"""The track store of a library: metadata, clip vectors and windows read from the Parquet shards."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from brain2music.errors import DataError
from brain2music.reconstruct.library.manifest import META_COLUMNS
from brain2music.stimuli import STIMULUS_DURATION
from brain2music.windows import embedding_windows


class TrackStore:
    """Reading the committed tracks' columns, shard by shard, in item order."""

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
        """One row per committed track, in item order: ``item, path, track_id, title, artist, genre,
        duration``.

        Read from the shards on first access and kept; ``item`` is the row number (manifest's shard order).
        """
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
