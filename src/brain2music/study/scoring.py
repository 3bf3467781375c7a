"""Fitting and scoring one method for one subject and embedding, and the reference rows of Table 2.

Every score is computed in the embedding's metric space (``targets.space``) on window-averaged clip
vectors (:mod:`brain2music.evaluate.identification`), and carries its uncertainty
(:mod:`brain2music.evaluate.stats`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from brain2music.evaluate import (
    chance_identification,
    identification_scores,
    mean_pearson_r,
    similarity_matrix,
    split_half_scores,
    topk_chance,
    topk_scores,
)
from brain2music.evaluate.genre import leave_one_genre_out as _logo
from brain2music.evaluate.stats import bootstrap_ci, ci_list, identification_p_value
from brain2music.results import (
    ChanceResult,
    GenreScore,
    HeldOutGenreScore,
    MethodResult,
    Predictions,
    SplitHalfResult,
)
from brain2music.study.context import SubjectContext, Targets
from brain2music.study.methods.base import DecoderMethod, FittedMethod, flat

__all__ = [
    "TOP_K",
    "MethodOutcome",
    "fit_and_score",
    "leave_one_genre_out",
    "reference_scores",
    "score_fitted",
    "topk_fields",
]

#: The N-way identification levels reported beside the paper's pairwise id acc (``top1_acc``, ``top5_acc``).
TOP_K = (1, 5)


@dataclass
class MethodOutcome:
    """What :func:`fit_and_score` returns: the test and train rows, per-genre scores, the test predictions
    (with the similarity matrix and per-clip scores) and the fitted method."""

    test: MethodResult
    train: MethodResult
    per_genre: list[GenreScore]
    predictions: Predictions
    fitted: FittedMethod


def predict_windows(decoder, responses: np.ndarray) -> np.ndarray:
    """Decode window responses ``(n_clips, r, n_voxels)`` → ``(n_clips, r, dim)``."""
    return np.asarray(decoder.predict(flat(responses))).reshape(responses.shape[0], responses.shape[1], -1)


def fit_and_score(method: DecoderMethod, ctx: SubjectContext, targets: Targets) -> MethodOutcome:
    """Fit ``method`` on the subject's training clips and score it on the test clips."""
    t0 = time.perf_counter()
    fitted = method.fit(ctx, targets)
    fitted.fit_seconds = fitted.fit_seconds or time.perf_counter() - t0
    return score_fitted(method.name, ctx, targets, fitted)


def score_fitted(name: str, ctx: SubjectContext, targets: Targets, fitted: FittedMethod) -> MethodOutcome:
    """Score an already fitted method (used directly for methods fitted on several subjects)."""
    s = ctx.settings
    x_train, x_test = ctx.windowed(targets.window)
    space = targets.space
    pred_test = predict_windows(fitted.decoder, x_test)
    pred_train = predict_windows(fitted.decoder, x_train)
    sim = similarity_matrix(space.transform(pred_test), space.transform(targets.test))
    clip_scores = identification_scores(sim)
    common = {
        "subject": ctx.subject, "encoder": targets.encoder, "method": name, "space": space.name,
        "n_voxels": int(fitted.n_inputs), "fit_seconds": round(float(fitted.fit_seconds), 3),
        "train_cv_r": fitted.train_cv_r,
    }  # fmt: skip
    test = MethodResult(
        split="test",
        id_acc=float(clip_scores.mean()),
        pearson_r=mean_pearson_r(space.transform(pred_test), space.transform(targets.test)),
        id_acc_ci=ci_list(bootstrap_ci(clip_scores, n_bootstrap=s.n_bootstrap, random_state=s.random_state)),
        id_acc_p=identification_p_value(sim, n_permutations=s.n_permutations_id, random_state=s.random_state),
        n_clips=int(len(clip_scores)),
        **topk_fields(sim, s.n_bootstrap, s.n_permutations_id, s.random_state),
        **common,
    )
    train_sim = similarity_matrix(space.transform(pred_train), space.transform(targets.train))
    train = MethodResult(
        split="train",
        id_acc=float(identification_scores(train_sim).mean()),
        pearson_r=mean_pearson_r(space.transform(pred_train), space.transform(targets.train)),
        n_clips=int(len(x_train)),
        **common,
    )
    genres = ctx.test_clips.genre.to_numpy().astype(str)
    per_genre = [
        GenreScore(ctx.subject, targets.encoder, name, g, float(clip_scores[genres == g].mean()), space.name)
        for g in sorted(set(genres.tolist()))
    ]
    predictions = Predictions(
        subject=ctx.subject, encoder=targets.encoder, method=name,
        clip_ids=ctx.test_clips.clip_id.to_numpy().astype(str), genres=genres,
        predicted=pred_test.astype(np.float32), target=np.asarray(targets.test, dtype=np.float32),
        similarity=sim, clip_scores=clip_scores, space=space,
    )  # fmt: skip
    return MethodOutcome(test, train, per_genre, predictions, fitted)


