"""The settings of a run, as frozen records: what the CLI, the config file and the Python API build.

Each stage takes one of these plus the few things that differ per call (in-memory inputs, verbosity):

- :class:`DataSource` — where a study's responses come from;
- :class:`StudySettings` — every option of ``reproduce`` (``results.json``'s ``config``);
- :class:`ReconstructSettings` — every option of ``reconstruct`` (``reconstruction.json``'s ``config``).

The types live below every stage because the results record them; the checks that need a stage's
registries (methods, encoders, backends, generators) live with the stage that builds them
(:func:`brain2music.study.settings.study_settings`, :func:`brain2music.study.reconstruct.reconstruct_settings`).
Sequences are stored as tuples so a settings object cannot change under a running stage;
:meth:`StudySettings.to_dict` writes them as lists.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DataSource", "ReconstructSettings", "StudySettings"]


@dataclass(frozen=True)
class DataSource:
    """Where a study's responses come from.

    Attributes
    ----------
    kind : a key of :data:`brain2music.study.context.SUBJECT_LOADERS` (``"bids"``: raw BOLD of a
        ds003720-like BIDS root; ``"derivatives"``: the authors' preprocessed arrays; ``"fmriprep"``:
        fMRIPrep derivatives).
    bids_root : BIDS root (events are always read from here; also the default parcel location).
    derivatives : folder of the authors' arrays (``kind="derivatives"``).
    delay : hemodynamic shift in volumes applied by the loader.
    options : loader-specific options passed to the loader as keywords: ``mask`` (every kind; for
        fMRIPrep also ``"brain"`` or ``"cortex"``), and for ``kind="fmriprep"`` ``space`` (e.g. ``"T1w"``,
        ``"MNI152NLin2009cAsym:res-2"``), ``confounds`` (a :class:`~brain2music.data.ConfoundStrategy`
        text, ``"none"`` to switch off) and ``freesurfer_dir``.
    fmriprep : the fMRIPrep output folder (``kind="fmriprep"``).
    extra : keys of a recorded source this version does not know, written back unchanged.
    """

    kind: str = "bids"
    bids_root: Path | None = None
    derivatives: Path | None = None
    delay: int = 3
    options: dict = field(default_factory=dict)
    fmriprep: Path | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``results.json``'s ``config.source``): absolute paths, then the ``extra`` keys."""
        return {
            "kind": self.kind,
            "bids_root": str(Path(self.bids_root).resolve()) if self.bids_root else None,
            "derivatives": str(Path(self.derivatives).resolve()) if self.derivatives else None,
            "fmriprep": str(Path(self.fmriprep).resolve()) if self.fmriprep else None,
            "delay": int(self.delay),
            "options": {k: str(v) if isinstance(v, os.PathLike) else v for k, v in self.options.items()},
        } | self.extra

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataSource:
        """The source :meth:`to_dict` wrote (``results.json``'s ``config.source``)."""

        def path(key):
            return Path(data[key]) if data.get(key) else None

        return cls(str(data.get("kind", "bids")), path("bids_root"), path("derivatives"),
                   int(data.get("delay", 3)), dict(data.get("options") or {}), path("fmriprep"),
                   _unknown(cls, data))  # fmt: skip


def _freeze(obj, tuples: tuple[str, ...], paths: tuple[str, ...] = ()) -> None:
    """Store the sequence fields of a frozen record as tuples and its path fields as :class:`Path`."""
    for name in tuples:
        value = getattr(obj, name)
        if value is not None and not isinstance(value, tuple):
            object.__setattr__(obj, name, tuple(value))
    for name in paths:
        value = getattr(obj, name)
        if value is not None and not isinstance(value, Path):
            object.__setattr__(obj, name, Path(value))


def _listed(d: dict, names: tuple[str, ...]) -> dict:
    """``d`` with the tuple fields ``names`` as lists (the JSON form the results record)."""
    return d | {n: list(d[n]) for n in names if d.get(n) is not None}


def _known_fields(cls, data: dict) -> dict:
    """The keys of ``data`` that are fields of ``cls`` (missing ones take the field's default)."""
    names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    return {k: v for k, v in data.items() if k in names}


def _unknown(cls, data: dict, derived: tuple[str, ...] = ()) -> dict:
    """The keys of ``data`` that are neither fields of ``cls`` nor ``derived`` from them (a record
    written by another version may hold more); kept in the record's ``extra`` and written back."""
    names = {f.name for f in dataclasses.fields(cls)} | set(derived)
    return {k: v for k, v in data.items() if k not in names}


