"""The manifest of a library folder: its format, encoder, shape and shard list, and the view of it
that :class:`~brain2music.reconstruct.library.MusicLibrary` is built on."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from brain2music._io import read_json_generation
from brain2music.errors import DataError, DataFileNotFoundError
from brain2music.reconstruct.clip_embedding import resolve_encoder
from brain2music.windows import TR

if TYPE_CHECKING:
    from brain2music.reconstruct.library.core import MusicLibrary


FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)  # format 1: sequential shard names, no window store (built on first use)
MANIFEST = "manifest.json"
INDEX_FILE = "index.faiss"  # the index of format-1 libraries; every build writes index-<random>.faiss
#: Similarity spaces: ``cosine`` of the window-averaged vectors (the paper's retrieval), or ``zscore``:
#: cosine after standardising each dimension with the library's mean and sd, for descriptors with a large
#: shared offset (e.g. ``acoustic``) where every raw cosine is ≈ 1. ``auto`` picks ``zscore`` when the
#: mean cosine between library tracks exceeds 0.5.
SPACES = ("auto", "cosine", "zscore")
COVERAGES = ("first15", "full")
SILENCE_PEAK = 10 ** (-80 / 20)  # a query whose loudest sample is below -80 dBFS holds no music
SHARD_DIR = "shards"
EMBED_GROUP = 8  # tracks read and embedded together (encoders with embed_many batch them)
META_COLUMNS = ("item", "path", "track_id", "title", "artist", "genre", "duration")


class ManifestView:
    """The description of an opened library, read from its ``manifest.json``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._encoder = None
        self._load_manifest()

    def _load_manifest(self) -> None:
        manifest = self.path / MANIFEST
        if not manifest.is_file():
            raise DataFileNotFoundError(
                f"{self.path}: not a music library (no {MANIFEST}); create one with `brain2music library build`"
            )
        doc, _ = read_json_generation(manifest)
        if not isinstance(doc, dict) or doc.get("format") not in READABLE_FORMATS:
            found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            raise DataError(f"{manifest}: library format {found!r}, expected one of {READABLE_FORMATS}")
        self._manifest = doc
        self._vectors = None
        self._metadata = None
        self._index = None
        self._store = None

    def reload(self) -> MusicLibrary:
        """Re-read the manifest (another process may have committed tracks or indexes)."""
        self._load_manifest()
        return self

    # -- description
    @property
    def encoder_name(self) -> str:
        """Registry name of the encoder that embedded the library."""
        return self._manifest["encoder"]["name"]

    @property
    def encoder_config(self) -> dict:
        """The encoder's config as recorded at build time (a copy); compared with a query's encoder."""
        return dict(self._manifest["encoder"].get("config", {}))

    @property
    def dim(self) -> int:
        """Embedding dimension of the library's vectors and windows."""
        return int(self._manifest["dim"])

    @property
    def n_windows(self) -> int:
        """Clip windows per track (``r`` of the ``(r, dim)`` clip embedding)."""
        return int(self._manifest["n_windows"])

    @property
    def encoder_options(self) -> dict:
        """The options the library's encoder was built with (``model``, ``layer``, ...; not the device)."""
        return dict(self._manifest["encoder"].get("options", {}))

    def make_encoder(self, **overrides):
        """The library's encoder, built from the registry with the recorded options updated by ``overrides``.

        ``overrides`` typically place it (``device=``, ``dtype=``: ignored by an encoder without weights) or
        point at another copy of the same checkpoint (``model=``); any other option the encoder does not
        take is an error. :meth:`check_encoder_config` still guards against a different encoder.
        """
        from brain2music.embeddings.registry import PLACEMENT_OPTIONS, resolve_encoder_options

        options = {**self.encoder_options, **overrides}
        placement = {k: options.pop(k) for k in PLACEMENT_OPTIONS if k in options}
        kwargs = resolve_encoder_options(
            [self.encoder_name], options, source=f"encoder options for library {self.path}", **placement
        )
        return resolve_encoder(self.encoder_name, **kwargs[self.encoder_name])

    @property
    def coverage(self) -> str:
        """``"first15"`` (each track's first 15 s, the default) or ``"full"`` (every window of each track)."""
        return str(self._manifest.get("coverage", "first15"))

    @property
    def hop(self) -> float:
        """Seconds between search windows: the manifest's ``hop``, else the encoder's ``tr``, else the TR."""
        return float(self._manifest.get("hop") or self.encoder_config.get("tr", TR))

    @property
    def skipped(self) -> list[dict]:
        """The files the builds left out, ``[{"path", "error"}]`` (a copy)."""
        return list(self._manifest.get("skipped", []))

    @property
    def manifest(self) -> dict:
        """A deep copy of the manifest document as read (changing it does not change the library)."""
        return json.loads(json.dumps(self._manifest))

    def __len__(self) -> int:
        return int(self._manifest["n_items"])

    def __repr__(self) -> str:
        return (
            f"MusicLibrary({str(self.path)!r}, encoder={self.encoder_name!r}, n_items={len(self)}, "
            f"coverage={self.coverage!r})"
        )
