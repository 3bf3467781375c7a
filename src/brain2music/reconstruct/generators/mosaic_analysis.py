"""Corpus analysis for concatenative synthesis: what every library track sounds like at its joins.

The mosaic generator (:mod:`brain2music.reconstruct.generators.mosaic`) picks segments of library
tracks by their embedding (the library's window store) and joins them where they fit. Deciding where
they fit needs the audio itself, so each track is analysed once (as CataRT analyses its corpus) and the
results are kept next to the library:

- ``frames`` every :data:`FRAME_HOP` samples at :data:`SR` Hz (93 ms): 16 log-mel bands and the frame
  RMS level (dB re full scale) and 12 chroma values (each frame's maximum 1) — the spectrum and loudness
  on either side of any cut, and the key profile of a segment. Stored as uint8 (0.5-dB steps from
  -125 dB; chroma in 1/255): 29 bytes per frame, about 310 bytes per second of music, two to three times
  the window store of a 100-d embedding;
- ``onsets`` (backtracked to the preceding energy minimum: where a cut is least audible) and ``beats``
  (librosa's beat tracker; local tempo comes from the beat intervals), in seconds;
- per track: duration, RMS level (segments are played at their track's normalised level, the level
  the window embeddings were computed at) and global tempo.

On disk, inside the library folder (or ``analysis_dir``)::

    mosaic/tracks/<key>.npz          one track's analysis; key = hash of path, size, mtime, version
    mosaic/analysis-<id>/            the assembled store of one library state (its items in order)
        frames.npy (n_frames, 29) uint8, fbounds.npy (n_items + 1,) int64
        onsets.npy, obounds.npy, beats.npy, bbounds.npy (float32 times, int64 bounds)
        info.json   paths, durations, rms, tempo, version, cost normalisers, fade compensation

Every file is written to a temporary name and renamed, so concurrent generators can share a library:
the worst case is that two of them analyse the same track.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brain2music.errors import DataError

__all__ = ["ANALYSIS_VERSION", "MosaicAnalysis", "analyse_track", "open_analysis"]

ANALYSIS_VERSION = "mosaic-analysis/2"
SR = 22050
N_FFT = 2048
ONSET_HOP = 512  # onset envelope and beat tracking resolution (23 ms)
FRAME_HOP = 2048  # stored frame descriptors (93 ms)
N_BANDS = 16
#: Columns of ``frames``: 16 log-mel bands, RMS, 12 chroma.
BANDS = slice(0, N_BANDS)
RMS = N_BANDS
CHROMA = slice(N_BANDS + 1, N_BANDS + 13)
N_COLUMNS = N_BANDS + 13
_DB_OFFSET, _DB_STEP = 125.0, 0.5  # uint8 code q <-> q * 0.5 - 125 dB


def encode_frames(frames: np.ndarray) -> np.ndarray:
    """``(n, 29)`` float (dB columns, chroma) → uint8 codes."""
    q = np.empty(frames.shape, dtype=np.float64)
    q[:, : N_BANDS + 1] = (frames[:, : N_BANDS + 1] + _DB_OFFSET) / _DB_STEP
    q[:, CHROMA] = frames[:, CHROMA] * 255.0
    return np.clip(np.round(q), 0, 255).astype(np.uint8)


def decode_frames(codes: np.ndarray, columns: slice) -> np.ndarray:
    """uint8 codes of ``columns`` → float32 values (dB or chroma)."""
    x = np.asarray(codes, dtype=np.float32)
    out = np.empty_like(x)
    cols = np.arange(N_COLUMNS)[columns]
    db = cols <= RMS
    out[..., db] = x[..., db] * _DB_STEP - _DB_OFFSET
    out[..., ~db] = x[..., ~db] / 255.0
    return out


def analyse_track(path: str | os.PathLike) -> dict:
    """Analyse one audio file (mono at :data:`SR`): frames, onsets, beats, duration, RMS, tempo.

    Returns a dict of arrays: ``frames (n, 29) uint8`` (see the module docstring), ``onsets (m,)``,
    ``beats (b,)`` float32 seconds, and scalars ``duration``, ``rms``, ``tempo`` (BPM, 0 without beats).
    """
    import librosa

    from brain2music.stimuli import read_audio

    y, _ = read_audio(path, sr=SR, mono=True)
    power = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=ONSET_HOP, center=True)) ** 2
    mel = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=64, fmax=SR / 2) @ power
    mel_db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    onset_env = librosa.onset.onset_strength(S=mel_db, sr=SR, hop_length=ONSET_HOP)
    onsets = librosa.onset.onset_detect(
        onset_envelope=onset_env, sr=SR, hop_length=ONSET_HOP, backtrack=True, units="time"
    )
    tempo, beats = librosa.beat.beat_track(
        onset_envelope=onset_env, sr=SR, hop_length=ONSET_HOP, units="time"
    )
    # Stored frames: averages of groups of onset frames; band powers re a full-scale sine (0 dB).
    g = FRAME_HOP // ONSET_HOP
    n = power.shape[1] // g
    group = power[:, : g * n].reshape(power.shape[0], n, g).mean(axis=2)
    bands = mel[:, : g * n].reshape(N_BANDS, 4, n, g).sum(axis=1).mean(axis=2) / (N_FFT / 4) ** 2
    chroma = librosa.filters.chroma(sr=SR, n_fft=N_FFT, tuning=0.0) @ group
    chroma /= np.maximum(chroma.max(axis=0, keepdims=True), 1e-10)
    rms = np.sqrt(group.sum(axis=0) * 2 / N_FFT**2)
    frames = np.concatenate(
        [
            10 * np.log10(np.maximum(bands, 1e-13)),
            (20 * np.log10(np.maximum(rms, 1e-7)))[None],
            chroma,
        ]
    ).T
    return {
        "frames": encode_frames(frames),
        "onsets": np.asarray(onsets, dtype=np.float32),
        "beats": np.asarray(beats, dtype=np.float32),
        "duration": float(len(y) / SR),
        "rms": float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0,
        "tempo": float(np.atleast_1d(tempo)[0]) if len(beats) >= 4 else 0.0,
    }


def _track_key(path: Path) -> str:
    st = path.stat()
    text = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{ANALYSIS_VERSION}"
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def _cached_track(path: Path, cache: Path) -> dict:
    """The analysis of ``path``, from ``cache`` when it is there (computed and written atomically if not)."""
    from brain2music._io import save_npz

    file = cache / f"{_track_key(path)}.npz"
    if file.is_file():
        try:
            with np.load(file) as z:
                out = {k: z[k] for k in z.files}
            return {k: (v.item() if v.ndim == 0 else v) for k, v in out.items()}
        except (OSError, ValueError):
            pass  # unreadable (e.g. written by a crashed older run): analyse again
    result = analyse_track(path)
    save_npz(file, **result)
    return result


@dataclass
class MosaicAnalysis:
    """An assembled analysis store (see the module docstring), rows in the library's item order.

    Attributes
    ----------
    path : Path
    frames : ndarray ``(n_frames, 29)`` uint8 codes (memory-mapped; :func:`decode_frames`)
    fbounds, obounds, bbounds : ndarray ``(n_items + 1,)`` int64
    onsets, beats : ndarray float32 seconds
    info : dict (``paths``, ``durations``, ``rms``, ``tempo``, ``norms``, ``fade`` …)
    """

    path: Path
    frames: np.ndarray
    fbounds: np.ndarray
    onsets: np.ndarray
    obounds: np.ndarray
    beats: np.ndarray
    bbounds: np.ndarray
    info: dict

    frame_rate = SR / FRAME_HOP

    @property
    def durations(self) -> np.ndarray:
        """``(n_items,)`` float64: the analysed duration (s) of each item, from ``info["durations"]``."""
        return np.asarray(self.info["durations"], dtype=np.float64)

    @property
    def rms(self) -> np.ndarray:
        """``(n_items,)`` float64: the RMS of each analysed item, from ``info["rms"]``."""
        return np.asarray(self.info["rms"], dtype=np.float64)

    def frame_rows(self, items: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Rows of ``frames`` for the frames of ``items`` nearest ``times`` (s), clipped to each track."""
        items = np.asarray(items, dtype=np.int64)
        a, b = self.fbounds[items], self.fbounds[items + 1]
        idx = np.floor(np.asarray(times) * self.frame_rate).astype(np.int64)
        return np.clip(a + idx, a, np.maximum(b - 1, a))

    def mean_frames(self, items, start, stop, columns) -> np.ndarray:
        """Mean of ``frames[:, columns]`` over ``[start, stop)`` s of each item → ``(n, n_columns)`` float32.

        ``start``/``stop`` are arrays of the same length as ``items``; at most 8 frames per span are read
        (evenly spaced), which is all a join or key descriptor needs.
        """
        items = np.asarray(items, dtype=np.int64)
        start, stop = np.asarray(start, dtype=np.float64), np.asarray(stop, dtype=np.float64)
        steps = np.linspace(0.0, 1.0, 8, endpoint=False)[None, :]
        times = start[:, None] + (stop - start)[:, None] * steps
        rows = self.frame_rows(np.repeat(items, 8), times.ravel())
        vals = decode_frames(self.frames[rows, columns], columns)
        return vals.reshape(len(items), 8, -1).mean(axis=1)

    def _times(self, values, bounds, item: int) -> np.ndarray:
        return values[bounds[item] : bounds[item + 1]]

    def item_onsets(self, item: int) -> np.ndarray:
        """Onset times (s, float32) of ``item``: its slice of ``onsets``."""
        return self._times(self.onsets, self.obounds, item)

    def item_beats(self, item: int) -> np.ndarray:
        """Beat times (s, float32) of ``item``: its slice of ``beats``."""
        return self._times(self.beats, self.bbounds, item)

    def local_tempo(self, items: np.ndarray, times: np.ndarray, span: float = 4.0) -> np.ndarray:
        """Tempo (BPM) around ``times`` of ``items`` from the median beat interval within ±``span`` s.

        0 where fewer than 4 beats fall in the span (no clear pulse: ambient music, silence).
        """
        out = np.zeros(len(items))
        for n, (item, t) in enumerate(zip(np.asarray(items), np.asarray(times), strict=True)):
            beats = self.item_beats(int(item))
            lo, hi = np.searchsorted(beats, [t - span, t + span])
            if hi - lo >= 4:
                ibi = np.median(np.diff(beats[lo:hi]))
                out[n] = 60.0 / ibi if ibi > 0 else 0.0
        return out


