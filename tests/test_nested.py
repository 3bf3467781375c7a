"""Nested selection scores: no choice a method makes may see the clips its selection score is read on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import brain2music.study.reproduce as rep
from brain2music.models import load_decoder
from brain2music.results import ResultsFolder
from brain2music.results.settings import StudySettings
from test_models_synth import design_clips, make_embeddings, make_subject

SUBJECTS = ["sub-001", "sub-002"]
METHODS = ["ridge", "ensemble", "encsel", "krr-rbf", "aligned"]
#: Precomputed targets under a name no encoder is registered as (metric space: standardized).
ENC = "noise"


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


def _study(tmp_path, monkeypatch, *, n_voxels: int, noise: float, brain_seed: int = 0):
    """Two synthetic subjects served in place of the data layer; returns (bids root, labels path, subs)."""
    clips = design_clips()
    ids = clips.clip_id.tolist()
    emb = make_embeddings(ids, r=1, dim=6, seed=brain_seed)
    subs, labels = {}, None
    for k, s in enumerate(SUBJECTS):
        subs[s], labels, _ = make_subject(
            emb, ids, subject=s, n_voxels=n_voxels, n_parcels=12, noise=noise, seed=k + 1
        )
    monkeypatch.setattr(rep, "load_subject_for_study", lambda source, s: subs[s])
    bids = tmp_path / "bids"
    for s in SUBJECTS:
        (bids / s).mkdir(parents=True)
    np.save(tmp_path / "labels.npy", labels)
    return bids, tmp_path / "labels.npy", subs, ids


def _reproduce(bids, labels, out, embeddings):
    return rep.reproduce(
        bids, out=out, encoders=[ENC], embeddings={ENC: embeddings}, parcels=labels, methods=METHODS,
        logo=False,
        n_permutations=20, n_bootstrap=50, verbose=False,
    )  # fmt: skip


def test_selection_scores_are_near_zero_on_random_targets(tmp_path, monkeypatch):
    """Gaussian targets unrelated to the brain: every nested score ~ 0, the inner ones of the selecting
    methods are inflated (their voxels were chosen on the folds that score them)."""
    bids, labels, _, ids = _study(tmp_path, monkeypatch, n_voxels=1200, noise=1.0)
    rng = np.random.default_rng(7)
    targets = rng.standard_normal((len(ids), 1, 16)).astype(np.float32)
    res = _reproduce(bids, labels, tmp_path / "out", {"clip_ids": ids, "embeddings": targets, "window": 15.0})
    rows = [r for r in res.rows if r.split == "test"]
    assert {r.method for r in rows} == set(METHODS)
    for r in rows:
        assert r.train_cv_r < 0.05, (r.subject, r.method, r.train_cv_r)
        assert r.train_cv_r_inner is not None and r.selection_seconds > 0
    inflated = {r.method: r.train_cv_r_inner for r in rows if r.method in ("encsel", "krr-rbf", "aligned")}
    for (s, m), inner in {(r.subject, r.method): r.train_cv_r_inner for r in rows}.items():
        if m in inflated:
            assert inner > 0.15, (s, m, inner)  # the test can fail: the old score is far from 0
    for s in res.summary:
        if s.split == "test":
            assert s.train_cv_r_mean < 0.05 and s.train_cv_r_inner_mean is not None
    for r in rows:
        assert abs(r.id_acc - 0.5) < 0.1  # nothing to find on the test clips either
        assert abs(r.train_cv_id_acc - 0.5) < 0.1  # nor on the held-out training clips


def _perturbed(subs, ids, targets, rng):
    """The subjects with their test responses and the embedding with its test rows drowned in noise."""
    out = {}
    for s, sub in subs.items():
        test = sub.test + 50.0 * rng.standard_normal(sub.test.shape).astype(np.float32)
        out[s] = dataclasses.replace(sub, test=test, test_mean=test.mean(axis=1))
    test_ids = set(design_clips().query("split == 'test'").clip_id)
    rows = np.array([c in test_ids for c in ids])
    noisy = targets.copy()
    noisy[rows] += 50.0 * rng.standard_normal(noisy[rows].shape).astype(np.float32)
    return out, noisy


def test_no_choice_reads_the_test_data(tmp_path, monkeypatch):
    """Large noise on the test responses and test embeddings changes no selection score, no train row and
    no saved decoder of any method."""
    bids, labels, subs, ids = _study(tmp_path, monkeypatch, n_voxels=240, noise=0.5)
    targets = make_embeddings(ids, r=1, dim=6, seed=0)
    emb = {"clip_ids": ids, "embeddings": targets, "window": 15.0}
    clean = _reproduce(bids, labels, tmp_path / "clean", emb)
    noisy_subs, noisy_targets = _perturbed(subs, ids, targets, np.random.default_rng(3))
    monkeypatch.setattr(rep, "load_subject_for_study", lambda source, s: noisy_subs[s])
    noisy = _reproduce(bids, labels, tmp_path / "noisy", emb | {"embeddings": noisy_targets})

    def key(rows):
        return {(r.subject, r.method, r.split): r for r in rows}

    a, b = key(clean.rows), key(noisy.rows)
    assert a.keys() == b.keys() and {k[1] for k in a} == set(METHODS)
    for k, ra in a.items():
        rb = b[k]
        assert ra.train_cv_r == rb.train_cv_r and ra.train_cv_r_inner == rb.train_cv_r_inner, k
        if k[2] == "train":
            assert (ra.id_acc, ra.pearson_r, ra.n_voxels) == (rb.id_acc, rb.pearson_r, rb.n_voxels), k
    # The test data did change what the test rows say (the perturbation is not a no-op).
    assert a[("sub-001", "ridge", "test")].id_acc != b[("sub-001", "ridge", "test")].id_acc
    for s in SUBJECTS:
        x = subs[s].windowed(15.0)[1].reshape(60, -1)  # the same, unperturbed, responses through both
        for m in METHODS:
            da = load_decoder(tmp_path / "clean" / "decoders" / ENC / m / f"{s}.joblib")
            db = load_decoder(tmp_path / "noisy" / "decoders" / ENC / m / f"{s}.joblib")
            np.testing.assert_array_equal(da.predict(x), db.predict(x), err_msg=f"{s} {m}")


def test_reconstruct_records_the_nested_selection(tmp_path, monkeypatch):
    """``select_method`` chooses by the nested score; a folder says whether its scores are nested."""
    bids, labels, _, ids = _study(tmp_path, monkeypatch, n_voxels=120, noise=0.5)
    emb = {"clip_ids": ids, "embeddings": make_embeddings(ids, r=1, dim=6, seed=0), "window": 15.0}
    res = rep.reproduce(
        bids, out=tmp_path / "out", encoders=[ENC], embeddings={ENC: emb}, parcels=labels,
        methods=["ridge", "encsel"],
        logo=False, n_permutations=20, n_bootstrap=50, verbose=False,
    )  # fmt: skip
    read = ResultsFolder(tmp_path / "out").read()
    assert read.selection_is_nested(ENC)
    test_rows = [s for s in read.summary if s.split == "test"]
    assert all(0.5 < s.train_cv_id_acc_mean <= 1.0 for s in test_rows)  # clips told apart in the folds
    best = max(test_rows, key=lambda s: (s.train_cv_id_acc_mean, s.train_cv_r_mean))
    assert read.select_method(ENC) == best.method
    from brain2music.study.reconstruct import _choose_method

    assert _choose_method(read, ResultsFolder(tmp_path / "out"), ENC, None) == (
        best.method,
        "nested_train_cv",
    )
    # A folder written before nesting (no train_cv_r_inner) still loads and is not called nested.
    old = res.to_dict()
    for row in old["rows"]:
        row.pop("train_cv_r_inner"), row.pop("selection_seconds"), row.pop("train_cv_id_acc")
    for row in old["summary"]:
        row.pop("train_cv_r_inner_mean"), row.pop("train_cv_id_acc_mean")
    loaded = type(res).from_dict(old)
    assert loaded.rows[0].train_cv_r_inner is None and not loaded.selection_is_nested(ENC)
    # ... and chooses by its training-CV r, the only score it has.
    by_r = max((s for s in loaded.summary if s.split == "test"), key=lambda s: s.train_cv_r_mean)
    assert loaded.select_method(ENC) == by_r.method


def test_outer_folds_hold_out_whole_runs_and_fold_contexts_hold_no_test_data():
    from brain2music.evaluate.space import MetricSpace
    from brain2music.study.context import SubjectContext, Targets
    from brain2music.study.nested import fold_context, outer_folds, reference_folds

    ids = design_clips().clip_id.tolist()
    emb = make_embeddings(ids, r=1, dim=4, seed=0)
    sub, _, _ = make_subject(emb, ids, n_voxels=24, n_parcels=2, noise=0.5)
    settings = StudySettings(source=None, encoders=[ENC], subjects=["sub-001"], methods=["ridge"], out=".")
    ctx = SubjectContext(sub, settings)
    folds = outer_folds(ctx)
    runs = ctx.train_runs
    assert len(folds) == 5 and np.array_equal(np.sum(folds, axis=0), np.ones(len(runs)))  # a partition
    for held in folds:
        assert not set(runs[held]) & set(runs[~held])  # whole runs
    # Folds by clip id from a reference's runs: the same clips whatever order the subject lists them in.
    by_id = reference_folds(ctx.train_clips.clip_id, runs, 5)
    assert [list(m) for m in outer_folds(ctx, by_id)] == [list(m) for m in folds]
    train = emb[: len(runs)]
    targets = Targets(ENC, 15.0, train, emb[len(runs) :], MetricSpace.fit("standardized", train))
    fctx, ft = fold_context(ctx, targets, folds[0])
    assert fctx.data.test.shape[0] == 0 and fctx.data.test_mean.shape[0] == 0 and len(fctx.test_clips) == 0
    assert fctx.windowed(15.0)[1].shape[0] == 0
    assert ft.train.shape[0] == int((~folds[0]).sum()) == fctx.windowed(15.0)[0].shape[0]
    assert fctx.settings.cv == 5  # 9-10 runs left: the study's inner folds
    few = SubjectContext(dataclasses.replace(sub, train_runs=(runs - 1) % 6 + 1), settings)  # 6 runs
    # 6 runs in 5 folds: one fold holds out 2 runs, so its inner CV has 4 folds.
    inner = [fold_context(few, targets, held)[0].settings.cv for held in outer_folds(few)]
    assert sorted(inner) == [4, 5, 5, 5, 5]


def test_too_few_runs_for_folds_inside_folds_give_no_selection_score_not_the_inflated_one():
    from brain2music.evaluate.space import MetricSpace
    from brain2music.study.context import SubjectContext, Targets
    from brain2music.study.nested import nested_scores

    ids = design_clips().clip_id.tolist()
    emb = make_embeddings(ids, r=1, dim=4, seed=0)
    sub, _, _ = make_subject(emb, ids, n_voxels=24, n_parcels=2, noise=0.5)
    settings = rep.StudySettings(
        source=None, encoders=[ENC], subjects=["sub-001"], methods=["ridge"], out=".", cv=2
    )
    runs = np.asarray(sub.train_runs)
    two = SubjectContext(dataclasses.replace(sub, train_runs=(runs - 1) % 2 + 1), settings)  # 2 runs
    train = emb[: len(runs)]
    targets = Targets(ENC, 15.0, train, emb[len(runs) :], MetricSpace.fit("standardized", train))
    with pytest.warns(UserWarning, match="keeps 1 training run"):
        scores, states = nested_scores([rep.get_method("ridge")], two, targets)
    assert scores == {} and states == {}
    from brain2music.results import MethodResult

    row = MethodResult("sub-001", ENC, "ridge", "test", "standardized", 0.9, 0.5, train_cv_r=0.4)
    rep._set_nested([row], None)
    assert row.train_cv_r is None and row.train_cv_r_inner == 0.4  # the old score never stands in


def test_a_method_that_cannot_be_refitted_in_a_fold_gets_no_selection_score():
    from brain2music.errors import DataError
    from brain2music.evaluate.space import MetricSpace
    from brain2music.study.context import SubjectContext, Targets
    from brain2music.study.methods.base import DecoderMethod
    from brain2music.study.nested import nested_scores

    class NeedsAllRuns(DecoderMethod):  # its own inner CVs need more runs than an outer fold keeps
        name = "needs-all-runs"

        def fit(self, ctx, targets):
            raise DataError("too few groups")

    ids = design_clips().clip_id.tolist()
    emb = make_embeddings(ids, r=1, dim=4, seed=0)
    sub, _, _ = make_subject(emb, ids, n_voxels=24, n_parcels=2, noise=0.5)
    settings = rep.StudySettings(
        source=None, encoders=[ENC], subjects=["sub-001"], methods=["ridge"], out=".", alphas=(1.0, 100.0)
    )
    ctx = SubjectContext(sub, settings)
    n = len(sub.train_runs)
    targets = Targets(ENC, 15.0, emb[:n], emb[n:], MetricSpace.fit("standardized", emb[:n]))
    with pytest.warns(UserWarning, match="needs-all-runs cannot be refitted"):
        scores, _ = nested_scores([rep.get_method("ridge"), NeedsAllRuns()], ctx, targets)
    assert set(scores) == {"ridge"} and np.isfinite(scores["ridge"].r)
