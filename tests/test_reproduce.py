"""``reproduce`` end to end on synthetic subjects (known answers) and the results-folder contract."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import brain2music.study.reproduce as rep
from brain2music.cli import main
from brain2music.embeddings import EmbeddingSet
from brain2music.errors import ConfigError, DataError
from brain2music.models import load_decoder
from brain2music.results import ResultsFolder
from brain2music.study.methods import DEFAULT_METHODS
from brain2music.study.settings import study_settings
from test_models_synth import design_clips, make_embeddings, make_subject

METHODS = list(DEFAULT_METHODS)

SUBJECTS = ["sub-001", "sub-002"]


@pytest.fixture(autouse=True)
def _one_thread():
    # The test machine is shared; BLAS thread oversubscription makes small solves 20x slower.
    with threadpool_limits(1):
        yield


@pytest.fixture
def study(tmp_path, monkeypatch):
    """Two synthetic subjects (same stimuli, different voxel maps) served in place of the data layer."""
    clips = design_clips()
    ids = clips.clip_id.tolist()
    emb = make_embeddings(ids, r=1, dim=6, seed=0)
    subs, labels = {}, None
    for k, s in enumerate(SUBJECTS):
        subs[s], labels, _ = make_subject(
            emb, ids, subject=s, n_voxels=120, n_parcels=12, noise=0.5, seed=k + 1
        )
    monkeypatch.setattr(rep, "load_subject_for_study", lambda source, s: subs[s])
    bids = tmp_path / "bids"
    for s in SUBJECTS:
        (bids / s).mkdir(parents=True)
    EmbeddingSet(np.array(ids), emb, {"encoder": "acoustic", "window": 15.0}).save(tmp_path / "emb.npz")
    np.save(tmp_path / "labels.npy", labels)
    return {
        "bids": bids,
        "emb": tmp_path / "emb.npz",
        "labels": tmp_path / "labels.npy",
        "ids": ids,
        "embeddings": emb,
        "subs": subs,
    }


def _run(study, out, **kw):
    kw.setdefault("n_permutations", 200)
    return rep.reproduce(
        study["bids"],
        out=out,
        embeddings={"acoustic": study["emb"]},
        parcels=study["labels"],
        verbose=False,
        **kw,
    )


def test_reproduce_writes_the_contract_and_decodes(study, tmp_path):
    out = tmp_path / "results"
    res = _run(study, out)
    on_disk = json.loads((out / "results.json").read_text())
    for key in ("schema_version", "version", "config", "subjects", "encoders", "methods", "rows", "chance",
                "split_half", "summary", "per_genre", "leave_one_genre_out", "paired_tests", "ensemble_parcels",
                "encoding"):  # fmt: skip
        assert key in on_disk
    assert "oracle" not in on_disk
    assert ResultsFolder(out).read().to_dict() == on_disk  # the one reader reads what the one writer wrote
    assert on_disk["methods"] == METHODS
    assert on_disk["subjects"] == SUBJECTS
    assert on_disk["config"]["bids_root"] and on_disk["config"]["source"]["kind"] == "bids"
    assert on_disk["encoders"]["acoustic"] == {
        "window": 15.0, "r": 1, "dim": 6, "embeddings": "embeddings/acoustic.npz", "space": "standardized",
        "options": {},
    }  # fmt: skip
    rows = {(r.subject, r.method, r.split): r for r in res.rows}
    assert len(rows) == len(SUBJECTS) * len(METHODS) * 2
    for s in SUBJECTS:
        for m in METHODS:
            row = rows[(s, m, "test")]
            # 0.5-sd noise on 20 tuned voxels: every method identifies the 60 test clips almost perfectly.
            assert row.id_acc > 0.95, (s, m)
            assert row.space == "standardized" and row.n_clips == 60
            assert row.id_acc_ci[0] <= row.id_acc <= row.id_acc_ci[1]
            assert row.id_acc_p == pytest.approx(1 / 1001)  # no shuffle of 1000 does as well
            assert row.train_cv_r > 0.5
    for c in res.chance:
        assert c.id_acc == pytest.approx(0.5, abs=0.05)
    for h in res.split_half:
        # Spearman-Brown from 2 to 4 repeats raises the split-half r.
        assert h.id_acc > 0.95 and h.n_repeats == 4 and h.pearson_r < h.pearson_r_full < 1.0
        assert h.pearson_r_full == pytest.approx(2 * h.pearson_r / (1 + h.pearson_r))
    # The ensemble keeps the parcels the synthetic brain made responsive (3 and 7) on top.
    for e in res.ensemble_parcels:
        assert set(e.parcels[:2]) == {3, 7}
    assert {g.genre for g in res.leave_one_genre_out} == set(design_clips().genre)
    assert len(res.per_genre) == len(SUBJECTS) * len(METHODS) * 10
    summary = {(s.method, s.split): s for s in res.summary}
    ridge = summary[("ridge", "test")]
    accs = [rows[(s, "ridge", "test")].id_acc for s in SUBJECTS]
    assert ridge.n_subjects == 2 and ridge.id_acc_sd == pytest.approx(
        np.std(accs, ddof=1)
    )  # one sd convention
    assert ridge.id_acc_ci[0] <= ridge.id_acc_mean <= ridge.id_acc_ci[1] and ridge.id_acc_p < 0.01
    # Paired tests: every pair of methods, per subject and for the mean over subjects.
    pairs = {(t.method_a, t.method_b, t.subject) for t in res.paired_tests}
    assert ("ridge", "encsel", "mean") in pairs and ("ridge", "encsel", "sub-001") in pairs
    assert len(pairs) == 10 * 3
    # Encoding: the 16 responsive voxels (parcels 3 and 7) are significant, with an NIfTI map.
    for e in res.encoding:
        assert (out / e.map).is_file() and (out / e.npz).is_file()
        assert e.n_significant >= 18
    # Files of the contract.
    emb = np.load(out / "embeddings" / "acoustic.npz")
    assert emb["embeddings"].shape == (540, 1, 6) and "config" in emb.files and "version" in emb.files
    folder = ResultsFolder(out)
    for m in METHODS:
        for s in SUBJECTS:
            pred = folder.read_predictions("acoustic", m, s)
            assert pred.predicted.shape == (60, 1, 6) and pred.predicted.dtype == np.float32
            assert pred.similarity.shape == (60, 60) and pred.space.name == "standardized"
            assert pred.clip_scores.mean() == pytest.approx(rows[(s, m, "test")].id_acc)
            # The saved decoder reproduces the saved predictions from the subject's full voxel vectors.
            dec = load_decoder(out / "decoders" / "acoustic" / m / f"{s}.joblib")
            sub = study["subs"][s]
            x = sub.windowed(15.0)[1].reshape(60, -1)
            np.testing.assert_allclose(dec.predict(x), pred.predicted[:, 0], rtol=1e-4, atol=1e-4)
    with open(out / "table2.csv", newline="") as fh:
        table = list(csv.reader(fh))
    assert table[0] == ["metric", "embedding", "space", "n", *METHODS]
    id_rows = [r for r in table[1:] if r[0] == "id_acc"]
    assert [r[1] for r in id_rows] == ["acoustic", "Chance", "Split-half"]
    assert all("±" in c and "[" in c for c in id_rows[0][4:]) and id_rows[0][2] == "standardized"
    assert id_rows[0][3] == "2 subjects × 60 clips; CI resamples clips"
    assert {r[0] for r in table[1:]} == {"id_acc", "top1_acc", "top5_acc", "pearson_r"}


def test_reproduce_metric_space_paper_is_raw_vectors(study, tmp_path):
    """In the paper's space the id acc is Eq. 2-3 on the raw vectors; 'standardized' z-scores first."""
    from brain2music.evaluate import identification_accuracy

    res = {
        space: _run(
            study, tmp_path / space, methods=["ridge"], logo=False, subjects=["sub-001"], metric_space=space
        )
        for space in ("paper", "standardized")
    }
    for space, r in res.items():
        pred = ResultsFolder(tmp_path / space).read_predictions("acoustic", "ridge", "sub-001")
        assert r.encoders["acoustic"].space == space and {row.space for row in r.rows} == {space}
        assert pred.space.name == space and r.split_half[0].space == space == r.chance[0].space
        expected = identification_accuracy(
            pred.space.transform(pred.predicted), pred.space.transform(pred.target)
        )
        assert r.results_for("acoustic")[0].id_acc == pytest.approx(expected)
    pred = ResultsFolder(tmp_path / "paper").read_predictions("acoustic", "ridge", "sub-001")
    assert res["paper"].results_for("acoustic")[0].id_acc == pytest.approx(
        identification_accuracy(pred.predicted, pred.target)
    )


