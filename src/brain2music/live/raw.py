"""One volume as read from disk, and the signal that a file is still being written.

Shared by the NIfTI reader (:mod:`brain2music.live.volumes`) and the DICOM reader
(:mod:`brain2music.live.dicom`), which sits below it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["IncompleteFile", "RawVolume"]


class IncompleteFile(Exception):
    """The file is shorter than its header declares: still being written (or truncated)."""


@dataclass
class RawVolume:
    """One volume as read from disk: ``data`` (x, y, z) float32, ``affine`` (4, 4) voxel -> RAS mm."""

    data: np.ndarray
    affine: np.ndarray
    tr: float | None = None  # seconds, when the file says (DICOM RepetitionTime)
    number: int | None = None  # acquisition number the file carries (DICOM InstanceNumber)
