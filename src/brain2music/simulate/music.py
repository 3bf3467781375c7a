"""Stimuli from real recordings for a simulated study (``brain2music simulate OUT --music DIR``).

Instead of composing the stimuli, a study can cut them from a folder of real recordings with one
subfolder per genre (``DIR/<genre>/...`` or ``DIR/genres/<genre>/...``, any audio format, any depth;
genre names are the ds003720/GTZAN ones, as the events files require). The simulated brains then respond
to these excerpts' auditory features exactly as they do to composed music, so decoding and
reconstruction can be measured on music nobody here generated.

Design (reproducible for a seed):

- each genre's recordings are split into test recordings (``test_clips_per_genre`` of them, at most all
  but one) and training recordings (at most ``clips_per_genre``);
- a training recording gives up to ``excerpts_per_track`` study tracks: 30-s pieces from evenly spaced
  parts of the recording (fewer when it is shorter than that many 30-s pieces); a test recording gives
  one, so every test clip comes from a different recording and no recording is in both splits;
- every piece is written like a GTZAN track (22,050 Hz mono WAV, ``genres/<genre>/<genre>.000NN.wav``)
  and its 15-s excerpt starts uniformly within it (2 decimals), as for composed tracks.

``stimuli/metadata.csv`` records for every study track its ``source`` (the recording's absolute path) and
``source_offset`` (where the piece begins in it), so reconstruction can keep a test clip's own recording
out of the library it searches (:func:`stimulus_sources`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from brain2music.data.events import GENRES, clip_id
from brain2music.errors import ConfigError, DataFileNotFoundError

__all__ = ["PIECE_DURATION", "music_design", "stimulus_sources", "write_piece"]

PIECE_DURATION = 30.0
MIN_DURATION = 16.0  # a 15-s excerpt and a little room


def _genre_folders(music: Path) -> dict[str, Path]:
    if not music.is_dir():
        raise DataFileNotFoundError(f"music folder not found: {music}")
    root = music / "genres" if (music / "genres").is_dir() else music
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p.name for p in subdirs if p.name not in GENRES]
    if unknown or not subdirs:
        found = ", ".join(p.name for p in subdirs) or "no subfolders"
        raise ConfigError(
            f"{root}: --music needs one subfolder per genre named after the ds003720/GTZAN genres "
            f"({', '.join(GENRES)}); found {found}"
        )
    return {p.name: p for p in subdirs}


def _recordings(folder: Path) -> list[tuple[Path, float]]:
    """Readable recordings of at least :data:`MIN_DURATION` s under ``folder`` with their durations."""
    import soundfile as sf

    from brain2music.stimuli import find_audio_files

    out = []
    for path in find_audio_files(folder):
        try:
            duration = float(sf.info(str(path)).duration)
        except Exception:  # noqa: BLE001 - unreadable files are not recordings for the study
            continue
        if duration >= MIN_DURATION:
            out.append((path.resolve(), duration))
    return out


def music_design(
    music: str | os.PathLike,
    *,
    clips_per_genre: int,
    test_clips_per_genre: int,
    excerpts_per_track: int,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, dict[str, list[int]], dict[str, list[int]]]:
    """Study tracks cut from the recordings of ``music`` (see the module docstring).

    Returns the track table (``genre, track, clip_id, split, start, source, source_offset,
    piece_duration``) and each genre's training and test track numbers in the order they are dealt to runs.
    """
    rows, train_order, test_order = [], {}, {}
    for genre, folder in _genre_folders(Path(music)).items():
        recs = _recordings(folder)
        if len(recs) < 2:
            raise ConfigError(
                f"{folder}: genre {genre!r} needs at least 2 recordings of >= {MIN_DURATION:g} s (one for "
                f"training, one for testing); found {len(recs)}"
            )
        order = rng.permutation(len(recs))
        n_test = min(int(test_clips_per_genre), len(recs) - 1)
        test = set(order[:n_test].tolist())
        train = sorted(order[n_test:].tolist())[: int(clips_per_genre)]
        chosen = sorted(test) + train
        track = 0
        for r in chosen:
            path, duration = recs[r]
            split = "test" if r in test else "train"
            n_pieces = (
                1
                if split == "test"
                else max(1, min(int(excerpts_per_track), int(duration // PIECE_DURATION)))
            )
            part = duration / n_pieces
            for k in range(n_pieces):
                length = min(PIECE_DURATION, part)
                offset = k * part + float(rng.uniform(0.0, part - length))
                start = round(float(rng.uniform(0.0, max(length - 15.0 - 0.05, 0.0))), 2)
                rows.append({"genre": genre, "track": track, "clip_id": clip_id(genre, track), "split": split,
                             "start": start, "source": str(path), "source_offset": round(offset, 3),
                             "piece_duration": round(length, 3)})  # fmt: skip
                (test_order if split == "test" else train_order).setdefault(genre, []).append(track)
                track += 1
    for order in (train_order, test_order):
        for genre, tracks in order.items():
            order[genre] = [int(t) for t in rng.permutation(tracks)]
    return pd.DataFrame(rows), train_order, test_order


def write_piece(args) -> dict:
    """Write one study track: ``(source, offset, duration, path)`` → 22,050-Hz mono WAV; returns its info."""
    from brain2music.stimuli import read_audio, write_audio

    source, offset, duration, path, sr = args
    audio, _ = read_audio(source, sr=sr, mono=True, offset=offset, duration=duration)
    write_audio(path, audio, sr)
    return {"samples": int(len(audio))}


def stimulus_sources(stimuli: str | os.PathLike) -> dict[str, str]:
    """``{clip_id: source recording path}`` from ``stimuli/metadata.csv`` of a ``--music`` study ({} if none)."""
    path = Path(stimuli) / "metadata.csv"
    if not path.is_file():
        return {}
    meta = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "source" not in meta.columns or "clip_id" not in meta.columns:
        return {}
    return {c: s for c, s in zip(meta["clip_id"], meta["source"], strict=True) if s}
