"""Reconstruction: a searchable music library, generators conditioned on embeddings, and their evaluation.

- :mod:`~brain2music.reconstruct.library`: metadata + embeddings in Parquet shards and a FAISS index
  (:func:`build_library`, :func:`add_to_library`, :func:`open_library`, :func:`search_library`);
- :mod:`~brain2music.reconstruct.generators`: one protocol, a registry (:func:`get_generator`);
- ``brain2music reconstruct`` over a results folder lives with the other stages in
  :mod:`brain2music.study.reconstruct`.
"""

import importlib

# Resolved on first use (PEP 562) so that importing a light submodule such as
# ``brain2music.reconstruct.index`` (the CLI does, for its option choices) does not pull in pandas, pyarrow
# and faiss through the library store.
_EXPORTS = {
    "MusicLibrary": "library",
    "add_to_library": "library",
    "build_library": "library",
    "library_from_embeddings": "library",
    "open_library": "library",
    "search_library": "library",
    "get_generator": "generators",
    "list_generators": "generators",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"brain2music.reconstruct.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'brain2music.reconstruct' has no attribute {name!r}")


__all__ = [
    "MusicLibrary",
    "add_to_library",
    "build_library",
    "get_generator",
    "library_from_embeddings",
    "list_generators",
    "open_library",
    "search_library",
]
