"""Scores of a reconstruction: identification of the reconstructions among the originals, per clip and
per subject, and their summaries over subjects.

One similarity matrix per kind of reconstruction (``C_ij`` = Pearson r between the embedding of
reconstruction i and the embedding of original j, windows averaged, in the predictions' metric space)
gives three metrics: the paper's pairwise identification accuracy (Eq. 3, ``id_acc``) and the peers'
N-way identification (``top1_acc``, ``top5_acc``: is original i among the k originals most
correlated with reconstruction i; chance k / n). Each comes with a 95 % bootstrap interval over the
clips and a one-sided permutation p-value against chance
(:func:`~brain2music.evaluate.stats.group_p_value`; for Chance, whose reconstructions are several draws
of random library tracks, the null of the mean over the draws).

Summaries over subjects (:func:`summarise_subjects`) resample the per-clip scores each clip records
(:attr:`~brain2music.results.ReconstructedClip.scores`) with the hierarchical bootstrap of
:func:`~brain2music.evaluate.stats.hierarchical_bootstrap_ci`: clips within subjects, and subjects too
from three on; two subjects are never summarised by their [min, max].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from brain2music.results import ReconstructedClip, ReconstructionScores, Score, SummaryStat
from brain2music.results.reconstruction import flat_name

__all__ = ["IDENTIFICATION", "identification_fields", "summarise_subjects"]

#: metric suffix -> top-k (None: the pairwise identification accuracy of the paper)
IDENTIFICATION: dict[str, int | None] = {"id_acc": None, "top1_acc": 1, "top5_acc": 5}


def identification_fields(
    kind: str, reconstructed: np.ndarray, originals: np.ndarray, *, n_bootstrap: int, random_state: int
) -> tuple[dict[str, Score], dict[str, np.ndarray]]:
    """``({metric: Score}, {flat name: per-clip scores (n,)})`` of one kind of reconstruction.

    ``reconstructed``: embeddings ``(n, [r,] dim)`` of the reconstructions of clips ``0..n-1``, or a
    stack ``(n_draws, n, [r,] dim)`` of draws (Chance: every clip's score is its mean over the draws);
    ``originals`` ``(n, [r,] dim)``; both already in the metric space. One :class:`Score` (value, CI,
    p, n) for every metric of :data:`IDENTIFICATION`; the per-clip scores are keyed ``<kind>_<metric>``.
    """
    from brain2music.evaluate import identification_scores, similarity_matrix, topk_scores
    from brain2music.evaluate.stats import bootstrap_ci, ci_list, group_p_value

    x = np.asarray(reconstructed, dtype=np.float64)
    draws = x if x.ndim == np.asarray(originals).ndim + 1 else x[None]
    sims = [similarity_matrix(d, originals) for d in draws]
    scores, per_clip = {}, {}
    for metric, k in IDENTIFICATION.items():
        clip = np.mean([identification_scores(C) if k is None else topk_scores(C, k) for C in sims], axis=0)
        ci = bootstrap_ci(clip, n_bootstrap=n_bootstrap, random_state=random_state)
        scores[metric] = Score(
            float(clip.mean()), ci_list(ci),
            group_p_value(sims, random_state=random_state, top_k=k), n_clips=int(len(clip)),
        )  # fmt: skip
        per_clip[flat_name(kind, metric)] = clip
    return scores, per_clip


def chance_levels(n_clips: int) -> dict[str, float]:
    """``top1_chance`` / ``top5_chance``: the expected N-way accuracy of random reconstructions, k / n."""
    from brain2music.evaluate import topk_chance

    return {f"{metric[:-4]}_chance": topk_chance(n_clips, k) for metric, k in IDENTIFICATION.items() if k}


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
