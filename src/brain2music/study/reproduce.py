"""``reproduce``: the paper's decoding study end to end, plus the peers' improvements, into a results folder.

For each subject and each embedding:

1. load the subject's responses (:func:`~brain2music.study.context.load_subject_for_study`) and build
   its :class:`~brain2music.study.context.SubjectContext`;
2. fit the encoding model (FIR-delayed embedding → every voxel), test it on the test clips (permutation
   test + Benjamini–Hochberg FDR, repeat-based noise ceiling) and save the map;
3. ``fit_and_score`` every decoder method of the registry (:mod:`brain2music.study.methods`): fit on the
   training clips, score the test clips (responses averaged over repeats) with the paper's identification
   accuracy in the embedding's metric space, a bootstrap CI and a permutation p-value;
4. add Chance (shuffled labels), the split-half reproducibility of ``ridge`` and leave-one-genre-out;

then fit the methods that pool subjects (``aligned``), test every pair of methods on the same clips,
summarise over subjects, print Table 2 and write the folder (``docs/results_layout.md``).
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from brain2music.errors import ConfigError, DataError, DataFileNotFoundError
from brain2music.evaluate.space import MetricSpace
from brain2music.evaluate.stats import ci_list, group_p_value, paired_test, subject_sd
from brain2music.results import (
    EncoderInfo,
    EncodingResult,
    PairedTest,
    ResultsFolder,
    StudyResults,
    SummaryRow,
)
from brain2music.results.settings import StudySettings
from brain2music.study.context import (
    SubjectContext,
    Targets,
    check_study_inputs,
    load_subject_for_study,
    subject_parcels,
)
from brain2music.study.methods import GroupMethod, get_method
from brain2music.study.nested import nested_group_scores, nested_scores, reference_folds
from brain2music.study.scoring import (
    MethodOutcome,
    fit_and_score,
    leave_one_genre_out,
    reference_scores,
    score_fitted,
)
from brain2music.study.settings import check_sources, embedding_sources, is_group, study_settings

__all__ = ["reproduce", "study_subject"]


def reproduce(
    settings: StudySettings | str | os.PathLike,
    /,
    *,
    embeddings: Mapping[str, Any] | Sequence[str] | None = None,
    verbose: bool = True,
    **options,
) -> StudyResults:
    """Run the decoding study, write the results folder ``settings.out`` and return its :class:`StudyResults`.

    Parameters
    ----------
    settings : a :class:`~brain2music.results.settings.StudySettings`
        (:func:`~brain2music.study.settings.study_settings` builds one), or the BIDS root of a
        ds003720-like dataset with the options as keywords (``out=`` required; every option and its
        default: :mod:`brain2music.study.settings`), which build the same settings.
    embeddings : precomputed embeddings per name (any name; no registry entry needed): a path to an
        embeddings ``.npz`` (:mod:`brain2music.embeddings.format`: ``clip_ids``, ``embeddings``, optionally
        ``window`` and ``space``), an :class:`~brain2music.embeddings.EmbeddingSet`, or a dict of those
        keys; or ``["name=path", ...]``. Others are computed from the stimuli.
    verbose : progress bars (stderr) and the printed table (stdout).

    The results folder has one writer at a time: a second run into it is refused at once.
    """
    if isinstance(settings, StudySettings):
        if options:
            raise ConfigError(
                f"reproduce(settings, ...): options {', '.join(sorted(options))} given beside a StudySettings; "
                "build the settings with them (study_settings or dataclasses.replace)"
            )
        check_sources(settings.encoders, embedding_sources(embeddings), settings.stimuli)
    else:
        settings = study_settings(settings, embeddings=embeddings, **options)
    with ResultsFolder(settings.out).writing("brain2music reproduce"):
        return _run_study(settings, embedding_sources(embeddings), verbose)


def _run_study(settings: StudySettings, given: dict, verbose: bool) -> StudyResults:
    """Every subject, the methods that pool subjects, the paired tests and the summary; the folder written."""
    from brain2music.results.table import format_table

    t_start = time.time()
    # Every subject's inputs are checked before the results folder is touched.
    check_study_inputs(settings.source, settings.subjects, settings.parcels)
    folder = ResultsFolder(settings.out)
    settings.out.mkdir(parents=True, exist_ok=True)
    results = StudyResults(config=settings, subjects=list(settings.subjects), methods=list(settings.methods))
    sets = {enc: _load_embeddings(enc, given.get(enc), settings, verbose) for enc in settings.encoders}
    for enc, es in sets.items():
        results.encoders[enc] = EncoderInfo(
            float(es.window), int(es.embeddings.shape[1]), int(es.embeddings.shape[2]),
            folder.write_embeddings(enc, es), settings.metric_spaces[enc],
            options={k: v for k, v in settings.encoder_options.get(enc, {}).items() if k != "device"}
            if enc not in given else {},
        )  # fmt: skip
    outcomes = _run_subjects(settings, sets, folder, verbose)
    scores = {}
    for o in outcomes:
        results.add(*o.records)
        scores.update(o.scores)
    for m in (m for m in settings.methods if is_group(m)):
        for enc in settings.encoders:
            states = {o.subject: o.group_states[(m, enc)] for o in outcomes}
            folds = {o.subject: o.nested_states.pop((m, enc), []) for o in outcomes}
            _fit_group(folder, results, scores, get_method(m), states, folds)
    results.paired_tests = _paired_tests(scores, settings)
    results.summary = _summarise(results, scores, settings)
    results.elapsed_s = round(time.time() - t_start, 1)
    folder.write(results)
    if verbose:
        print(format_table(results))
    return results


# ------------------------------------------------------------------------------------------- the steps
@dataclass
class SubjectOutcome:
    """What :func:`study_subject` returns: result records, the test predictions per (subject, encoder,
    method) and the states of the methods that pool subjects, keyed by (method, encoder)."""

    subject: str
    records: list = field(default_factory=list)
    scores: dict = field(default_factory=dict)
    group_states: dict = field(default_factory=dict)
    #: ``{(method, encoder): [FoldState]}``: the outer folds of the methods that pool subjects.
    nested_states: dict = field(default_factory=dict)


def study_subject(
    settings: StudySettings, subject: str, embeddings: dict, folder: ResultsFolder
) -> SubjectOutcome:
    """Everything per subject: load, then for every embedding :func:`_study_embedding`.

    Independent of the other subjects (it writes only this subject's arrays), so subjects may run in
    parallel.
    """
    ctx = _context(settings, subject)
    windows = [float(embeddings[e].window) for e in settings.encoders]
    # A window read by several embeddings keeps its kernel factorisations for the later ones.
    ctx.keep_factors = {w for w in windows if windows.count(w) > 1}
    outcome = SubjectOutcome(subject)
    fold_of_clip = _reference_folds(settings)
    for k, enc in enumerate(settings.encoders):
        targets = _targets(ctx, embeddings[enc], settings.metric_spaces[enc])
        _study_embedding(folder, outcome, ctx, targets, settings, fold_of_clip)
        for m in (m for m in settings.methods if is_group(m)):
            outcome.group_states[(m, enc)] = (get_method(m).prepare(ctx, targets), targets)
        later = settings.encoders[k + 1 :]
        ctx.forget(window=None if any(embeddings[e].window == targets.window for e in later) else targets.window,
                   encoder=enc)  # fmt: skip
    return outcome


def _run_subjects(settings: StudySettings, sets: dict, folder: ResultsFolder, verbose: bool) -> list:
    """:func:`study_subject` for every subject, in subject order: here, or one Dask task per subject."""
    from tqdm import tqdm

    subjects = settings.subjects
    bar = tqdm(total=len(subjects), desc="reproduce", disable=not verbose, file=sys.stderr)
    with bar:
        if settings.scheduler is None:
            return [_tick(bar, study_subject(settings, s, sets, folder)) for s in subjects]
        if settings.scheduler == "threads":
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(settings.workers or os.cpu_count() or 1) as pool:
                futures = [pool.submit(study_subject, settings, s, sets, folder) for s in subjects]
                return [_tick(bar, f.result()) for f in futures]
        import distributed

        from brain2music.embeddings.batch import dask_client

        with dask_client(settings.scheduler, settings.workers) as client:
            [shared] = client.scatter([sets], broadcast=True)
            futures = [
                client.submit(study_subject, settings, s, shared, folder, pure=False) for s in subjects
            ]
            for _ in distributed.as_completed(futures):
                bar.update(1)
            return client.gather(futures)


def _tick(bar, value):
    bar.update(1)
    return value


def _study_embedding(
    folder, outcome: SubjectOutcome, ctx: SubjectContext, targets: Targets, settings, fold_of_clip=None
) -> None:
    """Encoding map, every per-subject method with its nested selection score, Chance, split-half and
    leave-one-genre-out of one embedding."""
    outcome.records.append(_encoding_maps(folder, ctx, targets, settings))
    fitted, rows = {}, {}
    for name in settings.methods:
        if not is_group(name):
            scored = fit_and_score(get_method(name), ctx, targets)
            fitted[name] = _record(folder, outcome.records, outcome.scores, ctx, targets, scored)
            rows[name] = (scored.test, scored.train)
    single = [get_method(m) for m in settings.methods if not is_group(m)]
    group = tuple(get_method(m) for m in settings.methods if is_group(m))
    nested, states = nested_scores(single, ctx, targets, group_methods=group, fold_of_clip=fold_of_clip)
    for name, pair in rows.items():
        _set_nested(pair, nested.get(name))
    for name, folds in states.items():
        outcome.nested_states[(name, targets.encoder)] = folds
    # Chance and the split-half reproducibility use the paper's decoder, whatever the methods asked for.
    ridge = fitted.get("ridge") or get_method("ridge").fit(ctx, targets)
    outcome.records += reference_scores(ctx, targets, ridge)
    if settings.logo:
        outcome.records += leave_one_genre_out(get_method(settings.logo_method), ctx, targets)


def _fit_group(folder, results, scores, method: GroupMethod, states: dict, folds=None) -> None:
    ctxs = {s: st for s, (st, _) in states.items()}
    targets = {s: t for s, (_, t) in states.items()}
    records, rows = [], {}
    for subject, (ctx, fitted) in method.fit_group(ctxs, targets).items():
        outcome = score_fitted(method.name, ctx, targets[subject], fitted)
        _record(folder, records, scores, ctx, targets[subject], outcome)
        rows[subject] = (outcome.test, outcome.train)
    nested = nested_group_scores(method, folds) if folds else {}
    for subject, pair in rows.items():
        _set_nested(pair, nested.get(subject))
    results.add(*records)


def _set_nested(rows, score) -> None:
    """Record the nested selection score on a method's test and train rows; the old one as ``_inner``.

    Without a nested score (too few training runs for folds inside folds) the rows get none: the score
    read after the method's own choices never stands in for it.
    """
    for row in rows:
        row.train_cv_r_inner = row.train_cv_r
        row.train_cv_r = None if score is None else score.r
        row.train_cv_id_acc = None if score is None else score.id_acc
        row.selection_seconds = None if score is None else round(float(score.seconds), 3)


def _reference_folds(settings: StudySettings) -> dict[str, int] | None:
    """``{clip_id: fold}`` of the reference subject's run-grouped folds, when a method pools subjects.

    Read from the reference's events (the study's BIDS root), so every subject's process holds out the
    same clips without loading the reference's responses. ``None`` (each subject's own runs; the group
    fit checks that the folds agree) when the BIDS root has no events of the reference.
    """
    if not any(is_group(m) for m in settings.methods):
        return None
    from brain2music.embeddings.clips import experiment_clips

    try:
        clips = experiment_clips(settings.source.bids_root, subjects=[settings.reference])
    except DataFileNotFoundError:
        return None
    train = clips[clips.split == "train"]
    return reference_folds(train.clip_id, train.run, settings.cv)


def _record(folder, records: list, scores: dict, ctx, targets, outcome: MethodOutcome):
    """Collect an outcome's records, write its predictions and decoder; return the fitted method."""
    name = outcome.test.method
    records += [outcome.test, outcome.train, *outcome.per_genre, *outcome.fitted.records]
    folder.write_predictions(outcome.predictions)
    folder.write_decoder(
        targets.encoder, name, ctx.subject, outcome.fitted.saved,
        config={"subject": ctx.subject, "encoder": targets.encoder, "method": name, "window": targets.window,
                "r": targets.r, "space": targets.space.name,
                "input": "responses averaged over each embedding window, (n_samples, n_voxels) of the subject"},
    )  # fmt: skip
    scores[(ctx.subject, targets.encoder, name)] = outcome.predictions  # for paired tests and the summary
    return outcome.fitted


