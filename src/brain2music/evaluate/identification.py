"""Identification accuracy (Brain2Music Eq. 2–3), Pearson r, chance and per-genre scores.

Window handling (what the paper did, and what we do):

- The decoder is trained and applied per *window sample*: the fMRI of a clip is averaged over each
  embedding window (``SubjectData.windowed(window)``) and every ``(clip, window)`` pair is one sample whose
  target is that window's embedding. Predictions therefore have shape ``(n_clips, r, dim)``.
- For evaluation the predicted and the true embeddings are **averaged over the r windows of each clip**
  (``windows="mean"``, the default) before computing ``C_ij``; this is how the paper evaluates MuLan-music
  (r = 4) and the window-averaged SoundStream / w2v-BERT embeddings, and it is the vector that retrieval and
  generation are conditioned on. ``windows="concat"`` instead flattens ``(r, dim)`` into one vector per
  clip. With r = 1 both are the same.
- Pearson r is computed per embedding dimension across test clips on the same clip vectors and averaged
  over dimensions.
"""

from __future__ import annotations

import numpy as np

from brain2music._checks import check_choice
from brain2music.errors import ConfigError, DataError
from brain2music.windows import clip_vectors as window_mean

__all__ = [
    "clip_vectors",
    "similarity_matrix",
    "identification_accuracy",
    "identification_scores",
    "mean_pearson_r",
    "topk_chance",
    "topk_scores",
    "chance_identification",
    "per_genre_accuracy",
]

_WINDOW_MODES = ("mean", "concat")


def clip_vectors(embeddings: np.ndarray, windows: str = "mean") -> np.ndarray:
    """One vector per clip: ``(n_clips, r, dim)`` → ``(n_clips, dim)`` (mean) or ``(n_clips, r*dim)`` (concat).

    2-D input ``(n_clips, dim)`` is returned unchanged.
    """
    check_choice(windows, _WINDOW_MODES, what="windows")
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if windows == "mean" or embeddings.ndim == 2:
        return window_mean(embeddings)
    if embeddings.ndim != 3:
        raise DataError(
            f"embeddings must have shape (n_clips, r, dim) or (n_clips, dim); got {embeddings.shape}"
        )
    return embeddings.reshape(embeddings.shape[0], -1)


def _pair(predicted, target, windows):
    P = clip_vectors(predicted, windows)
    T = clip_vectors(target, windows)
    if P.shape != T.shape:
        raise DataError(f"predicted {np.shape(predicted)} and target {np.shape(target)} shapes differ")
    if P.shape[0] < 2:
        raise DataError(f"identification needs at least 2 clips; got {P.shape[0]}")
    return P, T


def similarity_matrix(predicted: np.ndarray, target: np.ndarray, *, windows: str = "mean") -> np.ndarray:
    """``C (n, n)`` with ``C[i, j] = pearson(P_i, T_j)`` across embedding dimensions (paper Eq. 2)."""
    P, T = _pair(predicted, target, windows)
    P = P - P.mean(axis=1, keepdims=True)
    T = T - T.mean(axis=1, keepdims=True)
    pn = np.linalg.norm(P, axis=1, keepdims=True)
    tn = np.linalg.norm(T, axis=1, keepdims=True)
    # A constant vector has no defined correlation; score it 0 against everything.
    P = np.divide(P, pn, out=np.zeros_like(P), where=pn > 0)
    T = np.divide(T, tn, out=np.zeros_like(T), where=tn > 0)
    return P @ T.T


def identification_scores(similarity: np.ndarray) -> np.ndarray:
    """Per-clip accuracy ``id_acc_i = mean_{j≠i} 1[C_ii > C_ij]`` (paper Eq. 3) → ``(n,)``."""
    C = _square(similarity)
    n = C.shape[0]
    wins = (np.diag(C)[:, None] > C).sum(axis=1)  # the diagonal never beats itself
    return wins / (n - 1)


def topk_scores(similarity: np.ndarray, k: int) -> np.ndarray:
    """Per-clip N-way identification: 1 where clip i's true target is among the ``k`` targets most
    correlated with its prediction, else 0 → ``(n,)`` (the peers' top-k; chance :func:`topk_chance`).

    A rival that ties the true target counts as ranked above it, so a constant prediction (every
    similarity equal) is never a hit.
    """
    from brain2music.evaluate.stats import _scores

    return _scores(_square(similarity), top_k=_check_k(k))


def topk_chance(n_clips: int, k: int) -> float:
    """Expected top-k accuracy among ``n_clips`` candidates with random predictions: ``min(k, n) / n``."""
    n = int(n_clips)
    return min(_check_k(k), n) / n


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k (top-k identification) must be a positive integer; got {k!r}")
    return int(k)


def _square(similarity) -> np.ndarray:
    C = np.asarray(similarity, dtype=np.float64)
    if C.ndim != 2 or C.shape[0] != C.shape[1] or C.shape[0] < 2:
        raise DataError(f"similarity must be a square (n, n) matrix with n >= 2; got {C.shape}")
    return C


def identification_accuracy(predicted: np.ndarray, target: np.ndarray, *, windows: str = "mean") -> float:
    """Mean identification accuracy over clips (chance 0.5, perfect 1.0).

    Parameters
    ----------
    predicted, target : ndarray, shape (n_clips, r, dim) or (n_clips, dim)
    windows : "mean" (average the r windows first, paper) or "concat".
    """
    return float(identification_scores(similarity_matrix(predicted, target, windows=windows)).mean())


def mean_pearson_r(predicted: np.ndarray, target: np.ndarray, *, windows: str = "mean") -> float:
    """Pearson r between predicted and true values of each dimension across clips, averaged over dims."""
    from brain2music.models.ridge import correlation_per_target

    P, T = _pair(predicted, target, windows)
    return float(np.mean(correlation_per_target(T, P)))


def chance_identification(
    predicted: np.ndarray,
    target: np.ndarray,
    *,
    n_permutations: int = 100,
    windows: str = "mean",
    random_state: int | None = 0,
) -> tuple[float, float]:
    """Identification accuracy and Pearson r with the clip labels shuffled (mean over permutations).

    Both are centred on chance (0.5 and 0); returns ``(id_acc, pearson_r)``.
    """
    P, T = _pair(predicted, target, windows)
    rng = np.random.default_rng(random_state)
    accs, rs = [], []
    for _ in range(int(n_permutations)):
        perm = rng.permutation(P.shape[0])
        accs.append(identification_accuracy(P[perm], T))
        rs.append(mean_pearson_r(P[perm], T))
    return float(np.mean(accs)), float(np.mean(rs))


def per_genre_accuracy(similarity: np.ndarray, genres) -> dict[str, float]:
    """Mean per-clip identification accuracy of the clips of each genre.

    Every clip is still identified among **all** clips (``j`` runs over every clip), so the values are on
    the same scale as the overall accuracy.
    """
    scores = identification_scores(similarity)
    genres = np.asarray(genres).astype(str)
    if genres.shape != scores.shape:
        raise DataError(f"genres must have one label per clip ({scores.size}); got {genres.shape}")
    return {g: float(scores[genres == g].mean()) for g in sorted(set(genres.tolist()))}
