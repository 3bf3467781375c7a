"""One pretrained musicnn tagger, loaded: weights + network + tag names, by registry name.

=====================  ===============  ======================================  ==========================
name                   checkpoint       trained on                              layers (size)
=====================  ===============  ======================================  ==========================
``musicnn-msd``        ``MSD_musicnn``  Million Song Dataset, 50 tags           penultimate (200),
``musicnn-mtt``        ``MTT_musicnn``  MagnaTagATune, 50 tags                  taggram (50), mean_pool
                                                                                (753), max_pool (753)
``musicnn-vgg-msd``    ``MSD_vgg``      Million Song Dataset, 50 tags           pool5 (256), taggram (50)
``musicnn-vgg-mtt``    ``MTT_vgg``      MagnaTagATune, 50 tags                  pool5 (256), taggram (50)
=====================  ===============  ======================================  ==========================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from brain2music.embeddings.musicnn.checkpoint import crc32c
from brain2music.embeddings.musicnn.network import ARCHITECTURES, LAYERS, Network
from brain2music.embeddings.musicnn.tags import tags_of
from brain2music.embeddings.musicnn.weights import load_weights, model_dir
from brain2music.errors import ConfigError

__all__ = ["MODEL_NAMES", "PretrainedMusicnn", "resolve_model"]

#: registry name -> checkpoint folder name in the musicnn package
MODEL_NAMES = {
    "musicnn-msd": "MSD_musicnn",
    "musicnn-mtt": "MTT_musicnn",
    "musicnn-vgg-msd": "MSD_vgg",
    "musicnn-vgg-mtt": "MTT_vgg",
}


def resolve_model(name: str) -> str:
    """Checkpoint name (``"MSD_musicnn"``) of a registry name (``"musicnn-msd"``); checkpoint names pass."""
    if name in MODEL_NAMES:
        return MODEL_NAMES[name]
    if name in ARCHITECTURES:
        return name
    raise ConfigError(
        f"unknown musicnn model {name!r}; expected one of {', '.join(MODEL_NAMES)} "
        f"(or a checkpoint name: {', '.join(ARCHITECTURES)})"
    )


@dataclass
class PretrainedMusicnn:
    """A musicnn checkpoint located on disk; the network is loaded on first use (and not pickled).

    Parameters
    ----------
    model : str
        Registry name (``"musicnn-msd"``) or checkpoint name (``"MSD_musicnn"``).
    weights : path, optional
        Folder with the checkpoint (``--weights DIR``); default: the installed ``musicnn`` package.
    """

    model: str
    weights: str | os.PathLike | None = None

    def __post_init__(self):
        self.checkpoint = resolve_model(self.model)
        self.arch = ARCHITECTURES[self.checkpoint]
        self.folder: Path = model_dir(self.checkpoint, self.weights)  # fails early with an install hint
        self.tags: tuple[str, ...] = tags_of(self.checkpoint)
        self._network: Network | None = None

    @property
    def layers(self) -> dict[str, int]:
        """``{layer: size}`` this network can return."""
        return dict(LAYERS[self.arch])

    @cached_property
    def digest(self) -> str:
        """CRC32C of the checkpoint's index (it holds every tensor's checksum): identifies the weights."""
        index = self.folder / ".index"
        if not index.is_file():
            index = next(iter(sorted(self.folder.glob("*.index"))))
        return f"{crc32c(index.read_bytes()):08x}"

    @property
    def network(self) -> Network:
        """The :class:`~brain2music.embeddings.musicnn.network.Network` with the checkpoint's weights, loaded
        on first access (errors of :func:`~brain2music.embeddings.musicnn.weights.load_weights` surface here).
        """
        if self._network is None:
            self._network = Network(load_weights(self.checkpoint, self.folder), self.arch)
        return self._network

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_network"] = None  # a Dask worker reloads the 3-9 MB of weights from disk
        return state
