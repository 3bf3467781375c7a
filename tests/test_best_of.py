"""Best-of-N selection (``reconstruct --best-of N --score embedding|encoding``) with known answers."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest

from brain2music.errors import ConfigError, DataFileNotFoundError
from brain2music.models import EncodingModel
from brain2music.models.encoding import delay_features, tr_features
from brain2music.reconstruct.clip_embedding import clip_embedding, prepare_clip
from brain2music.reconstruct.generators import BestOfN
from brain2music.reconstruct.selection import EmbeddingScore, EncodingScore, encoding_model_arrays
from brain2music.results import ResultsFolder
from brain2music.stimuli import read_audio
from brain2music.study.reconstruct import reconstruct
from test_library import tone
from test_reconstruct import ENC, ToneGenerator, embed, make_study, write_fake_study

N_TRS = 10  # 10 TRs of 1.5 s hold r = 7 windows of 5 s: the FakeEncoder's grid


def test_best_of_one_is_plain_generation_and_n_never_scores_below_it():
    gen, target = ToneGenerator(), embed(tone(880.0))
    plain, _ = gen.generate(target, n_samples=1, duration=15.0, random_state=7)
    one = BestOfN(gen, ENC, n=1)
    a1, _ = one.generate(target, n_samples=1, duration=15.0, random_state=7)
    assert np.array_equal(a1, plain)
    many = BestOfN(gen, ENC, n=6)
    a6, _ = many.generate(target, n_samples=1, duration=15.0, random_state=7)
    scores = many.last_scores_[0]
    # Candidate 0 is the plain generation (same seed), so its score is best-of-1's score.
    assert scores[0] == pytest.approx(one.last_scores_[0][0])
    assert scores.max() >= scores[0] and many.last_choice_[0] == int(np.argmax(scores))
    assert np.allclose(many.last_embeddings_[0], clip_embedding(ENC, prepare_clip(a6[0], 8000), 8000))


def test_embedding_score_is_the_cosine_in_the_metric_space():
    from brain2music.evaluate.space import MetricSpace

    rng = np.random.default_rng(0)
    train = rng.normal(5.0, 2.0, (40, 7, 16))
    space = MetricSpace.fit("standardized", train)
    cands, pred = rng.normal(5.0, 2.0, (4, 7, 16)), rng.normal(5.0, 2.0, (7, 16))
    z = ((cands - space.mean) / space.scale).mean(axis=1)
    t = ((pred - space.mean) / space.scale).mean(axis=0)
    ref = z @ t / (np.linalg.norm(z, axis=1) * np.linalg.norm(t))
    assert np.allclose(EmbeddingScore(space)(cands, pred), ref)


def _fit_encoding(train_emb, rng, n_vox=40):
    """An encoding model fitted on noisy linear responses to ``train_emb``, and the true weights."""
    feats = tr_features(train_emb, 5.0, N_TRS)
    feats = (feats - feats.mean(axis=(0, 1))) / feats.std(axis=(0, 1))
    X = delay_features(feats, (2, 3, 4), base_delay=3)
    W = rng.standard_normal((X.shape[2], n_vox)).astype(np.float32)
    Y = X @ W + 0.1 * rng.standard_normal((*X.shape[:2], n_vox)).astype(np.float32)
    groups = np.arange(len(train_emb)) % 4
    return EncodingModel(5.0, alphas=[0.1, 1.0, 10.0], cv=4).fit(train_emb, Y, groups)


def test_encoding_score_matches_the_encoding_model():
    rng = np.random.default_rng(1)
    train = np.stack([embed(tone(f, seed=i)) for i, f in enumerate(rng.uniform(100, 3000, 24))])
    model = _fit_encoding(train, rng)
    test = np.stack([embed(tone(f, seed=60 + i)) for i, f in enumerate((200.0, 900.0, 2500.0))])
    measured = model.predict(test, N_TRS)
    data = types.SimpleNamespace(
        test_clips=pd.DataFrame({"clip_id": ["a.1", "b.2", "c.3"]}), test_mean=measured
    )
    voxels = np.array([0, 3, 5, 8, 13, 21, 34])
    score = EncodingScore(encoding_model_arrays(model, data, voxels=voxels))
    # Reference: the model's own prediction on those voxels.
    assert np.allclose(score.predict(test), measured[:, :, voxels], atol=1e-4)
    # The measured response of clip b.2 is exactly the prediction for its stimulus: r = 1 there, less elsewhere.
    s = score.for_clip("b.2")(test, None)
    assert s[1] == pytest.approx(1.0, abs=1e-5) and np.argmax(s) == 1 and s[[0, 2]].max() < 1 - 1e-3


def _write_encoding_models(res, rng):
    """Encoding models of both subjects of a make_study folder: responses of its train/test tones."""
    folder = ResultsFolder(res)
    study = folder.read()
    es = folder.read_embeddings(study, "fake")
    ids = np.asarray(es.clip_ids).astype(str)
    test_ids = [c for c in ids if int(c.split(".")[1]) < 100]
    train = es.embeddings[[int(c.split(".")[1]) >= 100 for c in ids]]
    test = es.select(test_ids)
    for sub in ("sub-001", "sub-002"):
        model = _fit_encoding(train, rng)
        measured = model.predict(test, N_TRS) + 0.05 * rng.standard_normal((len(test_ids), N_TRS, 40))
        data = types.SimpleNamespace(test_clips=pd.DataFrame({"clip_id": test_ids}), test_mean=measured)
        folder.write_encoding_model("fake", sub, encoding_model_arrays(model, data, voxels=np.arange(40)))


@pytest.mark.parametrize("score", ["embedding", "encoding"])
def test_reconstruct_best_of_keeps_the_best_candidate_and_never_reads_the_truth(tmp_path, score):
    res, lib = make_study(tmp_path)
    _write_encoding_models(res, np.random.default_rng(2))
    kw = dict(generator=ToneGenerator(), encoder=ENC, subjects=["sub-001"], n_clips=4, n_bootstrap=50,
              progress=False)  # fmt: skip
    plain = reconstruct(res, lib, tmp_path / "plain", **kw)
    best = reconstruct(res, lib, tmp_path / "best", best_of=5, score=score, **kw)
    assert best.config["best_of"] == 5 and best.config["score"] == score
    assert best.generator["generator"] == "best-of" and best.generator["score"] == score
    folder = ResultsFolder(res)
    pred = folder.read_predictions("fake", "ridge", "sub-001")
    for p, b in zip(plain.clips, best.clips, strict=True):
        sel = b.generated["best_of"]
        assert sel["score"] == score and len(sel["scores"]) == 5
        assert sel["scores"][sel["kept"]] == max(sel["scores"]) >= sel["scores"][0]
        # Candidate 0 is the plain run's clip: its score is the plain clip's score by the same criterion.
        audio, sr = read_audio(tmp_path / "plain" / p.generated["path"])
        emb = clip_embedding(ENC, prepare_clip(audio, sr), sr)[None]
        i = list(pred.clip_ids).index(p.clip_id)
        if score == "embedding":
            ref = EmbeddingScore(pred.space)(emb, pred.predicted[i])[0]
        else:
            model = EncodingScore(folder.read_encoding_model("fake", "sub-001"))
            ref = model.for_clip(p.clip_id)(emb, None)[0]
        assert sel["scores"][0] == pytest.approx(ref, abs=1e-4)
    s = best.per_subject[0]
    assert s.selection_score_mean >= s.selection_score_first_mean
    assert plain.per_subject[0].selection_score_mean is None
    # The true embeddings (targets) of the test clips change; the choices must not.
    study = folder.read()
    es = folder.read_embeddings(study, "fake")
    ids = [str(c) for c in pred.clip_ids]
    shuffled = pred.target[::-1].copy()
    write_fake_study(tmp_path / "res2", list(es.clip_ids), es.embeddings, ids, pred.predicted, shuffled,
                     space=pred.space.name)  # fmt: skip
    _copy_models(res, tmp_path / "res2")
    again = reconstruct(tmp_path / "res2", lib, tmp_path / "best2", best_of=5, score=score, **kw)
    assert [c.generated["best_of"] for c in again.clips] == [c.generated["best_of"] for c in best.clips]


def _copy_models(src, dst):
    import shutil

    shutil.copytree(src / "encoding", dst / "encoding", dirs_exist_ok=True)


def test_best_of_errors_name_the_option(tmp_path):
    res, lib = make_study(tmp_path)
    kw = dict(generator=ToneGenerator(), encoder=ENC, n_clips=3, progress=False)
    with pytest.raises(ConfigError, match="--best-of must be >= 1"):
        reconstruct(res, lib, tmp_path / "r", best_of=0, **kw)
    with pytest.raises(ConfigError, match="--score must be one of embedding, encoding; got 'cosine'"):
        reconstruct(res, lib, tmp_path / "r", best_of=2, score="cosine", **kw)
    with pytest.raises(DataFileNotFoundError, match="--score encoding.*--score embedding"):
        reconstruct(res, lib, tmp_path / "r", best_of=2, score="encoding", **kw)
    with pytest.raises(ConfigError, match=r"generator 'debug' does not take option\(s\) 'bogus'"):
        reconstruct(res, lib, tmp_path / "r", generator="debug", generator_options={"bogus": 1}, encoder=ENC,
                    n_clips=3, progress=False)  # fmt: skip


def test_tr_features_give_every_tr_a_window():
    # MERT's 5-s windows start at 1 s: no window holds the first TR's midpoint (0.75 s). It takes the
    # nearest window (the first) instead of 0/0 = NaN, which made every encoding-model fit fail.
    emb = np.random.default_rng(0).standard_normal((2, 7, 3)).astype(np.float32)
    feats = tr_features(emb, 5.0, N_TRS)
    assert np.isfinite(feats).all()
    assert np.allclose(feats[:, 0], emb[:, 0])
    assert np.allclose(feats[:, 1], emb[:, 0])  # TR 1 (midpoint 2.25 s) lies in window 0 only