def open_analysis(path: str | os.PathLike) -> MosaicAnalysis:
    """Open an assembled ``analysis-<id>/`` folder."""
    path = Path(path)
    try:
        info = json.loads((path / "info.json").read_text(encoding="utf-8"))
        arrays = {
            name: np.load(path / f"{name}.npy", mmap_mode="r" if name == "frames" else None)
            for name in ("frames", "fbounds", "onsets", "obounds", "beats", "bbounds")
        }
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable mosaic analysis ({exc})") from exc
    if info.get("version") != ANALYSIS_VERSION:
        raise DataError(f"{path}: analysis version {info.get('version')!r}, expected {ANALYSIS_VERSION!r}")
    return MosaicAnalysis(path=path, info=info, **arrays)


def library_analysis(lib, *, folder: str | os.PathLike | None = None, progress: bool = False, fade=None):
    """The analysis of every track of ``lib`` (a :class:`~brain2music.reconstruct.library.MusicLibrary`).

    Reuses the assembled store of this library state if it exists; otherwise analyses the tracks not in
    the per-track cache yet and assembles a new store. ``fade(lib) -> (r, dim)`` computes the fade
    compensation saved with it (see :func:`brain2music.reconstruct.generators.mosaic.fade_compensation`).
    """
    from tqdm.auto import tqdm

    root = Path(folder) if folder is not None else Path(lib.path) / "mosaic"
    paths = [str(p) for p in lib.metadata["path"]]
    digest = hashlib.sha1(("\n".join(paths) + ANALYSIS_VERSION).encode()).hexdigest()[:16]
    store = root / f"analysis-{digest}"
    if store.is_dir():
        try:
            return open_analysis(store)
        except DataError:
            pass
    tracks_dir = root / "tracks"
    tracks_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for p in tqdm(paths, desc="analysing library tracks", disable=not progress, leave=False):
        try:
            results.append(_cached_track(Path(p), tracks_dir))
        except (OSError, DataError) as exc:
            raise DataError(f"{p}: cannot analyse this library track for the mosaic ({exc})") from exc
    info = {
        "version": ANALYSIS_VERSION,
        "library": str(lib.path),
        "sr": SR,
        "frame_hop": FRAME_HOP,
        "paths": paths,
        "durations": [r["duration"] for r in results],
        "rms": [r["rms"] for r in results],
        "tempo": [r["tempo"] for r in results],
    }
    arrays = {}
    for name, key in (("frames", "frames"), ("onsets", "onsets"), ("beats", "beats")):
        parts = [np.asarray(r[key]) for r in results]
        bound = np.concatenate([[0], np.cumsum([len(x) for x in parts])]).astype(np.int64)
        arrays[name] = np.concatenate(parts) if parts else np.zeros((0,), np.float32)
        arrays[{"frames": "fbounds", "onsets": "obounds", "beats": "bbounds"}[name]] = bound
    partial = MosaicAnalysis(path=store, info=info, **arrays)
    info["norms"] = join_norms(partial)
    if fade is not None:
        info["fade"] = np.asarray(fade(lib), dtype=np.float64).tolist()
    _write_store(store, arrays, info)
    return open_analysis(store)