def _encoding_maps(folder: ResultsFolder, ctx: SubjectContext, targets: Targets, settings) -> EncodingResult:
    from brain2music.evaluate import response_noise_ceiling
    from brain2music.models import fdr_bh, permutation_test

    sub = ctx.data
    model = ctx.encoding(targets)
    selected = ctx.selected_voxels(targets)
    predicted = model.predict(targets.test, sub.test_mean.shape[1])
    test_r, p = permutation_test(
        predicted, sub.test_mean, n_permutations=settings.n_permutations, random_state=settings.random_state
    )
    q = fdr_bh(p)
    significant = q < settings.fdr_alpha
    ceiling = response_noise_ceiling(sub.test) if sub.test.shape[1] >= 2 else np.full(sub.n_voxels, np.nan)
    arrays = {
        "test_r": test_r.astype(np.float32), "p_permutation": p.astype(np.float32), "q_fdr": q.astype(np.float32),
        "significant": significant, "noise_ceiling": ceiling.astype(np.float32), "cv_r": model.cv_r_.astype(np.float32),
        "selected": selected.astype(np.int64), "voxel_indices": np.asarray(sub.voxel_indices),
    }  # fmt: skip
    image = sub.to_image(test_r) if sub.mask is not None and sub.affine is not None else None
    npz_rel, map_rel = folder.write_encoding(targets.encoder, sub.subject, arrays, image)
    _write_encoding_model(folder, model, sub, targets.encoder, settings)
    finite = np.isfinite(ceiling) & (ceiling > 0)
    # The voxels chosen by training CV only: a ratio over test-significant voxels would select by the
    # same test r it averages.
    good = np.zeros(sub.n_voxels, dtype=bool)
    good[selected] = True
    good &= finite
    return EncodingResult(
        subject=sub.subject, encoder=targets.encoder, map=map_rel, npz=npz_rel, n_voxels=int(sub.n_voxels),
        n_significant=int(significant.sum()), fdr_alpha=float(settings.fdr_alpha),
        n_permutations=int(settings.n_permutations), mean_test_r=float(np.mean(test_r)),
        max_test_r=float(np.max(test_r)),
        mean_noise_ceiling=float(np.nanmean(ceiling)) if np.isfinite(ceiling).any() else None,
        n_selected=int(selected.size), mean_cv_r=float(np.mean(model.cv_r_)),
        mean_test_r_over_ceiling_selected=float(np.mean(test_r[good] / ceiling[good])) if good.any() else None,
    )  # fmt: skip