def _logo_settings(study, tmp_path, space):
    """Settings of one subject's encsel leave-one-genre-out (20 encoding-selected voxels)."""
    return study_settings(
        study["bids"],
        stimuli=None,
        encoders=["acoustic"],
        out=tmp_path,
        subjects=["sub-001"],
        methods=["encsel"],
        embeddings={"acoustic": study["emb"]},
        encsel_top=20,
        n_permutations=10,
        metric_space=space,
        n_bootstrap=10,
    )


def test_leave_one_genre_out_never_sees_the_held_out_genre(study, monkeypatch, tmp_path):
    """The encsel voxels (and penalties) of a held-out genre come from the other genres only.

    In the held-out genre's *training* clips, the 60 voxels outside the responsive parcels are made to
    follow the embedding strongly. An encoding model fitted on all genres then selects those voxels (the
    old behaviour) and the score of that genre changes; fitted without the genre, nothing can change.
    """
    from brain2music.evaluate.space import MetricSpace
    from brain2music.study.context import SubjectContext, Targets
    from brain2music.study.methods import get_method
    from brain2music.study.scoring import leave_one_genre_out

    # Noisy enough that identification is imperfect, so a changed decoder shows in the scores.
    sub, labels, _ = make_subject(study["embeddings"], study["ids"], n_voxels=120, noise=3.0, seed=5)
    emb = EmbeddingSet(np.array(study["ids"]), study["embeddings"], {"window": 15.0})
    genre = "metal"
    settings = _logo_settings(study, tmp_path, None)

    def scores(data):
        ctx = SubjectContext(data, settings)
        train = emb.select(ctx.train_clips.clip_id)
        targets = Targets(
            "acoustic", 15.0, train, emb.select(ctx.test_clips.clip_id), MetricSpace.fit("paper", train)
        )
        return {g.genre: g.id_acc for g in leave_one_genre_out(get_method("encsel"), ctx, targets)}

    base = scores(sub)
    leaky = sub.train.copy()
    held = (sub.train_clips.genre == genre).to_numpy()
    inactive = ~np.isin(labels, (3, 7))
    rng = np.random.default_rng(0)
    drive = emb.select(sub.train_clips.clip_id)[held, 0] @ rng.standard_normal((6, int(inactive.sum())))
    leaky[np.ix_(held, np.arange(10), inactive)] = 10.0 * drive[:, None, :]
    changed = scores(dataclasses.replace(sub, train=leaky))
    assert changed[genre] == base[genre]
    assert any(changed[g] != base[g] for g in base if g != genre)  # the other genres did see the change


