"""musicnn as an encoder: 3-s patches on the protocol's windows, one layer of the pretrained network.

=====================  ===========================  ======  =====  ===================================
registry name          layer (``layer=``)           window  r      dim
=====================  ===========================  ======  =====  ===================================
``musicnn-msd``        ``penultimate`` (default),    3 s     9      200 / 50 / 753 / 753
``musicnn-mtt``        ``taggram``, ``mean_pool``,
                       ``max_pool``
``musicnn-vgg-msd``    ``pool5`` (default),          3 s     9      256 / 50
``musicnn-vgg-mtt``    ``taggram``
=====================  ===========================  ======  =====  ===================================

The networks were trained on 3-s inputs (187 spectrogram frames), so the window is 3 s. Like every
encoder's, the windows end on TR boundaries (1.5 s) of the 15-s clip: [0, 3), [1.5, 4.5), ..., [12, 15),
r = 9. Window ``k`` is the 187-frame patch of the clip's spectrogram (:mod:`.spectrogram`, 16 kHz)
starting at frame ``round(start_k * 16000 / 256)`` (93.75 frames per 1.5 s, so a patch may start up to
3/8 of a frame, 6 ms, from its window's start). Each patch is embedded as the original embeds a patch
(its own zero padding at both ends); overlapping patches only share the arithmetic
(:meth:`.network.Network.forward_frames`). The original ``musicnn.extractor`` cuts non-overlapping
patches at frames 0, 187, ...; ``brain2music tag`` does that.

``penultimate`` is the 200-d output of the last hidden layer (after its batch norm), ``taggram`` the 50
tag probabilities, ``mean_pool`` / ``max_pool`` the 753 front- and mid-end channels averaged / maximised
over the patch's frames.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from brain2music.embeddings.base import Encoder
from brain2music.embeddings.musicnn import spectrogram as spec
from brain2music.embeddings.musicnn.model import MODEL_NAMES, PretrainedMusicnn
from brain2music.embeddings.musicnn.network import LAYERS, N_FRAMES
from brain2music.errors import ConfigError

__all__ = ["MusicnnEncoder"]

_DEFAULT_LAYER = {"musicnn": "penultimate", "vgg": "pool5"}


class MusicnnEncoder(Encoder):
    """One layer of a pretrained musicnn / VGG tagger on 3-s windows (r = 9 per 15-s clip).

    Parameters
    ----------
    model : str
        ``"musicnn-msd"`` (default), ``"musicnn-mtt"``, ``"musicnn-vgg-msd"`` or ``"musicnn-vgg-mtt"``.
    layer : str, optional
        ``"penultimate"`` (musicnn default, 200-d), ``"taggram"`` (50 tag probabilities), ``"mean_pool"``
        or ``"max_pool"`` (753-d); VGG: ``"pool5"`` (default, 256-d) or ``"taggram"``.
    weights : path, optional
        Folder holding the checkpoint; default: the installed ``musicnn`` package
        (``pip install --no-deps musicnn``).
    clip_duration : float
        Length of a clip (s); longer audio is cut, shorter zero-padded.

    Attributes
    ----------
    tags : tuple of str
        The network's 50 tags (the columns of the ``taggram`` layer).
    """

    sr = spec.SR
    window = 3.0

    def __init__(
        self,
        model: str = "musicnn-msd",
        *,
        layer: str | None = None,
        weights: str | os.PathLike | None = None,
        clip_duration: float = 15.0,
    ):
        self.pretrained = PretrainedMusicnn(model, weights)
        arch = self.pretrained.arch
        self.layer = _DEFAULT_LAYER[arch] if layer is None else str(layer)
        if self.layer not in LAYERS[arch] or self.layer == "logits":
            choices = [name for name in LAYERS[arch] if name != "logits"]
            raise ConfigError(
                f"encoder {model!r}: unknown layer {layer!r}; expected one of {', '.join(choices)}"
            )
        self.name = next((k for k, v in MODEL_NAMES.items() if v == self.pretrained.checkpoint), model)
        self.dim = LAYERS[arch][self.layer]
        self.clip_duration = float(clip_duration)
        self.tags = self.pretrained.tags
        self._check_window()

    def _extra_config(self) -> dict[str, Any]:
        return {
            "model": self.pretrained.checkpoint,
            "layer": self.layer,
            "weights_crc32c": self.pretrained.digest,
            "input": "logmel 16kHz n_fft512 hop256 96 bands log10(10000x+1) float32",
            "patch_frames": N_FRAMES,
        }

    def patch_offsets(self) -> np.ndarray:
        """``(r,)`` first spectrogram frame of each window's patch: ``round(start * sr / hop)``."""
        starts = self.windows[:, 0] * self.sr / spec.HOP
        return np.floor(starts + 0.5).astype(np.int64)

    def _embed_batch(self, audio: np.ndarray) -> np.ndarray:
        net = self.pretrained.network
        offsets = self.patch_offsets()
        # Windows may end a little past the audio when clip_duration is not a multiple of tr: silence there.
        needed = int(np.ceil(self.windows[:, 1].max() * self.sr))
        if audio.shape[1] < needed:
            audio = np.pad(audio, ((0, 0), (0, needed - audio.shape[1])))
        out = np.empty((len(audio), len(offsets), self.dim), dtype=np.float32)
        for i, clip in enumerate(audio):
            frames = spec.log_mel(clip)
            out[i] = net.forward_frames(frames, offsets, [self.layer])[self.layer]
        return out
