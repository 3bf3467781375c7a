"""The per-window store of a music library: every track's search windows with their offsets, and matching.

A library keeps, besides one clip vector per track (the paper's retrieval), the embeddings of each
track's *search windows*: the ``r`` windows of its first 15 s (``coverage="first15"``) or every window
of the whole track on the hop grid (``coverage="full"``). This module stores them for fast queries and
finds, for a query of any length, the track and offset where the query's windows align best.

On disk, a folder ``windex-<id>/`` listed by the library manifest::

    vectors.npy   (n_windows, dim) float16: window embeddings in the search space, L2-normalised
                  (memory-mapped on open: only the pages a query touches are read)
    items.npy     (n_windows,) int32: the library item (track row) of each window
    starts.npy    (n_windows,) float32: window start in seconds from the start of the track
    bounds.npy    (n_items + 1,) int64: the windows of item i are rows bounds[i]:bounds[i + 1]
    index.faiss   optional approximate index over ``vectors`` (large libraries only)

float16 halves the memory of float32 at a cosine error below 1e-3 (the vectors are unit-norm).

Matching (:func:`match`): a query ``q (n_q, dim)`` on the same hop grid is compared with a track's
windows ``t (n_t, dim)`` at every shift where the shorter of the two lies inside the longer; the score
of a shift is the mean cosine of the aligned window pairs, a track's score is its best shift's. Exact
search scores every track; with an index, the tracks owning the ``candidates`` nearest windows of each
query window are scored exactly (every shift), so the approximation only decides which tracks are looked
at, never the score.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brain2music._checks import check_choice
from brain2music.errors import DataError

__all__ = ["WindowStore", "WindowMatch", "match", "write_store", "WINDOW_INDEX_KINDS"]

#: ``auto``: exact scoring below :data:`AUTO_ANN_WINDOWS` windows, an IVF-PQ index above;
#: ``exact`` never builds an index; ``ivfpq`` / ``ivfsq8`` / ``hnsw`` force one.
WINDOW_INDEX_KINDS = ("auto", "exact", "ivfpq", "ivfsq8", "hnsw")
AUTO_ANN_WINDOWS = 200_000
_BLOCK = 200_000  # rows per block when streaming vectors


@dataclass(frozen=True)
class WindowMatch:
    """Best alignment of a query with one track: ``item``, ``score`` (mean cosine), ``offset`` (s), pairs."""

    item: int
    score: float
    offset: float
    n_pairs: int


class WindowStore:
    """An opened ``windex-<id>/`` folder (see the module docstring).

    Attributes
    ----------
    path : Path
    vectors : ndarray ``(n_windows, dim)`` float16, memory-mapped
    items, starts, bounds : ndarray
    info : dict
        What built it: ``space`` (``{"kind": "cosine"|"zscore", "mean", "scale"}``), ``index`` parameters.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self.vectors = np.load(self.path / "vectors.npy", mmap_mode="r")
            self.items = np.load(self.path / "items.npy")
            self.starts = np.load(self.path / "starts.npy")
            self.bounds = np.load(self.path / "bounds.npy")
            self.info = json.loads((self.path / "info.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.path}: not a readable window store ({exc})") from exc
        self._index = None

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def n_items(self) -> int:
        """Number of library items with windows in the store (``len(bounds) - 1``)."""
        return len(self.bounds) - 1

    @property
    def index(self):
        """The approximate FAISS index over the windows, or ``None`` (exact scoring)."""
        if self._index is None and (self.path / "index.faiss").is_file():
            from brain2music.reconstruct.index import load_index

            self._index = load_index(self.path / "index.faiss")
            nprobe = self.info.get("index", {}).get("nprobe")
            if nprobe and hasattr(self._index, "nprobe"):
                self._index.nprobe = int(nprobe)
        return self._index

    def to_space(self, embeddings: np.ndarray) -> np.ndarray:
        """Raw window embeddings ``(n, dim)`` → the store's search space, L2-normalised float32."""
        return to_space(embeddings, self.info["space"])

    def item_windows(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        """``(starts (n,), vectors (n, dim) float32)`` of one item's windows, in the search space."""
        a, b = int(self.bounds[item]), int(self.bounds[item + 1])
        return self.starts[a:b].copy(), np.asarray(self.vectors[a:b], dtype=np.float32)

    def nearest(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Nearest single windows: ``queries (n, dim)`` in the search space → ``scores, rows`` ``(n, k)``."""
        k = min(int(k), len(self))
        if self.index is not None:
            scores, rows = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
            return scores, rows
        best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
        best_r = np.full((len(queries), k), -1, dtype=np.int64)
        for a in range(0, len(self), _BLOCK):
            block = np.asarray(self.vectors[a : a + _BLOCK], dtype=np.float32)
            sims = queries @ block.T
            s = np.concatenate([best_s, sims], axis=1)
            r = np.concatenate([best_r, np.broadcast_to(np.arange(a, a + len(block)), sims.shape)], axis=1)
            top = np.argsort(-s, axis=1, kind="stable")[:, :k]
            best_s, best_r = np.take_along_axis(s, top, 1), np.take_along_axis(r, top, 1)
        return best_s, best_r


def to_space(embeddings: np.ndarray, space: dict) -> np.ndarray:
    """Window embeddings ``(n, dim)`` in a store's search space: z-scored with ``space["mean"]`` and
    ``space["scale"]`` when ``space["kind"] == "zscore"``, then L2-normalised rows, float32.

    Raises :class:`~brain2music.errors.DataError` when ``embeddings`` is not ``(n, dim)`` or holds NaN or inf.
    """
    from brain2music.reconstruct.index import l2_normalize

    x = np.asarray(embeddings, dtype=np.float32)
    if space.get("kind") == "zscore":
        x = (x - np.asarray(space["mean"], dtype=np.float32)) / np.asarray(space["scale"], dtype=np.float32)
    return l2_normalize(x, name="window embeddings")


# ------------------------------------------------------------------------------------------------ writing
def _space_stats(blocks, space: str) -> dict:
    """Streamed per-dimension mean/sd of the window embeddings and the resolved space (see library SPACES)."""
    from brain2music.reconstruct.index import l2_normalize

    n, s1, s2, unit = 0, None, None, None
    for block in blocks():
        b = np.asarray(block, dtype=np.float64)
        u = l2_normalize(block).astype(np.float64).sum(axis=0)
        s1 = b.sum(axis=0) if s1 is None else s1 + b.sum(axis=0)
        s2 = (b**2).sum(axis=0) if s2 is None else s2 + (b**2).sum(axis=0)
        unit = u if unit is None else unit + u
        n += len(b)
    mean_unit = unit / n
    kind = space
    if space == "auto":  # as for clip vectors: E[cos] = ||mean of unit vectors||^2 above 0.5 → z-score
        kind = "zscore" if float(mean_unit @ mean_unit) > 0.5 else "cosine"
    info = {"requested": space, "kind": kind}
    if kind == "zscore":
        mean = s1 / n
        sd = np.sqrt(np.maximum(s2 / n - mean**2, 0.0))
        sd = np.where(sd > 1e-6 * max(float(sd.max()), 1e-12), sd, 1.0)
        info.update(mean=mean.tolist(), scale=sd.tolist())
    return info


def write_store(
    folder: str | os.PathLike,
    blocks,
    starts: np.ndarray,
    bounds: np.ndarray,
    dim: int,
    *,
    space: str = "auto",
    kind: str = "auto",
    random_state: int = 0,
) -> dict:
    """Write a window store into a new folder ``folder`` (built under a temporary name, then renamed).

    ``blocks()`` yields the raw window embeddings ``(n_block, dim)`` in item order (called twice: once for
    the space statistics, once to write); ``starts (n_windows,)`` and ``bounds (n_items + 1,)`` describe
    them. Returns the ``info`` dict also saved in the folder.
    """
    folder = Path(folder)
    n = int(bounds[-1])
    if n == 0:
        raise DataError("a window store needs at least one window")
    space_info = _space_stats(blocks, space)
    tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir(parents=True)
    try:
        vec = np.lib.format.open_memmap(tmp / "vectors.npy", mode="w+", dtype=np.float16, shape=(n, dim))
        row = 0
        for block in blocks():
            vec[row : row + len(block)] = to_space(block, space_info).astype(np.float16)
            row += len(block)
        if row != n:
            raise DataError(f"window store: got {row} windows, expected {n}")
        vec.flush()
        items = np.repeat(np.arange(len(bounds) - 1, dtype=np.int32), np.diff(bounds))
        np.save(tmp / "items.npy", items)
        np.save(tmp / "starts.npy", np.asarray(starts, dtype=np.float32))
        np.save(tmp / "bounds.npy", np.asarray(bounds, dtype=np.int64))
        index_info = _write_index(tmp, vec, kind, random_state)
        del vec
        info = {"n_windows": n, "n_items": len(bounds) - 1, "dim": int(dim), "space": space_info}
        info["index"] = index_info
        (tmp / "info.json").write_text(json.dumps(info), encoding="utf-8")
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _pq_subquantizers(dim: int) -> int:
    # About 4 dimensions per 8-bit code (4x smaller than float16 again), and m must divide dim.
    for m in sorted({d for d in range(1, dim + 1) if dim % d == 0}, key=lambda d: abs(dim / d - 4)):
        if dim / m >= 2:
            return m
    return dim


def _write_index(folder: Path, vectors: np.ndarray, kind: str, random_state: int) -> dict:
    """Train and save an approximate index over ``vectors`` (n, dim) when ``kind`` asks for one."""
    import faiss

    n, dim = vectors.shape
    check_choice(kind, WINDOW_INDEX_KINDS, what="window index", error=DataError)
    if kind == "auto":
        kind = "ivfpq" if n >= AUTO_ANN_WINDOWS else "exact"
    if kind == "exact":
        return {"kind": "exact"}
    rng = np.random.default_rng(random_state)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 128
        info = {"kind": "hnsw", "M": 32, "ef_search": 128}
    else:
        nlist = int(max(1, min(2 * np.sqrt(n), n // 39)))  # as for clip vectors (index.py)
        quantizer = faiss.IndexFlatIP(dim)
        if kind == "ivfpq":
            m = _pq_subquantizers(dim)
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
            info = {"kind": "ivfpq", "nlist": nlist, "m": m, "bits": 8}
        else:
            index = faiss.IndexIVFScalarQuantizer(
                quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
            )
            info = {"kind": "ivfsq8", "nlist": nlist}
        n_train = min(n, max(64 * nlist, 10_000))
        rows = np.sort(rng.choice(n, n_train, replace=False))
        index.cp.seed = int(random_state)
        index.cp.niter = 10
        index.train(np.asarray(vectors[rows], dtype=np.float32))
        index.nprobe = int(min(nlist, max(16, nlist // 32)))
        info["nprobe"] = int(index.nprobe)
    for a in range(0, n, _BLOCK):
        index.add(np.asarray(vectors[a : a + _BLOCK], dtype=np.float32))
    faiss.write_index(index, str(folder / "index.faiss"))
    return info


# ----------------------------------------------------------------------------------------------- matching
def _score_items(store: WindowStore, q: np.ndarray, items: np.ndarray):
    """Best shift of ``q (n_q, dim)`` against each of ``items``: ``scores, shifts, n_pairs`` per item.

    A shift ``s >= 0`` aligns query window 0 with the item's window ``s``; ``s < 0`` (items with fewer
    windows than the query) aligns the item's window 0 with query window ``-s``. One matrix product of the
    items' windows with the query, then the sums along its diagonals: ``O(n_windows * n_q)``.
    """
    n_q = len(q)
    a = store.bounds[items]
    lengths = (store.bounds[items + 1] - a).astype(np.int64)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])  # each item's first row in the gathered block
    total = int(lengths.sum())
    rows = np.repeat(a - first, lengths) + np.arange(total)
    if total == len(store) and a[0] == 0:
        sims = np.asarray(store.vectors, dtype=np.float32) @ q.T  # all windows, in order: no gather
    else:
        sims = np.asarray(store.vectors[rows], dtype=np.float32) @ q.T  # (total, n_q)
    local = np.repeat(np.arange(len(items)), lengths)
    scores = np.full(len(items), -np.inf)
    shifts = np.zeros(len(items), dtype=np.int64)
    if np.any(lengths >= n_q):
        m = total - n_q + 1
        diag = np.zeros(total)
        for j in range(n_q):  # diag[g] = mean_j sims[g + j, j]: query window 0 on row g
            diag[:m] += sims[j : j + m, j]
        diag /= n_q
        ok = np.zeros(total, dtype=bool)
        ok[:m] = local[:m] == local[n_q - 1 :]  # the whole query inside one item
        diag[~ok] = -np.inf
        best = np.maximum.reduceat(diag, first)
        hit = np.flatnonzero(diag == best[local])  # first row reaching each item's best
        owner, where = np.unique(local[hit], return_index=True)
        long = lengths[owner] >= n_q
        scores[owner[long]] = best[owner[long]]
        shifts[owner[long]] = hit[where[long]] - first[owner[long]]
    for m in np.unique(lengths[lengths < n_q]):  # items shorter than the query slide along it
        sel = np.flatnonzero(lengths == m)
        idx = first[sel][:, None] + np.arange(m)[None, :]  # (n_sel, m) rows of these items
        for shift in range(n_q - int(m) + 1):
            s = sims[idx, shift + np.arange(m)].mean(axis=1)
            better = s > scores[sel]
            scores[sel[better]], shifts[sel[better]] = s[better], -shift
    return scores, shifts, np.minimum(lengths, n_q)


def match(
    store: WindowStore,
    query: np.ndarray,
    query_starts: np.ndarray,
    k: int = 5,
    *,
    exact: bool | None = None,
    candidates: int = 64,
    exclude: np.ndarray | None = None,
) -> list[WindowMatch]:
    """Top-``k`` tracks for a query's windows ``query (n_q, dim)`` (search space) starting at ``query_starts``.

    The offset of a match is where in the track the query begins (s): ``start of the aligned track
    window - start of the aligned query window``; negative when the query is longer than the track's
    windows and begins before them. ``exact=None`` scores every track unless the store has an index.
    """
    q = np.ascontiguousarray(query, dtype=np.float32)
    if exact is None:
        exact = store.index is None
    if exact:
        items = np.arange(store.n_items)
    else:
        # Candidates from at most 16 query windows spread over the query: enough to find the track.
        probe = q[np.unique(np.linspace(0, len(q) - 1, min(len(q), 16)).round().astype(int))]
        _, rows = store.nearest(probe, candidates)
        items = np.unique(store.items[rows[rows >= 0]]).astype(np.int64)
    if exclude is not None and len(exclude):
        items = items[~np.isin(items, exclude)]
    if len(items) == 0:
        return []
    scores, shifts, pairs = [], [], []
    # Blocks of about _BLOCK windows (whole items): the similarity matrix stays small.
    ends = np.cumsum(store.bounds[items + 1] - store.bounds[items])
    cuts = np.searchsorted(ends, np.arange(_BLOCK, ends[-1], _BLOCK), side="right")
    for part in np.split(items, np.unique(cuts[(cuts > 0) & (cuts < len(items))])):
        sc, sh, pr = _score_items(store, q, part)
        scores.append(sc)
        shifts.append(sh)
        pairs.append(pr)
    scores, shifts, pairs = np.concatenate(scores), np.concatenate(shifts), np.concatenate(pairs)
    order = np.argsort(-scores, kind="stable")[: int(k)]
    out = []
    for i in order:
        item, shift = int(items[i]), int(shifts[i])
        a = int(store.bounds[item])
        if shift >= 0:
            offset = float(store.starts[a + shift]) - float(query_starts[0])
        else:
            offset = float(store.starts[a]) - float(query_starts[-shift])
        out.append(WindowMatch(item, float(scores[i]), round(offset, 6), int(pairs[i])))
    return out
