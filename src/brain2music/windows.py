"""Embedding windows of the paper's Table 1, shared by the fMRI side and the audio side.

Brain2Music computes each embedding on windows that *end on a TR boundary* of the 15-s clip and reach
back ``window`` seconds, keeping only windows that lie fully inside the clip. With TR = 1.5 s this gives
exactly the paper's window counts: 1.5-s windows → r = 10, 5-s → r = 7, 10-s → r = 4, 15-s → r = 1.

The fMRI responses of a clip are averaged over the same windows: a TR belongs to a window when its
midpoint lies inside it (so a 1.5-s window holds exactly one TR and a 15-s window all ten).
"""

from __future__ import annotations

import numpy as np

from brain2music.errors import DataError

CLIP_DURATION = 15.0
TR = 1.5

_EPS = 1e-6


def embedding_windows(window: float, *, clip_duration: float = CLIP_DURATION, tr: float = TR) -> np.ndarray:
    """Return the ``(r, 2)`` array of ``[start, end)`` times (s) of the embedding windows of one clip.

    Windows end on multiples of ``tr`` and span ``window`` seconds; only windows inside
    ``[0, clip_duration]`` are kept.

    >>> embedding_windows(10.0).shape
    (4, 2)
    """
    if window <= 0:
        raise DataError(f"window must be a positive number of seconds, got {window!r}")
    if tr <= 0:
        raise DataError(f"tr must be a positive number of seconds, got {tr!r}")
    if window > clip_duration + _EPS:
        raise DataError(
            f"window ({window} s) is longer than the clip ({clip_duration} s); expected window <= clip_duration"
        )
    n_tr = int(round(clip_duration / tr))
    ends = tr * np.arange(1, n_tr + 1)
    ends = ends[ends >= window - _EPS]
    return np.stack([ends - window, ends], axis=1)


def n_windows(window: float, *, clip_duration: float = CLIP_DURATION, tr: float = TR) -> int:
    """Number of embedding windows ``r`` per clip for a window length (paper Table 1)."""
    return len(embedding_windows(window, clip_duration=clip_duration, tr=tr))


def infer_window(r: int, *, n_trs: int, tr: float) -> float | None:
    """The window of ``r`` windows per clip of ``n_trs`` volumes, where the grid leaves one answer; else None.

    ``r == n_trs``: every window from half a TR to one TR long holds exactly one volume, so all of them
    average the same volumes as ``tr``. ``r == 1``: one vector per clip is taken to describe the whole clip
    (``n_trs * tr``, all its volumes); a window up to one TR shorter would also give ``r = 1`` but leave
    out the first volume, which no clip-level embedding means. Any other ``r`` is reached by windows that
    average different volumes (7 windows: the paper's 5 s, or 6 s), so it is not inferred.
    """
    if r == n_trs:
        return float(tr)
    if r == 1:
        return float(n_trs * tr)
    return None


def window_tr_weights(
    window: float, n_trs: int, *, tr: float = TR, clip_duration: float | None = None
) -> np.ndarray:
    """``(r, n_trs)`` averaging weights: row k averages the TRs whose midpoint lies in window k.

    ``clip_duration`` defaults to ``n_trs * tr``.
    """
    if clip_duration is None:
        clip_duration = n_trs * tr
    wins = embedding_windows(window, clip_duration=clip_duration, tr=tr)
    mids = (np.arange(n_trs) + 0.5) * tr
    inside = (mids[None, :] >= wins[:, :1] - _EPS) & (mids[None, :] <= wins[:, 1:] + _EPS)
    counts = inside.sum(axis=1, keepdims=True)
    if np.any(counts == 0):  # pragma: no cover - impossible for window >= tr
        raise DataError(f"a {window}-s window holds no TR at tr={tr}")
    return inside / counts


def clip_vectors(embeddings: np.ndarray) -> np.ndarray:
    """One vector per clip: ``(n_clips, r, dim)`` → the mean over the ``r`` windows, ``(n_clips, dim)``.

    The single place where embeddings are averaged over windows (the vector the paper's identification,
    retrieval and generation use). 2-D input ``(n_clips, dim)`` is already one vector per clip and is
    returned unchanged; the dtype of a float input is kept.
    """
    embeddings = np.asarray(embeddings)
    if embeddings.dtype.kind not in "f":
        embeddings = embeddings.astype(np.float64)
    if embeddings.ndim == 2:
        return embeddings
    if embeddings.ndim != 3:
        raise DataError(
            f"embeddings must have shape (n_clips, r, dim) or (n_clips, dim); got {embeddings.shape}"
        )
    return embeddings.mean(axis=1)
