"""A small example dataset in the ds003720 layout, written by the package itself.

It uses the real events and sidecars of ds003720 (shipped with the package) and small NIfTI images: a
``shape`` grid of noise with a weak clip-locked signal in one corner and a brain mask in
``derivatives/brain_mask.nii.gz``, so ``inspect`` and ``load_subject``
can be tried without downloading 46 GB. For a study with real structure (music + simulated brains), use
``brain2music simulate``.
"""

from __future__ import annotations

import os
import shutil
from importlib.resources import as_file, files
from pathlib import Path

import numpy as np

from brain2music._io import atomic_path, write_json, write_text
from brain2music.errors import ConfigError


def write_example_dataset(
    out: str | os.PathLike,
    *,
    n_subjects: int = 5,
    shape: tuple[int, int, int] = (8, 8, 6),
    random_state: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a ds003720-shaped BIDS tree with small random images to ``out``; return its path.

    ``n_subjects`` subjects, 12 training + 6 test runs of 410 volumes each, TR 1.5 s, int16 ``.nii.gz``.
    """
    import nibabel as nib

    out = Path(out)
    if n_subjects < 1:
        raise ConfigError(f"n_subjects must be at least 1; got {n_subjects}")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(f"{out} exists and is not empty; choose another folder or pass overwrite=True")
        shutil.rmtree(out)
    rng = np.random.default_rng(random_state)
    res = files("brain2music") / "resources" / "ds003720"
    events = sorted((e for e in res.iterdir() if e.name.endswith("_events.tsv")), key=lambda e: e.name)
    sidecar = (res / "bold_template.json").read_text(encoding="utf-8")
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    with as_file(res / "dataset_description.json") as p:
        shutil.copy(p, tmp / "dataset_description.json")
    write_text(
        tmp / "README",
        "Example dataset written by brain2music: real ds003720 events and sidecars, random images.\n",
    )
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    for s in range(1, n_subjects + 1):
        sub = f"sub-{s:03d}"
        func = tmp / sub / "func"
        func.mkdir(parents=True)
        for entry in events:
            name = entry.name.replace("sub-001", sub)
            with as_file(entry) as p:
                shutil.copy(p, func / name)
            write_text(func / name.replace("_events.tsv", "_bold.json"), sidecar)
            data = rng.normal(1000.0, 20.0, size=shape + (410,))
            data[:2, :2, :2] += 10.0 * np.sin(np.arange(410) * 2 * np.pi / 10.0)
            img = nib.Nifti1Image(np.round(data).astype(np.int16), affine)
            img.header.set_xyzt_units("mm", "sec")
            img.header["pixdim"][4] = 1.5
            with atomic_path(func / name.replace("_events.tsv", "_bold.nii.gz")) as t:
                nib.save(img, str(t))
    mask = np.zeros(shape, dtype=np.uint8)
    mask[1:-1, 1:-1, 1:-1] = 1
    (tmp / "derivatives").mkdir()
    nib.save(nib.Nifti1Image(mask, affine), str(tmp / "derivatives" / "brain_mask.nii.gz"))
    write_json(tmp / "task-Training_bold.json", {"TaskName": "Training", "RepetitionTime": 1.5})
    write_json(tmp / "task-Test_bold.json", {"TaskName": "Test", "RepetitionTime": 1.5})
    os.replace(tmp, out)
    return out
