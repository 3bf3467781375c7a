"""Synthetic, never-repeating test music for the mosaic tests (no FluidSynth, a few ms per track).

Every track has its own tempo, key and timbre, and every note a random pitch, length and loudness, so no
stretch of one track resembles another stretch of any track: a waveform cross-correlation that finds a
segment of the output in a source finds it at one lag only.
"""

from __future__ import annotations

import numpy as np


def synth_track(seed: int, *, duration: float = 20.0, sr: int = 22050) -> np.ndarray:
    """A mono track: plucked harmonic notes on a beat grid plus noise-burst drums; ``(n,)`` float32."""
    rng = np.random.default_rng(seed)
    n = int(duration * sr)
    out = np.zeros(n + 3 * sr, dtype=np.float64)
    beat = 60.0 / rng.uniform(80, 150)
    root = rng.uniform(110, 220)
    scale = np.array([0, 2, 4, 5, 7, 9, 11]) if rng.random() < 0.5 else np.array([0, 2, 3, 5, 7, 8, 10])
    harmonics = rng.uniform(0.1, 1.0, size=6) / np.arange(1, 7)
    decay = rng.uniform(2.0, 8.0)
    t = 0.0
    while t < duration:
        step = beat * rng.choice([0.5, 1.0, 1.0, 2.0])
        f = root * 2 ** ((scale[rng.integers(7)] + 12 * rng.integers(0, 3)) / 12)
        length = int(min(step * rng.uniform(1.0, 2.5), 2.0) * sr)
        tt = np.arange(length) / sr
        env = np.exp(-decay * tt) * (1 - np.exp(-tt * 400))
        note = sum(
            h * np.sin(2 * np.pi * f * (k + 1) * tt + rng.uniform(0, 6.3)) for k, h in enumerate(harmonics)
        )
        a = int(t * sr)
        out[a : a + length] += rng.uniform(0.3, 1.0) * env * note
        t += step
    for k in range(int(duration / beat)):  # drums: filtered noise bursts on the beats
        if rng.random() < 0.7:
            length = int(0.08 * sr)
            burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (0.015 * sr))
            a = int(k * beat * sr)
            out[a : a + length] += rng.uniform(0.2, 0.6) * burst
    out = out[:n]
    return (0.25 * out / np.max(np.abs(out))).astype(np.float32)


def write_tracks(folder, n: int, *, duration: float = 20.0, sr: int = 22050, seed: int = 0) -> list:
    """Write ``n`` tracks ``t00.wav`` ... into ``folder``; return their paths."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"t{i:02d}.wav"
        sf.write(p, synth_track(seed * 1000 + i, duration=duration, sr=sr), sr)
        paths.append(p)
    return paths


def copied_stretches(output, sources, sr, *, rate=None, block=0.5, hop=0.25, threshold=0.9):
    """Which stretches of ``output`` are waveform copies of a source, found by cross-correlation alone.

    ``output (n,)`` and every ``sources[i] (m_i,)`` at ``sr`` (optionally resampled to ``rate``; keep
    the original rate when copies may be shifted by fractions of a sample at a lower one); each ``block``-s
    block of the output (every ``hop`` s) is cross-correlated with every source at every lag (FFT). A
    block continues the current stretch when its normalised correlation at the stretch's lag (within 2
    samples) exceeds ``threshold`` (gain-invariant: a levelled copy is still a copy); otherwise it starts
    a new stretch at its best (source, lag) if that exceeds ``threshold``. Following the lag, not the
    argmax, matters: a block inside a sustained tone matches its own source at many lags.

    Returns a list of ``(source index, output start s, length s)``, longest first.
    """
    from brain2music.stimuli import resample

    rate = sr if rate is None else rate
    x = resample(np.asarray(output, dtype=np.float32), sr, rate).astype(np.float64)
    srcs = [resample(np.asarray(s, dtype=np.float32), sr, rate).astype(np.float64) for s in sources]
    nb, nh = int(block * rate), int(hop * rate)
    spectra = []
    for s in srcs:
        size = 1 << int(np.ceil(np.log2(len(s) + nb)))
        energy = np.concatenate([[0.0], np.cumsum(s**2)])
        spectra.append((np.fft.rfft(s, size), size, np.sqrt(np.maximum(energy[nb:] - energy[:-nb], 1e-12))))
    stretches, cur = [], None  # cur = [source, lag - start, first block start, last block start]
    for a in range(0, len(x) - nb + 1, nh):
        b = x[a : a + nb]
        nrm = np.linalg.norm(b)
        nccs = []
        for spec, size, norms in spectra:
            corr = np.fft.irfft(spec * np.conj(np.fft.rfft(b, size)), size)[: len(norms)]
            nccs.append(corr / (norms * max(nrm, 1e-12)))
        if cur is not None and nrm > 1e-6:
            ncc = nccs[cur[0]]
            lag = cur[1] + a
            window = ncc[max(lag - 2, 0) : max(lag + 3, 0)]
            if window.size and window.max() > threshold:
                cur[3] = a
                continue
        if cur is not None:
            stretches.append(cur)
            cur = None
        if nrm > 1e-6:
            best = max(range(len(nccs)), key=lambda i: nccs[i].max())
            lag = int(np.argmax(nccs[best]))
            if nccs[best][lag] > threshold:
                cur = [best, lag - a, a, a]
    if cur is not None:
        stretches.append(cur)
    out = [(i, a0 / rate, (a1 - a0 + nb) / rate) for i, _, a0, a1 in stretches]
    return sorted(out, key=lambda s: -s[2])
