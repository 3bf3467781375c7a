"""musicnn's input: the log-compressed mel spectrogram of ``musicnn/extractor.py``, in float32.

16 kHz mono audio, STFT of 512 points (periodic Hann window, hop 256, frames centred with 256 zeros of
padding at each end, as ``librosa.stft(center=True)``), power spectrum, 96 Slaney mel bands
(``librosa.filters.mel(sr=16000, n_fft=512, n_mels=96)``), then ``log10(10000 * mel + 1)``. Patches are
187 frames (3 s).

Deviation from the original, on purpose: ``musicnn/extractor.py`` casts the mel spectrogram to float16
before the log. Mel power above 6.55 (loud passages) then overflows ``10000 * x`` to inf, every layer
after the input batch norm turns to NaN and every patch gets the same tags. Here everything is float32;
wherever the original does not overflow the two agree to float16 rounding of the input (see
``benchmarks/bench_musicnn_reference.py``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["SR", "N_FFT", "HOP", "N_MELS", "N_FRAMES", "log_mel", "patch_samples", "min_samples"]

SR = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
N_FRAMES = 187


@lru_cache(maxsize=1)
def _filters() -> tuple[np.ndarray, np.ndarray]:
    import librosa
    import scipy.signal

    mel = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)  # (96, 257)
    window = scipy.signal.get_window("hann", N_FFT, fftbins=True).astype(np.float32)
    return np.ascontiguousarray(mel.T), window


def n_frames(n_samples: int) -> int:
    """Frames of a centred STFT of ``n_samples`` samples: ``1 + n_samples // 256``."""
    return 1 + int(n_samples) // HOP


def min_samples() -> int:
    """Fewest samples whose spectrogram holds one 187-frame patch (47,616 at 16 kHz, 2.976 s)."""
    return (N_FRAMES - 1) * HOP


def patch_samples() -> int:
    """Samples of one 3-s window at 16 kHz (48,000); its spectrogram has 188 frames, the patch the first 187."""
    return 3 * SR


def log_mel(audio: np.ndarray) -> np.ndarray:
    """``log10(10000 * mel + 1)`` of 16-kHz mono audio.

    Parameters
    ----------
    audio : ndarray, shape ``(..., n_samples)``

    Returns
    -------
    ndarray, shape ``(..., 1 + n_samples // 256, 96)`` float32
    """
    import scipy.fft

    mel_t, window = _filters()
    x = np.asarray(audio, dtype=np.float32)
    pad = [(0, 0)] * (x.ndim - 1) + [(N_FFT // 2, N_FFT // 2)]
    frames = sliding_window_view(np.pad(x, pad), N_FFT, axis=-1)[..., ::HOP, :]
    spec = scipy.fft.rfft(frames * window, axis=-1)
    power = spec.real**2 + spec.imag**2
    mel = power.astype(np.float32) @ mel_t
    return np.log10(np.float32(10000.0) * mel + np.float32(1.0)).astype(np.float32)
