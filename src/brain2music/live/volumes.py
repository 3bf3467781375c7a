"""Reading one volume file (3-D NIfTI or DICOM) and placing it on the decoder's voxel grid.

Real-time exports write one file per TR. A reader polling the folder can meet a file that is still being
written, so :func:`read_volume` distinguishes three outcomes:

- the volume ``(data, affine)``;
- :class:`IncompleteFile`: the file is shorter than its own header says (NIfTI ``.nii``: header offset +
  data size; ``.nii.gz``: the gzip stream ends early; DICOM: the pixel data is shorter than
  rows x columns x frames) — try again later;
- :class:`~brain2music.errors.DataError`: the file is unreadable or not a volume.

A file that stays incomplete while its size no longer changes is truncated; the folder watcher decides
that (:mod:`brain2music.live.sources`).

:class:`VoxelGrid` maps a volume onto the decoder's voxels by world coordinates: an incoming grid may be
the decoder's grid with axes permuted or flipped (DICOM stores rows x columns x slices in patient LPS,
converters write RAS NIfTI), which is resolved once per geometry into one gather of flat indices.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from brain2music.errors import DataError
from brain2music.live.dicom import read_dicom_volume
from brain2music.live.raw import IncompleteFile, RawVolume

__all__ = [
    "IncompleteFile",
    "VOLUME_SUFFIXES",
    "VoxelGrid",
    "is_volume_file",
    "read_volume",
    "volume_number",
]

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".dcm", ".ima")
# Names writers use while a file is in progress; such files are never read (they are renamed into place).
TEMP_MARKERS = (".tmp", ".part", ".partial", ".crdownload", "~")


def is_volume_file(name: str) -> bool:
    """True for names the watcher reads: NIfTI or DICOM suffix, not hidden, not a temporary name."""
    low = name.lower()
    if low.startswith(".") or any(low.endswith(m) for m in TEMP_MARKERS):
        return False
    return low.endswith(VOLUME_SUFFIXES)


def volume_number(name: str) -> int | None:
    """The last run of digits in a file name (``vol_0007.nii`` -> 7, ``001_000003_000012.dcm`` -> 12)."""
    stem = name
    for suf in VOLUME_SUFFIXES:
        if stem.lower().endswith(suf):
            stem = stem[: -len(suf)]
            break
    digits = ""
    for ch in reversed(stem):
        if ch.isdigit():
            digits = ch + digits
        elif digits:
            break
    return int(digits) if digits else None


def read_volume(path: str | os.PathLike) -> RawVolume:
    """Read one 3-D NIfTI (``.nii``, ``.nii.gz``; a 4-D file with one volume is accepted) or DICOM file."""
    path = Path(path)
    low = path.name.lower()
    if low.endswith((".nii", ".nii.gz")):
        return _read_nifti(path)
    return read_dicom_volume(path)


def _read_nifti(path: Path) -> RawVolume:
    import nibabel as nib

    size = path.stat().st_size
    try:
        if path.name.lower().endswith(".gz"):
            with open(path, "rb") as fh:
                raw = fh.read()
            try:
                payload = gzip.decompress(raw)
            except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                if isinstance(exc, gzip.BadGzipFile) and size >= 2 and raw[:2] != b"\x1f\x8b":
                    raise DataError(f"{path}: not a gzip file ({exc})") from exc
                raise IncompleteFile(f"{path}: gzip stream ends early ({size} bytes)") from exc
            img = nib.Nifti1Image.from_bytes(payload)
        else:
            if size < 348:
                raise IncompleteFile(f"{path}: {size} bytes, shorter than a NIfTI header")
            img = nib.load(str(path), mmap=False)
            hdr = img.header
            need = (
                int(img.dataobj.offset) + int(np.prod(hdr.get_data_shape())) * hdr.get_data_dtype().itemsize
            )
            if size < need:
                raise IncompleteFile(f"{path}: {size} of {need} bytes")
        data = np.asarray(img.dataobj, dtype=np.float32)
    except (IncompleteFile, DataError):
        raise
    except Exception as exc:  # nibabel raises many types for a corrupt header
        raise DataError(f"{path}: cannot read as a NIfTI volume ({type(exc).__name__}: {exc})") from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(f"{path}: expected one 3-D volume; found an image of shape {data.shape}")
    return RawVolume(data=data, affine=np.asarray(img.affine, dtype=np.float64))


class VoxelGrid:
    """The decoder's voxels: flat C-order ``voxel_indices`` into a grid of ``shape`` with ``affine``.

    :meth:`extract` returns the voxel values ``(n_voxels,)`` of a volume whose grid is this grid up to a
    permutation / flip of the axes (checked on the affines, tolerance 1 % of a voxel); anything else (other
    shape, resolution, rotation or offset) raises :class:`DataError` naming the file.
    """

    def __init__(self, shape, affine, voxel_indices):
        self.shape = tuple(int(s) for s in shape)
        self.affine = np.asarray(affine, dtype=np.float64)
        self.voxel_indices = np.asarray(voxel_indices, dtype=np.int64)
        if self.voxel_indices.size and (
            self.voxel_indices.min() < 0 or self.voxel_indices.max() >= int(np.prod(self.shape))
        ):
            raise DataError(
                f"voxel indices reach {int(self.voxel_indices.max())} but the grid {self.shape} has "
                f"{int(np.prod(self.shape))} voxels"
            )
        self._coords = np.stack(np.unravel_index(self.voxel_indices, self.shape), axis=1)  # (n, 3)
        self._plans: dict[tuple, np.ndarray] = {}

    @property
    def n_voxels(self) -> int:
        """Number of voxels the decoder reads."""
        return int(self.voxel_indices.size)

    def _plan(self, shape: tuple, affine: np.ndarray, source: str) -> np.ndarray:
        key = (shape, np.round(affine, 4).tobytes())
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        if shape == self.shape and np.allclose(affine, self.affine, atol=1e-3):
            plan = self.voxel_indices
        else:
            # Incoming voxel (i', j', k') = M @ (i, j, k, 1) for each decoder voxel (i, j, k).
            M = np.linalg.solve(affine, self.affine)
            R, t = M[:3, :3], M[:3, 3]
            perm = np.rint(R)
            ok = np.allclose(R, perm, atol=1e-2) and np.allclose(np.abs(perm).sum(axis=0), 1)
            ok = ok and np.allclose(np.abs(perm).sum(axis=1), 1) and np.allclose(t, np.rint(t), atol=1e-2)
            # Same field of view, not merely one that happens to contain the decoder's voxels.
            ok = ok and tuple(np.abs(perm).T.astype(int) @ np.asarray(shape)) == self.shape
            mapped = np.rint(self._coords @ perm.T + np.rint(t)).astype(np.int64) if ok else None
            if not ok or mapped.min() < 0 or np.any(mapped.max(axis=0) >= np.asarray(shape)):
                raise DataError(
                    f"{source}: volume grid {shape} (voxel size "
                    f"{np.round(np.linalg.norm(affine[:3, :3], axis=0), 3).tolist()} mm) does not match the "
                    f"decoder's grid {self.shape} (voxel size "
                    f"{np.round(np.linalg.norm(self.affine[:3, :3], axis=0), 3).tolist()} mm) up to a flip "
                    "or permutation of the axes; export the volumes on the grid the decoder was trained on"
                )
            plan = np.ravel_multi_index(tuple(mapped.T), shape)
        self._plans[key] = plan
        return plan

    def extract(self, volume: RawVolume, *, source: str = "volume") -> np.ndarray:
        """The decoder's voxels of ``volume``, ``(n_voxels,)`` float32."""
        data = volume.data
        if data.ndim != 3:
            raise DataError(f"{source}: expected a 3-D volume; found shape {data.shape}")
        plan = self._plan(tuple(data.shape), np.asarray(volume.affine, dtype=np.float64), source)
        return np.ascontiguousarray(data).reshape(-1)[plan]
