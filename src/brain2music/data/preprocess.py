"""Preprocessing steps of Nakai et al. (2021), each a function on plain arrays.

A run is an array ``(n_volumes, n_voxels)``. The steps, in the order :func:`preprocess_run` applies them:

1. :func:`detrend_median` — remove slow drift: subtract the running median over 240 s;
2. :func:`zscore` — per voxel, per run;
then, per clip, :func:`cut_clips` applies the hemodynamic delay and :func:`window_average` averages the
TRs of each embedding window (paper Table 1).
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from brain2music._checks import check_2d
from brain2music.errors import DataError
from brain2music.windows import window_tr_weights


def _check_2d(data: np.ndarray, name: str = "data") -> np.ndarray:
    return check_2d(data, name, dtype=None, finite=False, layout="(n_volumes, n_voxels)")


def detrend_median(data: np.ndarray, *, tr: float = 1.5, window: float = 240.0) -> np.ndarray:
    """Subtract a centred running median of ``window`` seconds from every voxel.

    Parameters
    ----------
    data : ndarray, shape (n_volumes, n_voxels)
    tr : float
        Repetition time in seconds.
    window : float
        Length of the median filter in seconds (240 s = 160 TRs at TR 1.5 s; rounded up to an odd
        number of volumes so the window is centred).

    Returns
    -------
    ndarray, float32, same shape. Near the run's edges the median is taken over the volumes available
    inside the window (the window shrinks rather than reflecting the signal).
    """
    import bottleneck as bn

    data = _check_2d(data)
    if window <= 0 or tr <= 0:
        raise DataError(f"window and tr must be positive; got window={window}, tr={tr}")
    size = int(round(window / tr))
    size += 1 - size % 2  # odd, so that the window is centred on the volume
    n = data.shape[0]
    half = size // 2
    x = np.asarray(data, dtype=np.float32)
    padded = np.concatenate([x, np.full((half, x.shape[1]), np.nan, dtype=np.float32)], axis=0)
    # bottleneck's moving median is trailing; with NaN padding after the data and min_count=1, the value
    # at index t + half is the median of x[t - half : t + half + 1] clipped to the run.
    trailing = bn.move_median(padded, window=min(size, n + half), axis=0, min_count=1)
    trend = trailing[half:]
    return (x - trend).astype(np.float32, copy=False)


def zscore(data: np.ndarray) -> np.ndarray:
    """Per-voxel z-score over volumes (float32). Constant voxels become NaN (see :func:`drop_bad_voxels`)."""
    data = _check_2d(data)
    x = np.asarray(data, dtype=np.float32)
    mean = x.mean(axis=0, dtype=np.float64)
    std = x.std(axis=0, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(std > 1e-8 * (1 + np.abs(mean)), 1.0 / std, np.nan)
    return ((x - mean.astype(np.float32)) * scale.astype(np.float32)).astype(np.float32, copy=False)


def preprocess_run(data: np.ndarray, *, tr: float, detrend_window: float | None = 240.0) -> np.ndarray:
    """Median-filter detrend (unless ``detrend_window`` is None) then z-score one run."""
    if detrend_window:
        data = detrend_median(data, tr=tr, window=detrend_window)
    return zscore(data)


def cut_clips(
    run_data: np.ndarray, onsets: np.ndarray, *, tr: float, n_trs: int, delay: int = 3
) -> np.ndarray:
    """Cut the volumes of each clip out of a run, shifted by the hemodynamic delay.

    Parameters
    ----------
    run_data : ndarray, shape (n_volumes, n_voxels)
    onsets : array of clip onsets in seconds
    tr : float
    n_trs : int
        Volumes per clip (10 for a 15-s clip at TR 1.5 s).
    delay : int
        Hemodynamic delay in volumes (default 3 = 4.5 s): clip volumes are
        ``onset/tr + delay ... onset/tr + delay + n_trs - 1``.

    Returns
    -------
    ndarray, shape (n_clips, n_trs, n_voxels). Volumes past the end of the run (the last clip's tail
    when ``delay > 0``) repeat the run's last volume.
    """
    run_data = _check_2d(run_data, "run_data")
    if int(delay) != delay or delay < 0:
        raise DataError(f"delay must be a non-negative whole number of volumes; got {delay!r}")
    first = np.rint(np.asarray(onsets, dtype=float) / tr).astype(int) + int(delay)
    idx = first[:, None] + np.arange(n_trs)[None, :]
    if np.any(first >= run_data.shape[0]):
        raise DataError(
            f"a clip starts at volume {int(first.max())} (onset + delay) but the run has only "
            f"{run_data.shape[0]} volumes"
        )
    idx = np.minimum(idx, run_data.shape[0] - 1)
    return run_data[idx]


def window_average(responses: np.ndarray, window: float, *, tr: float = 1.5) -> np.ndarray:
    """Average the TRs of each clip over the embedding windows of ``window`` seconds.

    Parameters
    ----------
    responses : ndarray, shape (..., n_trs, n_voxels)
        e.g. training responses ``(n_clips, n_trs, n_voxels)`` or test ``(n_clips, n_repeats, n_trs, n_voxels)``.
    window : float
        Embedding window in seconds (1.5, 5, 10 or 15 for the paper's embeddings).

    Returns
    -------
    ndarray, shape (..., r, n_voxels) with ``r`` windows (:func:`brain2music.windows.n_windows`).
    """
    responses = np.asarray(responses)
    if responses.ndim < 2:
        raise DataError(f"responses must have shape (..., n_trs, n_voxels); got {responses.shape}")
    weights = window_tr_weights(window, responses.shape[-2], tr=tr).astype(np.float32)
    return np.einsum("rt,...tv->...rv", weights, responses, optimize=True).astype(np.float32, copy=False)


def drop_bad_voxels(bad: np.ndarray, *, source: str = "data") -> np.ndarray:
    """Indices of voxels to keep given a boolean ``bad`` mask; warn when any is dropped."""
    bad = np.asarray(bad, dtype=bool)
    if bad.all():
        raise DataError(f"{source}: every voxel is NaN or constant; nothing left to analyse")
    if bad.any():
        warnings.warn(
            f"{source}: dropping {int(bad.sum())} of {bad.size} voxel(s) that are NaN or constant in at "
            "least one run",
            stacklevel=3,
        )
    return np.flatnonzero(~bad)


def compute_mask(bold_path: str | os.PathLike):
    """A brain mask computed from one run's mean EPI image with :func:`nilearn.masking.compute_epi_mask`."""
    import warnings as _w

    from nilearn.masking import compute_epi_mask

    with _w.catch_warnings():
        _w.simplefilter("ignore")
        img = compute_epi_mask(str(bold_path))
    if not np.asarray(img.dataobj).any():
        raise DataError(
            f"{bold_path}: the mask computed from the mean EPI is empty (no brain-like intensity contrast); "
            "pass a mask image instead (mask=... or --mask)"
        )
    return img


def load_mask(mask, reference):
    """Load a mask image (path or nibabel image) and check it matches the grid of ``reference``.

    Returns a boolean ndarray of the 3-D grid.
    """
    import nibabel as nib

    if isinstance(mask, (str, os.PathLike)):
        try:
            mask_img = nib.load(str(mask))
        except FileNotFoundError as exc:
            from brain2music.errors import DataFileNotFoundError

            raise DataFileNotFoundError(f"mask image not found: {mask}") from exc
        except Exception as exc:
            raise DataError(f"{mask}: cannot read as a NIfTI mask ({exc})") from exc
    else:
        mask_img = mask
    data = np.asanyarray(mask_img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.shape != tuple(reference.shape[:3]):
        raise DataError(
            f"mask {mask if isinstance(mask, (str, os.PathLike)) else '(image)'} has grid {data.shape}; "
            f"expected the BOLD grid {tuple(reference.shape[:3])}"
        )
    if not np.allclose(mask_img.affine, reference.affine, atol=1e-3):
        raise DataError(
            "mask affine does not match the BOLD images' affine; resample the mask to the BOLD grid"
        )
    out = data > 0
    if not out.any():
        raise DataError(f"mask {mask} selects no voxel")
    return out


def read_masked_run(bold_path: str | os.PathLike, mask: np.ndarray, *, chunk: int = 32) -> np.ndarray:
    """Read a 4-D BOLD image into ``(n_volumes, n_mask_voxels)`` float32, ``chunk`` volumes at a time.

    Only the voxels inside ``mask`` are kept, so memory stays at one masked run plus one chunk.
    """
    import nibabel as nib

    img = nib.load(str(bold_path))
    n = img.shape[3]
    out = np.empty((n, int(mask.sum())), dtype=np.float32)
    proxy = img.dataobj
    for t0 in range(0, n, chunk):
        t1 = min(n, t0 + chunk)
        block = np.asarray(proxy[..., t0:t1], dtype=np.float32)
        out[t0:t1] = block[mask].T
    return out
