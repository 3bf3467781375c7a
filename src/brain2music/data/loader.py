"""Load one subject of a ds003720-like dataset as arrays ready for modelling."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from brain2music.data.bids import count_test_repeats, normalize_subject, subject_design
from brain2music.data.events import build_design, clip_table, read_events
from brain2music.data.preprocess import (
    compute_mask,
    cut_clips,
    drop_bad_voxels,
    load_mask,
    preprocess_run,
    read_masked_run,
    window_average,
)
from brain2music.errors import (
    NO_MOTION_CORRECTION,
    DataError,
    DataFileNotFoundError,
    NoMotionCorrectionWarning,
)


@dataclass
class SubjectData:
    """Preprocessed responses of one subject.

    Attributes
    ----------
    subject : str
    train : ndarray, shape (n_train_clips, n_trs, n_voxels)
        One response per training clip, in the order of ``train_clips``.
    test : ndarray, shape (n_test_clips, n_repeats, n_trs, n_voxels)
        Every presentation of every test clip, in the order of ``test_clips``.
    test_mean : ndarray, shape (n_test_clips, n_trs, n_voxels)
        ``test`` averaged over repeats.
    clips : DataFrame
        One row per clip: ``clip_id, genre, track, start, duration, split, run``; training clips first.
    train_runs : ndarray, shape (n_train_clips,)
        Run of each training clip (groups for cross-validation).
    tr, delay : the repetition time (s) and the hemodynamic delay (volumes) applied.
    mask : ndarray of bool, the 3-D voxel mask, or None for derivatives.
    voxel_indices : ndarray, shape (n_voxels,)
        Flat indices (C order) into the 3-D grid of the kept voxels, or column indices into the
        authors' arrays for derivatives.
    affine : ndarray (4, 4) or None
    parcels : ndarray of int, shape (n_voxels,), or None
        Parcel label of every kept voxel when the loader was given a parcellation (fMRIPrep path:
        ``parcels="destrieux"`` or an atlas); 0 = no parcel.
    parcel_names : dict ``{label: name}`` for ``parcels`` (e.g. Destrieux names), or None.
    info : where the data came from and how it was prepared (``source``, ``mask``, ``motion_correction``, …).
    """

    subject: str
    train: np.ndarray
    test: np.ndarray
    test_mean: np.ndarray
    clips: pd.DataFrame
    train_runs: np.ndarray
    tr: float
    delay: int
    mask: np.ndarray | None = None
    voxel_indices: np.ndarray | None = None
    affine: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    parcels: np.ndarray | None = None
    parcel_names: dict | None = None

    @property
    def n_voxels(self) -> int:
        """Number of voxels (the last axis of ``train`` and ``test``)."""
        return int(self.train.shape[-1])

    @property
    def train_clips(self) -> pd.DataFrame:
        """The rows of ``clips`` of the training split, in the order of ``train``, index reset."""
        return self.clips[self.clips.split == "train"].reset_index(drop=True)

    @property
    def test_clips(self) -> pd.DataFrame:
        """The rows of ``clips`` of the test split, in the order of ``test``, index reset."""
        return self.clips[self.clips.split == "test"].reset_index(drop=True)

    def windowed(self, window: float) -> tuple[np.ndarray, np.ndarray]:
        """``(train, test_mean)`` averaged over embedding windows of ``window`` seconds.

        Shapes ``(n_train_clips, r, n_voxels)`` and ``(n_test_clips, r, n_voxels)``.
        """
        return (
            window_average(self.train, window, tr=self.tr),
            window_average(self.test_mean, window, tr=self.tr),
        )

    def to_image(self, values: np.ndarray):
        """Put one value per voxel (``(n_voxels,)`` or ``(n_voxels, k)``) back into a NIfTI image."""
        import nibabel as nib

        if self.mask is None or self.affine is None:
            raise DataError(f"{self.subject}: no voxel grid (responses came from derivative arrays)")
        values = np.asarray(values, dtype=np.float32)
        if values.shape[0] != self.n_voxels:
            raise DataError(f"values has {values.shape[0]} rows; expected one per voxel ({self.n_voxels})")
        grid = np.zeros((int(np.prod(self.mask.shape)),) + values.shape[1:], dtype=np.float32)
        grid[self.voxel_indices] = values
        return nib.Nifti1Image(grid.reshape(self.mask.shape + values.shape[1:]), self.affine)


class _Assembler:
    """Writes each presentation's cut volumes straight into the train/test arrays (no extra copy).

    Training clips presented more than once are averaged; test presentations are kept per repeat.
    """

    def __init__(self, design: pd.DataFrame, n_trs: int, n_vox: int, source: str):
        self.clips = clip_table(design)
        train_ids = self.clips.loc[self.clips.split == "train", "clip_id"].tolist()
        test_ids = self.clips.loc[self.clips.split == "test", "clip_id"].tolist()
        pos = {c: i for i, c in enumerate(train_ids)} | {c: i for i, c in enumerate(test_ids)}
        self.pos = design["clip_id"].map(pos).to_numpy()
        self.is_train = (design["split"] == "train").to_numpy()
        self.repeat = design["repeat"].to_numpy()
        n_rep = count_test_repeats(design, source=source) if (~self.is_train).any() else 0
        self.train = np.zeros((len(train_ids), n_trs, n_vox), dtype=np.float32)
        self.test = np.zeros((len(test_ids), n_rep, n_trs, n_vox), dtype=np.float32)
        self.counts = np.zeros(len(train_ids), dtype=np.float32)
        self.train_runs = self.clips.loc[self.clips.split == "train", "run"].to_numpy()

    def add(self, rows: np.ndarray, cut: np.ndarray) -> None:
        """``rows``: positional indices into the design; ``cut``: their ``(len(rows), n_trs, n_vox)`` volumes."""
        for row, volumes in zip(rows, cut):
            if self.is_train[row]:
                self.train[self.pos[row]] += volumes
                self.counts[self.pos[row]] += 1
            else:
                self.test[self.pos[row], self.repeat[row]] = volumes

    def finish(self, keep: np.ndarray | None = None):
        if np.any(self.counts > 1):
            self.train /= np.maximum(self.counts, 1)[:, None, None]
        train, test = self.train, self.test
        if keep is not None and keep.size < train.shape[-1]:
            train, test = train[..., keep], test[..., keep]
        return self.clips, train, self.train_runs, test


def _subject_mask(root: Path, subject: str, mask, first_img, first_bold: Path) -> tuple[np.ndarray, str]:
    """The voxel mask (boolean, on the BOLD grid) and where it came from: given, the dataset's default
    mask file, or computed from the first run's mean EPI."""
    mask_source = "given"
    if mask is None:
        mask = _default_mask(root, subject)
        mask_source = str(mask) if mask is not None else f"computed from {first_bold.name}"
    mask_arr = load_mask(mask, first_img) if mask is not None else compute_mask(first_bold).get_fdata() > 0
    return mask_arr, mask_source


