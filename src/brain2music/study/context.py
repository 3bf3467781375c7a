"""Where a study's data come from, and the per-subject context every decoder method receives.

- :class:`~brain2music.results.settings.DataSource` says where the responses come from (``kind``: ``bids``, ``derivatives`` or
  ``fmriprep``);
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

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from brain2music._registry import Registry
from brain2music.errors import ConfigError, DataError, DataFileNotFoundError
from brain2music.evaluate.space import MetricSpace
from brain2music.results.settings import DataSource

__all__ = [
    "SUBJECT_CHECKS",
    "SUBJECT_LOADERS",
    "SubjectContext",
    "Targets",
    "check_study_inputs",
    "load_subject_for_study",
    "register_subject_loader",
    "subject_grid",
    "subject_parcels",
]


def _load_bids(source: DataSource, subject: str):
    from brain2music.data import load_subject

    return load_subject(source.bids_root, subject, delay=source.delay, **source.options)


def _load_derivatives(source: DataSource, subject: str):
    from brain2music.data import load_derivatives

    return load_derivatives(
        source.derivatives, subject, events_root=source.bids_root, delay=source.delay, **source.options
    )


def _load_fmriprep(source: DataSource, subject: str):
    from brain2music.data import load_fmriprep

    return load_fmriprep(
        source.fmriprep, subject, bids_root=source.bids_root, delay=source.delay, **source.options
    )


def _check_fmriprep(source: DataSource, subject: str, parcels: str | None) -> None:
    """Every header and table of the subject's fMRIPrep runs, and the FreeSurfer file when needed."""
    from brain2music.data import plan_subject

    opts = {k: v for k, v in source.options.items() if k in ("space", "confounds", "mask", "freesurfer_dir")}
    plan = plan_subject(source.fmriprep, subject, bids_root=source.bids_root, parcels=parcels, **opts)
    if plan.aparc is not None:
        from brain2music.data.parcels import destrieux_labels

        destrieux_labels(plan.aparc, _grid_image(plan.grid[0], plan.grid[1]))


#: ``kind -> loader(source, subject) -> SubjectData``.
SUBJECT_LOADERS: Registry[Callable[[DataSource, str], Any]] = Registry("data source")
SUBJECT_LOADERS.register("bids", _load_bids)
SUBJECT_LOADERS.register("derivatives", _load_derivatives)
SUBJECT_LOADERS.register("fmriprep", _load_fmriprep)

#: ``kind -> check(source, subject, parcels)``: raises naming the file before anything is written.
SUBJECT_CHECKS: dict[str, Callable[[DataSource, str, str | None], None]] = {"fmriprep": _check_fmriprep}


def register_subject_loader(kind: str, loader: Callable[[DataSource, str], Any]) -> None:
    """Make ``DataSource(kind=kind)`` load subjects with ``loader(source, subject) -> SubjectData``."""
    SUBJECT_LOADERS.register(kind, loader)


def check_study_inputs(source: DataSource, subjects, parcels: str | None) -> None:
    """Check every subject's inputs (headers, tables, parcel files) before ``reproduce`` writes anything.

    Raises the loader's error naming the file (a missing run, a confounds table of another length, a
    missing column for the strategy, a mask on another grid, a missing FreeSurfer file, a space with no
    files, a parcel file that is not there).
    """
    SUBJECT_LOADERS.get(source.kind)  # an unknown kind raises, naming the known ones
    if parcels == "destrieux" and source.kind != "fmriprep":
        raise ConfigError(
            "parcels 'destrieux' come from FreeSurfer's aparc.a2009s+aseg.mgz of fMRIPrep derivatives "
            f"(--fmriprep DIR --space T1w); this study reads {source.kind!r} data: pass --parcels FILE"
        )
    check = SUBJECT_CHECKS.get(source.kind)
    for subject in subjects:
        if parcels not in (None, "destrieux"):
            path = Path(str(parcels).format(subject=subject))
            if not path.is_file():
                raise DataFileNotFoundError(f"parcel label file of {subject} not found: {path} (--parcels)")
        if check is not None:
            check(source, subject, parcels)


def subject_grid(source: DataSource, subject: str) -> tuple[float, int]:
    """``(tr, n_trs per clip)`` of ``subject``'s responses, read from headers and events (no image data),
    as the loaders cut them (:func:`brain2music.data.cut_clips`)."""
    if source.kind == "fmriprep":
        from brain2music.data import plan_subject

        opts = {
            k: v for k, v in source.options.items() if k in ("space", "confounds", "mask", "freesurfer_dir")
        }
        plan = plan_subject(source.fmriprep, subject, bids_root=source.bids_root, **opts)
        tr, design = plan.tr, plan.design
    elif source.kind in ("bids", "derivatives"):
        from brain2music.data.bids import subject_design

        _, tr, design = subject_design(source.bids_root, subject)
    else:
        data = load_subject_for_study(source, subject)
        return float(data.tr), int(data.train.shape[1])
    return float(tr), int(round(float(design["duration"].median()) / tr))