def _write_encoding_model(folder: ResultsFolder, model, sub, encoder: str, settings) -> None:
    """The encoding model's map on its best voxels by training CV, for ``reconstruct --score encoding``."""
    from brain2music.models import select_voxels
    from brain2music.reconstruct.selection import SCORER_VOXELS, encoding_model_arrays

    voxels = select_voxels(model.cv_r_, n_top=SCORER_VOXELS, threshold=settings.encsel_threshold)
    folder.write_encoding_model(encoder, sub.subject, encoding_model_arrays(model, sub, voxels=voxels))


def _paired_tests(scores: dict, settings: StudySettings) -> list[PairedTest]:
    """Every pair of methods on the same test clips, per subject and for the mean over subjects."""
    out = []
    kw = {"n_permutations": settings.n_permutations_id, "n_bootstrap": settings.n_bootstrap,
          "random_state": settings.random_state}  # fmt: skip
    for enc in settings.encoders:
        methods = [m for m in settings.methods if any(k[1:] == (enc, m) for k in scores)]
        for a, b in itertools.combinations(methods, 2):
            subjects = [s for s in settings.subjects if (s, enc, a) in scores and (s, enc, b) in scores]
            if not subjects:
                continue
            pa = [scores[(s, enc, a)] for s in subjects]
            pb = [scores[(s, enc, b)] for s in subjects]
            space = pa[0].space.name
            for s, x, y in zip(subjects, pa, pb):
                t = paired_test(x.clip_scores, y.clip_scores, **kw)
                out.append(PairedTest(enc, a, b, s, space, t.diff, ci_list(t.ci), t.p_value, t.n))
            if len(subjects) > 1 and all(list(x.clip_ids) == list(pa[0].clip_ids) for x in pa + pb):
                t = paired_test(
                    np.stack([x.clip_scores for x in pa]), np.stack([y.clip_scores for y in pb]), **kw
                )
                out.append(PairedTest(enc, a, b, "mean", space, t.diff, ci_list(t.ci), t.p_value, t.n))
    return out


