"""Class agreement with the musicnn taggers in `reconstruct` (real weights, audio the test synthesises).

Known answers: a reconstruction that is the original's own audio agrees with it exactly (1 in every
group); Chance equals the brute-force mean agreement with every library track; reconstructions of
shuffled pairs score the brute-force agreement of those pairs, well below 1.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from brain2music.embeddings.clips import experiment_clips
from brain2music.evaluate.tags import top_k_agreement
from brain2music.reconstruct.library import build_library
from brain2music.reconstruct.tag_agreement import (
    TagAgreement,
    audio_loader,
    field_name,
    metric_name,
    stimulus_clips,
)
from brain2music.report.recon import _tag_table
from brain2music.results import ResultsFolder
from brain2music.results.settings import StudySettings
from brain2music.study.reconstruct import reconstruct
from conftest import DS003720
from musicnn_signals import SR, _noise
from test_library import FakeEncoder
from test_reconstruct import write_fake_study

ENC = FakeEncoder()
GROUPS = ("genre", "instrument", "mood")


def _signal(i: int, duration: float = 30.5) -> np.ndarray:
    """Distinct music-like audio per ``i``: decaying harmonic notes at several tempi and registers, noise."""
    n = int(duration * SR)
    y = np.zeros(n)
    step = [0.12, 0.5, 0.25, 1.0, 0.18, 0.7, 0.3, 0.09][i]
    pitches = [48 + 5 * i, 55 + 3 * i, 60 + 2 * i, 67]
    t = np.arange(int(step * SR)) / SR  # each note lasts until the next one
    env = np.exp(-t * (2.0 + i))
    note = {p: env * sum(np.sin(2 * np.pi * 440.0 * 2 ** ((p - 69) / 12) * h * t) / h**1.5 for h in range(1, 7))
            for p in pitches}  # fmt: skip
    for k, start in enumerate(range(0, n - len(t), len(t))):
        y[start : start + len(t)] = note[pitches[k % len(pitches)]]
    noise = _noise(n, seed=i) * (0.02 + 0.25 * (i % 3 == 0))
    return (0.3 * y / np.abs(y).max() + noise).astype(np.float32)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Events of real ds003720 sub-001, 4 test stimuli, a library holding their exact excerpts + 2 more."""
    tmp = tmp_path_factory.mktemp("tags")
    bids = tmp / "bids"
    (bids / "sub-001" / "func").mkdir(parents=True)
    for ev in (DS003720 / "sub-001" / "func").glob("*_events.tsv"):
        shutil.copy(ev, bids / "sub-001" / "func" / ev.name)
    table = experiment_clips(bids)
    test = table[table.split == "test"].drop_duplicates("genre").head(4)
    ids = list(test.clip_id)
    for i, row in enumerate(test.itertuples()):
        path = tmp / "stimuli" / row.genre / f"{row.clip_id}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, _signal(i), SR, subtype="FLOAT")
    clips, why = stimulus_clips(
        StudySettings.from_dict({"bids_root": str(bids), "stimuli": str(tmp / "stimuli")}), ids
    )
    assert why is None
    music = tmp / "music"
    music.mkdir()
    for c in ids:  # the stimulus excerpt itself, under another id (retrieval must not exclude it)
        audio, sr = clips[c].load()
        sf.write(music / f"copy-{c}.wav", audio, sr, subtype="FLOAT")
    for j in (4, 5):
        sf.write(music / f"other-{j}.wav", _signal(j, 16.0), SR, subtype="FLOAT")
    lib = build_library(music, tmp / "lib", encoder=ENC, progress=False)
    target = np.stack([ENC.embed(clips[c].load()[0], 22050) for c in ids])
    return tmp, bids, ids, clips, target, lib


def _results(tmp, bids, ids, target, predicted, name):
    res = tmp / name
    write_fake_study(res, ids, target, ids, predicted, target)
    folder = ResultsFolder(res)
    results = folder.read()
    results.config = StudySettings.from_dict(
        {"bids_root": str(bids), "stimuli": str(tmp / "stimuli"), "subjects": ["sub-001"]}
    )
    folder.write(results)
    return res