def test_leave_one_genre_out_in_the_standardized_space_never_sees_the_held_out_genre(study, tmp_path):
    """The standardized space z-scores with training statistics; a held-out genre's must not enter them.

    The held-out genre's *training targets* are made 50 times larger and shifted. Refitted without the
    genre (decoder, voxel selection and metric space), its score cannot change; a metric space fitted on
    all training targets would move every test clip's standardized coordinates.
    """
    from brain2music.evaluate.space import MetricSpace
    from brain2music.study.context import SubjectContext, Targets
    from brain2music.study.methods import get_method
    from brain2music.study.scoring import leave_one_genre_out

    sub = make_subject(study["embeddings"], study["ids"], n_voxels=120, noise=3.0, seed=5)[0]
    settings = _logo_settings(study, tmp_path, "standardized")
    genre = "metal"

    def scores(embeddings):
        emb = EmbeddingSet(np.array(study["ids"]), embeddings, {"window": 15.0})
        ctx = SubjectContext(sub, settings)
        train = emb.select(ctx.train_clips.clip_id)
        targets = Targets(
            "acoustic",
            15.0,
            train,
            emb.select(ctx.test_clips.clip_id),
            MetricSpace.fit("standardized", train),
        )
        return {g.genre: g.id_acc for g in leave_one_genre_out(get_method("encsel"), ctx, targets)}

    base = scores(study["embeddings"])
    moved = study["embeddings"].copy()
    held = np.isin(study["ids"], sub.train_clips.clip_id[sub.train_clips.genre == genre])
    moved[held] = 50.0 * moved[held] + np.arange(1, 7, dtype=np.float32)
    changed = scores(moved)
    assert changed[genre] == base[genre]
    assert any(changed[g] != base[g] for g in base if g != genre)  # the other genres did see the change


