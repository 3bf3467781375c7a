"""Deterministic test audio for the musicnn reference fixture (no RNG whose stream could change).

Shared by ``tests/test_musicnn.py`` and ``benchmarks/bench_musicnn_reference.py --fixture``, which ran the
original TensorFlow implementation on exactly these samples (see ``tests/data/musicnn/SOURCE.md``).
"""

from __future__ import annotations

import numpy as np

SR = 16000


def _noise(n: int, seed: int) -> np.ndarray:
    """Uniform noise in [-1, 1) from an integer hash of the sample index (platform independent)."""
    x = (np.arange(n, dtype=np.uint64) + np.uint64(seed * 7919)) * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(31)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(29)
    return ((x >> np.uint64(40)).astype(np.float64) / float(1 << 24)) * 2.0 - 1.0


def _notes(duration: float, pitches: list[int], step: float, decay: float) -> np.ndarray:
    t = np.arange(int(duration * SR)) / SR
    y = np.zeros_like(t)
    for i, start in enumerate(np.arange(0.0, duration, step)):
        f0 = 440.0 * 2 ** ((pitches[i % len(pitches)] - 69) / 12)
        local = t - start
        on = local >= 0
        env = np.where(on, np.exp(-np.maximum(local, 0) * decay), 0.0)
        for h in range(1, 7):
            y += env * np.sin(2 * np.pi * f0 * h * local) * (0.6 / h**1.5)
    return y


def signals() -> dict[str, np.ndarray]:
    """``{name: (n_samples,) float32 at 16 kHz}``: three 6.5-s files (2 patches each) and one 15-s clip."""
    n = int(6.5 * SR)
    t = np.arange(n) / SR
    arpeggio = _notes(6.5, [60, 64, 67, 72, 67, 64], 0.25, 3.0)
    beat = np.zeros(n)
    for start in np.arange(0.0, 6.5, 0.5):  # 120 BPM: noise snare and a sine kick
        i = int(start * SR)
        m = min(n - i, 4000)
        env = np.exp(-np.arange(m) / 600.0)
        beat[i : i + m] += env * (0.5 * _noise(m, i) + 0.8 * np.sin(2 * np.pi * 60 * np.arange(m) / SR))
    chirp = np.sin(2 * np.pi * (100 * t + 400 * t**2)) * 0.98  # loud: overflows the original's float16 cast
    clip_t = np.arange(15 * SR) / SR
    clip = 0.5 * _notes(15.0, [48, 55, 60, 63, 67, 70], 0.4, 1.5) + 0.1 * _noise(15 * SR, 3) * (
        0.5 + 0.5 * np.sin(2 * np.pi * 0.2 * clip_t)
    )
    out = {"arpeggio": 0.3 * arpeggio, "beat": 0.6 * beat, "chirp": chirp, "clip15": clip}
    return {k: np.clip(v, -1, 1).astype(np.float32) for k, v in out.items()}