def test_tag_agreement_known_answers(study):
    tmp, bids, ids, clips, target, lib = study
    scorer = TagAgreement()
    # brute force: every library track's tags, and the originals'
    paths = [str(p) for p in lib.metadata["path"]]
    lib_probs = scorer.probs(paths, [audio_loader(p) for p in paths])
    orig = scorer.probs([repr(clips[c]) for c in ids], [clips[c].load for c in ids])

    # 1. predictions = the true embeddings: retrieval and retrieval with the true embedding return the original's own audio
    res = _results(tmp, bids, ids, target, target.copy(), "same")
    rep = reconstruct(
        res,
        lib,
        tmp / "r_same",
        generator="debug",
        encoder=ENC,
        progress=False,
        n_bootstrap=200,
        tag_agreement=scorer,
    )
    s = rep.per_subject[0]
    assert rep.tag_agreement["taggers"]["instrument"] == "musicnn-mtt"
    assert rep.tag_agreement["library_tracks"] == len(lib)
    for g in GROUPS:
        assert s.value("retrieval", metric_name(g)) == 1.0
        assert s.value("true_embedding", metric_name(g)) == 1.0
        assert s.get("retrieval", metric_name(g)).ci == [1.0, 1.0]
        assert s.get("retrieval", metric_name(g)).p is not None and s.get("chance", metric_name(g)).ci is None
        # Chance: the mean agreement with every library track (exact, all tracks are tagged)
        brute = np.mean([top_k_agreement(orig[g], np.repeat(lib_probs[g][[j]], len(ids), 0),
                                         scorer.top_k[g]) for j in range(len(lib))], axis=0)  # fmt: skip
        assert s.value("chance", metric_name(g)) == pytest.approx(brute.mean(), abs=1e-12)
        assert s.value("generation", metric_name(g)) is not None
        assert rep.summary[field_name("retrieval", g)].mean == 1.0
    c0 = rep.clips[0]
    assert c0.tag_classes["original"] == c0.tag_classes["retrieved"]
    assert len(c0.tag_classes["original"]["genre"]) == 2 and len(c0.tag_classes["original"]["mood"]) == 1
    again = ResultsFolder.read_reconstruction(tmp / "r_same")
    assert again.per_subject[0] == s and again.clips[0].tag_classes == c0.tag_classes
    table = _tag_table(again)  # the report's table, from reconstruction.json
    assert "genre (top 2, musicnn-msd)" in table and "instrument (top 2, musicnn-mtt)" in table
    assert "<td>retrieval (top-1 track for the predicted embedding)</td><td>1.000" in table

    # 2. shuffled pairs: each prediction is another clip's embedding
    shift = np.roll(np.arange(len(ids)), 2)
    res = _results(tmp, bids, ids, target, target[shift], "shuffled")
    rep = reconstruct(
        res, lib, tmp / "r_shuf", generator=None, progress=False, n_bootstrap=200, tag_agreement=scorer
    )
    s = rep.per_subject[0]
    for g in GROUPS:
        expect = top_k_agreement(orig[g], orig[g][shift], scorer.top_k[g]).mean()
        assert s.value("retrieval", metric_name(g)) == pytest.approx(expect, abs=1e-12)
        assert s.value("true_embedding", metric_name(g)) == 1.0
        assert s.value("generation", metric_name(g)) is None
    assert np.mean([s.value("retrieval", metric_name(g)) for g in GROUPS]) < 0.9


def test_tag_agreement_skipped_without_stimuli(tmp_path, study):
    _, _, ids, _, target, lib = study
    res = tmp_path / "res"
    write_fake_study(res, ids, target, ids, target, target)
    rep = reconstruct(res, lib, tmp_path / "r", generator=None, progress=False, n_bootstrap=50)
    assert "stimuli" in rep.tag_agreement["skipped"]
    assert rep.per_subject[0].get("retrieval", metric_name("genre")) is None
    off = reconstruct(res, lib, tmp_path / "r2", generator=None, progress=False, tag_agreement=False)
    assert off.tag_agreement is None