def load_subject(
    root: str | os.PathLike,
    subject: str | int,
    *,
    mask: str | os.PathLike | object | None = None,
    delay: int = 3,
    detrend_window: float | None = 240.0,
    train_task: str = "Training",
    test_task: str = "Test",
) -> SubjectData:
    """Load and preprocess one subject from a BIDS dataset laid out like ds003720.

    Reads one run at a time, keeps only mask voxels (float32), detrends with a 240-s running median,
    z-scores each voxel per run, shifts by ``delay`` volumes and cuts every clip presentation. Row 0 of
    each run (a repeated clip) is dropped; test presentations are kept per repeat.

    Parameters
    ----------
    root : BIDS dataset root.
    subject : ``"sub-001"``, ``"001"`` or ``1``.
    mask : path or nibabel image of a voxel mask on the BOLD grid; ``None`` computes one from the first
        run's mean EPI (nilearn ``compute_epi_mask``), or uses ``ROOT/derivatives/brain_mask.nii.gz`` /
        ``ROOT/sub-XXX/anat/*_mask.nii.gz`` when present.
    delay : hemodynamic delay in volumes (default 3 = 4.5 s at TR 1.5 s).
    detrend_window : seconds of the median filter; ``None`` skips detrending.

    Voxels that are NaN or constant in any run are dropped with a warning.

    The BOLD is used as it is, without realignment: a :class:`~brain2music.errors.NoMotionCorrectionWarning`
    says so (once per process, Python's default warning filter) and points to
    :func:`brain2music.data.load_fmriprep` and :func:`load_derivatives`.
    """
    import nibabel as nib

    warnings.warn(NO_MOTION_CORRECTION, NoMotionCorrectionWarning, stacklevel=2)
    root = Path(root)
    subject = normalize_subject(subject)
    infos, tr, design = subject_design(root, subject, train_task=train_task, test_task=test_task)
    n_trs = int(round(float(design["duration"].median()) / tr))
    first_img = nib.load(str(infos[0].run.bold))
    mask_arr, mask_source = _subject_mask(root, subject, mask, first_img, infos[0].run.bold)
    n_vox = int(mask_arr.sum())
    assembler = _Assembler(design, n_trs, n_vox, str(root / subject))
    bad = np.zeros(n_vox, dtype=bool)
    for info in infos:
        data = read_masked_run(info.run.bold, mask_arr)
        bad |= ~np.isfinite(data).all(axis=0)
        data = preprocess_run(np.nan_to_num(data), tr=tr, detrend_window=detrend_window)
        bad |= ~np.isfinite(data).all(axis=0)
        rows = np.flatnonzero(((design.split == info.run.split) & (design.run == info.run.run)).to_numpy())
        onsets = design["onset"].to_numpy()[rows]
        assembler.add(rows, cut_clips(data, onsets, tr=tr, n_trs=n_trs, delay=delay))
        del data
    keep = drop_bad_voxels(bad, source=str(root / subject))
    clips, train, train_runs, test = assembler.finish(keep)
    del assembler
    voxel_indices = np.flatnonzero(mask_arr.ravel())[keep]
    return SubjectData(
        subject=subject,
        train=train,
        test=test,
        test_mean=test.mean(axis=1),
        clips=clips,
        train_runs=train_runs,
        tr=tr,
        delay=int(delay),
        mask=mask_arr,
        voxel_indices=voxel_indices,
        affine=first_img.affine,
        info={
            "source": "bids",
            "root": str(root),
            "mask": mask_source,
            "motion_correction": "none (raw BIDS BOLD, used as it is)",
            "n_dropped_voxels": int(n_vox - keep.size),
        },
    )