def _write_store(folder: Path, arrays: dict, info: dict) -> None:
    tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir(parents=True)
    try:
        for name, value in arrays.items():
            np.save(tmp / f"{name}.npy", value)
        (tmp / "info.json").write_text(json.dumps(info), encoding="utf-8")
        try:
            os.replace(tmp, folder)
        except OSError:
            if not folder.is_dir():  # another process may have written the same store first: keep it
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def join_norms(analysis: MosaicAnalysis, *, n_units: int = 300, random_state: int = 0) -> dict:
    """Median of each join-cost term over random joins: the unit every term is measured in.

    With these, every term of :func:`pair_terms` is ≈ 1 for a random join, so their sum and the weight
    of continuity against the target mean the same thing in any library.
    """
    rng = np.random.default_rng(random_state)
    durations = analysis.durations
    ok = np.flatnonzero(durations > 4.0)
    if len(ok) == 0:
        return dict.fromkeys(JOIN_TERMS, 1.0)
    items = rng.choice(ok, n_units)
    starts = rng.uniform(0.5, durations[items] - 3.5)
    gains = -_db(analysis.rms[items])
    units = describe_units(analysis, items, starts, starts + 3.0, gains)
    terms = pair_terms(units, units)
    off = ~np.eye(n_units, dtype=bool)
    out = {}
    for name, value in terms.items():
        v = value[off & np.isfinite(value)]
        med = float(np.median(v)) if v.size else 1.0
        out[name] = med if med > 1e-6 else 1.0
    return out