@dataclass(frozen=True)
class StudySettings:
    """Every option of a ``reproduce`` run (recorded as ``results.json``'s ``config``).

    Built by :func:`brain2music.study.settings.study_settings` from the options of the CLI, the config
    file or the Python API (every check names the option); :meth:`from_dict` reads a recorded config.
    ``out`` is ``None`` only for a recorded config that names no results folder; ``extra`` holds the keys
    of a recorded config this version does not know, written back unchanged by :meth:`to_dict`.
    """

    source: DataSource
    encoders: tuple[str, ...]
    subjects: tuple[str, ...]
    methods: tuple[str, ...]
    out: Path | None
    stimuli: Path | None = None
    parcels: str | None = None
    delays: tuple[int, ...] = (2, 3, 4)
    alphas: tuple[float, ...] = ()
    cv: int = 5
    n_top_parcels: int = 6
    encsel_threshold: float | None = 0.05
    encsel_top: int | None = None
    reference: str | None = None
    n_permutations: int = 1000  # of the encoding maps
    fdr_alpha: float = 0.05
    logo: bool = True
    logo_method: str = "encsel"
    metric_spaces: dict[str, str] = field(default_factory=dict)  # encoder -> space
    n_bootstrap: int = 1000
    n_permutations_id: int = 1000  # of the identification p-values and paired tests
    random_state: int = 0
    cache_dir: str | None = None
    ridge_options: dict = field(default_factory=dict)  # extra RidgeDecoder keywords (solver, ...)
    backend: str = "numpy"  # himalaya backend of every ridge, encoding model and alignment
    # One kernel per subject and window for every dual ridge (False: each fit its own).
    reuse_kernels: bool = True
    scheduler: str | None = None  # None: subjects in this process; "threads", "local" or a Dask address
    workers: int | None = None  # workers of "threads" / "local" (default: all cores)
    # {encoder: constructor kwargs} (--encoder-option, checked against each encoder; device/dtype included)
    encoder_options: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    _TUPLES = ("encoders", "subjects", "methods", "delays", "alphas")

    def __post_init__(self):
        _freeze(self, self._TUPLES, ("out", "stimuli"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``results.json``'s ``config``): sequences as lists, absolute paths, the flat
        data-source copies, then the ``extra`` keys; the one place that form is made."""
        d = _listed(asdict(self), self._TUPLES)
        del d["extra"]
        d["source"] = self.source.to_dict()
        d["out"] = str(Path(self.out).resolve()) if self.out else None
        d["stimuli"] = str(Path(self.stimuli).resolve()) if self.stimuli else None
        # Flat copies of the data-source keys, for readers of the previous layout and for people.
        d["bids_root"] = d["source"]["bids_root"]
        d["derivatives"] = d["source"]["derivatives"]
        d["delay"] = d["source"]["delay"]
        return d | self.extra

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudySettings:
        """The settings a results folder records (``results.json``'s ``config``, schema 2).

        Fields a folder of an earlier version lacks take their defaults; a config without ``source``
        (the flat ``bids_root``/``derivatives``/``delay`` of the previous layout, and ``use_derivatives``)
        gets its source from those. Keys this version does not know go to ``extra``.
        """
        kw = _known_fields(cls, data)
        if isinstance(kw.get("source"), dict):
            kw["source"] = DataSource.from_dict(kw["source"])
        elif "source" not in kw:
            flat = {k: data.get(k) for k in ("bids_root", "derivatives")} | {"delay": data.get("delay", 3)}
            flat["kind"] = "derivatives" if data.get("use_derivatives", bool(flat["derivatives"])) else "bids"
            kw["source"] = DataSource.from_dict(flat)
        for key in ("encoders", "subjects", "methods"):
            kw.setdefault(key, ())
        kw.setdefault("out", None)
        return cls(**kw, extra=_unknown(cls, data, derived=("bids_root", "derivatives", "delay")))


@dataclass(frozen=True)
class ReconstructSettings:
    """Every option of a ``reconstruct`` run, by name and value (what the CLI, the config file and the
    Python API give; see :func:`brain2music.study.reconstruct.reconstruct` for what each means).

    Built by :func:`brain2music.study.reconstruct.reconstruct_settings` (the checks); the objects a call
    may bring instead of names (an opened library, a generator, an encoder, a tag scorer) are given to
    ``reconstruct`` beside it. ``reconstruction.json``'s ``config`` records these values with what they
    resolved to (the decoder chosen, the subjects, the generator's own config).
    """

    results: Path
    library: Path
    out: Path
    generator: str | None = "offline"
    generator_options: dict = field(default_factory=dict)
    method: str | None = None
    subjects: tuple[str, ...] | None = None
    n_clips: int | None = None
    k: int = 5
    best_of: int = 1
    score: str = "embedding"
    encoder_options: dict = field(default_factory=dict)
    device: str | None = None
    dtype: str | None = None
    duration: float = 15.0
    exclude_stimuli: bool = True
    n_chance: int = 20
    true_embedding_generation: bool = False
    n_bootstrap: int = 1000
    random_state: int = 0
    tag_agreement: bool = True
    taggers: dict | None = None
    tag_library: int = 200

    def __post_init__(self):
        _freeze(self, ("subjects",), ("results", "library", "out"))
