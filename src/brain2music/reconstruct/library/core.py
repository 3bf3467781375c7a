"""The opened library: :class:`MusicLibrary`, assembled from its manifest view, track store, indexes and
queries, and the functions that open and search one."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from brain2music.errors import ConfigError
from brain2music.reconstruct.clip_embedding import (
    encoder_name,
    resolve_encoder,
)
from brain2music.reconstruct.library.indexes import Indexes
from brain2music.reconstruct.library.manifest import META_COLUMNS, ManifestView
from brain2music.reconstruct.library.query import Queries
from brain2music.reconstruct.library.tracks import TrackStore


class MusicLibrary(ManifestView, TrackStore, Indexes, Queries):
    """An opened library folder (see the module docstring). Use :func:`open_library` or :func:`build_library`.

    Attributes
    ----------
    path : Path
    encoder_name : str
        Registry name of the encoder that embedded every track.
    encoder_config : dict
    dim, n_windows : int
        Shape of one track's clip embedding ``(n_windows, dim)``.
    coverage : {"first15", "full"}
        Which windows of a track audio queries match against.
    hop : float
        Spacing (s) of the search windows' ends (and of a query's windows).
    metadata : DataFrame
        One row per track: item, path, track_id, title, artist, genre, duration.
    skipped : list of dict
        Files that could not be read, with the reason.
    """


def open_library(path: str | os.PathLike) -> MusicLibrary:
    """Open a library folder written by :func:`build_library`."""
    return MusicLibrary(path)


def search_library(
    library: str | os.PathLike | MusicLibrary,
    *,
    audio: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    embeddings: np.ndarray | None = None,
    k: int = 5,
    encoder: Any = None,
    exact: bool | None = None,
    encoder_options: dict | None = None,
) -> pd.DataFrame:
    """Top-``k`` library tracks for query audio files or query clip embeddings.

    ``encoder_options`` update the options the library recorded for its encoder (e.g. ``device``).

    ``audio`` files (any length from one window up) are matched window by window with
    :meth:`MusicLibrary.query` (encoder: the library's by default): one row per (query, rank) with
    ``query_path``, ``score``, ``offset`` (s into the track where the query begins), ``n_windows`` and the
    track's metadata. ``embeddings`` (``(n, dim)`` or ``(n, n_windows, dim)``, e.g. decoder predictions)
    are searched by clip vector: the table of :meth:`MusicLibrary.search_table`.
    """
    lib = library if isinstance(library, MusicLibrary) else MusicLibrary(library)
    if (audio is None) == (embeddings is None):
        raise ConfigError("give exactly one of audio (query files) or embeddings")
    if audio is not None:
        paths = [audio] if isinstance(audio, (str, os.PathLike)) else list(audio)
        if isinstance(encoder, str):
            lib.check_encoder(encoder)
        if encoder is None or encoder == lib.encoder_name:
            encoder = lib.make_encoder(**(encoder_options or {}))
        elif encoder_options:
            encoder = resolve_encoder(encoder, **encoder_options)
        rows = []
        for q, p in enumerate(paths):
            for rank, m in enumerate(lib.query(p, k=k, encoder=encoder, exact=exact)):
                meta = lib.metadata.iloc[m.item]
                rows.append(
                    {
                        "query": q,
                        "query_path": str(p),
                        "rank": rank + 1,
                        "score": m.score,
                        "offset": m.offset,
                        "n_windows": m.n_windows,
                        **{c: meta[c] for c in META_COLUMNS},
                    }
                )
        return pd.DataFrame(
            rows, columns=["query", "query_path", "rank", "score", "offset", "n_windows", *META_COLUMNS]
        )
    name = encoder if isinstance(encoder, str) or encoder is None else encoder_name(encoder)
    return lib.search_table(embeddings, k, encoder=name)
