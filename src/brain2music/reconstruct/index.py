"""Cosine-similarity vector index over a music library (FAISS).

Vectors are L2-normalised before they enter the index, so an inner-product index ranks by cosine
similarity. Three kinds:

- ``"flat"``: exact search (``IndexFlatIP``); the default below :data:`AUTO_APPROX_THRESHOLD` (100,000) vectors.
- ``"ivf"``: inverted file with exact vectors (``IndexIVFFlat``); ``nlist`` ≈ 2·√n coarse clusters
  (k-means on 64 points per cluster) and ``nprobe`` ≈ nlist/32 of them visited per query. The automatic
  choice for large libraries: 60 queries against a million 512-d vectors take well under a second at
  recall@10 ≈ 1.0 of exact search (see ``benchmarks/library.md``).
- ``"hnsw"``: graph index (``IndexHNSWFlat``, ``M`` links per node); no training, but slow to build on
  few cores. Offered by flag.

Functions take and return plain arrays: ``vectors (n, dim)`` float32, ``queries (n_queries, dim)``;
search returns ``scores (n_queries, k)`` (cosine) and ``indices (n_queries, k)`` (row numbers, -1 where
fewer than ``k`` items exist).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from brain2music._checks import check_choice
from brain2music._io import atomic_path
from brain2music.errors import ConfigError, DataError

__all__ = [
    "AUTO_APPROX_THRESHOLD",
    "INDEX_KINDS",
    "build_index",
    "choose_index_kind",
    "index_params",
    "l2_normalize",
    "load_index",
    "save_index",
    "search_index",
]

INDEX_KINDS = ("auto", "flat", "ivf", "hnsw")
#: Libraries with at least this many vectors get an approximate (IVF) index under ``kind="auto"``:
#: below it, exact search of 60 queries already takes well under a second on two cores.
AUTO_APPROX_THRESHOLD = 100_000


def l2_normalize(vectors: np.ndarray, *, name: str = "vectors") -> np.ndarray:
    """Return float32 rows scaled to unit L2 norm (zero rows stay zero). ``(n, dim) -> (n, dim)``."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    if vectors.ndim != 2:
        raise DataError(f"{name}: expected a 2-D array (n, dim), got shape {vectors.shape}")
    if not np.all(np.isfinite(vectors)):
        raise DataError(f"{name}: contains NaN or infinite values")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


def choose_index_kind(n: int, kind: str = "auto") -> str:
    """Resolve ``kind`` (one of :data:`INDEX_KINDS`) for a library of ``n`` vectors."""
    check_choice(kind, INDEX_KINDS, what="index kind")
    if kind != "auto":
        return kind
    return "ivf" if n >= AUTO_APPROX_THRESHOLD else "flat"


def _default_nlist(n: int) -> int:
    # ~2·sqrt(n) lists: large enough to prune well, small enough that k-means trains in about a minute
    # on a million vectors with 2 cores, and every list keeps ≥ 39 training points (FAISS's minimum).
    return int(max(1, min(2 * np.sqrt(n), n // 39)))


def build_index(
    vectors: np.ndarray,
    *,
    kind: str = "auto",
    nlist: int | None = None,
    nprobe: int | None = None,
    hnsw_m: int = 32,
    ef_search: int = 128,
    random_state: int = 0,
    normalized: bool = False,
):
    """Build a FAISS inner-product index over L2-normalised ``vectors`` ``(n, dim)``.

    ``normalized=True`` promises unit-norm float32 rows and skips the normalising copy.
    Returns the index; its kind and parameters are readable with :func:`index_params`.
    """
    import faiss

    if normalized and isinstance(vectors, np.ndarray) and vectors.dtype == np.float32 and vectors.ndim == 2:
        vectors = np.ascontiguousarray(vectors)
    else:
        vectors = l2_normalize(vectors)
    n, dim = vectors.shape
    kind = choose_index_kind(n, kind)
    if kind == "flat" or n == 0:
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf":
        nlist = int(nlist or _default_nlist(n))
        if nlist > n:
            raise ConfigError(f"nlist ({nlist}) must not exceed the number of vectors ({n})")
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        # k-means on a sample of 64 points per list: training cost then grows with nlist, not n, and
        # the centroids are as good for routing (FAISS itself subsamples to 256 per list).
        rng = np.random.default_rng(random_state)
        n_train = min(n, 64 * nlist)
        sample = vectors if n_train == n else vectors[np.sort(rng.choice(n, n_train, replace=False))]
        index.cp.seed = int(random_state)
        index.cp.niter = 10
        index.train(sample)
        # Visiting ~1/32 of the lists (at least 16) kept recall@10 = 1.0 on clustered music-like vectors
        # (benchmarks/library.md: 1M x 512, recall was already 0.99 at 1/128).
        index.nprobe = int(nprobe or min(nlist, max(16, nlist // 32)))
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, int(hnsw_m), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = int(ef_search)
    else:  # pragma: no cover - choose_index_kind validated it
        raise ConfigError(kind)
    if n:
        index.add(vectors)
    return index


def index_params(index) -> dict:
    """Describe ``index`` as a JSON-able dict: kind, n_items, dim and search parameters."""
    import faiss

    out = {"n_items": int(index.ntotal), "dim": int(index.d)}
    if isinstance(index, faiss.IndexIVF):
        out.update(kind="ivf", nlist=int(index.nlist), nprobe=int(index.nprobe))
    elif isinstance(index, faiss.IndexHNSW):
        out.update(kind="hnsw", M=int(index.hnsw.nb_neighbors(1)), ef_search=int(index.hnsw.efSearch))
    else:
        out.update(kind="flat")
    return out


def search_index(index, queries: np.ndarray, k: int = 10, *, nprobe: int | None = None):
    """Top-``k`` cosine search. ``queries (n_queries, dim)`` → ``scores, indices`` both ``(n_queries, k)``."""
    import faiss

    queries = l2_normalize(queries, name="queries")
    if queries.shape[1] != index.d:
        raise DataError(
            f"queries have dimension {queries.shape[1]} but the library index has dimension {index.d}"
        )
    if k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    if nprobe is not None and isinstance(index, faiss.IndexIVF):
        index.nprobe = int(nprobe)
    scores, indices = index.search(queries, int(k))
    return scores, indices


def save_index(index, path: str | os.PathLike) -> Path:
    """Write ``index`` to ``path`` atomically."""
    import faiss

    path = Path(path)
    with atomic_path(path) as tmp:
        faiss.write_index(index, str(tmp))
    return path


def load_index(path: str | os.PathLike):
    """Read an index written by :func:`save_index`."""
    import faiss

    path = Path(path)
    if not path.is_file():
        raise DataError(f"vector index not found: {path}")
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        raise DataError(f"{path}: not a readable FAISS index ({exc})") from exc
