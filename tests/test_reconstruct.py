"""Generators (debug, best-of-N, offline) and `brain2music reconstruct` on a synthetic results folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from brain2music._io import write_json
from brain2music.embeddings import EmbeddingSet
from brain2music.errors import ConfigError, DataError
from brain2music.evaluate import identification_scores, similarity_matrix
from brain2music.evaluate.space import MetricSpace
from brain2music.reconstruct.clip_embedding import prepare_clip
from brain2music.reconstruct.generators import (
    BestOfN,
    Generator,
    cosine_scores,
    get_generator,
    list_generators,
)
from brain2music.reconstruct.library import build_library
from brain2music.study.reconstruct import GenreTagger, reconstruct
from brain2music.study.results import EncoderInfo, Predictions, ResultsFolder, StudyResults, SummaryRow
from test_library import FakeEncoder, tone

ENC = FakeEncoder()


def embed(audio, sr=8000):
    return ENC.embed(prepare_clip(audio, sr), sr)


# ---------------------------------------------------------------------------------------------- generators
def test_registry_and_debug_generator():
    assert {"debug", "offline", "musicldm", "musicgen", "best-of"} <= set(list_generators())
    gen = get_generator("debug")
    a1, sr = gen.generate(np.arange(16.0), n_samples=2, duration=2.0, random_state=0)
    a2, _ = gen.generate(np.arange(16.0), n_samples=2, duration=2.0, random_state=0)
    a3, _ = gen.generate(-np.arange(16.0), n_samples=1, duration=2.0, random_state=0)
    assert a1.shape == (2, 2 * sr) and a1.dtype == np.float32
    assert np.array_equal(a1, a2) and not np.allclose(a1[0], a3[0])
    with pytest.raises(ConfigError, match="unknown generator 'nope'.*debug"):
        get_generator("nope")
    with pytest.raises(ConfigError, match="needs encoder"):
        get_generator("offline")
    with pytest.raises(ConfigError, match="sr must be"):
        get_generator("offline", encoder=ENC, sr=8000).fit()
    with pytest.raises(DataError, match="target_embedding"):
        gen.generate(np.ones((2, 3, 4)))


def test_cosine_scores_reference():
    rng = np.random.default_rng(0)
    c, t = rng.standard_normal((5, 3, 8)), rng.standard_normal(8)
    cm = c.mean(axis=1)
    ref = cm @ t / (np.linalg.norm(cm, axis=1) * np.linalg.norm(t))
    assert np.allclose(cosine_scores(c, t), ref)
    mu, sd = rng.standard_normal(8), rng.uniform(1, 2, 8)
    z = (cm - mu) / sd
    zt = (t - mu) / sd
    assert np.allclose(
        cosine_scores(c, t, center=mu, scale=sd), z @ zt / (np.linalg.norm(z, axis=1) * np.linalg.norm(zt))
    )


class ToneGenerator(Generator):
    """Random pure tones: candidates differ a lot, so best-of-N has something to choose from."""

    name = "tones"
    sr = 8000

    def _generate_one(self, target_embedding, *, duration, rng):
        return tone(float(rng.uniform(100, 3500)), self.sr, duration, seed=int(rng.integers(100)))


def test_best_of_n_picks_the_closest_candidate():
    target = embed(tone(880.0))
    best = BestOfN(ToneGenerator(), ENC, n=12)
    audio, sr = best.generate(target, n_samples=2, duration=15.0, random_state=1)
    assert audio.shape == (2, 15 * sr) and best.last_scores_.shape == (2, 12)
    got = cosine_scores(np.stack([embed(a) for a in audio]), target)
    assert np.allclose(got, best.last_scores_.max(axis=1), atol=1e-6)
    # the pick beats a single random sample on average
    single = [
        cosine_scores(embed(ToneGenerator().generate(target, random_state=s)[0][0])[None], target)[0]
        for s in range(6)
    ]
    assert got.mean() > np.mean(single)


@pytest.mark.slow
def test_offline_generator_approaches_target_and_is_not_a_library_copy(tmp_path):
    pytest.importorskip("fluidsynth")
    from brain2music.simulate.composer import render, sample_params

    rng = np.random.default_rng(7)
    lib_dir = tmp_path / "music"
    lib_dir.mkdir()
    lib_audio = []
    for i, genre in enumerate(["metal", "classical", "disco", "jazz"]):
        a = render(sample_params(genre, rng), sr=16000, duration=15.0)
        sf.write(lib_dir / f"{genre}.{i:05d}.wav", a, 16000)
        lib_audio.append(a)
    target = embed(lib_audio[0], 16000)
    gen = get_generator(
        "offline",
        encoder=ENC,
        n_bank=10,
        n_candidates=3,
        n_rounds=1,
        n_neighbors=2,
        sr=16000,
        progress=False,
        cache=tmp_path / "bank.npz",
    )
    audio, sr = gen.generate(target, duration=15.0, random_state=0)
    assert audio.shape == (1, 15 * 16000) and sr == 16000
    emb = embed(audio[0], sr)
    score = gen._score(emb[None], target)[0]
    assert score == pytest.approx(gen.last_score_, abs=1e-6)
    # better than the average bank track: the search moved towards the target
    assert score > np.median(gen._score(gen.bank_embeddings_, target))
    # new music: no library track is a copy (same length, correlation far from 1)
    for a in lib_audio:
        corr = np.corrcoef(a[: audio.shape[1]], audio[0])[0, 1]
        assert abs(corr) < 0.9
    # the fitted bank is cached and reused
    again = get_generator(
        "offline", encoder=ENC, n_bank=10, sr=16000, progress=False, cache=tmp_path / "bank.npz"
    ).fit()
    assert np.array_equal(again.bank_embeddings_, gen.bank_embeddings_)


def test_genre_tagger_on_separable_data():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (30, 3, 5)), rng.normal(3, 1, (30, 3, 5))])
    y = np.array(["blues"] * 30 + ["metal"] * 30)
    tagger = GenreTagger().fit(x, y)
    assert np.mean(tagger.predict(x) == y) > 0.95


# ---------------------------------------------------------------------------------------------- pipeline
LOW, HIGH = [110, 165, 220, 275, 330, 385], [1800, 2000, 2200, 2400, 2600, 2800]


def write_fake_study(res, all_ids, all_emb, ids, predicted, target, *, space="paper", methods=("ridge",)):
    """A results folder of the current layout, written through the results model."""
    folder = ResultsFolder(res)
    rel = folder.write_embeddings(
        "fake", EmbeddingSet(np.array(all_ids), all_emb, {"encoder": "fake", "window": 5.0})
    )
    metric = MetricSpace.fit(space, all_emb[: len(all_ids) - len(ids)])
    summary = []
    for k, m in enumerate(methods):
        for sub in ("sub-001", "sub-002"):
            sim = similarity_matrix(metric.transform(predicted), metric.transform(target))
            folder.write_predictions(
                Predictions(sub, "fake", m, np.array(ids), np.array([c.split(".")[0] for c in ids]),
                            predicted.astype(np.float32), target.astype(np.float32), sim,
                            identification_scores(sim), metric)
            )  # fmt: skip
        summary.append(SummaryRow("fake", m, "test", space, 0.9 - 0.1 * k, 0.01, [0.8, 0.95], 0.001, 0.5, 0.01,
                                  0.3 + 0.1 * k, 2))  # fmt: skip
    folder.write(
        StudyResults(config={}, subjects=["sub-001", "sub-002"], methods=list(methods),
                     encoders={"fake": EncoderInfo(5.0, 7, 16, rel, space)}, summary=summary)
    )  # fmt: skip


def make_study(tmp_path, predicted_from="target", space="paper", methods=("ridge",)):
    """A library of tones, 6 test clips (originals not in the library) and a results folder."""
    music = tmp_path / "music"
    music.mkdir()
    for i, f in enumerate(LOW + HIGH):
        sf.write(music / f"lib{i:02d}_{f}.wav", tone(f * 1.03, seed=i), 8000)
    lib = build_library(music, tmp_path / "lib", encoder=ENC, progress=False)
    test_freqs = [120, 240, 360, 1900, 2300, 2700]
    ids = [f"{'blues' if f < 1000 else 'metal'}.{i:05d}" for i, f in enumerate(test_freqs)]
    target = np.stack([embed(tone(f, seed=50 + i)) for i, f in enumerate(test_freqs)])
    rng = np.random.default_rng(0)
    if predicted_from == "target":
        predicted = target + 0.01 * rng.standard_normal(target.shape).astype(np.float32)
    else:  # swap the low and high halves: every prediction describes a clip of the other genre
        predicted = np.roll(target, 3, axis=0)
    res = tmp_path / "results"
    train_f = list(rng.uniform(100, 400, 10)) + list(rng.uniform(1700, 2900, 10))
    train_ids = [f"{'blues' if f < 1000 else 'metal'}.{100 + i:05d}" for i, f in enumerate(train_f)]
    all_emb = np.concatenate([np.stack([embed(tone(f, seed=i)) for i, f in enumerate(train_f)]), target])
    write_fake_study(res, train_ids + ids, all_emb, ids, predicted, target, space=space, methods=methods)
    return res, lib


def test_reconstruct_retrieval_and_generation(tmp_path):
    res, lib = make_study(tmp_path)
    rep = reconstruct(
        res,
        lib,
        tmp_path / "recon",
        generator="debug",
        encoder=ENC,
        k=3,
        progress=False,
        generator_options={"sr": 8000},
        oracle_generation=True,
    )
    on_disk = ResultsFolder.read_reconstruction(tmp_path / "recon")
    assert on_disk.to_dict() == json.loads(json.dumps(rep.to_dict()))
    assert (
        rep.method == "ridge"
        and rep.method_selected_by == "train_cv"
        and rep.subjects == ["sub-001", "sub-002"]
    )
    assert rep.space == "paper" and all(s.space == "paper" for s in rep.per_subject)
    assert len(rep.clips) == 12
    clip = rep.clips[0]
    assert [r["rank"] for r in clip.retrieved] == [1, 2, 3]
    assert clip.retrieved[0]["score"] >= clip.retrieved[1]["score"]
    assert (tmp_path / "recon" / clip.generated["path"]).is_file()
    assert clip.generated["nearest_library"]["path"].endswith(".wav")
    # generation from the true embedding: one file per clip, shared by the subjects
    assert len(list((tmp_path / "recon" / "audio" / "oracle").glob("*.wav"))) == 6
    assert rep.clips[6].oracle_generated == clip.oracle_generated
    assert "oracle_generation_id_acc" in rep.summary
    assert set(clip.tags) == {"original", "retrieved", "generated", "oracle", "oracle_generated"}
    s = rep.per_subject[0]
    # near-perfect predictions: retrieval finds what the oracle finds
    assert s.retrieval_id_acc == pytest.approx(s.oracle_id_acc)
    assert s.oracle_id_acc > 0.7 and 0.2 < s.chance_id_acc < 0.8
    assert s.retrieval_id_acc_ci[0] <= s.retrieval_id_acc <= s.retrieval_id_acc_ci[1]
    assert s.retrieval_genre_agreement == 1.0 and s.tagger_accuracy == 1.0
    summary = rep.summary
    assert summary["retrieval_id_acc"].n_subjects == 2 and "generation_id_acc" in summary
    assert summary["retrieval_id_acc"].sd == pytest.approx(0.0)  # same predictions for both subjects


def test_reconstruct_wrong_predictions_score_below_chance(tmp_path):
    res, lib = make_study(tmp_path, predicted_from="shifted")
    rep = reconstruct(
        res, lib, tmp_path / "recon", generator=None, subjects=["sub-002"], n_clips=6, progress=False
    )
    s = rep.per_subject[0]
    assert s.retrieval_id_acc < 0.5 < s.oracle_id_acc
    assert rep.clips[0].generated is None and len(rep.clips) == 6


def test_reconstruct_bad_input(tmp_path):
    res, lib = make_study(tmp_path)
    other = json.loads((res / "results.json").read_text())
    other["encoders"] = {"clap": other["encoders"]["fake"]}
    (tmp_path / "res2" / "predictions" / "clap").mkdir(parents=True)
    write_json(tmp_path / "res2" / "results.json", other)
    with pytest.raises(DataError, match=r"'fake'.*'clap'"):
        reconstruct(tmp_path / "res2", lib, tmp_path / "r", generator=None, progress=False)
    with pytest.raises(ConfigError, match="n_clips"):
        reconstruct(res, lib, tmp_path / "r", generator=None, n_clips=1, progress=False)
    with pytest.raises(ConfigError, match="sub-009"):
        reconstruct(res, lib, tmp_path / "r", generator=None, subjects=["sub-009"], progress=False)
    with pytest.raises(ConfigError, match="method 'krr'"):
        reconstruct(res, lib, tmp_path / "r", generator=None, method="krr", progress=False)
    with pytest.raises(FileNotFoundError, match="results.json"):
        reconstruct(tmp_path, lib, tmp_path / "r", generator=None, progress=False)


def test_cli_reconstruct(tmp_path, capsys):
    from brain2music import cli

    res, lib = make_study(tmp_path)
    code = cli.main(
        [
            "reconstruct",
            str(res),
            "--library",
            str(lib.path),
            "--generator",
            "none",
            "--n-clips",
            "4",
            "--out",
            str(tmp_path / "recon"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "retrieval_id_acc" in out and "oracle_id_acc" in out
    assert (
        cli.main(
            [
                "reconstruct",
                str(res),
                "--library",
                str(tmp_path / "nolib"),
                "--generator",
                "none",
                "--out",
                str(tmp_path / "recon"),
            ]
        )
        == 2
    )
    assert "not a music library" in capsys.readouterr().err


def test_offline_presets():
    gen = get_generator("offline", encoder=ENC, preset="demo", n_candidates=5)
    assert (gen.n_bank, gen.n_candidates, gen.n_rounds, gen.sr) == (60, 5, 1, 22050)
    with pytest.raises(ConfigError, match="preset"):
        get_generator("offline", encoder=ENC, preset="fastest")


def test_reconstruct_best_of_n(tmp_path):
    res, lib = make_study(tmp_path)
    rep = reconstruct(
        res,
        lib,
        tmp_path / "recon",
        generator="debug",
        generator_options={"sr": 8000},
        best_of=3,
        encoder=ENC,
        subjects=["sub-001"],
        n_clips=3,
        progress=False,
    )
    assert rep.generator["generator"] == "best-of" and rep.generator["n"] == 3
    assert len(rep.clips) == 3 and all(c.generated for c in rep.clips)


def test_reconstruct_chooses_the_method_by_training_cv_not_by_test(tmp_path):
    # "ridge" has the better *test* id acc in the summary, "encsel" the better training-CV r.
    res, lib = make_study(tmp_path, methods=("ridge", "encsel"))
    rep = reconstruct(res, lib, tmp_path / "recon", generator=None, n_clips=4, progress=False)
    assert (rep.method, rep.method_selected_by) == ("encsel", "train_cv")
    on_disk = json.loads((tmp_path / "recon" / "reconstruction.json").read_text())
    assert on_disk["method_selected_by"] == "train_cv" and on_disk["method"] == "encsel"
    rep = reconstruct(
        res, lib, tmp_path / "recon2", generator=None, method="ridge", n_clips=4, progress=False
    )
    assert (rep.method, rep.method_selected_by) == ("ridge", "user")


def test_reconstruct_scores_in_the_space_of_the_predictions(tmp_path):
    from brain2music.evaluate import identification_accuracy

    res, lib = make_study(tmp_path, space="standardized")
    rep = reconstruct(res, lib, tmp_path / "recon", generator=None, subjects=["sub-001"], progress=False)
    pred = ResultsFolder(res).read_predictions("fake", "ridge", "sub-001")
    assert rep.space == pred.space.name == "standardized" == rep.per_subject[0].space
    index = {p: i for i, p in enumerate(lib.metadata["path"])}
    top1 = lib.windows(np.array([index[c.retrieved[0]["path"]] for c in rep.clips]))
    expected = identification_accuracy(pred.space.transform(top1), pred.space.transform(pred.target))
    raw = identification_accuracy(top1, pred.target)
    assert rep.per_subject[0].retrieval_id_acc == pytest.approx(expected)
    assert expected != pytest.approx(raw)  # the spaces really differ here
