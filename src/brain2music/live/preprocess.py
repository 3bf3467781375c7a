"""Causal preprocessing: what the batch pipeline does to a run, using only volumes already acquired.

The batch pipeline (:func:`brain2music.data.preprocess_run`) subtracts a *centred* 240-s running median
and z-scores each voxel with the mean and sd of the *whole* run: both look into the future. Live decoding
replaces them, per voxel, at volume ``t`` (0-based, ``n = t + 1`` volumes seen), by:

1. **Drift removal** — ``trend_t = median(x[max(0, t - W + 1) .. t])``, the median of the last ``W``
   volumes including the current one, ``W = round(240 s / TR)`` rounded up to odd (161 at TR 1.5 s: the
   same number of volumes as the batch filter); fewer at the start of the run. ``d_t = x_t - trend_t``.
2. **z-score** — running moments of ``d_0 .. d_t`` shrunk toward a prior from the decoder's training
   runs, worth ``n0`` volumes (``prior_volumes``, default 20 = 30 s)::

       sd0_t  = prior_cv * |trend_t|                  (prior sd in the run's own intensity units)
       m_t    = sum(d) / (n + n0)                     (prior mean 0: detrended data is centred)
       v_t    = (sum(d**2) + n0 * sd0_t**2) / (n + n0) - m_t**2
       z_t    = (d_t - m_t) / sqrt(v_t)               (0 where v_t is 0)

   ``prior_cv`` is, per voxel, the median over the training runs of ``sd(batch-detrended run) /
   mean(raw run)``: the fluctuation the decoder was trained on, relative to the voxel's intensity
   (:func:`training_statistics`). Intensity levels differ between runs, relative fluctuations much less,
   which is why the prior is carried relative to ``trend_t``. Without training statistics (``prior_cv`` is
   None) ``n0 = 0``: plain running moments, and the first volume is all zeros.

At the end of a run the running moments reach the whole-run moments the batch z-score uses; the drift
estimate stays one-sided (it lags a drift by up to half the window), which is the main cost of causality.

:class:`CausalPreprocessor` applies this one volume at a time (a ring of the window's values per voxel
and a short sorted band around the median, updated in a compiled loop); :func:`causal_preprocess`
is the same computation on a whole recorded run (vectorised, another algorithm: the reference for tests
and the batch-vs-live comparison).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from brain2music.errors import DataError

__all__ = [
    "CausalPreprocessor",
    "causal_detrend",
    "causal_preprocess",
    "causal_zscore",
    "detrend_volumes",
    "training_statistics",
]

DEFAULT_PRIOR_VOLUMES = 20


def detrend_volumes(window: float, tr: float) -> int:
    """Volumes in the drift window: ``round(window / tr)`` rounded up to odd, as the batch filter."""
    if window <= 0 or tr <= 0:
        raise DataError(f"detrend window and tr must be positive; got window={window}, tr={tr}")
    size = int(round(window / tr))
    return size + 1 - size % 2


def _median_kernel():
    """Compile (once, cached on disk) the per-voxel running-median update.

    Per voxel the window's values live in a ring ``(n_voxels, W)``; the median is read from a short
    sorted *band* of consecutive order statistics around it (``band[v, :k]`` holds ranks
    ``below[v] .. below[v] + k - 1``). An update touches the ring slot and the band only — about 200 bytes
    per voxel instead of a whole sorted window, which is what matters at 60,000 voxels (memory traffic, not
    arithmetic, is the cost). When the median leaves the band, the band over- or underflows, or a value's
    side cannot be told, the band is rebuilt by sorting that voxel's ring (exact at all times; ties are
    harmless because every value below the band is <= its first and every value above >= its last).
    """
    import numba

    # Serial on purpose: a parallel loop waits at its barrier for the slowest thread, and on a busy
    # machine a descheduled thread costs a whole time slice (measured: 0.4 ms serial vs 20-30 ms with 2
    # threads for 5,000 voxels at load 7 on 2 cores).
    @numba.njit(cache=True, nogil=True)
    def update(band, nband, below, ring, head, n, x, trend):  # pragma: no cover - compiled
        n_vox, cap = band.shape
        size = ring.shape[1]
        n_new = min(n + 1, size)
        m_lo = (n_new - 1) // 2
        m_hi = n_new // 2
        for v in range(n_vox):
            new = x[v]
            k = nband[v]
            b = below[v]
            ok = k > 0
            if ok and n >= size:  # the oldest value leaves the window
                old = ring[v, head]
                if old < band[v, 0]:
                    b -= 1
                elif old <= band[v, k - 1]:
                    lo, hi = 0, k
                    while lo < hi:
                        mid = (lo + hi) // 2
                        if band[v, mid] < old:
                            lo = mid + 1
                        else:
                            hi = mid
                    for i in range(lo, k - 1):
                        band[v, i] = band[v, i + 1]
                    k -= 1
                    ok = k > 0
            ring[v, head] = new
            if ok:  # the new value enters
                if new < band[v, 0]:
                    b += 1
                elif new > band[v, k - 1]:
                    pass
                elif k < cap:
                    i = k
                    while i > 0 and band[v, i - 1] > new:
                        band[v, i] = band[v, i - 1]
                        i -= 1
                    band[v, i] = new
                    k += 1
                else:
                    ok = False
            elif n == 0:
                band[v, 0] = new
                k, b, ok = 1, 0, True
            if not (ok and b <= m_lo and m_hi < b + k):
                vals = np.sort(ring[v, :n_new])
                b = max(0, m_lo - cap // 4)
                k = min(n_new, max(m_hi + 1, b + cap // 2)) - b
                band[v, :k] = vals[b : b + k]
            nband[v] = k
            below[v] = b
            trend[v] = 0.5 * (np.float64(band[v, m_lo - b]) + np.float64(band[v, m_hi - b]))

    return update


_KERNEL = None
BAND = 32


class CausalPreprocessor:
    """Online drift removal and z-scoring of one run (see the module docstring for the exact formulas).

    Parameters
    ----------
    n_voxels : int
    tr : float, seconds
    detrend_window : float, seconds of the trailing median (default 240, as the batch pipeline)
    prior_cv : ndarray (n_voxels,) or None
        Training fluctuation relative to intensity (:func:`training_statistics`); None: no prior.
    prior_volumes : int, weight ``n0`` of the prior in volumes (ignored without ``prior_cv``)
    band : int, order statistics kept sorted around the median (speed only; any value >= 4 is exact)

    ``update(x)`` takes one raw volume ``(n_voxels,)`` and returns its z-scored value ``(n_voxels,)``
    float64. Raw values are kept in float32 (as BOLD files store them); medians and moments in float64.
    """

    def __init__(
        self,
        n_voxels: int,
        *,
        tr: float,
        detrend_window: float = 240.0,
        prior_cv: np.ndarray | None = None,
        prior_volumes: int = DEFAULT_PRIOR_VOLUMES,
        band: int = BAND,
    ):
        global _KERNEL
        self.n_voxels = int(n_voxels)
        self.size = detrend_volumes(detrend_window, tr)
        if prior_cv is not None:
            prior_cv = np.asarray(prior_cv, dtype=np.float64)
            if prior_cv.shape != (self.n_voxels,):
                raise DataError(f"prior_cv has shape {prior_cv.shape}; expected ({self.n_voxels},)")
        self.prior_cv = prior_cv
        self.prior_volumes = int(prior_volumes) if prior_cv is not None else 0
        if self.prior_volumes < 0:
            raise DataError(f"prior_volumes must be >= 0; got {prior_volumes}")
        if _KERNEL is None:
            _KERNEL = _median_kernel()
            # Compile (or load from the disk cache) now, not on the first volume of the scan.
            _KERNEL(np.zeros((1, 4), np.float32), np.zeros(1, np.int64), np.zeros(1, np.int64),
                    np.zeros((1, 3), np.float32), 0, 0, np.zeros(1, np.float32), np.zeros(1, np.float64))  # fmt: skip
        self._kernel = _KERNEL
        self._band = np.zeros((self.n_voxels, max(4, int(band))), dtype=np.float32)
        self._nband = np.zeros(self.n_voxels, dtype=np.int64)
        self._below = np.zeros(self.n_voxels, dtype=np.int64)
        self._ring = np.zeros((self.n_voxels, self.size), dtype=np.float32)
        self._trend = np.zeros(self.n_voxels, dtype=np.float64)
        self._s1 = np.zeros(self.n_voxels, dtype=np.float64)
        self._s2 = np.zeros(self.n_voxels, dtype=np.float64)
        self.n_seen = 0

    def update(self, x: np.ndarray) -> np.ndarray:
        """Add volume ``n_seen`` (raw values ``(n_voxels,)``) and return its z-scored values."""
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        if x.shape[0] != self.n_voxels:
            raise DataError(f"volume has {x.shape[0]} voxels; the preprocessor expects {self.n_voxels}")
        if not np.isfinite(x).all():
            raise DataError("volume holds NaN or infinite values (impute them before update)")
        n = self.n_seen
        self._kernel(self._band, self._nband, self._below, self._ring, n % self.size, n, x, self._trend)
        self.n_seen = n + 1
        d = x - self._trend
        self._s1 += d
        self._s2 += d * d
        return _zscore_step(
            d, self._s1, self._s2, self.n_seen, self._trend, self.prior_cv, self.prior_volumes
        )

    @property
    def trend(self) -> np.ndarray:
        """The drift estimate of the last volume, ``(n_voxels,)`` float64."""
        return self._trend.copy()


def _zscore_step(d, s1, s2, n, trend, prior_cv, n0):
    total = n + n0
    mean = s1 / total
    second = s2 if n0 == 0 else s2 + n0 * (prior_cv * np.abs(trend)) ** 2
    var = second / total - mean * mean
    out = np.zeros_like(d)
    ok = var > 1e-12 * (1.0 + mean * mean)
    out[ok] = (d[ok] - mean[ok]) / np.sqrt(var[ok])
    return out


# ---------------------------------------------------------------------------------------- offline reference
def causal_detrend(data: np.ndarray, *, tr: float, window: float = 240.0) -> tuple[np.ndarray, np.ndarray]:
    """Trailing-median drift removal of a whole run: ``(detrended, trend)``, both ``(n_volumes, n_voxels)``
    float64. Row ``t`` uses volumes ``0 .. t`` only (bottleneck's trailing moving median)."""
    import bottleneck as bn

    data = np.asarray(data, dtype=np.float32)
    if data.ndim != 2:
        raise DataError(f"data must be (n_volumes, n_voxels); got shape {data.shape}")
    size = min(detrend_volumes(window, tr), data.shape[0])
    trend = bn.move_median(data.astype(np.float64), window=size, axis=0, min_count=1)
    return data.astype(np.float64) - trend, trend


def causal_zscore(
    detrended: np.ndarray,
    trend: np.ndarray,
    *,
    prior_cv: np.ndarray | None = None,
    prior_volumes: int = DEFAULT_PRIOR_VOLUMES,
) -> np.ndarray:
    """Running (prior-shrunk) z-score of a whole detrended run, row ``t`` from rows ``0 .. t``."""
    d = np.asarray(detrended, dtype=np.float64)
    n = np.arange(1, d.shape[0] + 1, dtype=np.float64)[:, None]
    n0 = int(prior_volumes) if prior_cv is not None else 0
    s1 = np.cumsum(d, axis=0)
    s2 = np.cumsum(d * d, axis=0)
    if n0:
        s2 = s2 + n0 * (np.asarray(prior_cv, dtype=np.float64)[None, :] * np.abs(trend)) ** 2
    mean = s1 / (n + n0)
    var = s2 / (n + n0) - mean * mean
    out = np.zeros_like(d)
    ok = var > 1e-12 * (1.0 + mean * mean)
    out[ok] = (d[ok] - mean[ok]) / np.sqrt(var[ok])
    return out


def causal_preprocess(
    data: np.ndarray,
    *,
    tr: float,
    detrend_window: float = 240.0,
    prior_cv: np.ndarray | None = None,
    prior_volumes: int = DEFAULT_PRIOR_VOLUMES,
) -> np.ndarray:
    """What :class:`CausalPreprocessor` gives for every volume of a recorded run ``(n_volumes, n_voxels)``."""
    d, trend = causal_detrend(data, tr=tr, window=detrend_window)
    return causal_zscore(d, trend, prior_cv=prior_cv, prior_volumes=prior_volumes)


# ------------------------------------------------------------------------------------- training statistics
def _cache_dir(cache_dir) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    base = os.environ.get("BRAIN2MUSIC_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "brain2music") / "live"


def training_statistics(
    bold_paths: list[str | os.PathLike],
    voxel_indices: np.ndarray,
    grid_shape: tuple[int, int, int],
    *,
    tr: float,
    detrend_window: float = 240.0,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> dict:
    """Per-voxel statistics of the decoder's training runs, for the z-score prior.

    Returns ``{"prior_cv" (n_voxels,), "mean" (n_voxels,), "n_runs", "source"}``: ``prior_cv`` is the median
    over runs of ``sd(x - centred 240-s median) / mean(x)`` (the batch detrending the decoder was trained
    with), ``mean`` the median over runs of the raw mean. Voxels whose mean is not positive (data not in
    intensity units) get ``prior_cv = 0``. Cached under ``$BRAIN2MUSIC_CACHE/live`` (or
    ``~/.cache/brain2music/live``), keyed by the files' paths, sizes and times and the voxel set.
    """
    from brain2music._io import save_npz
    from brain2music.data.preprocess import detrend_median, read_masked_run

    voxel_indices = np.asarray(voxel_indices, dtype=np.int64)
    key = hashlib.sha256()
    for p in bold_paths:
        st = Path(p).stat()
        key.update(f"{Path(p).resolve()}|{st.st_size}|{st.st_mtime_ns};".encode())
    key.update(voxel_indices.tobytes())
    key.update(f"{tuple(grid_shape)}|{tr}|{detrend_window}|v1".encode())
    path = _cache_dir(cache_dir) / f"training-stats-{key.hexdigest()[:20]}.npz"
    if path.is_file():
        with np.load(path) as f:
            return {
                "prior_cv": f["prior_cv"],
                "mean": f["mean"],
                "n_runs": int(f["n_runs"]),
                "source": str(path),
            }
    mask = np.zeros(int(np.prod(grid_shape)), dtype=bool)
    mask[voxel_indices] = True
    mask = mask.reshape(grid_shape)
    from tqdm.auto import tqdm

    cvs, means = [], []
    for bold in tqdm(
        bold_paths, desc="training statistics (cached afterwards)", unit="run", disable=not progress
    ):
        data = np.nan_to_num(read_masked_run(bold, mask))
        mean = data.mean(axis=0, dtype=np.float64)
        sd = detrend_median(data, tr=tr, window=detrend_window).std(axis=0, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            cvs.append(np.where(mean > 0, sd / mean, 0.0))
        means.append(mean)
        del data
    stats = {
        "prior_cv": np.median(cvs, axis=0),
        "mean": np.median(means, axis=0),
        "n_runs": len(bold_paths),
    }
    try:
        save_npz(path, **stats)
    except OSError:  # a read-only cache folder only costs the recomputation next time
        pass
    return {**stats, "source": ", ".join(str(p) for p in bold_paths)}
