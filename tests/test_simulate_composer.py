"""The composer (params → MIDI → audio), its numeric encoding, and the auditory feature space."""

from __future__ import annotations

import numpy as np
import pytest

from brain2music.data import GENRES
from brain2music.errors import ConfigError
from brain2music.simulate import (
    PARAM_NAMES,
    TrackParams,
    auditory_features,
    compose,
    params_from_vector,
    params_to_vector,
    render,
    sample_params,
)
from brain2music.simulate.features import FAST_FEATURES, N_GROUPS, timbre_factors

SR = 22050


def _notes(pm):
    return [
        (i.program, i.is_drum, n.pitch, round(n.start, 6), round(n.end, 6))
        for i in pm.instruments
        for n in i.notes
    ]


def test_sample_params_follow_the_genre_style():
    rng = np.random.default_rng(0)
    for genre in GENRES:
        p = sample_params(genre, rng)
        assert isinstance(p, TrackParams) and p.genre == genre
        assert 40 <= p.tempo <= 220 and 0 <= p.key < 12
    assert all(sample_params("metal", s).distortion >= 25 for s in range(5))
    assert all(sample_params("classical", s).drum_pattern == 9 for s in range(5))  # no drums
    assert all(sample_params("jazz", s).swing >= 0.25 for s in range(5))
    with pytest.raises(ConfigError, match="genre"):
        sample_params("polka", 0)


def test_compose_is_deterministic_and_tracks_differ():
    p = sample_params("rock", 1)
    assert _notes(compose(p)) == _notes(compose(p))
    q = sample_params("rock", 2)
    assert _notes(compose(p)) != _notes(compose(q))
    pm = compose(p, duration=30.0)
    assert max(n.end for i in pm.instruments for n in i.notes) <= 30.0
    names = {i.name for i in pm.instruments}
    assert {"drums", "bass", "chords", "melody"} <= names
    assert not any(i.is_drum for i in compose(sample_params("classical", 0)).instruments)


def test_vector_encoding_round_trips():
    for s, genre in enumerate(GENRES):
        p = sample_params(genre, s)
        v = params_to_vector(p)
        assert v.shape == (len(PARAM_NAMES),) and v.min() >= 0 and v.max() <= 1
        back = params_from_vector(v, seed=p.seed)
        assert params_to_vector(back) == pytest.approx(v, abs=1e-9)
        for name in (
            "genre",
            "key",
            "mode",
            "meter",
            "drum_pattern",
            "drum_kit",
            "bass_style",
            "progression",
        ):
            assert getattr(back, name) == getattr(p, name)
        assert back.tempo == pytest.approx(p.tempo) and back.instruments == p.instruments
    with pytest.raises(ConfigError, match="expected"):
        params_from_vector(np.zeros(3))
    # Any vector decodes to something renderable (a search may propose anything in [0, 1]^d).
    rng = np.random.default_rng(0)
    audio = render(params_from_vector(rng.random(len(PARAM_NAMES)), seed=5), duration=3.0)
    assert audio.shape == (3 * SR,) and np.isfinite(audio).all()


def test_render_is_deterministic_and_independent_of_history():
    p = sample_params("disco", 3)
    a = render(p, duration=4.0)
    render(sample_params("metal", 4), duration=4.0)  # something else in between
    b = render(p, duration=4.0)
    assert a.shape == (4 * SR,) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert 0.5 < np.abs(a).max() <= 0.99 + 1e-6
    assert np.sqrt(np.mean(a**2)) > 0.02


def test_distortion_brightens_metal():
    """Metal's distortion adds upper harmonics: more high-band energy than the same track clean."""
    p = sample_params("metal", 0)
    clean = TrackParams(**{**p.to_dict(), "distortion": 0.0})
    hi = [auditory_features(render(x, duration=4.0), SR)[:, -2:].mean() for x in (p, clean)]
    assert hi[0] > hi[1]


def test_features_known_answers():
    t = np.arange(4 * SR) / SR
    rng = np.random.default_rng(0)
    noise = rng.normal(size=t.size)
    slow_am = noise * (1 + np.sin(2 * np.pi * 4 * t))
    fast_am = noise * (1 + np.sin(2 * np.pi * 16 * t))
    names = list(FAST_FEATURES)
    r4 = [names.index(f"rate4Hz_band{g}") for g in range(N_GROUPS)]
    r16 = [names.index(f"rate16Hz_band{g}") for g in range(N_GROUPS)]
    f_slow, f_fast = auditory_features(slow_am, SR), auditory_features(fast_am, SR)
    assert f_slow.shape == (8, len(FAST_FEATURES))
    # 4-Hz modulation shows in the 4-Hz rate channels, 16-Hz modulation in the 16-Hz ones.
    assert f_slow[:, r4].mean() - f_slow[:, r16].mean() > f_fast[:, r4].mean() - f_fast[:, r16].mean() + 1.0
    # A 300-Hz tone excites a low band group, a 4-kHz tone a high one.
    levels = [names.index(f"level_band{g}") for g in range(N_GROUPS)]
    low = auditory_features(np.sin(2 * np.pi * 300 * t), SR)[:, levels].mean(0)
    high = auditory_features(np.sin(2 * np.pi * 4000 * t), SR)[:, levels].mean(0)
    assert np.argmax(low) < 3 and np.argmax(high) >= 6
    # Brighter sound, higher centroid; noise flatter than a tone.
    c_low, flat_tone, _ = timbre_factors(np.sin(2 * np.pi * 300 * t), SR)
    c_noise, flat_noise, _ = timbre_factors(noise, SR)
    assert c_noise > c_low and flat_noise > 10 * flat_tone


def _spectral_stats(audio: np.ndarray) -> np.ndarray:
    import librosa

    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=audio, sr=SR, n_mels=32))
    return np.concatenate([mel.mean(axis=1), mel.std(axis=1)])


def test_genres_are_separable_from_simple_spectral_statistics():
    """Cross-validated logistic regression on mel-band mean/std of 5-s renders: far above 10 % chance."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    X, y = [], []
    for genre in GENRES:
        for _ in range(5):
            X.append(_spectral_stats(render(sample_params(genre, rng), duration=5.0)))
            y.append(genre)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    acc = cross_val_score(clf, np.array(X), np.array(y), cv=StratifiedKFold(5, shuffle=True, random_state=0))
    assert acc.mean() > 0.5
    # Shuffled labels: chance.
    shuffled = rng.permutation(y)
    acc0 = cross_val_score(clf, np.array(X), shuffled, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    assert acc0.mean() < 0.35