def _summarise(results: StudyResults, scores: dict, settings: StudySettings) -> list[SummaryRow]:
    """Mean ± sd (ddof=1) over subjects, hierarchical bootstrap CI (with its n) and the group
    permutation p-value, of the pairwise id acc and of the top-k accuracies."""
    out = []
    keys = dict.fromkeys((r.encoder, r.method, r.split) for r in results.rows)
    for enc, method, split in keys:
        rows = [r for r in results.rows if (r.encoder, r.method, r.split) == (enc, method, split)]
        accs = [r.id_acc for r in rows]
        test = {}
        if split == "test":
            test = _test_summary([scores[(r.subject, enc, method)] for r in rows], settings)
        cv = [r.train_cv_r for r in rows if r.train_cv_r is not None]
        inner = [r.train_cv_r_inner for r in rows if r.train_cv_r_inner is not None]
        cv_acc = [r.train_cv_id_acc for r in rows if r.train_cv_id_acc is not None]
        out.append(
            SummaryRow(
                encoder=enc, method=method, split=split, space=rows[0].space,
                id_acc_mean=float(np.mean(accs)), id_acc_sd=subject_sd(accs),
                id_acc_ci=test.pop("id_acc_ci", None), id_acc_p=test.pop("id_acc_p", None),
                r_mean=float(np.mean([r.pearson_r for r in rows])), r_sd=subject_sd([r.pearson_r for r in rows]),
                train_cv_r_mean=float(np.mean(cv)) if cv else None, n_subjects=len(rows),
                n_clips=test.pop("n_clips", int(rows[0].n_clips)), **test,
                train_cv_r_inner_mean=float(np.mean(inner)) if inner else None,
                train_cv_id_acc_mean=float(np.mean(cv_acc)) if cv_acc else None,
            )
        )  # fmt: skip
    return out


