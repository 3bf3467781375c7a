"""Stimuli: reading audio, and GTZAN-style folders → the 15-s excerpts the subjects heard."""

from brain2music.stimuli.audio import AUDIO_EXTENSIONS, find_audio_files, read_audio, resample, write_audio
from brain2music.stimuli.gtzan import (
    FADE_DURATION,
    STIMULUS_DURATION,
    STIMULUS_SR,
    TARGET_RMS,
    apply_fades,
    find_gtzan_file,
    genres_folder,
    load_stimuli,
    load_stimulus,
    rms_normalize,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "FADE_DURATION",
    "STIMULUS_DURATION",
    "STIMULUS_SR",
    "TARGET_RMS",
    "apply_fades",
    "find_audio_files",
    "find_gtzan_file",
    "genres_folder",
    "load_stimuli",
    "load_stimulus",
    "read_audio",
    "resample",
    "rms_normalize",
    "write_audio",
]
