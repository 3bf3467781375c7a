"""Write a simulated study as fMRIPrep derivatives (``brain2music simulate --layout fmriprep``).

Layout (``OUT/bids`` holds the raw events and sidecars, not the raw BOLD)::

    OUT/bids/derivatives/fmriprep/dataset_description.json
    OUT/bids/derivatives/fmriprep/sub-00N/func/
        sub-00N_task-T_run-NN_space-T1w_desc-preproc_bold.nii.gz  (+ .json, RepetitionTime)
        sub-00N_task-T_run-NN_space-T1w_desc-brain_mask.nii.gz
        sub-00N_task-T_run-NN_desc-confounds_timeseries.tsv (+ .json, CompCor metadata)
    OUT/bids/derivatives/fmriprep/sourcedata/freesurfer/sub-00N/mri/aparc.a2009s+aseg.mgz

Anatomy of the simulated brain (shared by all subjects): the mask voxels whose ellipsoid radius
(:func:`brain2music.simulate.brain.normalized_radius`) is at least 0.7 are cortex, 0.3-0.7 cerebral white
matter, below 0.3 the lateral ventricles; the voxels of auditory parcels are cortex wherever they lie. Cortex voxels carry the Destrieux label of their parcel: per
hemisphere the auditory *core* parcels get ``G_temp_sup-G_T_transv`` (Heschl's gyrus, x133) and
``S_temporal_transverse`` (x175), the *belt* parcels ``G_temp_sup-Plan_tempo`` (x136),
``G_temp_sup-Lateral`` (x134), ``G_temp_sup-Plan_polar`` (x135) and ``S_temporal_sup`` (x174) (cycling
when there are more), the other parcels the remaining Destrieux labels in order (two parcels share a label
when a hemisphere has more parcels than labels). The segmentation is written like FreeSurfer's: a 1-mm
``LIA`` volume (``int32``) whose voxel centres include every BOLD voxel centre, so that nearest-neighbour
resampling by world coordinates gives back exactly these labels on the BOLD grid.

The preprocessed BOLD is the motion-free BOLD of the ``bids`` layout (same seed, same signal and noise)
plus the motion artifact of :mod:`brain2music.simulate.motion`; the confounds table is computed from the
written images the way fMRIPrep does (mean signals of the tissue masks, DVARS, CompCor, cosine basis).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from brain2music._io import write_json, write_text
from brain2music.simulate.motion import MOTION_COLUMNS, framewise_displacement

__all__ = ["FmriprepWriter", "anatomy", "confounds_table"]

CORTEX_RADIUS = 0.7
VENTRICLE_RADIUS = 0.3
#: FreeSurfer aseg labels (FreeSurferColorLUT) for the non-cortical tissue of the simulated brain.
WM_LABELS = (2, 41)  # Left/Right-Cerebral-White-Matter
VENTRICLE_LABELS = (4, 43)  # Left/Right-Lateral-Ventricle
CORE_LABELS = (33, 75)
BELT_LABELS = (36, 34, 35, 74)
HIGH_PASS_PERIOD = 128.0  # s, fMRIPrep's discrete cosine basis
COMPCOR_VARIANCE = 0.5  # fMRIPrep keeps components up to 50 % of the variance


def _destrieux_of_parcels(atlas) -> dict[int, int]:
    """Sim parcel id → Destrieux label (module docstring)."""
    out = {}
    for side, base in (("L", 11100), ("R", 12100)):
        ids = [i + 1 for i, n in enumerate(atlas.names) if n.startswith(side)]
        core = [p for p in ids if p in atlas.core]
        belt = [p for p in ids if p in atlas.belt]
        for k, p in enumerate(core):
            out[p] = base + CORE_LABELS[k % len(CORE_LABELS)]
        for k, p in enumerate(belt):
            out[p] = base + BELT_LABELS[k % len(BELT_LABELS)]
        free = [k for k in range(1, 76) if k not in CORE_LABELS + BELT_LABELS]
        others = [p for p in ids if p not in out]
        for k, p in enumerate(others):
            out[p] = base + free[k % len(free)]
    return out


def anatomy(atlas) -> dict[str, np.ndarray]:
    """Per mask voxel: ``tissue`` (0 cortex, 1 white matter, 2 ventricle) and ``label`` (aseg/Destrieux)."""
    from brain2music.simulate.brain import normalized_radius

    radius = normalized_radius(atlas)
    tissue = np.where(radius >= CORTEX_RADIUS, 0, np.where(radius >= VENTRICLE_RADIUS, 1, 2)).astype(np.int8)
    # Auditory parcels are cortex however deep they reach: white matter and CSF carry no tuned voxel,
    # so their mean signals (the wm_csf confounds) hold no stimulus-driven signal, as in a real brain.
    tissue[np.isin(atlas.voxel_parcel, atlas.auditory)] = 0
    right = np.array([atlas.names[p - 1].startswith("R") for p in atlas.voxel_parcel])
    mapping = _destrieux_of_parcels(atlas)
    label = np.array([mapping[int(p)] for p in atlas.voxel_parcel], dtype=np.int32)
    label[tissue == 1] = np.where(right[tissue == 1], WM_LABELS[1], WM_LABELS[0])
    label[tissue == 2] = np.where(right[tissue == 2], VENTRICLE_LABELS[1], VENTRICLE_LABELS[0])
    return {"tissue": tissue, "label": label}


def aparc_volume(atlas, label: np.ndarray):
    """The ``aparc.a2009s+aseg`` image (nibabel MGHImage, 1 mm, LIA) of the simulated brain."""
    import nibabel as nib

    dims = np.array(atlas.mask.shape)
    n = int(2 * dims.max() + 4)
    n += n % 2
    half = n // 2
    # LIA: i → -x, j → -z, k → +y; the BOLD grid is centred on world (0, 0, 0) with voxel centres on
    # integer millimetres, and so are these.
    vox2ras = np.array(
        [[-1.0, 0, 0, half], [0, 0, 1.0, -half], [0, -1.0, 0, half], [0, 0, 0, 1.0]], dtype=np.float64
    )
    ijk = np.indices((n, n, n)).reshape(3, -1).T
    world = ijk @ vox2ras[:3, :3].T + vox2ras[:3, 3]
    bold_ijk = np.rint((world - atlas.affine[:3, 3]) / np.diag(atlas.affine)[:3]).astype(np.int64)
    inside = ((bold_ijk >= 0) & (bold_ijk < dims)).all(axis=1)
    grid = np.zeros(atlas.mask.shape, dtype=np.int32)
    flat = np.flatnonzero(atlas.mask.ravel())
    grid.ravel()[flat] = label
    out = np.zeros(n**3, dtype=np.int32)
    out[inside] = grid[tuple(bold_ijk[inside].T)]
    return nib.MGHImage(out.reshape(n, n, n), vox2ras)


def _cosine_basis(n: int, tr: float) -> np.ndarray:
    """fMRIPrep's discrete cosine basis for a 128-s high-pass (constant column dropped)."""
    order = int(np.floor(2 * n * tr / HIGH_PASS_PERIOD))
    t = np.arange(n)
    cols = [np.sqrt(2.0 / n) * np.cos(np.pi / n * (t + 0.5) * k) for k in range(1, order)]
    return np.stack(cols, axis=1) if cols else np.zeros((n, 0))