def _test_summary(preds: list, settings: StudySettings) -> dict:
    """The test-split fields of a :class:`SummaryRow` from every subject's :class:`Predictions`."""
    from brain2music.evaluate import topk_scores
    from brain2music.evaluate.stats import MIN_SUBJECTS_RESAMPLED, hierarchical_bootstrap_ci
    from brain2music.study.scoring import TOP_K

    same = all(list(p.clip_ids) == list(preds[0].clip_ids) for p in preds)
    sizes = sorted({len(p.clip_ids) for p in preds})
    kw = {"n_permutations": settings.n_permutations_id, "random_state": settings.random_state}
    sims = [p.similarity for p in preds]
    per_clip = {"id_acc": (None, [p.clip_scores for p in preds])}
    per_clip.update({f"top{k}_acc": (k, [topk_scores(C, k) for C in sims]) for k in TOP_K})
    # One clip per subject leaves nothing to resample: no interval rather than [x, x].
    resample = max(sizes) > 1
    out = {"n_clips": sizes[0]}  # the fewest test clips of a subject
    for key, (k, parts) in per_clip.items():
        ci = hierarchical_bootstrap_ci(
            parts, same_clips=same, n_bootstrap=settings.n_bootstrap, random_state=settings.random_state
        )
        out[f"{key}_ci"] = ci_list(ci) if resample else None
        out[f"{key}_p"] = group_p_value(sims, top_k=k, **kw)
        if k is not None:
            means = [float(np.mean(x)) for x in parts]
            out[f"{key}_mean"], out[f"{key}_sd"] = float(np.mean(means)), subject_sd(means)
    if resample:
        out["ci_resamples"] = "clips, subjects" if len(preds) >= MIN_SUBJECTS_RESAMPLED else "clips"
    return out


