"""Nested selection scores: a method's training-CV score with every choice refitted in each outer fold.

A method chooses things on its training clips (voxels by an encoding model, parcels, alignment maps,
penalties, the metric space). A CV score read after those choices has seen its own held-out folds, so it
flatters the method that chooses most. The score that selects a method is therefore computed as
scikit-learn's nested CV does: the outer folds are the study's run-grouped folds over the training clips,
and in each one *the same code that fits the method* (``method.fit(ctx, targets)``, or ``prepare`` +
``fit_group`` for methods pooling subjects) runs on a context without the held-out clips
(:meth:`~brain2music.study.context.SubjectContext.without_train`), which recomputes the encoding model,
selection, penalties and metric space from the remaining clips and takes its kernel as a block of the
parent's. The held-out clips' window samples are then predicted and scored twice, averaged over folds:
by the per-dimension Pearson r (``train_cv_r``) and by the paper's identification accuracy among the
fold's held-out clips in the fold's metric space (``train_cv_id_acc``, what a method is chosen by).

Fold contexts carry no test data at all, and the per-subject methods of one embedding share each fold's
context (one encoding model and voxel selection per subject, embedding and fold); only the small states of
pooling methods outlive a fold.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass

import numpy as np

from brain2music.data.preprocess import window_average
from brain2music.errors import DataError
from brain2music.models import correlation_per_target, grouped_splits
from brain2music.study.context import SubjectContext, Targets
from brain2music.study.methods.base import flat

__all__ = [
    "MIN_RUNS",
    "FoldState",
    "NestedScore",
    "fold_context",
    "nested_group_scores",
    "nested_scores",
    "outer_folds",
    "reference_folds",
]


#: Fewest training runs every outer fold must keep for its inner cross-validation.
MIN_RUNS = 2


@dataclass
class NestedScore:
    """A method's nested training-CV scores and their cost.

    ``r``: mean over folds of the mean over dimensions of the held-out window samples' Pearson r;
    ``id_acc``: mean over folds of the paper's identification accuracy (Eq. 2–3) among each fold's
    held-out clips, their windows averaged, in the fold's metric space — the metric Table 2 reports, and
    the one a method is chosen by.
    """

    r: float
    seconds: float
    n_folds: int
    id_acc: float | None = None


@dataclass
class FoldState:
    """One outer fold of a pooling method for one subject: its prepared state and what scores the fold.

    ``held_rows``: rows of the subject's ``data.train`` held out of this fold; ``held_ids``: their clip
    ids; ``clip_ids``: every training clip id of the subject; ``held_targets``: their targets ``(n_held, r, dim)``.
    """

    state: object
    targets: Targets
    held_rows: np.ndarray
    held_ids: frozenset
    clip_ids: frozenset
    held_targets: np.ndarray
    prepare_seconds: float


def outer_folds(ctx: SubjectContext, fold_of_clip: dict[str, int] | None = None) -> list[np.ndarray]:
    """Held-out masks ``(n_train_clips,)`` of the outer folds over ``ctx``'s training clips.

    Default: the study's run-grouped folds (:func:`~brain2music.models.grouped_splits` on the runs,
    ``settings.cv`` folds). ``fold_of_clip`` ``{clip_id: fold}`` gives folds by clip id instead (the
    reference subject's runs, so every subject holds out the same clips); a clip it lacks stays in
    training in every fold.
    """
    n = int(ctx.train_keep.sum())
    if fold_of_clip is None:
        return [np.isin(np.arange(n), test) for _, test in grouped_splits(ctx.train_runs, ctx.settings.cv)]
    ids = ctx.train_clips.clip_id.astype(str).tolist()
    fold = np.array([fold_of_clip.get(c, -1) for c in ids])
    return [fold == k for k in sorted(set(fold_of_clip.values()))]


def reference_folds(clip_ids, runs, cv: int) -> dict[str, int]:
    """``{clip_id: fold}`` of the run-grouped folds of a (reference) subject's training clips."""
    ids = [str(c) for c in clip_ids]
    out = {}
    for k, (_, test) in enumerate(grouped_splits(np.asarray(runs), cv)):
        out.update({ids[i]: k for i in test})
    return out


def fold_context(ctx: SubjectContext, targets: Targets, held: np.ndarray) -> tuple[SubjectContext, Targets]:
    """The context and targets of one outer fold: ``ctx`` without the ``held`` clips and without test data.

    The inner folds are the study's ``cv``, or fewer where fewer runs remain.
    """
    fctx = ctx.without_train(held)
    d = fctx.data
    fctx.data = dataclasses.replace(
        d, test=d.test[:0], test_mean=d.test_mean[:0], clips=d.clips[d.clips.split != "test"]
    )
    runs_left = int(np.unique(fctx.train_runs).size)
    if runs_left < ctx.settings.cv and dataclasses.is_dataclass(ctx.settings):
        fctx.settings = dataclasses.replace(ctx.settings, cv=max(2, runs_left))
    return fctx, ctx.targets_without_train(targets, held)


def _held_out(y_held: np.ndarray, pred: np.ndarray, space) -> tuple[float, float]:
    """``(r, id_acc)`` of one fold: the mean over dimensions of the Pearson r on the held-out window
    samples, and the identification accuracy among the held-out clips in the fold's metric ``space``."""
    from brain2music.evaluate import identification_scores, similarity_matrix

    r = float(np.mean(correlation_per_target(flat(y_held), flat(pred))))
    sim = similarity_matrix(space.transform(pred), space.transform(y_held))
    return r, float(identification_scores(sim).mean())


def _nested(scores: list[tuple[float, float]], seconds: float) -> NestedScore:
    r, acc = np.mean(scores, axis=0)
    return NestedScore(float(r), seconds, len(scores), float(acc))


def _predict(decoder, x: np.ndarray) -> np.ndarray:
    return np.asarray(decoder.predict(flat(x))).reshape(x.shape[0], x.shape[1], -1)


def nested_scores(
    methods: list,
    ctx: SubjectContext,
    targets: Targets,
    *,
    group_methods: tuple = (),
    fold_of_clip: dict[str, int] | None = None,
) -> tuple[dict[str, NestedScore], dict[str, list[FoldState]]]:
    """Nested scores of the per-subject ``methods`` and the fold states of the pooling ``group_methods``.

    Per-subject methods are scored on ``ctx``'s own run-grouped folds; pooling methods are prepared on the
    folds of ``fold_of_clip`` (the reference subject's, by clip id). Where both give the same held-out
    clips, one fold context serves both. Returns ``({method: NestedScore}, {group method: [FoldState]})``.
    """
    own = outer_folds(ctx) if methods else []
    ref = outer_folds(ctx, fold_of_clip) if group_methods else []
    masks: list[np.ndarray] = []
    for m in own + ref:
        if not any(np.array_equal(m, u) for u in masks):
            masks.append(m)
    runs = ctx.train_runs
    fewest = min((np.unique(runs[~m]).size for m in masks), default=MIN_RUNS)
    if fewest < MIN_RUNS:
        warnings.warn(
            f"{ctx.subject}: an outer fold keeps {fewest} training run(s); a nested selection score needs "
            f"at least {MIN_RUNS} in every fold (for the inner cross-validation), so no method of this "
            "study has a selection score: choose one explicitly (reconstruct --method)",
            stacklevel=3,
        )
        return {}, {m.name: [] for m in group_methods}
    x_train, _ = ctx.windowed(targets.window)
    rows = np.flatnonzero(ctx.train_keep)
    ids = ctx.train_clips.clip_id.to_numpy().astype(str)
    all_ids = frozenset(ids)
    scores = {m.name: [] for m in methods}
    seconds = dict.fromkeys([m.name for m in methods] + [m.name for m in group_methods], 0.0)
    states: dict[str, list[FoldState]] = {m.name: [] for m in group_methods}
    unfit: dict[str, str] = {}
    for held in masks:
        if not held.any() or held.all():
            continue
        fctx, ft = fold_context(ctx, targets, held)
        if any(np.array_equal(held, m) for m in own):
            for method in (m for m in methods if m.name not in unfit):
                t0 = time.perf_counter()
                try:
                    fitted = method.fit(fctx, ft)
                except DataError as err:  # e.g. its own inner CVs need more runs than a fold keeps
                    unfit[method.name] = str(err)
                    continue
                pred = _predict(fitted.decoder, x_train[held])
                scores[method.name].append(_held_out(targets.train[held], pred, ft.space))
                seconds[method.name] += time.perf_counter() - t0
        if any(np.array_equal(held, m) for m in ref):
            for method in (m for m in group_methods if m.name not in unfit):
                t0 = time.perf_counter()
                try:
                    state = method.prepare(fctx, ft)
                except DataError as err:
                    unfit[method.name] = str(err)
                    states[method.name] = []
                    continue
                dt = time.perf_counter() - t0
                seconds[method.name] += dt
                states[method.name].append(
                    FoldState(state, ft, rows[held], frozenset(ids[held]), all_ids, targets.train[held], dt)
                )
        del fctx  # its windowed responses, encoding model and kernel block go with it
    for name, why in unfit.items():
        warnings.warn(
            f"{ctx.subject}: {name} cannot be refitted inside an outer fold ({why}), so it has no selection "
            "score: it is never chosen by training CV (choose it explicitly with reconstruct --method)",
            stacklevel=3,
        )
    out = {name: _nested(r, seconds[name]) for name, r in scores.items() if r and name not in unfit}
    return out, states


def nested_group_scores(method, folds: dict[str, list[FoldState]]) -> dict[str, NestedScore]:
    """Nested scores of a pooling method: ``fit_group`` on each outer fold's states of every subject.

    ``folds``: ``{subject: [FoldState]}``, the same folds (same held-out clip ids) for every subject.
    Each subject's score is the r of its own held-out clips, decoded by the fold's pooled decoder.
    """
    n_folds = _check_same_folds(folds)
    scores = {s: [] for s in folds}
    seconds = {s: sum(f.prepare_seconds for f in fs) for s, fs in folds.items()}
    for k in range(n_folds):
        t0 = time.perf_counter()
        try:
            fitted = method.fit_group({s: fs[k].state for s, fs in folds.items()},
                                      {s: fs[k].targets for s, fs in folds.items()})  # fmt: skip
        except DataError as err:  # e.g. its inner CVs need more runs than a fold keeps
            warnings.warn(
                f"{method.name} cannot be refitted inside outer fold {k} ({err}), so it has no selection "
                "score: it is never chosen by training CV (choose it explicitly with reconstruct --method)",
                stacklevel=2,
            )
            return {}
        for s, (sctx, fm) in fitted.items():
            fold = folds[s][k]
            x_held = window_average(sctx.data.train[fold.held_rows], fold.targets.window, tr=sctx.data.tr)
            scores[s].append(_held_out(fold.held_targets, _predict(fm.decoder, x_held), fold.targets.space))
        dt = (time.perf_counter() - t0) / max(1, len(fitted))
        for s in fitted:
            seconds[s] += dt
    return {s: _nested(r, seconds[s]) for s, r in scores.items() if r}


def _check_same_folds(folds: dict[str, list[FoldState]]) -> int:
    """The number of outer folds; raise unless every subject holds out the same shared clips in each."""
    counts = {s: len(f) for s, f in folds.items()}
    if len(set(counts.values())) != 1:
        raise DataError(f"the subjects' outer folds differ in number: {counts}")
    subjects = list(folds)
    for k in range(counts[subjects[0]]):
        shared = frozenset.intersection(*(folds[s][k].clip_ids for s in subjects))
        held = {s: folds[s][k].held_ids & shared for s in subjects}
        if len(set(held.values())) != 1:
            raise DataError(
                f"outer fold {k} holds out different shared clips in {subjects[0]} and another subject: "
                "the subjects' training runs differ; give the study's events (BIDS root) so the folds come "
                "from the reference subject's runs"
            )
    return counts[subjects[0]]
