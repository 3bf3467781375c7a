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
