"""The study stages, which write and read the results model of :mod:`brain2music.results`.

- :func:`~brain2music.study.reproduce.reproduce` — decoders + the paper's evaluation → a results folder;
- :func:`~brain2music.study.reconstruct.reconstruct` — retrieval and generation from its predictions;
- :func:`~brain2music.study.experiment.run_experiment` — every stage from one config file (and the demo);
- :mod:`~brain2music.study.methods` — the decoder-method registry;
- :mod:`~brain2music.study.context` — data sources and the per-subject context methods share.

Names are imported lazily so importing one stage does not import the others.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "reproduce": "brain2music.study.reproduce",
    "StudySettings": "brain2music.study.reproduce",
    "reconstruct": "brain2music.study.reconstruct",
    "run_experiment": "brain2music.study.experiment",
    "run_demo": "brain2music.study.experiment",
    "DataSource": "brain2music.study.context",
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
