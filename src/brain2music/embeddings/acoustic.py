"""Weight-free encoders: ``acoustic`` (librosa music descriptors) and the tiny ``debug`` encoder.

The ``acoustic`` vector (102 values per 1.5-s window, r = 10 per 15-s clip) is computed from one STFT of
the clip at 22,050 Hz (``n_fft`` 2048, hop 512, about 43 frames per second); frame-level descriptors are
averaged over the frames whose centre lies in each window. In order (see
:attr:`AcousticEncoder.feature_names`):

==========================  ====  ===================================================================
group                       size  definition (scaled so that every value is of order 1)
==========================  ====  ===================================================================
``logmel_00..31``            32   log power of 32 mel bands (0-11 kHz), in bels (dB / 10)
``mfcc_mean_00..19``         20   mean of 20 MFCCs of the 32-band log-mel spectrum, / 100 for c0, / 10 else
``mfcc_std_00..19``          20   standard deviation of the same MFCCs within the window, same scaling
``chroma_00..11``            12   mean chroma (C, C#, ..., B) of the power spectrogram, each frame max 1
``contrast_0..6``             7   spectral contrast of 6 octave bands + residual, dB / 10
``centroid``                  1   spectral centroid, kHz
``bandwidth``                 1   spectral bandwidth, kHz
``rolloff``                   1   85 % roll-off frequency, kHz
``flatness``                  1   spectral flatness (0 tonal … 1 noise)
``zcr``                       1   zero-crossing rate (fraction of samples)
``rms_db_mean`` / ``_std``    2   frame RMS level, bels (dB / 10): mean and standard deviation
``onset_mean`` / ``_std``     2   onset strength (spectral flux of the log-mel), mean and sd
``tempo``                     1   log2(tempo / 120 BPM) from the tempogram around the window
``pulse_clarity``             1   height of the tempogram peak (0 no pulse … 1 strict pulse)
==========================  ====  ===================================================================

Tempo needs more context than 1.5 s: it is read from an autocorrelation tempogram with an 8.9-s analysis
window centred on each frame, averaged over the window's frames (a log-normal prior around 120 BPM picks
the metrical level). Silence gives finite values (floors at
-100 dB, zero chroma and pulse). The descriptors are in fixed units, not standardised: z-score each
dimension over the training clips before comparing clips with a correlation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from brain2music.embeddings.base import Encoder, frame_window_means

__all__ = ["AcousticEncoder", "DebugEncoder"]

_AMIN = 1e-10  # -100 dB floor: silence stays finite


def _feature_names(n_mels: int, n_mfcc: int) -> list[str]:
    names = [f"logmel_{i:02d}" for i in range(n_mels)]
    names += [f"mfcc_mean_{i:02d}" for i in range(n_mfcc)]
    names += [f"mfcc_std_{i:02d}" for i in range(n_mfcc)]
    names += [f"chroma_{i:02d}" for i in range(12)]
    names += [f"contrast_{i}" for i in range(7)]
    names += ["centroid", "bandwidth", "rolloff", "flatness", "zcr", "rms_db_mean", "rms_db_std"]
    names += ["onset_mean", "onset_std", "tempo", "pulse_clarity"]
    return names


class AcousticEncoder(Encoder):
    """Music descriptors computed with librosa on the paper's 1.5-s windows (no weights, no torch).

    Parameters
    ----------
    window : float
        Window length (s); 1.5 gives the paper's r = 10 windows per 15-s clip.
    n_mels, n_mfcc : int
        Number of mel bands and MFCCs (the vector has ``n_mels + 2 * n_mfcc + 38`` values).
    clip_duration : float
        Length of a clip (s); longer audio is cut, shorter audio zero-padded.

    Attributes
    ----------
    feature_names : list of str
        Name of each of the ``dim`` values (see the module docstring).
    """

    name = "acoustic"
    sr = 22050
    n_fft = 2048
    hop_length = 512
    tempogram_frames = 384  # about 8.9 s of context at hop 512

    def __init__(
        self, *, window: float = 1.5, n_mels: int = 32, n_mfcc: int = 20, clip_duration: float = 15.0
    ):
        self.window = float(window)
        self.n_mels = int(n_mels)
        self.n_mfcc = int(n_mfcc)
        self.clip_duration = float(clip_duration)
        self.feature_names = _feature_names(self.n_mels, self.n_mfcc)
        self.dim = len(self.feature_names)
        self._check_window()

    def _extra_config(self) -> dict[str, Any]:
        return {
            "n_mels": self.n_mels,
            "n_mfcc": self.n_mfcc,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "tempogram_frames": self.tempogram_frames,
            "features": "logmel,mfcc_mean,mfcc_std,chroma,contrast,spectral,rms,onset,tempo/v1",
        }

    def _embed_batch(self, audio: np.ndarray) -> np.ndarray:
        return np.stack([self.frame_features_windowed(y) for y in audio])

    def frame_features(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frame-level descriptors of a mono clip at ``sr``.

        Returns ``(means, spreads, times, tempogram)``: ``means (n_frames, n_features)`` are averaged
        within a window; ``spreads (n_frames, n_mfcc + 2)`` (MFCCs, RMS level, onset strength) also give
        within-window standard deviations; ``times (n_frames,)`` are frame centres in seconds;
        ``tempogram (n_lags, n_frames)`` is the onset autocorrelation.
        """
        import librosa

        sr, hop = self.sr, self.hop_length
        stft = np.abs(librosa.stft(y, n_fft=self.n_fft, hop_length=hop, center=True))
        power = stft**2
        mel_basis, chroma_basis = self._filters()
        mel = mel_basis @ power
        mel_db = librosa.power_to_db(mel, ref=1.0, amin=_AMIN, top_db=None)
        mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=self.n_mfcc)
        mfcc_scale = np.full((self.n_mfcc, 1), 10.0, dtype=np.float32)
        mfcc_scale[0] = 100.0  # c0 is the sum of all bands, an order of magnitude larger
        mfcc = mfcc / mfcc_scale
        # librosa.feature.chroma_stft without its per-call tuning estimate (slow, and undefined on silence).
        chroma = chroma_basis @ power
        chroma = chroma / np.maximum(chroma.max(axis=0, keepdims=True), 1e-10)
        # spectral_contrast takes log10 of band energies; the floor keeps silence finite.
        contrast = librosa.feature.spectral_contrast(S=stft + 1e-6, sr=sr, n_fft=self.n_fft, hop_length=hop)
        freqs = librosa.fft_frequencies(sr=sr, n_fft=self.n_fft)
        total = power.sum(axis=0)
        silent = total < _AMIN
        safe = np.where(silent, 1.0, stft.sum(axis=0))
        centroid = np.where(silent, 0.0, (freqs[:, None] * stft).sum(axis=0) / safe)
        bandwidth = np.where(
            silent, 0.0, np.sqrt(((freqs[:, None] - centroid[None, :]) ** 2 * stft).sum(axis=0) / safe)
        )
        cum = np.cumsum(power, axis=0)
        rolloff_bin = (cum < 0.85 * cum[-1:, :]).sum(axis=0).clip(0, len(freqs) - 1)
        rolloff = np.where(silent, 0.0, freqs[rolloff_bin])
        flatness = librosa.feature.spectral_flatness(S=stft, amin=_AMIN)[0]
        zcr = librosa.feature.zero_crossing_rate(y, frame_length=self.n_fft, hop_length=hop, center=True)[0]
        rms = np.sqrt(power.sum(axis=0) * 2 / self.n_fft**2)
        rms_db = 10.0 * np.log10(np.maximum(rms**2, _AMIN))
        onset = librosa.onset.onset_strength(S=mel_db, sr=sr, hop_length=hop)
        tempogram = self._tempogram(onset)
        n_frames = mel_db.shape[1]
        means = np.concatenate(
            [
                mel_db / 10.0,
                mfcc,
                chroma,
                contrast / 10.0,
                np.stack([centroid / 1000.0, bandwidth / 1000.0, rolloff / 1000.0, flatness, zcr[:n_frames]]),
                (rms_db / 10.0)[None, :],
                onset[None, :],
            ]
        ).T.astype(np.float32)
        spreads = np.concatenate([mfcc, (rms_db / 10.0)[None, :], onset[None, :]]).T.astype(np.float32)
        times = librosa.frames_to_time(np.arange(n_frames), sr=sr, hop_length=hop)
        return means, spreads, times, tempogram

    def _filters(self):
        if getattr(self, "_filter_cache", None) is None:
            import librosa

            mel = librosa.filters.mel(sr=self.sr, n_fft=self.n_fft, n_mels=self.n_mels, fmax=self.sr / 2)
            chroma = librosa.filters.chroma(sr=self.sr, n_fft=self.n_fft, tuning=0.0)
            self._filter_cache = (mel.astype(np.float32), chroma.astype(np.float32))
        return self._filter_cache

    def _tempogram(self, onset: np.ndarray) -> np.ndarray:
        """``(n_lags, n_frames)`` windowed onset autocorrelation, as librosa.feature.tempogram(norm=None).

        Computed on every 4th frame and repeated: the tempo changes slowly, and this is a quarter of the work.
        """
        import librosa

        n, stride = self.tempogram_frames, 4
        n_frames = len(onset)
        padded = np.pad(onset, n // 2, mode="linear_ramp", end_values=0.0)
        frames = librosa.util.frame(padded, frame_length=n, hop_length=1)[:, :n_frames:stride]
        frames = frames * librosa.filters.get_window("hann", n, fftbins=True)[:, None]
        spec = np.fft.rfft(frames, n=2 * n, axis=0)
        ac = np.fft.irfft(np.abs(spec) ** 2, axis=0)[:n]
        return np.repeat(ac, stride, axis=1)[:, :n_frames]

    def frame_features_windowed(self, y: np.ndarray) -> np.ndarray:
        """The ``(r, dim)`` acoustic embedding of one prepared clip (mono, ``sr``, ``clip_duration`` long)."""
        import librosa

        means, spreads, times, tempogram = self.frame_features(y)
        wins = self.windows
        m = frame_window_means(means, times, wins)
        mu = frame_window_means(spreads, times, wins)
        sd = np.sqrt(np.maximum(frame_window_means(spreads**2, times, wins) - mu**2, 0.0))
        k = self.n_mels + self.n_mfcc
        # means: logmel, mfcc | chroma, contrast, 5 spectral | rms | onset;  spreads: mfcc | rms | onset
        tempo, clarity = self._tempo(tempogram, times, wins, librosa)
        out = np.concatenate(
            [
                m[:, :k],
                sd[:, : self.n_mfcc],
                m[:, k:-2],
                m[:, -2:-1],
                sd[:, -2:-1],
                m[:, -1:],
                sd[:, -1:],
                tempo,
                clarity,
            ],
            axis=1,
        )
        return out.astype(np.float32)

    def _tempo(self, tempogram, times, wins, librosa):
        # Autocorrelation per lag, averaged over the window's frames; lag 0 normalises it (pulse clarity).
        ac = frame_window_means(tempogram.T, times, wins)  # (r, n_lags)
        bpms = librosa.tempo_frequencies(ac.shape[1], sr=self.sr, hop_length=self.hop_length)
        valid = (bpms >= 40) & (bpms <= 240)
        lag0 = ac[:, :1]
        norm = np.where(lag0 > 1e-12, ac / np.maximum(lag0, 1e-12), 0.0)
        part = norm[:, valid]
        # A pulse at lag L also correlates at 2L, 3L...: a log-normal prior around 120 BPM (sd one octave,
        # as librosa's beat tracker uses) picks the metrical level a listener would tap.
        prior = np.exp(-0.5 * np.log2(bpms[valid] / 120.0) ** 2)
        best = (part * prior).argmax(axis=1)
        clarity = part[np.arange(len(part)), best].clip(0.0, 1.0)
        tempo = np.where(clarity > 0, np.log2(bpms[valid][best] / 120.0), 0.0)
        return tempo[:, None], clarity[:, None]


class DebugEncoder(Encoder):
    """A tiny, fast encoder for tests and dry runs (4 values per 1.5-s window at 8 kHz).

    Per window: RMS level, log10 energy (floored at -10), zero-crossing rate, mean absolute first
    difference. Deterministic and exact, so tests can compare it against a direct numpy computation.
    """

    name = "debug"
    sr = 8000
    dim = 4

    def __init__(self, *, window: float = 1.5, clip_duration: float = 15.0):
        self.window = float(window)
        self.clip_duration = float(clip_duration)
        self._check_window()

    def _embed_batch(self, audio: np.ndarray) -> np.ndarray:
        bounds = self.window_samples()
        out = np.empty((len(audio), len(bounds), self.dim), dtype=np.float32)
        for k, (a, b) in enumerate(bounds):
            seg = audio[:, a:b].astype(np.float64)
            energy = np.mean(seg**2, axis=1)
            out[:, k, 0] = np.sqrt(energy)
            out[:, k, 1] = np.log10(np.maximum(energy, 1e-10))
            out[:, k, 2] = np.mean(np.abs(np.diff(np.signbit(seg).astype(np.int8), axis=1)), axis=1)
            out[:, k, 3] = np.mean(np.abs(np.diff(seg, axis=1)), axis=1)
        return out