def _expand(name: str, x: np.ndarray) -> dict[str, np.ndarray]:
    d = np.concatenate([[np.nan], np.diff(x)])
    return {name: x, f"{name}_derivative1": d, f"{name}_power2": x**2, f"{name}_derivative1_power2": d**2}


def _compcor(data: np.ndarray, basis: np.ndarray, prefix: str, method: str, mask: str | None):
    """CompCor components (up to 50 % variance) of ``data (n, v)`` after removing the cosine basis."""
    x = data.astype(np.float64)
    design = np.column_stack([np.ones(len(x)), basis])
    x = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
    x = x[:, x.std(axis=0) > 0]
    x /= x.std(axis=0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    var = s**2 / np.sum(s**2)
    n_keep = int(np.searchsorted(np.cumsum(var), COMPCOR_VARIANCE) + 1)
    cols, meta = {}, {}
    for k in range(n_keep):
        name = f"{prefix}_{k:02d}"
        cols[name] = u[:, k]
        meta[name] = {
            "Method": method, "Retained": True, "SingularValue": float(s[k]),
            "VarianceExplained": float(var[k]), "CumulativeVarianceExplained": float(np.cumsum(var)[k]),
        }  # fmt: skip
        if mask is not None:
            meta[name]["Mask"] = mask
    return cols, meta


def _dvars(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DVARS and standardised DVARS as nipype's ``compute_dvars`` (fMRIPrep) defines them."""
    x = data.astype(np.float64)
    sd = (np.percentile(x, 75, axis=0) - np.percentile(x, 25, axis=0)) / 1.349
    xc = x - x.mean(axis=0)
    denom = (xc**2).sum(axis=0)
    ar1 = np.where(denom > 0, (xc[1:] * xc[:-1]).sum(axis=0) / np.where(denom > 0, denom, 1), 0.0)
    diff_sd = np.sqrt(2 * (1 - ar1)) * sd
    dvars = np.sqrt((np.diff(x, axis=0) ** 2).mean(axis=1))
    std = dvars / max(diff_sd.mean(), 1e-12)
    return np.concatenate([[np.nan], dvars]), np.concatenate([[np.nan], std])


def confounds_table(bold: np.ndarray, tissue: np.ndarray, motion: np.ndarray, tr: float):
    """fMRIPrep's confounds of one run computed from the written BOLD ``(n_volumes, n_voxels)``.

    Returns ``(table, meta)``: the DataFrame (NaN in the first row of derivatives, FD and DVARS) and the
    JSON sidecar (CompCor metadata).
    """
    basis = _cosine_basis(bold.shape[0], tr)
    cols: dict[str, np.ndarray] = {}
    cols |= _expand("global_signal", bold.mean(axis=1, dtype=np.float64))
    cols |= _expand("csf", bold[:, tissue == 2].mean(axis=1, dtype=np.float64))
    cols |= _expand("white_matter", bold[:, tissue == 1].mean(axis=1, dtype=np.float64))
    cols["dvars"], cols["std_dvars"] = _dvars(bold)
    cols["framewise_displacement"] = framewise_displacement(motion)
    meta: dict = {}
    var = bold.var(axis=0)
    top = np.argsort(var)[-max(2, int(round(0.02 * var.size))) :]
    for prefix, method, mask, sel in (
        ("t_comp_cor", "tCompCor", None, top),
        ("c_comp_cor", "aCompCor", "CSF", np.flatnonzero(tissue == 2)),
        ("w_comp_cor", "aCompCor", "WM", np.flatnonzero(tissue == 1)),
        ("a_comp_cor", "aCompCor", "combined", np.flatnonzero(tissue >= 1)),
    ):
        c, m = _compcor(bold[:, sel], basis, prefix, method, mask)
        cols |= c
        meta |= m
    for k in range(basis.shape[1]):
        cols[f"cosine{k:02d}"] = basis[:, k]
    for j, name in enumerate(MOTION_COLUMNS):
        cols |= _expand(name, motion[:, j].astype(np.float64))
    return pd.DataFrame(cols), meta


class FmriprepWriter:
    """Writes one simulated study's fMRIPrep derivatives under ``bids/derivatives/fmriprep``."""

    def __init__(self, bids: Path, atlas, tr: float, version: str):
        self.root = Path(bids) / "derivatives" / "fmriprep"
        self.atlas, self.tr = atlas, tr
        self.anat = anatomy(atlas)
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(
            self.root / "dataset_description.json",
            {
                "Name": "fMRIPrep - fMRI PREProcessing workflow (layout simulated by brain2music)",
                "BIDSVersion": "1.4.0",
                "DatasetType": "derivative",
                "GeneratedBy": [
                    {"Name": "brain2music simulate", "Version": version,
                     "Description": "simulated study written in fMRIPrep's output layout"}
                ],
            },
        )  # fmt: skip

    def write_subject(self, subject: str) -> None:
        """The FreeSurfer segmentation of the subject (the simulated anatomy)."""
        import nibabel as nib

        from brain2music._io import atomic_path

        path = self.root / "sourcedata" / "freesurfer" / subject / "mri" / "aparc.a2009s+aseg.mgz"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            nib.save(aparc_volume(self.atlas, self.anat["label"]), str(tmp))

    def write_run(self, subject: str, task: str, run: int, bold: np.ndarray, motion: np.ndarray, write_nifti):
        """Preprocessed BOLD ``(n_volumes, n_voxels)`` (scanner units, rounded to int16), mask, confounds."""
        func = self.root / subject / "func"
        func.mkdir(parents=True, exist_ok=True)
        stem = f"{subject}_task-{task}_run-{run:02d}"
        space = f"{stem}_space-T1w"
        rounded = np.clip(np.round(bold), -32768, 32767).astype(np.float32)
        write_nifti(func / f"{space}_desc-preproc_bold.nii.gz", rounded)
        write_json(
            func / f"{space}_desc-preproc_bold.json",
            {"RepetitionTime": self.tr, "SkullStripped": False, "TaskName": task},
        )
        write_nifti(func / f"{space}_desc-brain_mask.nii.gz", None)
        table, meta = confounds_table(rounded, self.anat["tissue"], motion, self.tr)
        write_text(
            func / f"{stem}_desc-confounds_timeseries.tsv",
            table.to_csv(sep="\t", index=False, na_rep="n/a", float_format="%.8g"),
        )
        write_text(func / f"{stem}_desc-confounds_timeseries.json", json.dumps(meta, indent=2) + "\n")
