"""GTZAN excerpting (fades, RMS) and robust audio reading."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from brain2music.errors import DataError, DataFileNotFoundError
from brain2music.stimuli import (
    find_gtzan_file,
    load_stimuli,
    load_stimulus,
    read_audio,
    write_audio,
)

SR = 22050


def _track(seconds=30.0, sr=SR, freq=440.0, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    y = 0.5 * np.sin(2 * np.pi * freq * t) * (1 + t / seconds)  # rising level: the excerpt position matters
    return np.stack([y] * channels, axis=1) if channels > 1 else y


@pytest.mark.parametrize("layout", ["genres", "genres_original", "Data/genres_original", ""])
def test_layouts(tmp_path, layout):
    folder = (tmp_path / layout if layout else tmp_path) / "jazz"
    folder.mkdir(parents=True)
    sf.write(folder / "jazz.00007.wav", _track(), SR)
    assert find_gtzan_file(tmp_path, "jazz", 7).name == "jazz.00007.wav"


def test_excerpt_fades_and_rms(tmp_path):
    (tmp_path / "genres/rock").mkdir(parents=True)
    sf.write(tmp_path / "genres/rock/rock.00012.wav", _track(channels=2), SR, subtype="PCM_16")
    y = load_stimulus(tmp_path, "rock", 12, start=4.21)
    assert y.shape == (15 * SR,) and y.dtype == np.float32
    assert np.sqrt(np.mean(y.astype(np.float64) ** 2)) == pytest.approx(0.1, rel=1e-4)
    assert abs(y[0]) < 1e-6 and abs(y[-1]) < 1e-3
    # Inside the fades the excerpt is the source scaled by one gain factor.
    src, _ = read_audio(tmp_path / "genres/rock/rock.00012.wav", offset=4.21, duration=15.0)
    mid = slice(3 * SR, 12 * SR)
    gain = y[mid] / np.where(np.abs(src[mid]) > 1e-3, src[mid], np.nan)
    assert np.nanstd(gain) < 1e-3 * np.nanmean(gain)
    # Fade-in is linear over 2 s: the envelope halfway through is half the steady gain.
    k = SR  # 1 s into a 2-s fade
    assert y[k] / src[k] == pytest.approx(0.5 * np.nanmean(gain), rel=1e-2)


def test_other_sample_rate_is_resampled(tmp_path):
    (tmp_path / "genres/pop").mkdir(parents=True)
    sf.write(tmp_path / "genres/pop/pop.00001.wav", _track(sr=44100, freq=1000.0), 44100)
    y = load_stimulus(tmp_path, "pop", 1, 0.0, sr=16000)
    assert y.shape == (15 * 16000,)
    spectrum = np.abs(np.fft.rfft(y[5 * 16000 : 10 * 16000]))
    assert np.argmax(spectrum) / 5.0 == pytest.approx(1000.0, abs=1.0)


def test_missing_and_short_tracks(tmp_path):
    (tmp_path / "genres/blues").mkdir(parents=True)
    sf.write(tmp_path / "genres/blues/blues.00003.wav", _track(seconds=20.0), SR)
    with pytest.raises(DataFileNotFoundError, match=r"blues.00004.*expected .*genres/blues/blues.00004.wav"):
        load_stimulus(tmp_path, "blues", 4, 0.0)
    with pytest.raises(DataError, match=r"blues.00003.wav: too short for the excerpt 10.00-25.00 s"):
        load_stimulus(tmp_path, "blues", 3, 10.0)
    with pytest.raises(DataFileNotFoundError, match="no GTZAN genre folders"):
        load_stimulus(tmp_path / "genres/blues", "blues", 3, 0.0)


def test_load_stimuli_from_clip_table(tmp_path):
    for g, t in (("disco", 9), ("metal", 40)):
        (tmp_path / "genres" / g).mkdir(parents=True)
        sf.write(tmp_path / "genres" / g / f"{g}.{t:05d}.wav", _track(freq=300 + t), SR)
    clips = pd.DataFrame({"genre": ["disco", "metal"], "track": [9, 40], "start": [1.0, 2.5]})
    out = load_stimuli(tmp_path, clips, sr=8000)
    assert out.shape == (2, 15 * 8000)
    np.testing.assert_allclose(out[1], load_stimulus(tmp_path, "metal", 40, 2.5, sr=8000))


def test_read_audio_errors(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        read_audio(empty)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all" * 100)
    with pytest.raises(DataError, match="junk.wav: cannot read as audio"):
        read_audio(junk)


def test_write_audio_is_atomic_and_roundtrips(tmp_path):
    y = (0.1 * np.sin(np.arange(8000) / 10)).astype(np.float32)
    path = write_audio(tmp_path / "a.wav", y, 8000)
    back, sr = read_audio(path)
    assert sr == 8000 and np.max(np.abs(back - y)) < 1e-3
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]