def _db(x) -> np.ndarray:
    return 20 * np.log10(np.maximum(np.asarray(x, dtype=np.float64), 1e-6))


JOIN_TERMS = ("spectral", "loudness", "tempo", "key")


def describe_units(analysis, items, starts, ends, gains, *, context: float = 0.1) -> dict:
    """What joins need to know about segments ``[starts, ends)`` of ``items`` played at ``gains`` (dB).

    Returns ``(n, ...)`` arrays: ``pred``/``head`` (17 values: 16 bands + RMS, dB, over ``context`` s just
    before / after the start), ``tail``/``succ`` (just before / after the end), ``tempo_in``/``tempo_out``
    (local BPM at the start / end, 0 without a pulse), ``chroma_in``/``chroma_out`` (3 s after the start /
    before the end, centred), ``item``, ``start``, ``end``.
    """
    items = np.asarray(items, dtype=np.int64)
    starts, ends = np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)
    g = np.asarray(gains, dtype=np.float32)[:, None]
    cols = slice(0, N_BANDS + 1)

    def chroma(a, b):
        c = analysis.mean_frames(items, a, b, CHROMA)
        return c - c.mean(axis=1, keepdims=True)

    return {
        "item": items,
        "start": starts,
        "end": ends,
        "pred": analysis.mean_frames(items, starts - context, starts, cols) + g,
        "head": analysis.mean_frames(items, starts, starts + context, cols) + g,
        "tail": analysis.mean_frames(items, ends - context, ends, cols) + g,
        "succ": analysis.mean_frames(items, ends, ends + context, cols) + g,
        "tempo_in": analysis.local_tempo(items, starts),
        "tempo_out": analysis.local_tempo(items, ends),
        "chroma_in": chroma(starts, np.minimum(starts + 3.0, ends)),
        "chroma_out": chroma(np.maximum(ends - 3.0, starts), ends),
    }


