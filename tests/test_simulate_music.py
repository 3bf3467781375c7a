"""`simulate --music`: a study cut from recordings; and the whole path to `reconstruct --generator mosaic`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from brain2music.cli import main
from brain2music.errors import ConfigError
from brain2music.stimuli import read_audio
from mosaic_music import synth_track

GENRES = ("rock", "jazz", "classical")
TINY = ["--subjects", "1", "--voxels", "300", "--parcels", "20", "--auditory-parcels", "3",
        "--test-clips-per-genre", "1", "--train-runs", "2", "--test-runs", "1", "--test-repeats", "2",
        "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Three 'genres' of three synthetic recordings each: 31 and 33 s WAV, 62 s 44.1-kHz stereo Ogg."""
    root = tmp_path_factory.mktemp("recordings")
    for g, genre in enumerate(GENRES):
        (root / genre).mkdir()
        for i, duration in enumerate((31.0, 33.0, 62.0)):
            if i < 2:
                sf.write(root / genre / f"r{i}.wav", synth_track(100 + 10 * g + i, duration=duration), 22050)
                continue
            y = synth_track(100 + 10 * g + i, duration=duration, sr=44100)
            stereo = np.stack([y, 0.8 * y], axis=1)
            # written in blocks: libsndfile's Vorbis encoder crashes on one large write
            with sf.SoundFile(root / genre / "r2.ogg", "w", 44100, 2, format="OGG", subtype="VORBIS") as f:
                for a in range(0, len(stereo), 44100):
                    f.write(stereo[a : a + 44100])
    return root


@pytest.fixture(scope="module")
def study(recordings, tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "study"
    assert main(["simulate", str(out), "--music", str(recordings), "--excerpts-per-track", "2", *TINY]) == 0
    return out


def test_study_is_cut_from_the_recordings(study, recordings):
    from brain2music.data import load_subject

    meta = pd.read_csv(study / "stimuli" / "metadata.csv")
    assert set(meta.genre) == set(GENRES)
    test, train = meta[meta.split == "test"], meta[meta.split == "train"]
    assert len(test) == 3 and test.source.is_unique  # one clip per test recording
    assert not set(test.source) & set(train.source)  # no recording in both splits
    # a 31-s or 33-s recording gives one 30-s piece, the 62-s one two (unless it is the test recording)
    for source, pieces in train.groupby("source"):
        assert len(pieces) == (2 if sf.info(source).duration >= 60 else 1)
    # every study track is the recording itself at its offset, as 22,050-Hz mono
    row = train.iloc[0]
    track, sr = read_audio(study / "stimuli" / "genres" / row.genre / f"{row.clip_id}.wav")
    src, _ = read_audio(row.source, sr=22050, offset=row.source_offset, duration=30.0)
    assert sr == 22050 and np.abs(track - src).max() < 1e-3  # 16-bit WAV quantisation
    sub = load_subject(study / "bids", "sub-001")
    assert sub.train.shape[0] == len(train) and sub.test.shape[:2] == (3, 2)
    assert json.loads((study / "simulation.json").read_text())["config"]["music"] == str(recordings.resolve())


def test_bad_music_folders(recordings, tmp_path):
    from brain2music.simulate import simulate_study

    odd = tmp_path / "odd"
    (odd / "chiptune").mkdir(parents=True)
    with pytest.raises(ConfigError, match="chiptune"):
        simulate_study(tmp_path / "a", music=odd, n_voxels=300, n_parcels=20, n_auditory_parcels=3)
    one = tmp_path / "one" / "rock"
    one.mkdir(parents=True)
    sf.write(one / "x.wav", synth_track(1, duration=20.0), 22050)
    with pytest.raises(ConfigError, match="at least 2 recordings"):
        simulate_study(tmp_path / "b", music=one.parent, n_voxels=300, n_parcels=20, n_auditory_parcels=3)
    with pytest.raises(ConfigError, match="train_runs"):
        simulate_study(tmp_path / "c", music=recordings, train_runs=40, n_voxels=300, n_parcels=20,
                       n_auditory_parcels=3)  # fmt: skip


def test_reconstruct_with_the_mosaic_end_to_end(study, recordings, tmp_path):
    """reproduce → library build --coverage full (the recordings) → reconstruct --generator mosaic: the
    test clips' own recordings are never retrieved nor cut into a mosaic."""
    res, lib, rec = tmp_path / "results", tmp_path / "lib", tmp_path / "recon"
    assert main(["reproduce", str(study / "bids"), "--stimuli", str(study / "stimuli"), "--encoders", "acoustic",
                 "--methods", "ridge", "--no-logo", "--cv", "2", "--n-permutations", "2", "--out", str(res),
                 "--quiet"]) == 0  # fmt: skip
    assert main(["library", "build", str(recordings), "--encoder", "acoustic", "--coverage", "full",
                 "--out", str(lib)]) == 0  # fmt: skip
    # This study's few training runs leave an outer fold a single run, too few for its inner CV: there is no
    # nested selection score, so reconstruct refuses to pick a decoder until one is named.
    assert main(["reconstruct", str(res), "--library", str(lib), "--generator", "mosaic", "--out", str(rec),
                 "--quiet"]) == 2  # fmt: skip
    assert main(["reconstruct", str(res), "--library", str(lib), "--generator", "mosaic", "--out", str(rec),
                 "--method", "ridge", "--quiet"]) == 0  # fmt: skip
    doc = json.loads((rec / "reconstruction.json").read_text())
    meta = pd.read_csv(study / "stimuli" / "metadata.csv").set_index("clip_id")
    assert len(doc["clips"]) == 3
    for clip in doc["clips"]:
        own = meta.at[clip["clip_id"], "source"]
        test_sources = set(meta.loc[meta.split == "test", "source"])
        assert not {r["path"] for r in clip["retrieved"]} & test_sources
        used = {s["path"] for s in clip["segments"]}
        # No test clip's recording (its own nor another test clip's) is cut into any mosaic.
        assert len(used) >= 3 and own in test_sources and not used & test_sources
        audio, sr = read_audio(rec / clip["generated"]["path"])
        assert sr == 22050 and len(audio) == 15 * sr
    assert doc["generator"]["generator"] == "mosaic" and "generation_id_acc" in doc["summary"]