def test_reproduce_errors(study, tmp_path):
    bad = tmp_path / "bad.npz"
    EmbeddingSet(np.array(study["ids"][:-3]), study["embeddings"][:-3], {"window": 15.0}).save(bad)
    with pytest.raises(DataError, match=r"3 clip\(s\) have no 'acoustic' embedding"):
        rep.reproduce(study["bids"], out=tmp_path / "o", embeddings={"acoustic": bad}, verbose=False)
    with pytest.raises(ConfigError, match="unknown method"):
        rep.reproduce(
            study["bids"], out=tmp_path / "o", methods=["lasso"], embeddings={"acoustic": study["emb"]}
        )
    with pytest.raises(ConfigError, match="--stimuli"):
        rep.reproduce(
            study["bids"], out=tmp_path / "o", encoders=["clap"], embeddings={"acoustic": study["emb"]}
        )
    with pytest.raises(ConfigError, match="NAME=FILE"):
        rep.reproduce(study["bids"], out=tmp_path / "o", embeddings=["acoustic"])


def test_cli_reproduce(study, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main([
        "reproduce", str(study["bids"]), "--out", str(out), "--embeddings", f"acoustic={study['emb']}",
        "--methods", "ridge,encsel", "--subjects", "1", "--no-logo", "--n-permutations", "20", "--quiet",
    ])  # fmt: skip
    assert code == 0
    assert json.loads((out / "results.json").read_text())["methods"] == ["ridge", "encsel"]
    code = main(["reproduce", str(study["bids"]), "--out", str(out), "--embeddings", "oops"])
    assert code == 2
    assert "brain2music reproduce: error: --embeddings expects NAME=FILE" in capsys.readouterr().err


def test_reproduce_passes_encoder_options_and_saves_the_encoding_model(study, tmp_path, monkeypatch):
    import brain2music.embeddings as embeddings
    from brain2music.reconstruct.selection import EncodingScore

    seen = {}

    def fake_embed_folder(stimuli, encoder, **kw):  # the encoder object reproduce built from the options
        seen["encoder"] = encoder
        return EmbeddingSet(
            np.array(study["ids"]), study["embeddings"], {"encoder": encoder.name, "window": 15.0}
        )

    monkeypatch.setattr(embeddings, "embed_folder", fake_embed_folder)
    kw = dict(stimuli=tmp_path, encoders=["debug"], out=tmp_path / "out", methods=["ridge"], logo=False,
              n_permutations=10, n_bootstrap=50, verbose=False)  # fmt: skip
    res = rep.reproduce(study["bids"], encoder_options={"window": 15.0}, device="cpu", **kw)
    assert seen["encoder"].window == 15.0
    assert res.encoders["debug"].options == {"window": 15.0}
    assert ResultsFolder(tmp_path / "out").read().encoders["debug"].options == {"window": 15.0}
    # The saved encoding model identifies the clip a measured response belongs to (what --score encoding uses).
    folder = ResultsFolder(tmp_path / "out")
    score = EncodingScore(folder.read_encoding_model("debug", "sub-001"))
    test_ids = list(score.a["test_clip_ids"])
    test_emb = study["embeddings"][[study["ids"].index(c) for c in test_ids]]
    hits = [np.argmax(score.for_clip(c)(test_emb, None)) == i for i, c in enumerate(test_ids)]
    assert np.mean(hits) > 0.5  # chance: 1 / len(test_ids)
    with pytest.raises(ConfigError, match=r"encoder 'debug' does not take option\(s\) 'layr'"):
        rep.reproduce(study["bids"], encoder_options={"layr": 1}, **kw)
    with pytest.raises(ConfigError, match="options for encoder 'mert', which this run does not use"):
        rep.reproduce(study["bids"], encoder_options={"mert": {"trust_remote_code": True}}, **kw)


def test_the_settings_form_and_the_keyword_form_write_the_same_study(study, tmp_path):
    """``reproduce(study_settings(...))`` (the CLI's path) and ``reproduce(bids, **options)`` are one run."""
    kw = dict(embeddings={"acoustic": study["emb"]}, methods=["debug", "ridge"], logo=False, n_permutations=20,
              n_bootstrap=50, verbose=False)  # fmt: skip
    by_keywords = rep.reproduce(study["bids"], out=tmp_path / "a", **kw)
    embeddings, verbose = kw.pop("embeddings"), kw.pop("verbose")
    settings = study_settings(study["bids"], out=tmp_path / "b", embeddings=embeddings, **kw)
    by_settings = rep.reproduce(settings, embeddings=embeddings, verbose=verbose)
    assert dataclasses.replace(by_keywords.config, out=None) == dataclasses.replace(
        by_settings.config, out=None
    )
    assert [r.id_acc for r in by_keywords.rows] == [r.id_acc for r in by_settings.rows]
    assert ResultsFolder(tmp_path / "b").read().config == settings