def topk_fields(sim: np.ndarray, n_bootstrap: int, n_permutations: int, random_state) -> dict:
    """``top<k>_acc``, its bootstrap CI over the clips and permutation p for every k of :data:`TOP_K`."""
    out = {}
    for k in TOP_K:
        hits = topk_scores(sim, k)
        out[f"top{k}_acc"] = float(hits.mean())
        out[f"top{k}_acc_ci"] = ci_list(
            bootstrap_ci(hits, n_bootstrap=n_bootstrap, random_state=random_state)
        )
        out[f"top{k}_acc_p"] = identification_p_value(
            sim, n_permutations=n_permutations, random_state=random_state, top_k=k
        )
    return out


def _shuffled_topk(sim: np.ndarray, n_permutations: int, random_state) -> dict:
    """Mean top-k accuracy of ``sim`` with the prediction labels shuffled (rows permuted)."""
    rng = np.random.default_rng(random_state)
    perms = [rng.permutation(sim.shape[0]) for _ in range(int(n_permutations))]
    return {f"top{k}_acc": float(np.mean([topk_scores(sim[p], k).mean() for p in perms])) for k in TOP_K}


def reference_scores(
    ctx: SubjectContext, targets: Targets, ridge: FittedMethod
) -> tuple[ChanceResult, SplitHalfResult]:
    """Chance (shuffled clip labels) and the split-half reproducibility of the ``ridge`` decoder."""
    s = ctx.settings
    space = targets.space
    _, x_test = ctx.windowed(targets.window)
    pred = space.transform(predict_windows(ridge.decoder, x_test))
    true = space.transform(targets.test)
    ch_acc, ch_r = chance_identification(pred, true, random_state=s.random_state)
    n = int(pred.shape[0])
    chance = ChanceResult(
        ctx.subject, targets.encoder, space.name, ch_acc, ch_r, n_permutations=100, n_clips=n,
        **_shuffled_topk(similarity_matrix(pred, true), 100, s.random_state),
        **{f"top{k}_chance": topk_chance(n, k) for k in TOP_K},
    )  # fmt: skip
    repeats = ctx.test_repeats(targets.window)
    half = split_half_scores(
        lambda x: space.transform(predict_windows(ridge.decoder, x)), repeats, top_k=TOP_K
    )
    split_half = SplitHalfResult(
        subject=ctx.subject, encoder=targets.encoder, method="ridge", space=space.name,
        id_acc=_finite_or_none(half["id_acc"]), pearson_r=_finite_or_none(half["pearson_r"]),
        # Halves of n_rep // 2 and n_rep - n_rep // 2 repeats, corrected to all n_rep of them.
        pearson_r_full=_finite_or_none(half["pearson_r_full"]), n_repeats=int(repeats.shape[1]),
        n_clips=n, **{f"top{k}_acc": _finite_or_none(half[f"top{k}_acc"]) for k in TOP_K},
    )  # fmt: skip
    return chance, split_half


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def leave_one_genre_out(
    method: DecoderMethod, ctx: SubjectContext, targets: Targets
) -> list[HeldOutGenreScore]:
    """Identification of each genre's test clips by ``method`` refitted without that genre's training clips.

    The refit sees nothing of the held-out genre: the context drops its training clips, so the encoding
    model, the voxel selection, the penalties and the metric space are all recomputed from the others.
    Each held-out clip is identified among the targets of all test clips.
    """
    train_genres = ctx.train_clips.genre.to_numpy().astype(str)
    test_genres = ctx.test_clips.genre.to_numpy().astype(str)
    _, x_test = ctx.windowed(targets.window)

    def fit_without(drop: np.ndarray):
        sub_ctx = ctx.without_train(drop)
        sub_t = ctx.targets_without_train(targets, drop)
        fitted = method.fit(sub_ctx, sub_t)
        return predict_windows(fitted.decoder, x_test), sub_t.space.transform

    scores = _logo(fit_without, train_genres, test_genres, targets.test)
    return [
        HeldOutGenreScore(ctx.subject, targets.encoder, method.name, g, acc, targets.space.name)
        for g, acc in scores.items()
    ]
