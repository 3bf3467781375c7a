"""Tag agreement between originals and reconstructions (the paper's class agreement, with musicnn's tags).

Denk et al. (2023) score a reconstruction by whether a pretrained tagger gives it the same classes as
the original, in three groups: genres (top 2), instruments (top 2), moods (top 1), against Chance (a
random library clip) and Oracle (retrieval with the true embedding). Here the tagger is musicnn and the
groups are the tag groups of :mod:`brain2music.embeddings.musicnn.tags` (documented there).

Agreement of one pair at ``k``: the fraction of the original's ``k`` most probable tags of the group that
are also among the reconstruction's ``k`` most probable tags of the group (1 for top-1 equality). Ties are
broken by tag order (a stable sort), so the score is deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from brain2music.errors import DataError

__all__ = ["top_k_sets", "top_k_agreement", "chance_top_k_agreement", "group_agreement"]


def _check(probs: np.ndarray, name: str) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or not np.all(np.isfinite(p)):
        raise DataError(f"{name} must be a finite (n_clips, n_tags) array, got shape {np.shape(probs)}")
    return p


def top_k_sets(probs: np.ndarray, k: int) -> np.ndarray:
    """``(n, n_tags)`` bool: each row's ``k`` most probable columns (stable: earlier columns win ties)."""
    p = _check(probs, "probs")
    if not 1 <= k <= p.shape[1]:
        raise DataError(f"k must be between 1 and {p.shape[1]}, got {k}")
    order = np.argsort(-p, axis=1, kind="stable")[:, :k]
    out = np.zeros(p.shape, dtype=bool)
    np.put_along_axis(out, order, True, axis=1)
    return out


def top_k_agreement(original: np.ndarray, reconstruction: np.ndarray, k: int) -> np.ndarray:
    """``(n,)`` fraction of the original's top-``k`` tags that are in the reconstruction's top ``k``.

    Parameters
    ----------
    original, reconstruction : ndarray, shape ``(n_clips, n_tags)``
        Tag probabilities of the same group, pairs in the same row.
    """
    a, b = _check(original, "original"), _check(reconstruction, "reconstruction")
    if a.shape != b.shape:
        raise DataError(f"original {a.shape} and reconstruction {b.shape} must have the same shape")
    return (top_k_sets(a, k) & top_k_sets(b, k)).sum(axis=1) / k


def chance_top_k_agreement(original: np.ndarray, library: np.ndarray, k: int) -> np.ndarray:
    """``(n,)`` expected agreement of each original with a library clip drawn uniformly at random.

    Exact: the mean over the library of :func:`top_k_agreement`, computed from how often each tag is in a
    library clip's top ``k`` (``library`` is ``(n_library, n_tags)``).
    """
    a, lib = _check(original, "original"), _check(library, "library")
    if a.shape[1] != lib.shape[1]:
        raise DataError(f"original has {a.shape[1]} tags, library {lib.shape[1]}")
    frequency = top_k_sets(lib, k).mean(axis=0)
    return (top_k_sets(a, k) * frequency).sum(axis=1) / k


def group_agreement(
    original: np.ndarray,
    reconstruction: np.ndarray,
    tags: Sequence[str],
    groups: Mapping[str, Sequence[str]],
    top_k: Mapping[str, int],
) -> dict[str, np.ndarray]:
    """``{group: (n,) agreement}``: :func:`top_k_agreement` on each group's columns of ``tags``."""
    index = {t: i for i, t in enumerate(tags)}
    out = {}
    for group, members in groups.items():
        missing = [t for t in members if t not in index]
        if missing:
            raise DataError(f"tag group {group!r} names tags the tagger does not have: {missing}")
        cols = [index[t] for t in members]
        out[group] = top_k_agreement(
            np.asarray(original)[:, cols], np.asarray(reconstruction)[:, cols], top_k[group]
        )
    return out