# ------------------------------------------------------------------------------------------ preparation
def _context(settings: StudySettings, subject: str) -> SubjectContext:
    sub = load_subject_for_study(settings.source, subject)
    needs_parcels = any("parcels" in get_method(m).needs for m in settings.methods)
    labels, names = subject_parcels(settings.parcels, sub) if needs_parcels else (None, None)
    return SubjectContext(sub, settings, parcels=labels, parcel_names=names)


def _targets(ctx: SubjectContext, emb, space: str) -> Targets:
    """The embedding's targets of the subject's clips, with the metric space fitted on the training clips."""
    enc = emb.encoder
    train = emb.select(ctx.train_clips.clip_id)
    test = emb.select(ctx.test_clips.clip_id)
    x_train, _ = ctx.windowed(emb.window)
    if x_train.shape[1] != train.shape[1]:
        raise DataError(
            f"{enc} embeddings have r={train.shape[1]} windows per clip but a {emb.window}-s window over the "
            f"{ctx.data.train.shape[1]} TRs of {ctx.subject} gives {x_train.shape[1]}"
        )
    return Targets(enc, float(emb.window), train, test, MetricSpace.fit(space, train))


def _load_embeddings(enc: str, value, settings: StudySettings, verbose: bool):
    """The :class:`~brain2music.embeddings.EmbeddingSet` of ``enc``: precomputed (path / set / dict) or computed.

    A precomputed set needs no registry entry; without a ``window`` it is inferred from ``r`` and the
    first subject's clip grid where that is unambiguous (:func:`brain2music.windows.infer_window`).
    """
    from brain2music.embeddings import EmbeddingSet, embed_folder, load_embeddings
    from brain2music.embeddings.format import check_embedding_arrays, check_file_space, check_window

    if value is None:
        from brain2music.embeddings.registry import get_encoder

        encoder = get_encoder(enc, **settings.encoder_options.get(enc, {}))
        es = embed_folder(
            settings.stimuli, encoder, bids=settings.source.bids_root, subjects=settings.subjects,
            cache_dir=settings.cache_dir, progress=verbose,
        )  # fmt: skip
    elif isinstance(value, (str, os.PathLike)):
        es = load_embeddings(value)
    elif isinstance(value, EmbeddingSet):
        es = value
    else:
        if not isinstance(value, Mapping) or not {"clip_ids", "embeddings"} <= set(value):
            raise ConfigError(
                f"embeddings of {enc!r}: expected a path, an EmbeddingSet or a mapping with 'clip_ids' and "
                f"'embeddings'; found {type(value).__name__}"
                + (f" with keys {sorted(value)}" if isinstance(value, Mapping) else "")
            )
        config = dict(value.get("config") or {})
        for key in ("window", "space"):
            if value.get(key) is not None:
                config[key] = value[key]
        es = EmbeddingSet(value["clip_ids"], value["embeddings"], config)
    where = es.path or f"embeddings of {enc!r}"
    ids, emb = check_embedding_arrays(es.clip_ids, es.embeddings, where=where)
    check_window(es.config.get("window"), where=where)
    check_file_space(es.config.get("space"), where=where)
    # A file's own encoder name may differ from the name it is used under.
    config = dict(es.config) | {"encoder": enc}
    if config.get("window") is None:
        config["window"] = _inferred_window(emb.shape[1], settings, where)
    return EmbeddingSet(ids, emb, config, es.version, es.skipped, es.path)


def _inferred_window(r: int, settings: StudySettings, where: str) -> float:
    """The window of ``r`` windows per clip on the first subject's clip grid, or a DataError naming the key."""
    from brain2music.study.context import subject_grid
    from brain2music.windows import infer_window

    tr, n_trs = subject_grid(settings.source, settings.subjects[0])
    window = infer_window(r, n_trs=n_trs, tr=tr)
    if window is None:
        raise DataError(
            f"{where}: no key 'window' (seconds per embedding window), and r={r} windows per clip does not "
            f"say it on this study's grid of {n_trs} volumes of {tr} s per clip (only r={n_trs}, one TR each, "
            f"or r=1, the whole clip, do); add window=SECONDS to the file"
        )
    return window