def _default_mask(root: Path, subject: str):
    candidates = [root / "derivatives" / "brain_mask.nii.gz", root / "derivatives" / "brain_mask.nii"]
    candidates += (
        sorted((root / subject / "anat").glob("*_mask.nii*")) if (root / subject / "anat").is_dir() else []
    )
    candidates += (
        sorted((root / "derivatives" / subject).glob("*_mask.nii*"))
        if (root / "derivatives" / subject).is_dir()
        else []
    )
    for c in candidates:
        if c.is_file():
            return c
    return None


def packaged_design() -> pd.DataFrame:
    """The presentation design of ds003720 from the real events files shipped with the package."""
    from importlib.resources import as_file, files

    folder = files("brain2music") / "resources" / "ds003720"
    train, test = {}, {}
    for entry in folder.iterdir():
        name = entry.name
        if not name.endswith("_events.tsv"):
            continue
        run = int(name.split("_run-")[1][:2])
        with as_file(entry) as path:
            (train if "task-Training" in name else test)[run] = read_events(path)
    return build_design(train, test, source="packaged ds003720 events")


def load_derivatives(
    folder: str | os.PathLike,
    subject: str | int,
    *,
    events_root: str | os.PathLike | None = None,
    delay: int = 3,
    n_trs: int = 10,
) -> SubjectData:
    """Load the authors' preprocessed arrays (Zenodo 10.5281/zenodo.8275363) into a :class:`SubjectData`.

    Reads ``sub-00N_Resp_Training.npy`` (n_train_runs × 400 volumes, first 10 volumes of each run
    dropped) and ``sub-00N_Resp_Test.npy`` (n_test_runs × 400); ``_Test_Mean.npy`` is used only when
    ``_Test.npy`` is absent. The clip order comes from the events of ``events_root`` (a BIDS root) or,
    by default, the ds003720 events shipped with the package. The arrays are assumed not yet shifted:
    ``delay`` volumes are applied within each run.
    """
    folder = Path(folder)
    subject = normalize_subject(subject)
    if events_root is not None:
        _, tr, design = subject_design(events_root, subject)
    else:
        tr, design = 1.5, packaged_design()
    stem = folder / f"{subject}_Resp"
    train_path, test_path, mean_path = (Path(f"{stem}_{k}.npy") for k in ("Training", "Test", "Test_Mean"))
    if not train_path.is_file():
        raise DataFileNotFoundError(f"derivative array not found: {train_path}")
    per_run = int((design.split == "train").groupby(design.run).sum().iloc[0]) * n_trs
    arrays = {}
    for split, path in (("train", train_path), ("test", test_path)):
        if not path.is_file():
            continue
        arr = np.load(path, mmap_mode="r")
        runs = sorted(design.loc[design.split == split, "run"].unique())
        expected = len(runs) * per_run
        if arr.ndim != 2 or arr.shape[0] != expected:
            raise DataError(
                f"{path}: shape {arr.shape}; expected ({expected}, n_voxels) = {len(runs)} runs × {per_run} volumes"
            )
        arrays[split] = (arr, runs)
    n_vox = arrays["train"][0].shape[1]
    if "test" in arrays and arrays["test"][0].shape[1] != n_vox:
        raise DataError(f"{test_path}: {arrays['test'][0].shape[1]} voxels; {train_path} has {n_vox}")
    if "test" not in arrays and not mean_path.is_file():
        raise DataFileNotFoundError(f"derivative test array not found: {test_path} (nor {mean_path})")
    assembler = _Assembler(design, n_trs, n_vox, str(folder / subject))
    if "test" not in arrays:
        assembler.test = np.zeros((0,), dtype=np.float32)  # filled from the repeat-mean file below
    bad = np.zeros(n_vox, dtype=bool)
    for split, (arr, runs) in arrays.items():
        for k, run in enumerate(runs):
            block = np.asarray(arr[k * per_run : (k + 1) * per_run], dtype=np.float32)
            bad |= ~np.isfinite(block).all(axis=0)
            rows = np.flatnonzero(((design.split == split) & (design.run == run)).to_numpy())
            # Derivative volume 0 is the onset of events row 1 (the first 10 volumes were dropped).
            onsets = design["onset"].to_numpy()[rows]
            assembler.add(rows, cut_clips(block, onsets - onsets.min(), tr=tr, n_trs=n_trs, delay=delay))
    if "test" in arrays:
        clips, train, train_runs, test = assembler.finish()
        test_mean = test.mean(axis=1)
    else:
        clips, train, train_runs, _ = assembler.finish()
        test_mean = _test_mean_from_file(mean_path, design, clips, n_vox, n_trs, delay)
        bad |= ~np.isfinite(test_mean).all(axis=(0, 1))
        test = test_mean[:, None]
    keep = drop_bad_voxels(bad, source=str(folder / subject))
    if keep.size < n_vox:
        train, test, test_mean = train[..., keep], test[..., keep], test_mean[..., keep]
    return SubjectData(
        subject=subject,
        train=train,
        test=test,
        test_mean=test_mean,
        clips=clips,
        train_runs=train_runs,
        tr=tr,
        delay=int(delay),
        voxel_indices=keep,
        info={"source": "derivatives", "folder": str(folder)},
    )


def _test_mean_from_file(path, design, clips, n_vox, n_trs, delay):
    arr = np.load(path, mmap_mode="r")
    test_ids = clips.loc[clips.split == "test", "clip_id"].tolist()
    if arr.shape != (len(test_ids) * n_trs, n_vox):
        raise DataError(f"{path}: shape {arr.shape}; expected ({len(test_ids) * n_trs}, {n_vox})")
    # Rows are the clips in order of first presentation, n_trs volumes each; within a test run the clips
    # repeat periodically, so the delay shift wraps around inside each run's block of clips.
    per_run = design[(design.split == "test")].groupby("run")["clip_id"].nunique()
    out = np.empty((len(test_ids), n_trs, n_vox), dtype=np.float32)
    k = 0
    for n_clips in per_run.to_numpy().tolist():
        block = np.asarray(arr[k * n_trs : (k + n_clips) * n_trs], dtype=np.float32)
        block = np.roll(block, -int(delay), axis=0)
        out[k : k + n_clips] = block.reshape(n_clips, n_trs, n_vox)
        k += n_clips
    return out
