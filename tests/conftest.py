"""Shared fixtures. Test data: real ds003720 metadata in tests/data (see tests/data/SOURCE.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"
DS003720 = DATA / "ds003720"


def write_bold(path: Path, data: np.ndarray, *, tr: float = 1.5, affine=None) -> Path:
    """Write a 4-D array as a NIfTI image with a TR in the header."""
    import nibabel as nib

    img = nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0]) if affine is None else affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = tr
    nib.save(img, str(path))
    return path


def make_bids_tree(
    dest: Path,
    *,
    subjects=("sub-001",),
    shape=(3, 3, 2),
    signal=None,
    ext=".nii",
    seed=0,
) -> Path:
    """Copy the real ds003720 metadata of ``subjects`` to ``dest`` and add small BOLD images.

    ``signal(split, run, n_volumes, shape) -> array`` may provide the image data; default is noise.
    """
    rng = np.random.default_rng(seed)
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("dataset_description.json", "README", "CHANGES"):
        shutil.copy(DS003720 / name, dest / name)
    for sub in subjects:
        func = dest / sub / "func"
        func.mkdir(parents=True)
        for ev in sorted((DS003720 / sub / "func").glob("*_events.tsv")):
            shutil.copy(ev, func / ev.name)
            sidecar = ev.with_name(ev.name.replace("_events.tsv", "_bold.json"))
            shutil.copy(sidecar, func / sidecar.name)
            split = "train" if "task-Training" in ev.name else "test"
            run = int(ev.name.split("_run-")[1][:2])
            if signal is None:
                data = rng.normal(100.0, 1.0, size=shape + (410,)).astype(np.float32)
            else:
                data = signal(split, run, 410, shape)
            write_bold(func / ev.name.replace("_events.tsv", f"_bold{ext}"), data)
    return dest


@pytest.fixture
def bids_tree(tmp_path) -> Path:
    """One real-design subject (sub-001) with 3×3×2 noise images."""
    return make_bids_tree(tmp_path / "bids")


MOTION = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")


def confounds_frame(motion: np.ndarray, extra: dict | None = None):
    """An fMRIPrep-style confounds table for ``motion (n, 6)`` (mm, rad) plus tissue signals and cosines."""
    import pandas as pd

    n = motion.shape[0]
    cols: dict = {}

    def expand(name, x):
        d = np.concatenate([[np.nan], np.diff(x)])
        cols.update(
            {name: x, f"{name}_derivative1": d, f"{name}_power2": x**2, f"{name}_derivative1_power2": d**2}
        )

    rng = np.random.default_rng(n)
    for name in ("global_signal", "csf", "white_matter"):
        expand(name, 100 + rng.normal(size=n))
    mm = motion.copy()
    mm[:, 3:] *= 50.0
    cols["std_dvars"] = np.concatenate([[np.nan], np.ones(n - 1)])
    cols["framewise_displacement"] = np.concatenate([[np.nan], np.abs(np.diff(mm, axis=0)).sum(axis=1)])
    for k in range(5):
        cols[f"a_comp_cor_{k:02d}"] = rng.normal(size=n)
    t = np.arange(n)
    for k in range(1, int(np.floor(2 * n * 1.5 / 128.0))):
        cols[f"cosine{k - 1:02d}"] = np.sqrt(2.0 / n) * np.cos(np.pi / n * (t + 0.5) * k)
    for j, name in enumerate(MOTION):
        expand(name, motion[:, j])
    cols.update(extra or {})
    return pd.DataFrame(cols)


COMPCOR_JSON = {
    f"a_comp_cor_{k:02d}": {"Method": "aCompCor", "Mask": "combined", "Retained": True} for k in range(5)
}


def write_fmriprep_run(func: Path, stem: str, space: str, data: np.ndarray, affine, table=None, mask=None):
    """One fMRIPrep run: preproc BOLD (+ .json), brain mask and (when given) the confounds table + .json."""
    import json

    import nibabel as nib

    func.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(data.astype(np.float32), affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = 1.5
    nib.save(img, str(func / f"{stem}_{space}_desc-preproc_bold.nii.gz"))
    (func / f"{stem}_{space}_desc-preproc_bold.json").write_text(json.dumps({"RepetitionTime": 1.5}))
    m = np.ones(data.shape[:3], np.uint8) if mask is None else mask
    nib.save(nib.Nifti1Image(m, affine), str(func / f"{stem}_{space}_desc-brain_mask.nii.gz"))
    if table is not None:
        table.to_csv(func / f"{stem}_desc-confounds_timeseries.tsv", sep="\t", index=False, na_rep="n/a")
        (func / f"{stem}_desc-confounds_timeseries.json").write_text(json.dumps(COMPCOR_JSON))


def make_fmriprep_tree(
    dest: Path,
    *,
    subject: str = "sub-001",
    spaces=None,
    sessions: bool = False,
    signal=None,
    motion=None,
    seed: int = 0,
    runs=None,
) -> Path:
    """A raw BIDS root with the real ds003720 events of ``subject`` and fMRIPrep derivatives of its 18 runs.

    ``runs``: only these ``(split, run)`` pairs (e.g. ``{("train", 1), ("train", 2), ("test", 1)}``).

    ``spaces``: ``(space entities, grid shape, affine)`` per output space. ``sessions``: training runs 1-2
    in ``ses-1``, the other runs in ``ses-2`` (raw and derivatives). ``signal(split, run, n, shape)``
    and ``motion(split, run, n) -> (n, 6)`` give BOLD data (default noise) and realignment parameters.
    Returns the BIDS root; the fMRIPrep folder is ``ROOT/derivatives/fmriprep``.
    """
    if spaces is None:
        spaces = (("space-T1w", (3, 3, 2), np.diag([2.0, 2.0, 2.0, 1.0])),)
    rng = np.random.default_rng(seed)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(DS003720 / "dataset_description.json", dest / "dataset_description.json")
    fmriprep = dest / "derivatives" / "fmriprep"
    for ev in sorted((DS003720 / subject / "func").glob("*_events.tsv")):
        split = "train" if "task-Training" in ev.name else "test"
        run = int(ev.name.split("_run-")[1][:2])
        if runs is not None and (split, run) not in runs:
            continue
        ses = ("ses-1" if split == "train" and run <= 2 else "ses-2") if sessions else None
        name = ev.name.replace(f"{subject}_", f"{subject}_{ses}_") if ses else ev.name
        raw = dest / subject / (ses or "") / "func"
        raw.mkdir(parents=True, exist_ok=True)
        shutil.copy(ev, raw / name)
        sidecar = ev.with_name(ev.name.replace("_events.tsv", "_bold.json"))
        shutil.copy(sidecar, raw / name.replace("_events.tsv", "_bold.json"))
        stem = name.replace("_events.tsv", "")
        mot = (
            motion(split, run, 410)
            if motion is not None
            else rng.normal(0, 0.05, size=(410, 6)) * [1, 1, 1, 0.01, 0.01, 0.01]
        )
        table = confounds_frame(mot)
        for space, shape, affine in spaces:
            data = (
                signal(split, run, 410, shape)
                if signal is not None
                else rng.normal(100, 1, size=shape + (410,))
            )
            write_fmriprep_run(fmriprep / subject / (ses or "") / "func", stem, space, data, affine, table)
    return dest


def write_aparc(path: Path, bold_shape, bold_affine, labels: np.ndarray) -> np.ndarray:
    """A FreeSurfer-style 1-mm LIA ``aparc.a2009s+aseg.mgz`` whose label at each BOLD voxel centre is
    ``labels`` (3-D, on the BOLD grid); returns the 1-mm volume."""
    import nibabel as nib

    n = int(2 * max(bold_shape) + 6)
    centre = bold_affine[:3, :3] @ ((np.array(bold_shape) - 1) / 2.0) + bold_affine[:3, 3]
    vox2ras = np.array([[-1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1.0]])
    vox2ras[:3, 3] = np.round(centre) - vox2ras[:3, :3] @ np.full(3, n // 2)
    ijk = np.indices((n, n, n)).reshape(3, -1).T
    world = ijk @ vox2ras[:3, :3].T + vox2ras[:3, 3]
    b = np.rint((world - bold_affine[:3, 3]) @ np.linalg.inv(bold_affine[:3, :3]).T).astype(int)
    inside = ((b >= 0) & (b < np.array(bold_shape))).all(axis=1)
    vol = np.zeros(n**3, np.int32)
    vol[inside] = labels[tuple(b[inside].T)]
    vol = vol.reshape(n, n, n)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.MGHImage(vol, vox2ras), str(path))
    return vol
