"""Parcels and masks on the BOLD grid: FreeSurfer's Destrieux parcellation, template atlases, cortex.

FreeSurfer writes the Destrieux (2009) parcellation of a subject as ``mri/aparc.a2009s+aseg.mgz`` in its
subjects folder; fMRIPrep keeps that folder at ``<fmriprep>/sourcedata/freesurfer/<subject>`` (older
versions: ``<derivatives>/freesurfer/<subject>``). Its cortical labels are 11101–11175 (left) and
12101–12175 (right) with the names of FreeSurferColorLUT (e.g. ``ctx_rh_G_temp_sup-G_T_transv``, Heschl's
gyrus), shipped in ``brain2music/resources/freesurfer/destrieux_labels.tsv`` (source noted beside it).

The volume lives in FreeSurfer's conformed 1-mm space of the subject's T1w image. Every label image is put
on the BOLD grid by world coordinates, nearest neighbour (:func:`labels_on_grid`): each BOLD voxel takes
the label at its centre. That needs the BOLD
in the subject's anatomical space (fMRIPrep ``space-T1w``); a template atlas (e.g. in
MNI152NLin2009cAsym) goes with template-space BOLD the same way.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from brain2music.errors import ConfigError, DataError, DataFileNotFoundError

__all__ = [
    "APARC_NAME",
    "DESTRIEUX_RANGES",
    "cortex_mask",
    "destrieux_labels",
    "destrieux_names",
    "find_aparc",
    "label_names",
    "labels_on_grid",
    "load_label_image",
]

APARC_NAME = "aparc.a2009s+aseg.mgz"
#: Cortical Destrieux labels of aparc.a2009s+aseg (inclusive ranges; x100 "Unknown" excluded).
DESTRIEUX_RANGES = ((11101, 11175), (12101, 12175))
#: Template / anatomical spaces in which a subject's FreeSurfer labels line up with the BOLD.
SUBJECT_SPACES = ("T1w", "anat", "fsnative")


@functools.lru_cache(maxsize=1)
def _destrieux_table() -> dict[int, str]:
    from importlib.resources import files

    text = (files("brain2music") / "resources" / "freesurfer" / "destrieux_labels.tsv").read_text("utf-8")
    rows = [line.split("\t") for line in text.splitlines()[1:] if line.strip()]
    return {int(r[0]): r[1] for r in rows}


def destrieux_names() -> dict[int, str]:
    """``{label: name}`` for the 150 cortical Destrieux labels (FreeSurferColorLUT names)."""
    return dict(_destrieux_table())


def is_destrieux(labels: np.ndarray) -> np.ndarray:
    """Boolean array: which entries of ``labels`` are cortical Destrieux labels."""
    labels = np.asarray(labels)
    out = np.zeros(labels.shape, dtype=bool)
    for lo, hi in DESTRIEUX_RANGES:
        out |= (labels >= lo) & (labels <= hi)
    return out


def find_aparc(
    subject: str,
    *,
    fmriprep_dir: str | os.PathLike | None = None,
    freesurfer_dir: str | os.PathLike | None = None,
) -> Path:
    """Path of ``<subject>/mri/aparc.a2009s+aseg.mgz``.

    ``freesurfer_dir`` (a FreeSurfer subjects folder) wins; otherwise ``<fmriprep>/sourcedata/freesurfer``
    (fMRIPrep >= 21) then ``<fmriprep>/../freesurfer`` (older fMRIPrep). The error lists every place looked.
    """
    candidates = []
    if freesurfer_dir is not None:
        candidates.append(Path(freesurfer_dir) / subject / "mri" / APARC_NAME)
    elif fmriprep_dir is not None:
        fp = Path(fmriprep_dir)
        candidates += [
            fp / "sourcedata" / "freesurfer" / subject / "mri" / APARC_NAME,
            fp.parent / "freesurfer" / subject / "mri" / APARC_NAME,
        ]
    for path in candidates:
        if path.is_file():
            return path
    if not candidates:
        raise ConfigError(
            "Destrieux parcels need a FreeSurfer subjects folder (--freesurfer-dir) or --fmriprep"
        )
    raise DataFileNotFoundError(
        f"FreeSurfer Destrieux segmentation of {subject} not found; looked for "
        + " and ".join(str(c) for c in candidates)
        + " (run FreeSurfer / fMRIPrep without --fs-no-reconall, or pass --freesurfer-dir)"
    )


def load_label_image(path: str | os.PathLike):
    """Read a 3-D label image (NIfTI or FreeSurfer .mgz), naming the file on failure."""
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(f"label image not found: {path}")
    try:
        img = nib.load(str(path))
    except Exception as exc:
        raise DataError(f"{path}: cannot read as a NIfTI or FreeSurfer .mgz label image ({exc})") from exc
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        img = img.slicer[..., 0]
    elif len(shape) != 3:
        raise DataError(f"{path}: expected a 3-D label image, found shape {tuple(shape)}")
    return img


def labels_on_grid(img, reference, *, source: str = "label image") -> np.ndarray:
    """Labels of ``img`` on the 3-D grid of ``reference`` (nearest neighbour by world coordinates).

    Every reference voxel centre is mapped to ``img``'s voxel space through both affines and takes the
    label of the nearest voxel; centres outside ``img``'s field of view get 0. Returns an int32 array of
    ``reference.shape[:3]``. This is what :func:`nilearn.image.resample_to_img` with
    ``interpolation="nearest"`` gives inside the field of view (the tests check it), except in the last
    half voxel at the upper edge of each axis, which scipy's order-0 resampler treats as outside.
    """
    shape = tuple(int(s) for s in reference.shape[:3])
    data = np.asanyarray(img.dataobj)
    if data.shape[:3] == shape and np.allclose(img.affine, reference.affine, atol=1e-3):
        return np.rint(data).astype(np.int32)
    if not np.isfinite(img.affine).all() or abs(np.linalg.det(img.affine[:3, :3])) < 1e-9:
        raise DataError(f"{source}: its affine is not invertible; cannot place it in world coordinates")
    to_src = np.linalg.inv(img.affine) @ reference.affine
    out = np.zeros(shape, dtype=np.int32)
    # One reference slab at a time: the index arrays of a 96x96x68 grid stay a few MB.
    ij = np.indices(shape[:2]).reshape(2, -1).T.astype(np.float64)
    for k in range(shape[2]):
        pts = np.column_stack([ij, np.full(len(ij), k, dtype=np.float64)])
        idx = np.rint(pts @ to_src[:3, :3].T + to_src[:3, 3]).astype(np.int64)
        inside = ((idx >= 0) & (idx < np.array(data.shape[:3]))).all(axis=1)
        vals = np.zeros(len(ij), dtype=np.int32)
        vals[inside] = np.rint(data[tuple(idx[inside].T)]).astype(np.int32)
        out[:, :, k] = vals.reshape(shape[:2])
    return out


def destrieux_labels(path: str | os.PathLike, reference) -> np.ndarray:
    """The cortical Destrieux labels of ``aparc.a2009s+aseg`` on ``reference``'s grid (0 elsewhere).

    Raises a :class:`DataError` naming the file when it holds no Destrieux label (e.g. a Desikan
    ``aparc+aseg``) or when none of them falls inside the BOLD field of view.
    """
    img = load_label_image(path)
    present = np.unique(np.rint(np.asanyarray(img.dataobj)).astype(np.int64))
    if not is_destrieux(present).any():
        shown = ", ".join(str(v) for v in present[:8]) + (" …" if present.size > 8 else "")
        hint = (
            " (looks like Desikan-Killiany aparc+aseg: labels 1000-2035)"
            if ((present >= 1000) & (present < 3000)).any()
            else ""
        )
        raise DataError(
            f"{path}: no cortical Destrieux labels (expected values in 11101-11175 / 12101-12175 as in "
            f"aparc.a2009s+aseg.mgz); found {present.size} distinct values ({shown}){hint}"
        )
    labels = labels_on_grid(img, reference, source=str(path))
    labels[~is_destrieux(labels)] = 0
    if not labels.any():
        raise DataError(
            f"{path}: no Destrieux label falls inside the BOLD grid; is the BOLD in the subject's T1w space "
            "(fMRIPrep --space T1w)?"
        )
    return labels


def parcels_on_grid(parcels, subject: str, reference, *, aparc=None, voxels=None):
    """``(labels, {label: name}, source)`` of a parcellation on the grid of the image ``reference``.

    ``parcels``: ``"destrieux"`` (the cortical labels of the subject's FreeSurfer ``aparc``,
    ``aparc.a2009s+aseg.mgz``) or a label image (NIfTI / ``.mgz``; ``{subject}`` replaced by
    ``subject``), put on the grid by world coordinates, nearest neighbour. ``voxels``: flat indices into
    the grid; when given, ``labels`` is ``(n_voxels,)``, the label of each of those voxels, else the 3-D
    grid. The names are those of the labels present (:func:`label_names`); ``source`` is the file read.
    Raises :class:`DataError` when no label falls on the grid (or on ``voxels``).
    """
    if str(parcels) == "destrieux":
        if aparc is None:
            raise ConfigError(f"parcels 'destrieux' of {subject} need its FreeSurfer aparc.a2009s+aseg.mgz")
        source, kind = Path(aparc), "Destrieux"
        labels = destrieux_labels(source, reference)
    else:
        source, kind = Path(str(parcels).format(subject=subject)), "parcel"
        labels = labels_on_grid(load_label_image(source), reference, source=str(source))
    where = "inside the BOLD grid"
    if voxels is not None:
        labels, where = labels.reshape(-1)[voxels], "on a kept voxel"
    if not labels.any():
        raise DataError(
            f"{source}: no {kind} label falls {where} of {subject} (BOLD grid {tuple(reference.shape[:3])})"
        )
    return labels, label_names(source, labels), str(source)


def cortex_mask(path: str | os.PathLike, reference) -> np.ndarray:
    """Cortical voxels (any Destrieux cortical label of ``aparc.a2009s+aseg``) on ``reference``'s grid."""
    return destrieux_labels(path, reference) > 0


