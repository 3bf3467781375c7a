"""Encoder protocol, windows, registry and the weight-free encoders (acoustic, debug)."""

from __future__ import annotations

import numpy as np
import pytest

from brain2music.embeddings import Encoder, get_encoder, list_encoders
from brain2music.embeddings.acoustic import AcousticEncoder, DebugEncoder
from brain2music.embeddings.base import frame_window_means
from brain2music.errors import ConfigError, DataError
from brain2music.windows import embedding_windows

SR = 22050


def tone(freq, seconds=15.0, sr=SR, amp=0.3):
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def acoustic():
    return AcousticEncoder()


# -- registry -------------------------------------------------------------------------------------------
def test_registry_lists_builtin_encoders():
    assert {"acoustic", "debug", "clap", "clap-text", "encodec", "mert"} <= set(list_encoders())


def test_unknown_encoder_lists_known_ones():
    with pytest.raises(ConfigError, match="unknown encoder 'nope'; known encoders: acoustic, clap"):
        get_encoder("nope")


def test_bad_option_is_config_error():
    with pytest.raises(ConfigError, match="encoder 'acoustic'.*model"):
        get_encoder("acoustic", model="x")


def test_get_encoder_passes_objects_through():
    enc = DebugEncoder()
    assert get_encoder(enc) is enc


@pytest.mark.parametrize(("window", "r"), [(1.5, 10), (5.0, 7), (10.0, 4), (15.0, 1)])
def test_window_counts_match_paper_table1(window, r):
    enc = DebugEncoder(window=window)
    assert enc.n_windows == r
    np.testing.assert_allclose(enc.windows, embedding_windows(window))
    assert enc.embed(tone(440, sr=8000), 8000).shape == (r, 4)


# -- input handling -------------------------------------------------------------------------------------
def test_debug_matches_direct_numpy():
    rng = np.random.default_rng(0)
    y = rng.standard_normal(15 * 8000).astype(np.float32) * 0.1
    out = DebugEncoder().embed(y, 8000)
    a, b = 12000, 24000  # window 0 is 0-1.5 s; window 1 is 1.5-3 s
    seg = y[a:b].astype(np.float64)
    np.testing.assert_allclose(out[1, 0], np.sqrt(np.mean(seg**2)), rtol=1e-5)
    np.testing.assert_allclose(out[1, 3], np.mean(np.abs(np.diff(seg))), rtol=1e-5)
    zc = np.mean(np.abs(np.diff(np.signbit(seg).astype(int))))
    np.testing.assert_allclose(out[1, 2], zc, rtol=1e-5)


def test_stereo_and_channel_first_equal_mono():
    enc = DebugEncoder()
    y = tone(300, sr=8000)
    stereo = np.stack([y, y], axis=1)
    np.testing.assert_allclose(enc.embed(stereo, 8000), enc.embed(y, 8000), rtol=1e-6)
    np.testing.assert_allclose(enc.embed(stereo.T, 8000), enc.embed(y, 8000), rtol=1e-6)


def test_resampling_gives_same_embedding(acoustic):
    rng = np.random.default_rng(1)
    # Band-limited content (below 4 kHz) survives resampling from 44.1 kHz and 16 kHz.
    base = sum(tone(f, sr=44100, amp=0.1) for f in (220, 330, 1250))
    base = base + 0.01 * rng.standard_normal(base.shape).astype(np.float32)
    import soxr

    at16k = soxr.resample(base, 44100, 16000).astype(np.float32)
    e44 = acoustic.embed(base, 44100)
    e16 = acoustic.embed(at16k, 16000)
    # Features are comparable in the bands both rates carry: logmel bands under 4 kHz and MFCCs.
    corr = np.corrcoef(e44[:, :20].ravel(), e16[:, :20].ravel())[0, 1]
    assert corr > 0.99
    names = acoustic.feature_names
    chroma = slice(names.index("chroma_00"), names.index("chroma_11") + 1)
    np.testing.assert_allclose(e44[:, chroma], e16[:, chroma], atol=0.05)


def test_silence_is_finite(acoustic):
    out = acoustic.embed(np.zeros(15 * SR, dtype=np.float32), SR)
    assert out.shape == (10, acoustic.dim)
    assert np.all(np.isfinite(out))
    names = acoustic.feature_names
    assert out[0, names.index("rms_db_mean")] == pytest.approx(-10.0, abs=1e-3)  # the -100 dB floor
    assert out[0, names.index("pulse_clarity")] == 0.0


def test_short_and_long_audio(acoustic):
    with pytest.raises(DataError, match="shorter than one 1.5-s window of encoder 'acoustic'"):
        acoustic.embed(np.ones(SR), SR)
    # Longer than 15 s: only the first 15 s count.
    y = tone(440, 20.0)
    np.testing.assert_allclose(acoustic.embed(y, SR), acoustic.embed(y[: 15 * SR], SR), rtol=1e-5, atol=1e-5)
    # Shorter than 15 s: zero-padded, the windows after the end are silent.
    out = acoustic.embed(tone(440, 6.0), SR)
    assert out.shape == (10, acoustic.dim)
    rms = acoustic.feature_names.index("rms_db_mean")
    assert out[-1, rms] == pytest.approx(-10.0, abs=1e-3)
    assert out[0, rms] > -2.0


