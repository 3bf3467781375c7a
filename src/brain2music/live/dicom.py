"""One fMRI volume from one DICOM file (pydicom), Siemens mosaics unpacked.

Real-time exports write one DICOM file per TR. Siemens writes the slices of a volume as tiles of one 2-D
"mosaic" image (``ImageType`` contains ``MOSAIC``; the slice count is ``NumberOfImagesInMosaic`` in the
CSA header, or the private element (0019,100A)); enhanced multi-frame DICOM holds one frame per slice.
The unpacking and the voxel-to-patient affine (with Siemens' mosaic position correction) are nibabel's
(:mod:`nibabel.nicom.dicomwrappers`); this module decides which wrapper applies, checks that the file is
complete, and turns DICOM's LPS patient coordinates into the RAS convention of NIfTI.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from brain2music.errors import DataError
from brain2music.live.raw import IncompleteFile, RawVolume

__all__ = ["read_dicom_volume"]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
N_MOSAIC_TAG = (0x0019, 0x100A)


def _expected_pixel_bytes(ds) -> int:
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    return int(ds.Rows) * int(ds.Columns) * frames * samples * int(ds.BitsAllocated) // 8


def _n_mosaic(ds) -> int | None:
    from nibabel.nicom import csareader

    try:
        csa = csareader.get_csa_header(ds)
        n = csareader.get_n_mosaic(csa) if csa else None
    except Exception:  # a malformed CSA header: fall back to the private element
        n = None
    if not n and N_MOSAIC_TAG in ds:
        n = int(ds[N_MOSAIC_TAG].value)
    return int(n) if n else None


def read_dicom_volume(path: str | os.PathLike):
    """Read ``path`` as one volume → :class:`brain2music.live.raw.RawVolume` (RAS affine).

    Raises :class:`~brain2music.live.raw.IncompleteFile` when the pixel data is shorter than the header
    declares, :class:`DataError` when the file is not a DICOM volume.
    """
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel flags its DICOM readers as experimental on import
        from nibabel.nicom import dicomwrappers

    path = Path(path)
    try:
        ds = pydicom.dcmread(str(path))
    except (EOFError, OSError) as exc:
        raise IncompleteFile(f"{path}: DICOM stream ends early ({exc})") from exc
    except Exception as exc:  # pydicom.errors.InvalidDicomError and parser errors
        raise DataError(f"{path}: cannot read as DICOM ({type(exc).__name__}: {exc})") from exc
    if "PixelData" not in ds:
        # A file cut inside its header reads as a header without pixels.
        raise IncompleteFile(f"{path}: no pixel data (yet)")
    need = _expected_pixel_bytes(ds)
    if len(ds.PixelData) < need:
        raise IncompleteFile(f"{path}: pixel data {len(ds.PixelData)} of {need} bytes")
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    n_mosaic = _n_mosaic(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel flags its DICOM readers as experimental
        try:
            if n_mosaic or "MOSAIC" in image_type:
                if not n_mosaic:
                    raise DataError(
                        f"{path}: a Siemens mosaic without NumberOfImagesInMosaic (CSA header or (0019,100A))"
                    )
                wrapper = dicomwrappers.MosaicWrapper(ds, n_mosaic=n_mosaic)
            else:
                wrapper = dicomwrappers.wrapper_from_data(ds)
                if int(getattr(ds, "NumberOfFrames", 1) or 1) < 2:
                    raise DataError(
                        f"{path}: a single 2-D DICOM image; live decoding needs one volume per file "
                        "(a Siemens mosaic or an enhanced multi-frame DICOM)"
                    )
            data = np.asarray(wrapper.get_data(), dtype=np.float32)
            affine = LPS_TO_RAS @ np.asarray(wrapper.affine, dtype=np.float64)
        except DataError:
            raise
        except Exception as exc:
            raise DataError(f"{path}: cannot unpack the DICOM volume ({type(exc).__name__}: {exc})") from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(f"{path}: expected one 3-D volume; the DICOM holds shape {data.shape}")
    tr = float(ds.RepetitionTime) / 1000.0 if ds.get("RepetitionTime") not in (None, "") else None
    number = int(ds.InstanceNumber) if ds.get("InstanceNumber") not in (None, "") else None
    return RawVolume(data=data, affine=affine, tr=tr, number=number)