def load_subject_for_study(source: DataSource, subject: str):
    """The :class:`~brain2music.data.SubjectData` of ``subject`` from ``source``."""
    return SUBJECT_LOADERS.get(source.kind)(source, subject)


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
        """Windows per clip."""
        return int(self.train.shape[1])

    @property
    def dim(self) -> int:
        """Embedding dimensions."""
        return int(self.train.shape[2])


class SubjectContext:
    """One subject's responses and what decoder methods share (see the module docstring).

    Parameters
    ----------
    data : :class:`~brain2music.data.SubjectData`
    settings : the study's :class:`~brain2music.results.settings.StudySettings` (penalties, folds, ...)
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
        #: Windows whose kernel factorisations are kept for a later embedding (set by the study loop).
        self.keep_factors: set[float] = set()
        #: ``(parent context, boolean mask over its training clips)`` of a :meth:`without_train` context:
        #: its kernels are exact blocks of the parent's and its window averages rows of the parent's
        #: (no second pass over the responses).
        self._kernel_parent: tuple[SubjectContext, np.ndarray] | None = None
        #: Columns of the subject's full voxel vector this context holds (all, unless :meth:`subset`).
        self.parent_voxels = np.arange(data.n_voxels)
        self.parent_n_voxels = data.n_voxels

    # -- identity -----------------------------------------------------------------------------------------
    @property
    def subject(self) -> str:
        """The subject's id (``sub-001``)."""
        return self.data.subject

    @property
    def n_voxels(self) -> int:
        """Voxels of this context (fewer than the subject's after :meth:`subset`)."""
        return self.data.n_voxels

    @property
    def train_clips(self):
        """The clip table of the training clips this context keeps."""
        return self.data.train_clips[self.train_keep].reset_index(drop=True)

    @property
    def test_clips(self):
        """The clip table of the test clips."""
        return self.data.test_clips

    @property
    def train_runs(self) -> np.ndarray:
        """``(n_train,)`` run of each kept training clip (the CV groups)."""
        return np.asarray(self.data.train_runs)[self.train_keep]

    @property
    def backend(self) -> str:
        """The study's compute backend (himalaya's: ``numpy``, ``torch``, ``torch_cuda``, ``cupy``)."""
        return str(getattr(self.settings, "backend", "numpy"))

    def groups(self, r: int) -> np.ndarray:
        """Run of every training window sample ``(n_train * r,)`` (CV folds keep runs together)."""
        return np.repeat(self.train_runs, r)

    # -- responses ----------------------------------------------------------------------------------------
    def windowed(self, window: float) -> tuple[np.ndarray, np.ndarray]:
        """``(train (n_train, r, n_voxels), test (n_test, r, n_voxels))`` averaged over the windows."""
        key = ("windowed", float(window))
        if key not in self.cache:
            parent = self._kernel_parent
            if parent is not None and key in parent[0].cache:
                # A :meth:`without_train` context takes its rows of the parent's averages (the same
                # numbers) instead of averaging every clip again: one copy, not two, at full size.
                from brain2music.data.preprocess import window_average

                train = parent[0].cache[key][0][parent[1]]
                self.cache[key] = (train, window_average(self.data.test_mean, window, tr=self.data.tr))
            else:
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
            for kind in ("windowed", "test_repeats", "kernel"):
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
                alphas=s.alphas, cv=s.cv, backend=self.backend,
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

        s = self.settings
        kw = {"alphas": s.alphas, "cv": s.cv, "backend": self.backend} | s.ridge_options | overrides
        return RidgeDecoder(**kw)

    def kernel(self, window: float, ridge=None):
        """The linear kernel of the training window samples (all voxels), shared by every fit that reads them.

        Returns a :class:`~brain2music.models.KernelView` whose rows are ``windowed(window)[0]`` flattened
        clip-major, or ``None`` when ``ridge`` (default ``self.ridge()``) would not use the dual form on them
        (more samples than voxels, an RBF kernel) or the study switched reuse off
        (``StudySettings.reuse_kernels``). Cached per window (``cache[("kernel", window)]``), so every
        method and every embedding of that window pays one ``X X^T``; a :meth:`without_train` context
        takes a block of its parent's kernel. The per-penalty factorisations are kept too when a later
        embedding has the same window (:attr:`keep_factors`).
        """
        from brain2music.models import SubjectKernel

        ridge = self.ridge() if ridge is None else ridge
        x_train, _ = self.windowed(window)
        n_samples = x_train.shape[0] * x_train.shape[1]
        if (
            not getattr(self.settings, "reuse_kernels", True)
            or ridge.form_for(n_samples, self.n_voxels) != "dual"
        ):
            return None
        if ridge.backend != self.backend:
            return None
        key = ("kernel", float(window))
        if key not in self.cache:
            if self._kernel_parent is not None:
                parent, keep = self._kernel_parent
                view = parent.kernel(window, ridge)
                if view is not None:
                    view = view.subset(keep)
                    view.keep_factors = False  # this context fits once per embedding: nothing to reuse
                self.cache[key] = view
            else:
                sk = SubjectKernel(
                    x_train, backend=self.backend, cache_factors=float(window) in self.keep_factors
                )
                self.cache[key] = sk.view()
        return self.cache[key]

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
        ctx = SubjectContext(
            self.data, self.settings, parcels=self.parcels, parcel_names=self.parcel_names, train_keep=keep
        )
        # The kernel of the remaining clips is a block of this one, centred again: exact, and it holds
        # nothing of the dropped clips.
        ctx._kernel_parent = (self, ~drop)
        return ctx

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
    """Parcel label per voxel of ``sub`` (see :func:`subject_parcels`; names dropped)."""
    return subject_parcels(parcels, sub)[0]


