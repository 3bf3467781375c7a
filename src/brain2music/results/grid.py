"""The voxel grid of a subject: which voxels of which image grid the decoder's columns are.

:class:`VoxelGrid` is a masker in the nilearn sense, on plain arrays: flat C-order ``voxel_indices`` into
a 3-D grid of ``shape`` with ``affine`` (voxel → world mm). :meth:`VoxelGrid.transform` turns an image, a
3-D volume or a 4-D series into ``(n_samples, n_voxels)``; :meth:`VoxelGrid.inverse_transform` puts
``(n_voxels,)`` or ``(n_samples, n_voxels)`` values back into a NIfTI image. :meth:`VoxelGrid.extract`
maps one incoming volume whose grid is this grid with axes permuted or flipped (a real-time export).

A results folder stores it per subject: the ``voxel_indices`` of ``encoding/<encoder>/<subject>_encoding.npz``
and the shape and affine of the header of ``encoding/<encoder>/<subject>_test_r.nii.gz``; read it with
:meth:`~brain2music.results.ResultsFolder.grid`.
"""

from __future__ import annotations

import numpy as np

from brain2music.errors import DataError

__all__ = ["VoxelGrid"]


class VoxelGrid:
    """A subject's voxels: flat C-order ``voxel_indices`` into a grid of ``shape`` with ``affine``.

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
        """How many voxels the grid holds (the decoder's input columns)."""
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

    def extract(self, volume, *, source: str = "volume") -> np.ndarray:
        """The grid's voxels of one volume (anything with ``data`` (x, y, z) and ``affine``, e.g. a
        :class:`~brain2music.live.volumes.RawVolume`) on this grid up to a flip or permutation of the axes:
        ``(n_voxels,)`` float32."""
        data = volume.data
        if data.ndim != 3:
            raise DataError(f"{source}: expected a 3-D volume; found shape {data.shape}")
        plan = self._plan(tuple(data.shape), np.asarray(volume.affine, dtype=np.float64), source)
        return np.ascontiguousarray(data).reshape(-1)[plan]

    @classmethod
    def from_mask(cls, mask, affine) -> VoxelGrid:
        """The grid of the nonzero voxels of a 3-D ``mask`` array with ``affine``."""
        mask = np.asarray(mask)
        if mask.ndim != 3:
            raise DataError(f"mask: expected a 3-D array, found shape {mask.shape}")
        return cls(mask.shape, affine, np.flatnonzero(mask.ravel()))

    @property
    def mask(self) -> np.ndarray:
        """``shape`` bool array, True at the grid's voxels."""
        out = np.zeros(int(np.prod(self.shape)), dtype=bool)
        out[self.voxel_indices] = True
        return out.reshape(self.shape)

    def transform(self, img) -> np.ndarray:
        """The grid's voxels of a NIfTI image (or path) or an array: ``(n_samples, n_voxels)`` float32.

        A 3-D input is one sample; a 4-D input ``(x, y, z, n_samples)`` gives one row per volume. An image
        must have this grid's shape and affine (a volume on a permuted grid goes through :meth:`extract`).
        """
        data, where = self._data(img)
        if data.ndim == 3:
            data = data[..., None]
        if data.ndim != 4 or tuple(data.shape[:3]) != self.shape:
            raise DataError(
                f"{where}: expected an image of shape {self.shape} or {self.shape + ('n_samples',)}; "
                f"found {data.shape}"
            )
        flat = data.reshape(-1, data.shape[3])
        return np.ascontiguousarray(flat[self.voxel_indices].T, dtype=np.float32)

    def inverse_transform(self, values):
        """A NIfTI image of ``values``: ``(n_voxels,)`` → 3-D, ``(n_samples, n_voxels)`` → 4-D (zero off-grid)."""
        import nibabel as nib

        values = np.asarray(values, dtype=np.float32)
        if values.ndim not in (1, 2) or values.shape[-1] != self.n_voxels:
            raise DataError(
                f"values: expected (n_voxels,) or (n_samples, n_voxels) with n_voxels = {self.n_voxels}; "
                f"found {values.shape}"
            )
        rows = values.reshape(-1, self.n_voxels)
        out = np.zeros((int(np.prod(self.shape)), rows.shape[0]), dtype=np.float32)
        out[self.voxel_indices] = rows.T
        shape = self.shape if values.ndim == 1 else self.shape + (rows.shape[0],)
        return nib.Nifti1Image(out.reshape(shape), self.affine)

    def _data(self, img) -> tuple[np.ndarray, str]:
        if isinstance(img, np.ndarray):
            return img, "array"
        import nibabel as nib

        where = str(img) if isinstance(img, (str, bytes)) or hasattr(img, "__fspath__") else "image"
        loaded = nib.load(str(img)) if where != "image" else img
        if not np.allclose(np.asarray(loaded.affine), self.affine, atol=1e-3):
            raise DataError(f"{where}: its affine differs from the grid's affine {self.affine.tolist()}")
        return np.asarray(loaded.dataobj, dtype=np.float32), where
