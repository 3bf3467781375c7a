"""What to embed: audio excerpt specifications (:class:`AudioClip`) from a folder, a BIDS study or a design.

Two sources of clips:

- **An experiment** (``clips_from_bids`` / ``clips_from_design``): the clip list comes from the events files
  of a ds003720-like BIDS dataset (every subject, training and test runs; only ``*_events.tsv`` is read, no
  BOLD images); each clip is the 15-s excerpt at ``start`` of the GTZAN-layout track, with 2-s fades and
  RMS normalisation at 22,050 Hz — exactly :func:`brain2music.stimuli.load_stimulus`, i.e. what the
  subjects heard. Clip ids are ``genre.000NN``.
- **A folder of audio** (``clips_from_folder``): every audio file under it (recursively, sorted), from
  ``start`` (0 s) for ``duration`` (15 s) seconds, as the file is (no fades, no level change). This is
  also how a music library is embedded. Clip ids are file stems when those are unique, else paths
  relative to the folder without the extension.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from brain2music.errors import DataError, DataFileNotFoundError

__all__ = ["AudioClip", "clips_from_bids", "clips_from_design", "clips_from_folder", "audio_hash"]


@dataclass(frozen=True)
class AudioClip:
    """One excerpt to embed.

    Parameters
    ----------
    clip_id : str
        Key of the clip in the output.
    path : str
        Audio file.
    start, duration : float
        Excerpt in seconds (``duration=None``: to the end of the file).
    sr : int, optional
        Resample to this rate when reading (``None``: the file's rate; the encoder resamples anyway).
    fade, target_rms : float, optional
        Stimulus processing: linear fades of ``fade`` s and RMS normalisation (``None``: none). With
        either set, audio shorter than ``duration`` by more than 10 ms is an error, as for a stimulus.
    """

    clip_id: str
    path: str
    start: float = 0.0
    duration: float | None = 15.0
    sr: int | None = None
    fade: float = 0.0
    target_rms: float | None = None

    @property
    def is_stimulus(self) -> bool:
        """Whether the clip gets stimulus processing (fades, RMS); short audio is then an error."""
        return self.fade > 0 or self.target_rms is not None

    def load(self) -> tuple[np.ndarray, int]:
        """Read the excerpt: ``(audio (n_samples,), sr)`` float32 mono."""
        from brain2music.stimuli import apply_fades, read_audio, rms_normalize

        audio, sr = read_audio(self.path, sr=self.sr, mono=True, offset=self.start, duration=self.duration)
        if self.is_stimulus and self.duration is not None:
            # Mirrors brain2music.stimuli.load_stimulus: pad up to 10 ms of rounding slack, then process.
            n = int(round(self.duration * sr))
            if len(audio) < n - int(0.01 * sr):
                raise DataError(
                    f"{self.path}: too short for the excerpt {self.start:.2f}-{self.start + self.duration:.2f} s; "
                    f"only {len(audio) / sr:.2f} s of audio from {self.start:.2f} s"
                )
            audio = np.pad(audio, (0, max(0, n - len(audio))))[:n]
        if self.fade > 0:
            audio = apply_fades(audio, sr, self.fade)
        if self.target_rms is not None:
            audio = rms_normalize(audio, self.target_rms)
        return audio, sr


def audio_hash(audio: np.ndarray, sr: int) -> str:
    """Content hash of audio samples and their rate (the cache key of a clip's audio)."""
    a = np.ascontiguousarray(audio, dtype=np.float32)
    h = hashlib.sha256()
    h.update(f"{int(sr)}:{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def clips_from_folder(
    folder: str | os.PathLike, *, start: float = 0.0, duration: float | None = 15.0, recursive: bool = True
) -> list[AudioClip]:
    """Every audio file under ``folder`` (sorted) as an :class:`AudioClip` from ``start`` for ``duration`` s."""
    from brain2music.stimuli import AUDIO_EXTENSIONS

    folder = Path(folder)
    if not folder.is_dir():
        raise DataFileNotFoundError(f"audio folder not found: {folder}")
    pattern = "**/*" if recursive else "*"
    paths = sorted(
        p
        for p in folder.glob(pattern)
        if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".")
    )
    if not paths:
        raise DataFileNotFoundError(
            f"{folder}: no audio files found (looked for {', '.join(AUDIO_EXTENSIONS)}"
            f"{' in all sub-folders' if recursive else ''})"
        )
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        ids = stems
    else:
        ids = [p.relative_to(folder).with_suffix("").as_posix() for p in paths]
    return [AudioClip(i, str(p), start=start, duration=duration) for i, p in zip(ids, paths)]


def clips_from_design(design: pd.DataFrame, stimuli_dir: str | os.PathLike) -> list[AudioClip]:
    """The stimuli of the clips in a design or clip table (columns ``clip_id, genre, track, start``).

    Each clip is the 15-s excerpt at ``start`` of the GTZAN track under ``stimuli_dir``, faded and
    RMS-normalised at 22,050 Hz like :func:`brain2music.stimuli.load_stimulus`. Clips appear once, in the
    table's order.
    """
    from brain2music.stimuli import (
        FADE_DURATION,
        STIMULUS_DURATION,
        STIMULUS_SR,
        TARGET_RMS,
        find_gtzan_file,
    )

    missing = {"clip_id", "genre", "track", "start"} - set(design.columns)
    if missing:
        raise DataError(
            f"clip table lacks column(s) {sorted(missing)}; expected clip_id, genre, track, start"
        )
    table = design.drop_duplicates("clip_id")
    return [
        AudioClip(
            str(row.clip_id),
            str(find_gtzan_file(stimuli_dir, row.genre, int(row.track))),
            start=float(row.start),
            duration=STIMULUS_DURATION,
            sr=STIMULUS_SR,
            fade=FADE_DURATION,
            target_rms=TARGET_RMS,
        )
        for row in table.itertuples(index=False)
    ]


def experiment_clips(bids_root: str | os.PathLike, *, subjects: list[str] | None = None) -> pd.DataFrame:
    """The clip table of a study from its events files alone: one row per clip over all subjects.

    Columns ``clip_id, genre, track, start, duration, split, run`` (training clips first).
    """
    from brain2music.data import build_design, clip_table, list_subjects, normalize_subject, read_events
    from brain2music.data.bids import TEST_TASK, TRAIN_TASK

    root = Path(bids_root)
    subjects = [normalize_subject(s) for s in subjects] if subjects else list_subjects(root)
    tables = []
    for subject in subjects:
        func = root / subject / "func"
        runs: dict[str, dict[int, pd.DataFrame]] = {TRAIN_TASK: {}, TEST_TASK: {}}
        for task in runs:
            for path in sorted(func.glob(f"{subject}_task-{task}_run-*_events.tsv")):
                run = int(path.name.split("_run-")[1].split("_")[0])
                runs[task][run] = read_events(path)
        if not runs[TRAIN_TASK] and not runs[TEST_TASK]:
            raise DataFileNotFoundError(
                f"{func}: no events files found (expected {subject}_task-{TRAIN_TASK}_run-01_events.tsv ...)"
            )
        design = build_design(runs[TRAIN_TASK], runs[TEST_TASK], source=str(root / subject))
        tables.append(clip_table(design))
    clips = pd.concat(tables, ignore_index=True)
    starts = clips.groupby("clip_id")["start"].nunique()
    if (starts > 1).any():
        raise DataError(
            f"{root}: clip(s) {list(starts[starts > 1].index[:5])} have different start times in different "
            "subjects; cannot embed one stimulus per clip"
        )
    return clips.drop_duplicates("clip_id").reset_index(drop=True)


def clips_from_bids(
    bids_root: str | os.PathLike, stimuli_dir: str | os.PathLike, *, subjects: list[str] | None = None
) -> list[AudioClip]:
    """The stimuli of a BIDS study: :func:`experiment_clips` of ``bids_root`` cut from ``stimuli_dir``."""
    return clips_from_design(experiment_clips(bids_root, subjects=subjects), stimuli_dir)
