"""Summaries over subjects of a reconstruction's scores.

Each clip records its per-clip scores (:attr:`~brain2music.results.ReconstructedClip.scores`;
the metrics themselves are :mod:`brain2music.evaluate.reconstruction`); :func:`summarise_subjects`
resamples them with the hierarchical bootstrap of
:func:`~brain2music.evaluate.stats.hierarchical_bootstrap_ci`: clips within subjects, and subjects too
from three on; two subjects are never summarised by their [min, max]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from brain2music.results import ReconstructedClip, ReconstructionScores, SummaryStat

__all__ = ["summarise_subjects"]


def summarise_subjects(
    per_subject: Sequence[ReconstructionScores],
    clips: Sequence[ReconstructedClip] = (),
    *,
    n_bootstrap: int = 1000,
    random_state: int = 0,
) -> dict[str, SummaryStat]:
    """Every metric's mean over subjects, sd (``ddof=1``) and 95 % hierarchical bootstrap interval.

    The interval resamples the per-clip scores of ``clips`` (``ReconstructedClip.scores``): clips within
    each subject (one draw of clips for all subjects when they reconstructed the same clips), and the
    subjects too where there are at least 3. A metric without per-clip scores in every subject, or with a
    single clip and fewer than 3 subjects, gets no interval. Each :class:`SummaryStat` records
    ``n_subjects``, ``n_clips`` (distinct clips) and what was resampled.
    """
    from brain2music.evaluate.stats import (
        MIN_SUBJECTS_RESAMPLED,
        ci_list,
        hierarchical_bootstrap_ci,
        subject_sd,
    )

    by_subject: dict[str, list[ReconstructedClip]] = {}
    for c in clips:
        by_subject.setdefault(c.subject, []).append(c)
    out: dict[str, SummaryStat] = {}
    metrics = [(s, s.metrics()) for s in per_subject]
    for key in dict.fromkeys(k for _, m in metrics for k in m):
        have = [(s, m[key]) for s, m in metrics if key in m]
        vals = [v for _, v in have]
        parts = [_clip_scores(by_subject.get(s.subject, []), key) for s, _ in have]
        n_clips = len({c for ids, _ in parts for c in ids}) or max(s.n_clips for s, _ in have)
        ci, resamples = None, None
        enough = max(len(ids) for ids, _ in parts) >= 2 or len(parts) >= MIN_SUBJECTS_RESAMPLED
        if all(len(ids) for ids, _ in parts) and enough:
            same = all(ids == parts[0][0] for ids, _ in parts)
            ci = hierarchical_bootstrap_ci([v for _, v in parts], same_clips=same, n_bootstrap=n_bootstrap,
                                           random_state=random_state)  # fmt: skip
            resamples = "clips, subjects" if len(parts) >= MIN_SUBJECTS_RESAMPLED else "clips"
        out[key] = SummaryStat(
            float(np.mean(vals)), subject_sd(vals), ci_list(ci),
            len(vals), n_clips=int(n_clips), ci_resamples=None if ci is None else resamples,
        )  # fmt: skip
    return out


def _clip_scores(clips: Sequence[ReconstructedClip], key: str) -> tuple[list[str], np.ndarray]:
    """``(clip ids, scores)`` of one subject's clips that record ``key``, in clip-id order."""
    pairs = sorted((c.clip_id, c.scores[key]) for c in clips if c.scores and c.scores.get(key) is not None)
    return [c for c, _ in pairs], np.array([v for _, v in pairs], dtype=np.float64)