def subject_parcels(parcels: str | None, sub) -> tuple[np.ndarray | None, dict[int, str] | None]:
    """``(labels (n_voxels,), {label: name})`` of ``sub``'s voxels for the ``ensemble``.

    ``parcels``: ``"destrieux"`` (the subject's FreeSurfer ``aparc.a2009s+aseg.mgz``, cortical labels,
    fMRIPrep T1w data only), a label image (NIfTI / ``.mgz``; ``{subject}`` substituted; on another grid
    it is resampled to the BOLD grid by world coordinates, nearest neighbour), or a ``.npy`` with one
    label per voxel. Names: Destrieux names, or a BIDS ``<stem>.tsv`` (``index``, ``name``) beside the
    image; ``None`` when there are none.
    """
    if parcels is None:
        return None, None
    if str(parcels) == "destrieux":
        return _destrieux_parcels(sub)
    path = Path(str(parcels).format(subject=sub.subject))
    if not path.is_file():
        raise DataFileNotFoundError(f"parcel label file not found: {path}")
    if path.suffix == ".npy":
        return _npy_parcels(path, sub), None
    from brain2music.data.parcels import parcels_on_grid

    if sub.mask is None or sub.affine is None:
        raise DataError(
            f"{path}: a parcel image needs responses on a voxel grid, but {sub.subject} comes from "
            "derivative arrays; pass a .npy with one label per array column instead"
        )
    grid = _grid_image(sub.mask.shape, sub.affine)
    labels, names, _ = parcels_on_grid(parcels, sub.subject, grid, voxels=sub.voxel_indices)
    return labels.astype(int), names or None


def _npy_parcels(path: Path, sub) -> np.ndarray:
    labels = np.load(path)
    if labels.ndim != 1:
        raise DataError(f"{path}: parcel labels .npy must be 1-D (one label per voxel); got {labels.shape}")
    if sub.info.get("source") == "derivatives":
        labels = labels[sub.voxel_indices] if labels.size != sub.n_voxels else labels
    if labels.size != sub.n_voxels:
        raise DataError(f"{path}: {labels.size} labels; {sub.subject} has {sub.n_voxels} voxels")
    return labels.astype(int)


def _destrieux_parcels(sub) -> tuple[np.ndarray, dict[int, str]]:
    """The subject's cortical Destrieux labels on its kept voxels (fMRIPrep T1w-space data)."""
    from brain2music.data.parcels import check_subject_space, find_aparc, parcels_on_grid

    if sub.info.get("source") != "fmriprep":
        raise ConfigError(
            f"parcels 'destrieux' of {sub.subject} need fMRIPrep derivatives (--fmriprep DIR --space T1w); "
            f"its responses come from {sub.info.get('source', 'raw BIDS')!r}"
        )
    check_subject_space(sub.info["space"], "--parcels destrieux")
    aparc = find_aparc(
        sub.subject, fmriprep_dir=sub.info["fmriprep"], freesurfer_dir=sub.info.get("freesurfer_dir")
    )
    grid = _grid_image(sub.mask.shape, sub.affine)
    labels, names, _ = parcels_on_grid("destrieux", sub.subject, grid, aparc=aparc, voxels=sub.voxel_indices)
    return labels.astype(int), names


def _grid_image(shape, affine):
    import nibabel as nib

    return nib.Nifti1Image(np.zeros(tuple(shape)[:3], dtype=np.uint8), np.asarray(affine))
