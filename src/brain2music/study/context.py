"""Where a study's data come from, and the per-subject context every decoder method receives.

- :class:`DataSource` says where the responses come from (``kind``: ``bids`` or ``derivatives``);
  :func:`load_subject_for_study` dispatches on it through :data:`SUBJECT_LOADERS`, so a new source
  (e.g. fMRIPrep derivatives) is one loader function and one registry line.
- :class:`SubjectContext` holds one subject's responses and everything derived from them that several
  methods share: window-averaged responses, run groups, parcel labels, the encoding model of each
  embedding (fitted on this context's training clips only), and a ``cache`` dict where solvers may keep
  per-subject precomputations (kernels, decompositions per fold). :meth:`SubjectContext.without_train`
  gives a context with some training clips removed (leave-one-genre-out): everything derived, the
  encoding model and voxel selection included, is recomputed from the remaining clips.
- :class:`Targets` are one embedding's training and test targets for the subject, with the metric space
  fitted on the training targets.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from brain2music.errors import ConfigError, DataError, DataFileNotFoundError
from brain2music.evaluate.space import MetricSpace

__all__ = [
    "SUBJECT_LOADERS",
    "DataSource",
    "SubjectContext",
    "Targets",
    "load_subject_for_study",
    "register_subject_loader",
]


@dataclass(frozen=True)
class DataSource:
    """Where a study's responses come from.

    Attributes
    ----------
    kind : a key of :data:`SUBJECT_LOADERS` (``"bids"``: raw BOLD of a ds003720-like BIDS root;
        ``"derivatives"``: the authors' preprocessed arrays).
    bids_root : BIDS root (events are always read from here; also the default parcel location).
    derivatives : folder of the authors' arrays (``kind="derivatives"``).
    delay : hemodynamic shift in volumes applied by the loader.
    options : loader-specific options (e.g. a mask path), passed to the loader as keywords.
    """

    kind: str = "bids"
    bids_root: Path | None = None
    derivatives: Path | None = None
    delay: int = 3
    options: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "bids_root": str(Path(self.bids_root).resolve()) if self.bids_root else None,
            "derivatives": str(Path(self.derivatives).resolve()) if self.derivatives else None,
            "delay": int(self.delay),
            "options": {k: str(v) if isinstance(v, os.PathLike) else v for k, v in self.options.items()},
        }


def _load_bids(source: DataSource, subject: str):
    from brain2music.data import load_subject

    return load_subject(source.bids_root, subject, delay=source.delay, **source.options)


def _load_derivatives(source: DataSource, subject: str):
    from brain2music.data import load_derivatives

    return load_derivatives(
        source.derivatives, subject, events_root=source.bids_root, delay=source.delay, **source.options
    )


#: ``kind -> loader(source, subject) -> SubjectData``.
SUBJECT_LOADERS: dict[str, Callable[[DataSource, str], Any]] = {
    "bids": _load_bids,
    "derivatives": _load_derivatives,
}


def register_subject_loader(kind: str, loader: Callable[[DataSource, str], Any]) -> None:
    """Make ``DataSource(kind=kind)`` load subjects with ``loader(source, subject) -> SubjectData``."""
    SUBJECT_LOADERS[kind] = loader


def load_subject_for_study(source: DataSource, subject: str):
    """The :class:`~brain2music.data.SubjectData` of ``subject`` from ``source``."""
    if source.kind not in SUBJECT_LOADERS:
        raise ConfigError(f"unknown data source {source.kind!r}; known: {', '.join(sorted(SUBJECT_LOADERS))}")
    return SUBJECT_LOADERS[source.kind](source, subject)


@dataclass
class Targets:
    """One embedding's targets for one subject's clips.

    Attributes
    ----------
    encoder : embedding name; window : seconds; r : windows per clip
    train : ``(n_train, r, dim)``; test : ``(n_test, r, dim)`` (encoder units)
    space : the metric space, fitted on ``train``
    """

    encoder: str
    window: float
    train: np.ndarray
    test: np.ndarray
    space: MetricSpace

    @property
    def r(self) -> int:
        return int(self.train.shape[1])

    @property
    def dim(self) -> int:
        return int(self.train.shape[2])


class SubjectContext:
    """One subject's responses and what decoder methods share (see the module docstring).

    Parameters
    ----------
    data : :class:`~brain2music.data.SubjectData`
    settings : the study's :class:`~brain2music.study.reproduce.StudySettings` (penalties, folds, ...)
    parcels : ``(n_voxels,)`` parcel label per voxel, or None
    parcel_names : ``{label: name}`` or None
    train_keep : boolean mask of the training clips this context uses (None = all)
    """

    def __init__(self, data, settings, *, parcels=None, parcel_names=None, train_keep=None):
        self.data = data
        self.settings = settings
        self.parcels = parcels
        self.parcel_names = parcel_names
        n_train = data.train.shape[0]
        self.train_keep = np.ones(n_train, dtype=bool) if train_keep is None else np.asarray(train_keep, bool)
        self.cache: dict[Any, Any] = {}
        #: Columns of the subject's full voxel vector this context holds (all, unless :meth:`subset`).
        self.parent_voxels = np.arange(data.n_voxels)
        self.parent_n_voxels = data.n_voxels

    # -- identity -----------------------------------------------------------------------------------------
    @property
    def subject(self) -> str:
        return self.data.subject

    @property
    def n_voxels(self) -> int:
        return self.data.n_voxels

    @property
    def train_clips(self):
        return self.data.train_clips[self.train_keep].reset_index(drop=True)

    @property
    def test_clips(self):
        return self.data.test_clips

    @property
    def train_runs(self) -> np.ndarray:
        return np.asarray(self.data.train_runs)[self.train_keep]

    def groups(self, r: int) -> np.ndarray:
        """Run of every training window sample ``(n_train * r,)`` (CV folds keep runs together)."""
        return np.repeat(self.train_runs, r)

    # -- responses ----------------------------------------------------------------------------------------
    def windowed(self, window: float) -> tuple[np.ndarray, np.ndarray]:
        """``(train (n_train, r, n_voxels), test (n_test, r, n_voxels))`` averaged over the windows."""
        key = ("windowed", float(window))
        if key not in self.cache:
            train, test = self.data.windowed(window)
            self.cache[key] = (self._train_rows(train), test)
        return self.cache[key]

    def _train_rows(self, a: np.ndarray) -> np.ndarray:
        """The rows of this context's training clips (no copy when it keeps them all)."""
        return a if self.train_keep.all() else a[self.train_keep]

    def test_repeats(self, window: float) -> np.ndarray:
        """Every test presentation averaged over the windows ``(n_test, n_repeats, r, n_voxels)``."""
        from brain2music.data.preprocess import window_average

        key = ("test_repeats", float(window))
        if key not in self.cache:
            self.cache[key] = window_average(self.data.test, window, tr=self.data.tr)
        return self.cache[key]

    def forget(self, *, window: float | None = None, encoder: str | None = None) -> None:
        """Free what is cached for ``window`` (averaged responses) and ``encoder`` (its encoding model).

        At full size each window's responses are about 1 GB and an encoding model's weights up to 0.4 GB.
        """
        if window is not None:
            for kind in ("windowed", "test_repeats"):
                self.cache.pop((kind, float(window)), None)
        if encoder is not None:
            self.cache.pop(("encoding", encoder), None)

    # -- shared fits ----------------------------------------------------------------------------------------
    def encoding(self, targets: Targets):
        """The encoding model of ``targets`` fitted on this context's training clips (cached).

        Returns the fitted :class:`~brain2music.models.EncodingModel`; its ``cv_r_`` selects voxels.
        """
        from brain2music.models import EncodingModel

        key = ("encoding", targets.encoder)
        if key not in self.cache:
            s = self.settings
            model = EncodingModel(
                targets.window, delays=s.delays, base_delay=self.data.delay, tr=self.data.tr,
                alphas=s.alphas, cv=s.cv,
            )  # fmt: skip
            self.cache[key] = model.fit(targets.train, self._train_rows(self.data.train), self.train_runs)
        return self.cache[key]

    def selected_voxels(self, targets: Targets) -> np.ndarray:
        """Voxels whose encoding-model CV r (this context's training clips) passes the study's threshold."""
        from brain2music.models import select_voxels

        key = ("selected", targets.encoder)
        if key not in self.cache:
            s = self.settings
            self.cache[key] = select_voxels(
                self.encoding(targets).cv_r_, n_top=s.encsel_top, threshold=s.encsel_threshold
            )
        return self.cache[key]

    def ridge(self, **overrides):
        """A :class:`~brain2music.models.RidgeDecoder` with the study's penalties and folds.

        Every method builds its ridge models here, so a solver or backend choice is made in one place.
        """
        from brain2music.models import RidgeDecoder

        kw = (
            {"alphas": self.settings.alphas, "cv": self.settings.cv} | self.settings.ridge_options | overrides
        )
        return RidgeDecoder(**kw)

    # -- derived contexts -------------------------------------------------------------------------------
    def without_train(self, drop: np.ndarray) -> SubjectContext:
        """A context without the training clips where ``drop`` ``(n_train_of_this_context,)`` is True.

        Nothing is shared with this context's cache: encoding models, voxel selections and penalties
        of the new context see only its own training clips.
        """
        drop = np.asarray(drop, dtype=bool)
        if drop.shape != (int(self.train_keep.sum()),):
            raise DataError(
                f"drop must have one flag per training clip ({self.train_keep.sum()}); got {drop.shape}"
            )
        keep = self.train_keep.copy()
        keep[np.flatnonzero(self.train_keep)[drop]] = False
        return SubjectContext(
            self.data, self.settings, parcels=self.parcels, parcel_names=self.parcel_names, train_keep=keep
        )

    def subset(self, voxels: np.ndarray) -> SubjectContext:
        """A context holding only the columns ``voxels`` of the responses (a copy: the rest can be freed)."""
        import dataclasses

        voxels = np.asarray(voxels, dtype=int)
        d = self.data
        data = dataclasses.replace(
            d, train=d.train[..., voxels].copy(), test=d.test[..., voxels].copy(),
            test_mean=d.test_mean[..., voxels].copy(),
            voxel_indices=None if d.voxel_indices is None else np.asarray(d.voxel_indices)[voxels],
        )  # fmt: skip
        ctx = SubjectContext(data, self.settings, train_keep=self.train_keep)
        ctx.parent_voxels = self.parent_voxels[voxels]
        ctx.parent_n_voxels = self.parent_n_voxels
        return ctx

    def targets_without_train(self, targets: Targets, drop: np.ndarray) -> Targets:
        """``targets`` restricted like :meth:`without_train` (the metric space refitted on what is left)."""
        train = targets.train[~np.asarray(drop, dtype=bool)]
        return Targets(
            targets.encoder, targets.window, train, targets.test, MetricSpace.fit(targets.space.name, train)
        )


def parcel_labels(parcels: str | None, sub) -> np.ndarray | None:
    """Parcel label per voxel of ``sub`` from a label image on the BOLD grid or a ``.npy`` (one per voxel)."""
    if parcels is None:
        return None
    path = Path(str(parcels).format(subject=sub.subject))
    if not path.is_file():
        raise DataFileNotFoundError(f"parcel label file not found: {path}")
    if path.suffix == ".npy":
        labels = np.load(path)
        if labels.ndim != 1:
            raise DataError(
                f"{path}: parcel labels .npy must be 1-D (one label per voxel); got {labels.shape}"
            )
        if sub.info.get("source") == "derivatives":
            labels = labels[sub.voxel_indices] if labels.size != sub.n_voxels else labels
        if labels.size != sub.n_voxels:
            raise DataError(f"{path}: {labels.size} labels; {sub.subject} has {sub.n_voxels} voxels")
        return labels.astype(int)
    import nibabel as nib

    if sub.mask is None:
        raise DataError(
            f"{path}: a parcel image needs responses on a voxel grid, but {sub.subject} comes from "
            "derivative arrays; pass a .npy with one label per array column instead"
        )
    img = nib.load(str(path))
    if img.shape[:3] != sub.mask.shape:
        raise DataError(f"{path}: grid {img.shape[:3]}; the BOLD grid of {sub.subject} is {sub.mask.shape}")
    data = np.asarray(img.dataobj).reshape(-1)
    return np.rint(data[sub.voxel_indices]).astype(int)
