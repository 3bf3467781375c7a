"""Metrics of a reconstruction: identification of the reconstructions among the originals, and genre
agreement by a tagger fitted on the training stimuli.

One similarity matrix per kind of reconstruction (``C_ij`` = Pearson r between the embedding of
reconstruction i and the embedding of original j, windows averaged, in the predictions' metric space)
gives three metrics: the paper's pairwise identification accuracy (Eq. 3, ``id_acc``) and the peers'
N-way identification (``top1_acc``, ``top5_acc``: is original i among the k originals most
correlated with reconstruction i; chance k / n). Each comes with a 95 % bootstrap interval over the
clips and a one-sided permutation p-value against chance
(:func:`~brain2music.evaluate.stats.group_p_value`; for Chance, whose reconstructions are several draws
of random library tracks, the null of the mean over the draws).

:class:`GenreTagger` is a logistic regression on window-averaged embeddings; :func:`label_agreement`
says per clip whether two labellings (e.g. the tagger's genre of a reconstruction and of its original)
agree.
"""

from __future__ import annotations

import numpy as np

from brain2music.errors import DataError
from brain2music.windows import clip_vectors

__all__ = ["IDENTIFICATION", "GenreTagger", "chance_levels", "identification_fields", "label_agreement"]

#: metric suffix -> top-k (None: the pairwise identification accuracy of the paper)
IDENTIFICATION: dict[str, int | None] = {"id_acc": None, "top1_acc": 1, "top5_acc": 5}


def identification_fields(
    kind: str, reconstructed: np.ndarray, originals: np.ndarray, *, n_bootstrap: int, random_state: int
) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """``({metric: {value, ci, p, n_clips}}, {"<kind>_<metric>": per-clip scores (n,)})`` of one kind of
    reconstruction.

    ``reconstructed``: embeddings ``(n, [r,] dim)`` of the reconstructions of clips ``0..n-1``, or a
    stack ``(n_draws, n, [r,] dim)`` of draws (Chance: every clip's score is its mean over the draws);
    ``originals`` ``(n, [r,] dim)``; both already in the metric space. One entry for every metric of
    :data:`IDENTIFICATION`: the mean over clips, its bootstrap interval over clips, the permutation
    p-value against chance and the number of clips (the fields of
    :class:`~brain2music.results.Score`).
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
        scores[metric] = {
            "value": float(clip.mean()), "ci": ci_list(ci),
            "p": group_p_value(sims, random_state=random_state, top_k=k), "n_clips": int(len(clip)),
        }  # fmt: skip
        per_clip[f"{kind}_{metric}"] = clip
    return scores, per_clip


def chance_levels(n_clips: int) -> dict[str, float]:
    """``top1_chance`` / ``top5_chance``: the expected N-way accuracy of random reconstructions, k / n."""
    from brain2music.evaluate import topk_chance

    return {f"{metric[:-4]}_chance": topk_chance(n_clips, k) for metric, k in IDENTIFICATION.items() if k}


class GenreTagger:
    """Genre classifier on window-averaged embeddings (standardise + multinomial logistic regression).

    ``fit(embeddings (n, [r,] dim), genres (n,))``; ``predict(embeddings) -> (n,) genres``.
    """

    def __init__(self, C: float = 1.0):
        self.C = C

    def fit(self, embeddings: np.ndarray, genres) -> GenreTagger:
        """Fit on embeddings ``(n, [r,] dim)`` and their ``genres`` ``(n,)``; DataError with fewer than 2 genres."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        x = clip_vectors(np.asarray(embeddings, dtype=np.float64))
        y = np.asarray(genres).astype(str)
        if len(np.unique(y)) < 2:
            raise DataError(f"a genre tagger needs at least 2 genres in its training set; got {np.unique(y)}")
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=2000)).fit(x, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """The genre of each clip ``(n,)`` from embeddings ``(n, [r,] dim)`` (windows averaged)."""
        return self.model_.predict(clip_vectors(np.asarray(embeddings, dtype=np.float64)))


def label_agreement(a, b) -> np.ndarray | None:
    """Per clip 1.0 where labels ``a`` and ``b`` agree, else 0.0; ``None`` when either is missing."""
    if a is None or b is None:
        return None
    return (np.asarray(a) == np.asarray(b)).astype(np.float64)