def label_names(path: str | os.PathLike, labels: np.ndarray) -> dict[int, str]:
    """Names of the labels in ``labels``: Destrieux names, else a BIDS-style ``<stem>.tsv`` beside the image.

    The sidecar has columns ``index`` and ``name`` (BIDS ``dseg.tsv``; ``brain2music simulate`` writes one
    as ``parcels.tsv``). Labels without a name are absent from the dict.
    """
    import pandas as pd

    present = [int(v) for v in np.unique(labels) if v != 0]
    table = _destrieux_table()
    names = {v: table[v] for v in present if v in table}
    path = Path(path)
    stem = path.name.split(".")[0]
    sidecar = path.with_name(stem + ".tsv")
    if sidecar.is_file():
        try:
            tsv = pd.read_csv(sidecar, sep="\t")
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DataError(f"{sidecar}: cannot parse the label table ({exc})") from exc
        if {"index", "name"} <= set(tsv.columns):
            names.update({int(i): str(n) for i, n in zip(tsv["index"], tsv["name"]) if int(i) in present})
    return names


def check_subject_space(space: str, what: str) -> None:
    """Subject FreeSurfer labels only line up with BOLD in the subject's anatomical space."""
    base = space.split(":")[0]
    if base not in SUBJECT_SPACES:
        raise ConfigError(
            f"{what} come from the subject's FreeSurfer segmentation (T1w space) but the BOLD is in space "
            f"{space!r}; use --space T1w, or give a template-space atlas with --parcels FILE"
        )
