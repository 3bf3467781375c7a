"""``reproduce`` end to end on synthetic subjects (known answers) and the results-folder contract."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import brain2music.study.reproduce as rep
from brain2music.cli import main
from brain2music.embeddings import EmbeddingSet
from brain2music.errors import ConfigError, DataError
from brain2music.models import load_decoder
from brain2music.study.methods import DEFAULT_METHODS
from brain2music.study.results import ResultsFolder
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
    for key in ("version", "config", "subjects", "encoders", "methods", "rows", "chance", "oracle", "summary",
                "per_genre", "leave_one_genre_out", "ensemble_parcels", "encoding"):  # fmt: skip
        assert key in on_disk
    assert on_disk["methods"] == list(rep.METHODS)
    assert on_disk["subjects"] == SUBJECTS
    assert on_disk["config"]["bids_root"] and on_disk["config"]["use_derivatives"] is False
    assert on_disk["encoders"]["acoustic"] == {
        "window": 15.0,
        "r": 1,
        "dim": 6,
        "embeddings": "embeddings/acoustic.npz",
    }
    rows = {(r["subject"], r["method"], r["split"]): r for r in res["rows"]}
    assert len(rows) == len(SUBJECTS) * len(rep.METHODS) * 2
    for s in SUBJECTS:
        for m in rep.METHODS:
            # 0.5-sd noise on 20 tuned voxels: every method identifies the 60 test clips almost perfectly.
            assert rows[(s, m, "test")]["id_acc"] > 0.95, (s, m)
    for c in res["chance"]:
        assert c["id_acc"] == pytest.approx(0.5, abs=0.05)
    for o in res["oracle"]:
        assert o["id_acc"] > 0.95
    # The ensemble keeps the parcels the synthetic brain made responsive (3 and 7) on top.
    for e in res["ensemble_parcels"]:
        assert set(e["parcels"][:2]) == {3, 7}
    assert {g["genre"] for g in res["leave_one_genre_out"]} == set(design_clips().genre)
    assert len(res["per_genre"]) == len(SUBJECTS) * len(rep.METHODS) * 10
    summary = {(s["method"], s["split"]): s for s in res["summary"]}
    assert summary[("ridge", "test")]["n_subjects"] == 2
    # Encoding: the 16 responsive voxels (parcels 3 and 7) are significant, with an NIfTI map.
    for e in res["encoding"]:
        assert (out / e["map"]).is_file() and (out / e["npz"]).is_file()
        assert e["n_significant"] >= 18
    # Files of the contract.
    emb = np.load(out / "embeddings" / "acoustic.npz")
    assert emb["embeddings"].shape == (540, 1, 6) and "config" in emb.files and "version" in emb.files
    for m in rep.METHODS:
        for s in SUBJECTS:
            pred = np.load(out / "predictions" / "acoustic" / m / f"{s}.npz")
            assert pred["predicted"].shape == (60, 1, 6) and pred["predicted"].dtype == np.float32
            assert pred["similarity"].shape == (60, 60)
            assert pred["clip_ids"].shape == (60,) and pred["genres"].shape == (60,)
            # The saved decoder reproduces the saved predictions from the subject's full voxel vectors.
            dec = load_decoder(out / "decoders" / "acoustic" / m / f"{s}.joblib")
            sub = study["subs"][s]
            x = sub.windowed(15.0)[1].reshape(60, -1)
            np.testing.assert_allclose(dec.predict(x), pred["predicted"][:, 0], rtol=1e-4, atol=1e-4)
    with open(out / "table2.csv", newline="") as fh:
        table = list(csv.reader(fh))
    assert table[0] == ["embedding", *rep.METHODS]
    assert [r[0] for r in table[1:]] == ["acoustic", "Chance", "Oracle"]
    assert all("±" in c for c in table[1][1:])


def test_reproduce_pure_noise_is_at_chance(study, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    shuffled = {
        "acoustic": {
            "clip_ids": study["ids"],
            "embeddings": rng.permutation(study["embeddings"]),
            "window": 15.0,
        }
    }
    res = rep.reproduce(
        study["bids"], out=tmp_path / "r", embeddings=shuffled, subjects=["sub-001"], methods=["ridge", "encsel"],
        n_permutations=50, logo=False, verbose=False,
    )  # fmt: skip
    for row in res["rows"]:
        if row["split"] == "test":
            assert row["id_acc"] == pytest.approx(0.5, abs=0.1)


def test_reproduce_errors(study, tmp_path):
    bad = tmp_path / "bad.npz"
    save_npz(bad, clip_ids=np.array(study["ids"][:-3]), embeddings=study["embeddings"][:-3], window=15.0)
    with pytest.raises(DataError, match=r"lack 3 of the 60 fMRI clips \(e\.g\. "):
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
