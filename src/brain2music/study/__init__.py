"""The study stages, which write and read the results model of :mod:`brain2music.results`.

- :func:`~brain2music.study.reproduce.reproduce` — decoders + the paper's evaluation → a results folder
  (its options checked into a :class:`~brain2music.results.settings.StudySettings` by
  :func:`~brain2music.study.settings.study_settings`);
- :func:`~brain2music.study.reconstruct.reconstruct` — retrieval and generation from its predictions;
- :mod:`~brain2music.study.methods` — the decoder-method registry;
- :mod:`~brain2music.study.context` — data sources and the per-subject context methods share.

Names are imported lazily so importing one stage does not import the others. The stage functions are
imported from their modules (``from brain2music.study.reproduce import reproduce``): a package name
that is also a submodule's name always gives the submodule.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "study_settings": "brain2music.study.settings",
    "StudySettings": "brain2music.results.settings",
    "DataSource": "brain2music.results.settings",
    "load_subject_for_study": "brain2music.study.context",
    "get_method": "brain2music.study.methods",
    "list_methods": "brain2music.study.methods",
    "register_method": "brain2music.study.methods",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'brain2music.study' has no attribute {name!r}")
