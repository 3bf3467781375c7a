"""GTZAN-style stimulus folders → the 15-s stimuli as the experiment played them.

Nakai et al. cut a 15-s excerpt at ``start`` from each 30-s GTZAN track, applied 2-s linear fades in and
out and normalised the root-mean-square level. :func:`load_stimulus` reproduces that.

Accepted layouts under ``root`` (``root`` may also be the genres folder itself)::

    root/genres/<genre>/<genre>.000NN.wav            (original GTZAN tarball)
    root/genres_original/<genre>/<genre>.000NN.wav   (Kaggle copy)
    root/Data/genres_original/<genre>/...            (Kaggle archive as unzipped)
    root/<genre>/<genre>.000NN.wav
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from brain2music.data.events import GENRES, clip_id
from brain2music.errors import DataError, DataFileNotFoundError
from brain2music.stimuli.audio import read_audio

STIMULUS_SR = 22050
STIMULUS_DURATION = 15.0
FADE_DURATION = 2.0
TARGET_RMS = 0.1

_LAYOUTS = ("genres", "genres_original", os.path.join("Data", "genres_original"), "")


def genres_folder(root: str | os.PathLike) -> Path:
    """Find the folder holding one sub-folder per genre under ``root`` (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise DataFileNotFoundError(f"stimulus folder not found: {root}")
    for layout in _LAYOUTS:
        candidate = root / layout if layout else root
        if any((candidate / g).is_dir() for g in GENRES):
            return candidate
    raise DataFileNotFoundError(
        f"{root}: no GTZAN genre folders found; expected one of "
        + ", ".join(f"{root}/{lay + '/' if lay else ''}<genre>/<genre>.000NN.wav" for lay in _LAYOUTS)
    )


def find_gtzan_file(root: str | os.PathLike, genre: str, track: int) -> Path:
    """Path of ``<genre>.<track:05d>.wav`` (or .au/.flac/...) under a GTZAN-style ``root``."""
    folder = genres_folder(root) / genre
    stem = clip_id(genre, track)
    for ext in (".wav", ".au", ".flac", ".ogg", ".mp3"):
        path = folder / f"{stem}{ext}"
        if path.is_file():
            return path
    raise DataFileNotFoundError(f"GTZAN file for clip {stem} not found: expected {folder / (stem + '.wav')}")


def apply_fades(audio: np.ndarray, sr: int, fade: float = FADE_DURATION) -> np.ndarray:
    """Linear fade-in and fade-out of ``fade`` seconds (returns a new array)."""
    out = np.array(audio, dtype=np.float32, copy=True)
    n = min(int(round(fade * sr)), len(out) // 2)
    if n > 0:
        ramp = np.linspace(0.0, 1.0, n, endpoint=False, dtype=np.float32)
        out[:n] *= ramp
        out[len(out) - n :] *= ramp[::-1]
    return out


def rms_normalize(audio: np.ndarray, target_rms: float = TARGET_RMS) -> np.ndarray:
    """Scale ``audio`` to root-mean-square ``target_rms``; silence is returned unchanged."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    if rms < 1e-10:
        return np.asarray(audio, dtype=np.float32)
    return (np.asarray(audio, dtype=np.float32) * np.float32(target_rms / rms)).astype(np.float32)


def load_stimulus(
    root: str | os.PathLike,
    genre: str,
    track: int,
    start: float,
    *,
    sr: int = STIMULUS_SR,
    duration: float = STIMULUS_DURATION,
    fade: float = FADE_DURATION,
    target_rms: float = TARGET_RMS,
) -> np.ndarray:
    """The stimulus of one clip: ``duration`` s from ``start`` of the GTZAN track, faded, RMS-normalised.

    Returns ``audio`` of shape ``(round(duration * sr),)``, float32, mono, at ``sr``.
    Raises :class:`~brain2music.errors.DataError` when the track is shorter than the excerpt.
    """
    path = find_gtzan_file(root, genre, track)
    audio, _ = read_audio(path, sr=sr, mono=True, offset=start, duration=duration)
    n = int(round(duration * sr))
    # Allow rounding slack of 10 ms at the end of the file (GTZAN tracks are 30 s give or take a few ms).
    slack = int(0.01 * sr)
    if len(audio) < n - slack:
        raise DataError(
            f"{path}: too short for the excerpt {start:.2f}-{start + duration:.2f} s; "
            f"only {len(audio) / sr:.2f} s of audio from {start:.2f} s"
        )
    if len(audio) < n:
        audio = np.pad(audio, (0, n - len(audio)))
    audio = audio[:n]
    return rms_normalize(apply_fades(audio, sr, fade), target_rms)


def load_stimuli(
    root: str | os.PathLike,
    clips: pd.DataFrame | Iterable[tuple[str, int, float]],
    *,
    sr: int = STIMULUS_SR,
    duration: float = STIMULUS_DURATION,
    fade: float = FADE_DURATION,
    target_rms: float = TARGET_RMS,
) -> np.ndarray:
    """Stimuli of many clips as an ``(n_clips, n_samples)`` float32 array, in the order given.

    ``clips`` is a clip table (columns ``genre, track, start``, as returned by
    :func:`brain2music.data.clip_table`) or an iterable of ``(genre, track, start)``.
    """
    if isinstance(clips, pd.DataFrame):
        missing = {"genre", "track", "start"} - set(clips.columns)
        if missing:
            raise DataError(f"clips table lacks column(s) {sorted(missing)}; expected genre, track, start")
        items = list(zip(clips["genre"], clips["track"], clips["start"]))
    else:
        items = list(clips)
    n = int(round(duration * sr))
    out = np.empty((len(items), n), dtype=np.float32)
    for i, (genre, track, start) in enumerate(items):
        out[i] = load_stimulus(
            root, genre, int(track), float(start), sr=sr, duration=duration, fade=fade, target_rms=target_rms
        )
    return out
