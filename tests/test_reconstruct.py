"""Generators (debug, best-of-N, offline) and `brain2music reconstruct` on a synthetic results folder."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf

from brain2music._io import write_json
from brain2music.embeddings import EmbeddingSet
from brain2music.errors import ConfigError, DataError
from brain2music.evaluate import identification_scores, similarity_matrix
from brain2music.evaluate.reconstruction import GenreTagger
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
from brain2music.results import EncoderInfo, Predictions, ResultsFolder, StudyResults, SummaryRow
from brain2music.study.reconstruct import reconstruct
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
    """A results folder of the current layout, written through the results model. ``predicted``: one
    array for both subjects, or ``{subject: array}``."""
    folder = ResultsFolder(res)
    rel = folder.write_embeddings(
        "fake", EmbeddingSet(np.array(all_ids), all_emb, {"encoder": "fake", "window": 5.0})
    )
    metric = MetricSpace.fit(space, all_emb[: len(all_ids) - len(ids)])
    summary = []
    for k, m in enumerate(methods):
        for sub in ("sub-001", "sub-002"):
            pred = predicted[sub] if isinstance(predicted, dict) else predicted
            sim = similarity_matrix(metric.transform(pred), metric.transform(target))
            folder.write_predictions(
                Predictions(sub, "fake", m, np.array(ids), np.array([c.split(".")[0] for c in ids]),
                            pred.astype(np.float32), target.astype(np.float32), sim,
                            identification_scores(sim), metric)
            )  # fmt: skip
        summary.append(SummaryRow("fake", m, "test", space, 0.9 - 0.1 * k, 0.01, [0.8, 0.95], 0.001, 0.5, 0.01,
                                  0.3 + 0.1 * k, 2))  # fmt: skip
    folder.write(
        StudyResults(config={}, subjects=["sub-001", "sub-002"], methods=list(methods),
                     encoders={"fake": EncoderInfo(5.0, 7, 16, rel, space)}, summary=summary)
    )  # fmt: skip


def make_study(tmp_path, predicted_from="target", space="paper", methods=("ridge",), *, originals=False,
               noisy_second=False):  # fmt: skip
    """A library of tones, 6 test clips and a results folder. ``originals``: the library also holds the
    test clips' own audio (track ids = clip ids); ``noisy_second``: sub-002's predictions are noisy."""
    music = tmp_path / "music"
    music.mkdir()
    for i, f in enumerate(LOW + HIGH):
        sf.write(music / f"lib{i:02d}_{f}.wav", tone(f * 1.03, seed=i), 8000)
    test_freqs = [120, 240, 360, 1900, 2300, 2700]
    ids = [f"{'blues' if f < 1000 else 'metal'}.{i:05d}" for i, f in enumerate(test_freqs)]
    if originals:
        for i, (c, f) in enumerate(zip(ids, test_freqs, strict=True)):
            sf.write(music / f"{c}.wav", tone(f, seed=50 + i), 8000, subtype="FLOAT")
    lib = build_library(music, tmp_path / "lib", encoder=ENC, progress=False)
    target = np.stack([embed(tone(f, seed=50 + i)) for i, f in enumerate(test_freqs)])
    rng = np.random.default_rng(0)
    if predicted_from == "target":
        predicted = target + 0.01 * rng.standard_normal(target.shape).astype(np.float32)
    else:  # swap the low and high halves: every prediction describes a clip of the other genre
        predicted = np.roll(target, 3, axis=0)
    if noisy_second:
        noise = 1.5 * target.std() * rng.standard_normal(target.shape).astype(np.float32)
        predicted = {"sub-001": predicted, "sub-002": predicted + noise}
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
        true_embedding_generation=True,
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
    assert len(list((tmp_path / "recon" / "audio" / "true_embedding").glob("*.wav"))) == 6
    assert rep.clips[6].true_embedding_generated == clip.true_embedding_generated
    assert "true_embedding_generation_id_acc" in rep.summary
    assert set(clip.tags) == {
        "original",
        "retrieved",
        "generated",
        "true_embedding",
        "true_embedding_generated",
    }
    s = rep.per_subject[0]
    # near-perfect predictions: retrieval finds what the true embedding finds
    assert s.value("retrieval", "id_acc") == pytest.approx(s.value("true_embedding", "id_acc"))
    assert s.value("true_embedding", "id_acc") > 0.7 and 0.2 < s.value("chance", "id_acc") < 0.8
    retrieval = s.get("retrieval", "id_acc")
    assert retrieval.ci[0] <= retrieval.value <= retrieval.ci[1] and retrieval.n_clips == s.n_clips
    assert s.value("retrieval", "genre_agreement") == 1.0 and s.tagger_accuracy == 1.0
    summary = rep.summary
    assert summary["retrieval_id_acc"].n_subjects == 2 and "generation_id_acc" in summary
    assert summary["retrieval_id_acc"].sd == pytest.approx(0.0)  # same predictions for both subjects


def test_reconstruct_wrong_predictions_score_below_chance(tmp_path):
    res, lib = make_study(tmp_path, predicted_from="shifted")
    rep = reconstruct(
        res, lib, tmp_path / "recon", generator=None, subjects=["sub-002"], n_clips=6, progress=False
    )
    s = rep.per_subject[0]
    assert s.value("retrieval", "id_acc") < 0.5 < s.value("true_embedding", "id_acc")
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
    assert "retrieval_id_acc" in out and "true_embedding_id_acc" in out
    assert "retrieval_top1_acc" in out and "n = 2 subjects × 4 clips, CI resamples clips" in out
    for flag in ("--true-embedding-generation", "--oracle-generation"):  # the second: its earlier name
        args = cli.build_parser().parse_args(
            ["reconstruct", "r", "--library", "l", flag, "--n-bootstrap", "50"]
        )
        assert args.true_embedding_generation and args.n_bootstrap == 50
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
    assert rep.per_subject[0].value("retrieval", "id_acc") == pytest.approx(expected)
    assert expected != pytest.approx(raw)  # the spaces really differ here


# ------------------------------------------------------------------- N-way identification, intervals
KINDS = ("retrieval", "generation", "chance", "true_embedding")


def _library_windows(lib, tracks):
    index = {p: i for i, p in enumerate(lib.metadata["path"])}
    return lib.windows(np.array([index[t["path"]] for t in tracks]))


def test_reconstruct_n_way_identification(tmp_path):
    from brain2music.evaluate import topk_scores

    res, lib = make_study(tmp_path, originals=True, noisy_second=True)
    rep = reconstruct(res, lib, tmp_path / "recon", generator="debug", encoder=ENC, generator_options={"sr": 8000},
                      exclude_stimuli=False, n_bootstrap=200, progress=False)  # fmt: skip
    for s in rep.per_subject:
        for kind in KINDS:
            for metric in ("top1_acc", "top5_acc"):
                score = s.get(kind, metric)
                assert 0.0 <= score.value <= 1.0 and score.ci[0] <= score.value <= score.ci[1], (kind, metric)
                assert 0.0 < score.p <= 1.0 and score.n_clips == 6
        assert (s.top1_chance, s.top5_chance) == (pytest.approx(1 / 6), pytest.approx(5 / 6))
        # The library holds the originals: retrieval with the true embedding finds each clip's own audio.
        assert s.value("true_embedding", "top1_acc") == 1.0 and s.get("true_embedding", "top1_acc").p < 0.01
    pred = ResultsFolder(res).read_predictions("fake", "ridge", "sub-002")
    clips = [c for c in rep.clips if c.subject == "sub-002"]
    sim = similarity_matrix(_library_windows(lib, [c.retrieved[0] for c in clips]), pred.target)
    s2 = rep.per_subject[1]
    for k in (1, 5):  # the reference: top-k of the similarity matrix of the retrieved tracks' embeddings
        assert s2.value("retrieval", f"top{k}_acc") == pytest.approx(topk_scores(sim, k).mean())
        assert [c.scores[f"retrieval_top{k}_acc"] for c in clips] == topk_scores(sim, k).tolist()
    assert rep.per_subject[0].value("retrieval", "top1_acc") == 1.0  # near-perfect predictions: the original
    assert s2.value("retrieval", "top1_acc") < 1.0
    assert rep.clips[0].true_embedding["path"].endswith(f"{rep.clips[0].clip_id}.wav")
    for key in ("retrieval_top1_acc", "generation_top5_acc", "chance_top1_acc", "true_embedding_top5_acc"):
        assert key in rep.summary and rep.summary[key].n_clips == 6


def test_summary_intervals_resample_clips_and_honour_the_arguments(tmp_path):
    from brain2music.evaluate.stats import hierarchical_bootstrap_ci

    res, lib = make_study(tmp_path, noisy_second=True)
    runs = {}
    for n_boot, seed in ((1000, 0), (300, 0), (1000, 7)):
        runs[n_boot, seed] = reconstruct(res, lib, tmp_path / f"r{n_boot}_{seed}", generator=None,
                                         n_bootstrap=n_boot, random_state=seed, progress=False)  # fmt: skip
    rep = runs[1000, 0]
    values = [s.value("retrieval", "id_acc") for s in rep.per_subject]
    assert values[0] != values[1]
    stat = rep.summary["retrieval_id_acc"]
    assert (stat.n_subjects, stat.n_clips, stat.ci_resamples) == (2, 6, "clips")
    assert stat.ci != pytest.approx(sorted(values))  # not the two subjects' [min, max]
    per_clip = [[c.scores["retrieval_id_acc"] for c in rep.clips if c.subject == s] for s in rep.subjects]
    assert np.mean(per_clip, axis=1) == pytest.approx(values)
    expected = hierarchical_bootstrap_ci([np.array(v) for v in per_clip], same_clips=True, n_bootstrap=1000,
                                         random_state=0)  # fmt: skip
    assert stat.ci == pytest.approx(list(expected))
    # n_bootstrap and random_state reach the summary: the retrieval scores are the same, the intervals not
    # (the cosine of the top-1 track is continuous per clip, so any other resampling moves its quantiles)
    key = "retrieval_score_mean"
    assert [s.value("retrieval", "id_acc") for s in runs[300, 0].per_subject] == values
    assert [s.value("retrieval", "score_mean") for s in runs[1000, 7].per_subject] == [
        s.value("retrieval", "score_mean") for s in rep.per_subject
    ]
    assert runs[300, 0].summary[key].ci != pytest.approx(rep.summary[key].ci, abs=1e-9)
    assert runs[1000, 7].summary[key].ci != pytest.approx(rep.summary[key].ci, abs=1e-9)
    # the chance level is a constant: no interval
    assert rep.summary["top1_chance"].ci is None and rep.summary["top1_chance"].mean == pytest.approx(1 / 6)


def test_summary_without_anything_to_resample():
    from brain2music.results import ReconstructedClip, ReconstructionScores
    from brain2music.study.recon_scoring import summarise_subjects

    one = ReconstructionScores.from_flat("sub-001", 1, "paper", {"retrieval_id_acc": 1.0, "chance_id_acc": 0.5,
                                         "true_embedding_id_acc": 1.0})  # fmt: skip
    clip = ReconstructedClip("sub-001", "blues.00000", "blues", {}, [], {}, scores={"retrieval_id_acc": 1.0})
    stat = summarise_subjects([one], [clip])["retrieval_id_acc"]
    assert stat.ci is None and stat.ci_resamples is None and (stat.n_subjects, stat.n_clips) == (1, 1)
    # three subjects of one clip each: the subjects are resampled
    subs = [
        ReconstructionScores.from_flat(f"sub-00{i}", 1, "paper", one.flat() | {"retrieval_id_acc": v})
        for i, v in ((1, 0.0), (2, 1.0), (3, 1.0))
    ]
    clips = [
        dataclasses.replace(
            clip, subject=s.subject, scores={"retrieval_id_acc": s.value("retrieval", "id_acc")}
        )
        for s in subs
    ]
    stat = summarise_subjects(subs, clips, n_bootstrap=500)["retrieval_id_acc"]
    assert stat.ci_resamples == "clips, subjects" and stat.ci[0] < stat.mean < stat.ci[1]


def _old_spelling(value):
    """A reconstruction.json as versions before the rename wrote it: ``oracle`` for the true embedding
    (keys and the audio folder), no top-k, no per-clip scores, summaries without n_clips (applied to a
    file whose per-subject scores are already flat)."""
    dropped = (
        ("scores", "n_clips", "ci_resamples") if isinstance(value, dict) and "mean" in value else ("scores",)
    )
    if isinstance(value, dict):
        return {k.replace("true_embedding", "oracle"): _old_spelling(v) for k, v in value.items()
                if k not in dropped and "top1" not in k and "top5" not in k}  # fmt: skip
    if isinstance(value, list):
        return [_old_spelling(v) for v in value]
    return value.replace("true_embedding", "oracle") if isinstance(value, str) else value


def test_reconstruction_json_with_oracle_keys_still_loads(tmp_path):
    from brain2music.report.recon import _summary_table

    res, lib = make_study(tmp_path)
    rep = reconstruct(res, lib, tmp_path / "recon", generator="debug", encoder=ENC, generator_options={"sr": 8000},
                      true_embedding_generation=True, n_clips=4, progress=False)  # fmt: skip
    path = tmp_path / "recon" / "reconstruction.json"
    written = json.loads(path.read_text())
    assert written["per_subject"][0]["scores"]["true_embedding"]["id_acc"]["n_clips"] == 4  # the nested form
    written["per_subject"] = [s.flat() for s in rep.per_subject]  # schema 2 before the nesting: flat keys
    old = _old_spelling(written)
    assert "oracle_id_acc" in old["summary"] and "oracle" in old["clips"][0]
    assert "true_embedding" not in json.dumps(old) and "top1" not in json.dumps(old)
    path.write_text(json.dumps(old))
    back = ResultsFolder.read_reconstruction(tmp_path / "recon")
    s, new = back.per_subject[0], rep.per_subject[0]
    assert s.get("true_embedding", "id_acc") == new.get("true_embedding", "id_acc")
    assert s.get("true_embedding_generation", "id_acc") == new.get("true_embedding_generation", "id_acc")
    top_k = {m for kind in new.scores.values() for m in kind if m.startswith("top")}
    assert {k: set(m) for k, m in s.scores.items()} == {k: set(m) - top_k for k, m in new.scores.items()}
    assert back.clips[0].true_embedding == rep.clips[0].true_embedding
    assert back.clips[0].true_embedding_generated["path"] == "audio/oracle/blues.00000.generated.wav"
    assert set(back.clips[0].tags) == set(rep.clips[0].tags)
    assert back.summary["true_embedding_id_acc"].mean == rep.summary["true_embedding_id_acc"].mean
    assert back.summary["true_embedding_id_acc"].n_clips == 0 and back.config["true_embedding_generation"]
    assert not any(k.startswith("oracle") for k in back.extra) and not s.extra
    table = _summary_table(back)
    assert "retrieval with the true embedding" in table and "oracle" not in table.lower()
