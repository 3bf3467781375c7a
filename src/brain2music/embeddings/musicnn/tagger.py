"""musicnn as a tagger: the 50 tag probabilities of a whole recording, as ``musicnn.tagger.top_tags``.

A file is read at any rate and channel layout, mixed to mono, resampled to 16 kHz (soxr, as
``librosa.load``), turned into one log-mel spectrogram and cut into non-overlapping 187-frame patches
from frame 0 (the last partial patch is dropped), exactly as ``musicnn.extractor`` does. The file's tags
are the patch probabilities averaged over its patches.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from brain2music.embeddings.musicnn import spectrogram as spec
from brain2music.embeddings.musicnn.model import MODEL_NAMES, PretrainedMusicnn
from brain2music.embeddings.musicnn.network import N_FRAMES
from brain2music.errors import ConfigError, DataError, DataFileNotFoundError

__all__ = ["MusicnnTagger", "get_tagger", "list_taggers", "tag_files", "AUDIO_EXTENSIONS"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au", ".opus")


class MusicnnTagger:
    """Tag probabilities of a pretrained musicnn (or VGG) tagger.

    Parameters
    ----------
    model : str
        ``"musicnn-msd"`` (default), ``"musicnn-mtt"``, ``"musicnn-vgg-msd"``, ``"musicnn-vgg-mtt"``.
    weights : path, optional
        Checkpoint folder; default: the installed ``musicnn`` package.

    Attributes
    ----------
    tags : tuple of str
        The 50 tag names, in the order of the probability columns.
    """

    def __init__(self, model: str = "musicnn-msd", *, weights: str | os.PathLike | None = None):
        self.pretrained = PretrainedMusicnn(model, weights)
        self.name = next((k for k, v in MODEL_NAMES.items() if v == self.pretrained.checkpoint), model)
        self.tags = self.pretrained.tags

    def __repr__(self) -> str:
        return f"MusicnnTagger({self.name!r}, {len(self.tags)} tags)"

    def _mono16k(self, audio: np.ndarray, sr: int, what: str) -> np.ndarray:
        from brain2music.stimuli.audio import resample

        x = np.asarray(audio)
        if x.dtype.kind not in "fiu" or x.ndim not in (1, 2) or x.size == 0:
            raise DataError(
                f"{what}: expected a non-empty (n_samples,) or (n_samples, n_channels) array, got {x.shape}"
            )
        try:
            rate = int(sr)
        except (TypeError, ValueError):
            rate = 0
        if rate <= 0 or rate != sr:
            raise DataError(f"{what}: sr must be a positive integer sample rate in Hz, got {sr!r}")
        sr = rate
        x = x.astype(np.float32, copy=False)
        if x.ndim == 2:
            if x.shape[0] <= 8 < x.shape[1]:
                x = x.T  # (n_channels, n_samples)
            x = x.mean(axis=1)
        if not np.all(np.isfinite(x)):
            raise DataError(f"{what}: audio contains NaN or infinite samples")
        y = resample(x, int(sr), spec.SR)
        if len(y) < spec.min_samples():
            raise DataError(
                f"{what}: {len(x) / sr:.3f} s of audio is too short for one {N_FRAMES}-frame patch of "
                f"{self.name}; expected at least {spec.min_samples() / spec.SR:.3f} s"
            )
        return y

    def taggram(self, audio: np.ndarray, sr: int, *, what: str = "audio") -> np.ndarray:
        """``(n_patches, 50)`` tag probabilities of consecutive 3-s patches (the original's taggram)."""
        frames = spec.log_mel(self._mono16k(audio, sr, what))
        offsets = np.arange(0, len(frames) - N_FRAMES + 1, N_FRAMES)
        return self.pretrained.network.forward_frames(frames, offsets, ["taggram"])["taggram"]

    def predict_proba(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """``(50,)`` tag probabilities averaged over the recording's patches."""
        return self.taggram(audio, sr).mean(axis=0)

    def tag(self, audio: np.ndarray, sr: int) -> dict[str, float]:
        """``{tag: probability}`` of all 50 tags, highest first."""
        return self._ranked(self.predict_proba(audio, sr))

    def _ranked(self, probs: np.ndarray) -> dict[str, float]:
        order = np.argsort(-probs, kind="stable")
        return {self.tags[i]: float(probs[i]) for i in order}

    def tag_file(self, path: str | os.PathLike) -> dict[str, float]:
        """``{tag: probability}`` of one audio file, highest first."""
        from brain2music.stimuli.audio import read_audio

        audio, sr = read_audio(path, mono=True)
        return self._ranked(self.taggram(audio, sr, what=str(path)).mean(axis=0))


def list_taggers() -> list[str]:
    """Names accepted by :func:`get_tagger` and ``brain2music tag --tagger``."""
    return list(MODEL_NAMES)


def get_tagger(name: str = "musicnn-msd", **kwargs) -> MusicnnTagger:
    """The tagger registered as ``name`` (see :func:`list_taggers`)."""
    if name not in MODEL_NAMES:
        raise ConfigError(f"unknown tagger {name!r}; known taggers: {', '.join(MODEL_NAMES)}")
    return MusicnnTagger(name, **kwargs)


def _audio_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                raise DataFileNotFoundError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {p}")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise DataFileNotFoundError(f"audio file or folder not found: {p}")
    return files


def tag_files(
    paths: Sequence[str | os.PathLike], tagger: str | MusicnnTagger = "musicnn-msd", *, weights=None
) -> list[dict]:
    """Tag every audio file in ``paths`` (folders are searched recursively).

    Returns
    -------
    list of ``{"file": str, "tags": {tag: probability, ...}}``, all 50 tags highest first, one per file.
    """
    model = tagger if isinstance(tagger, MusicnnTagger) else get_tagger(tagger, weights=weights)
    return [{"file": str(f), "tags": model.tag_file(f)} for f in _audio_files(paths)]