@pytest.mark.parametrize(
    ("audio", "sr", "match"),
    [
        (np.zeros(0), SR, "empty"),
        (np.full(15 * SR, np.nan), SR, "NaN"),
        (np.zeros((2, 3, 4)), SR, "shape"),
        (np.zeros(15 * SR), 0, "sample rate"),
        (np.zeros(15 * SR), 22050.5, "sample rate"),
        (np.array(["a"] * 10), SR, "numeric"),
    ],
)
def test_bad_audio(audio, sr, match):
    with pytest.raises(DataError, match=match):
        DebugEncoder().embed(audio, sr)


def test_embed_many_equals_embed(acoustic):
    clips = [tone(220), tone(440, sr=16000)]
    both = acoustic.embed_many(clips, [SR, 16000])
    np.testing.assert_allclose(both[0], acoustic.embed(clips[0], SR), rtol=1e-6)
    np.testing.assert_allclose(both[1], acoustic.embed(clips[1], 16000), rtol=1e-6)


def test_frame_window_means_reference():
    rng = np.random.default_rng(0)
    frames = rng.standard_normal((100, 3))
    times = np.arange(100) * 0.1 + 0.05
    wins = np.array([[0.0, 1.0], [0.5, 2.5], [9.0, 10.0]])
    out = frame_window_means(frames, times, wins)
    for k, (a, b) in enumerate(wins):
        np.testing.assert_allclose(out[k], frames[(times >= a) & (times < b)].mean(axis=0))


# -- the acoustic vector --------------------------------------------------------------------------------
def test_acoustic_vector_is_documented(acoustic):
    assert acoustic.dim == 102 == len(acoustic.feature_names) == len(set(acoustic.feature_names))
    assert acoustic.config["encoder"] == "acoustic" and acoustic.config["n_windows"] == 10
    assert isinstance(acoustic, Encoder)


def test_acoustic_reads_known_answers(acoustic):
    names = acoustic.feature_names
    # A 120-BPM click track: tempo log2(120/120) = 0 within the tempogram's lag resolution.
    clicks = np.zeros(15 * SR, dtype=np.float32)
    clicks[:: SR // 2] = 1.0
    out = acoustic.embed(clicks, SR)
    assert np.all(np.abs(out[:, names.index("tempo")]) < 0.05)
    assert np.all(out[2:-2, names.index("pulse_clarity")] > 0.5)
    # An A4 tone: chroma peaks at A (index 9), centroid near 0.44 kHz.
    out = acoustic.embed(tone(440), SR)
    chroma = out[:, names.index("chroma_00") : names.index("chroma_11") + 1]
    assert np.all(chroma.argmax(axis=1) == 9)
    assert out[5, names.index("centroid")] == pytest.approx(0.44, abs=0.05)
    # White noise is flat, a tone is not.
    noise = np.random.default_rng(0).standard_normal(15 * SR).astype(np.float32) * 0.1
    flat = names.index("flatness")
    assert acoustic.embed(noise, SR)[:, flat].mean() > 0.3 > out[:, flat].mean()


def _genre_like(kind: str, rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    """Three synthetic 'genres': slow low chords, fast noisy drums, mid-tempo bright melody."""
    n = 15 * sr
    t = np.arange(n) / sr
    y = np.zeros(n, dtype=np.float64)
    if kind == "ambient":
        root = rng.uniform(80, 160)
        for ratio in (1.0, 1.25, 1.5):
            y += 0.2 * np.sin(2 * np.pi * root * ratio * t + rng.uniform(0, 6))
    elif kind == "drums":
        bpm = rng.uniform(150, 175)
        step = int(sr * 60 / bpm)
        burst = rng.standard_normal(int(0.05 * sr)) * np.exp(-np.linspace(0, 8, int(0.05 * sr)))
        for s in range(0, n - len(burst), step):
            y[s : s + len(burst)] += burst
    else:  # melody
        bpm = rng.uniform(95, 110)
        step = int(sr * 60 / bpm)
        for s in range(0, n - step, step):
            f = rng.choice([523.0, 587.0, 659.0, 784.0, 880.0])
            seg = np.arange(step) / sr
            y[s : s + step] += 0.3 * np.sin(2 * np.pi * f * seg) * np.exp(-3 * seg)
    y += 0.005 * rng.standard_normal(n)
    return y.astype(np.float32)


def test_acoustic_separates_genre_like_signals(acoustic):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    kinds = ["ambient", "drums", "melody"]
    labels = np.repeat(np.arange(3), 6)
    X = np.stack([acoustic.embed(_genre_like(kinds[k], rng), SR).mean(axis=0) for k in labels])
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    assert cross_val_score(clf, X, labels, cv=3).mean() >= 0.95
    # Shuffled labels: chance level (1/3), far below.
    shuffled = np.random.default_rng(1).permutation(labels)
    assert cross_val_score(clf, X, shuffled, cv=3).mean() < 0.7


def test_windows_are_aligned_in_time(acoustic):
    # A tone only during 4.5-6.0 s (window 3 of the 1.5-s windows): only row 3 is loud; rows not next to
    # it stay at the silence floor, the neighbours get at most the STFT frames that straddle the edges.
    y = np.zeros(15 * SR, dtype=np.float32)
    y[int(4.5 * SR) : int(6.0 * SR)] = tone(440, 1.5)
    out = acoustic.embed(y, SR)
    rms = out[:, acoustic.feature_names.index("rms_db_mean")]
    assert rms.argmax() == 3 and rms[3] > -2.0
    far = np.r_[0, 1, 5:10]
    np.testing.assert_allclose(rms[far], -10.0, atol=1e-3)
    assert np.all(rms[[2, 4]] < rms[3] - 2.0)