def pair_terms(a: dict, b: dict) -> dict:
    """Join-cost terms for every pair (segment ``a[i]`` then segment ``b[j]``) → dict of ``(n_a, n_b)``.

    Unit-selection style (Hunt & Black 1996): what really follows A in its track is compared with B's
    beginning, and A's ending with what really precedes B, so a contiguous continuation costs exactly 0.
    Terms: ``spectral`` (RMS dB difference of the 16 bands), ``loudness`` (dB), ``tempo`` (octaves,
    folded so that double or half tempo is compatible; NaN where a side has no pulse), ``key``
    (1 - correlation of the 12-bin chroma of A's last and B's first 3 s).
    """
    d1 = a["succ"][:, None, :] - b["head"][None, :, :]
    d2 = a["tail"][:, None, :] - b["pred"][None, :, :]
    spectral = 0.5 * (
        np.sqrt(np.mean(d1[..., BANDS] ** 2, axis=2)) + np.sqrt(np.mean(d2[..., BANDS] ** 2, axis=2))
    )
    loudness = 0.5 * (np.abs(d1[..., RMS]) + np.abs(d2[..., RMS]))
    ta, tb = a["tempo_out"][:, None], b["tempo_in"][None, :]
    pulse = (ta > 0) & (tb > 0)
    octaves = np.log2(np.where(pulse, ta, 1.0) / np.where(pulse, tb, 1.0))
    tempo = np.where(pulse, np.abs(octaves - np.round(octaves)), np.nan)
    ca, cb = a["chroma_out"], b["chroma_in"]
    denom = np.linalg.norm(ca, axis=1)[:, None] * np.linalg.norm(cb, axis=1)[None, :]
    corr = np.where(denom > 1e-9, (ca @ cb.T) / np.maximum(denom, 1e-9), 0.0)
    return {"spectral": spectral, "loudness": loudness, "tempo": tempo, "key": 1.0 - corr}


def join_cost(a: dict, b: dict, norms: dict) -> np.ndarray:
    """``(n_a, n_b)`` join cost: the mean of the four terms, each in units of its random-join median.

    A term that cannot be measured (tempo without a pulse) counts as a typical join (1).
    """
    terms = pair_terms(a, b)
    total = 0.0
    for name in JOIN_TERMS:
        t = terms[name] / norms.get(name, 1.0)
        total = total + np.where(np.isfinite(t), t, 1.0)
    return total / len(JOIN_TERMS)
