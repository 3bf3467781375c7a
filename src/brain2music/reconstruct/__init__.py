"""Reconstruction: a searchable music library, generators conditioned on embeddings, and their evaluation.

- :mod:`~brain2music.reconstruct.library`: metadata + embeddings in Parquet shards and a FAISS index
  (:func:`build_library`, :func:`add_to_library`, :func:`open_library`, :func:`search_library`);
- :mod:`~brain2music.reconstruct.generators`: one protocol, a registry (:func:`get_generator`);
- :mod:`~brain2music.reconstruct.pipeline`: ``brain2music reconstruct`` over a results folder.
"""

from brain2music.reconstruct.generators import get_generator, list_generators
from brain2music.reconstruct.library import (
    MusicLibrary,
    add_to_library,
    build_library,
    library_from_embeddings,
    open_library,
    search_library,
)
from brain2music.reconstruct.pipeline import reconstruct

__all__ = [
    "MusicLibrary",
    "add_to_library",
    "build_library",
    "get_generator",
    "library_from_embeddings",
    "list_generators",
    "open_library",
    "reconstruct",
    "search_library",
]
