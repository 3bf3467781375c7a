"""Volume files as real-time exports write them, for the live tests: 3-D NIfTI and Siemens-style DICOM
mosaics written with pydicom, and a small results folder + library a live decoder can run on.

The DICOM writer follows the DICOM standard's geometry, independently of the reader under test: pixel
(row i, column j) of slice s lies at ``IPP_s + j * dc * X + i * dr * Y`` in patient LPS coordinates
(``ImageOrientationPatient = X, Y``; ``PixelSpacing = dr, dc``); slice s is the mosaic tile at tile row
``s // n_tiles`` and tile column ``s % n_tiles``; the mosaic's ImagePositionPatient is the first slice's
position moved to the corner of the whole mosaic (Siemens' convention).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def dicom_geometry(shape, *, spacing=(3.0, 3.0, 3.5), origin=(-120.0, -110.0, -40.0)):
    """Geometry of a transverse DICOM series: rows along +y (P), columns along +x (L), slices along +z.

    Returns ``(X, Y, normal, spacing, ipp0)`` and the RAS affine of the volume as the (row, column, slice)
    array, i.e. ``voxel (i, j, s) -> RAS``.
    """
    X = np.array([1.0, 0.0, 0.0])  # direction of increasing column index, LPS
    Y = np.array([0.0, 1.0, 0.0])  # direction of increasing row index
    normal = np.cross(X, Y)
    dr, dc, ds = spacing
    ipp0 = np.asarray(origin, dtype=float)
    lps = np.eye(4)
    lps[:3, 0] = Y * dr  # row index i
    lps[:3, 1] = X * dc  # column index j
    lps[:3, 2] = normal * ds
    lps[:3, 3] = ipp0
    return (X, Y, normal, spacing, ipp0), LPS_TO_RAS @ lps


def csa2_header(tags: dict) -> bytes:
    """A Siemens CSA2 ("SV10") header holding ``{name: (vr, [item strings])}``."""
    import struct

    out = [b"SV10", b"\x04\x03\x02\x01", struct.pack("<2I", len(tags), 77)]
    for name, (vr, items) in tags.items():
        out.append(struct.pack("<64si4s3i", name.encode(), len(items), vr.encode(), 3, len(items), 77))
        for item in items:
            raw = item.encode() + b"\0"
            out.append(struct.pack("<4i", len(raw), len(raw), 77, len(raw)))
            out.append(raw + b"\0" * (-len(raw) % 4))
    return b"".join(out)


def write_mosaic(path, volume_rcs: np.ndarray, *, number: int, tr: float = 1.5, spacing=(3.0, 3.0, 3.5),
                 origin=(-120.0, -110.0, -40.0), slope: float = 1.0, intercept: float = 0.0) -> Path:  # fmt: skip
    """Write a (rows, cols, slices) volume as one Siemens-style mosaic DICOM file (uint16 pixels)."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    rows, cols, n_sl = volume_rcs.shape
    n_tiles = int(np.ceil(np.sqrt(n_sl)))
    mosaic = np.zeros((rows * n_tiles, cols * n_tiles), dtype=np.uint16)
    stored = np.rint((volume_rcs - intercept) / slope)
    if stored.min() < 0 or stored.max() > 65535:
        raise ValueError("values do not fit uint16 with this slope/intercept")
    for s in range(n_sl):
        tr_, tc = divmod(s, n_tiles)
        mosaic[tr_ * rows : (tr_ + 1) * rows, tc * cols : (tc + 1) * cols] = stored[:, :, s]
    (X, Y, normal, (dr, dc, ds), ipp0), _ = dicom_geometry((rows, cols, n_sl), spacing=spacing, origin=origin)
    # Siemens: IPP of a mosaic is the first slice's position shifted to the corner of the full mosaic.
    shift = ((rows * n_tiles - rows) / 2.0) * dr * Y + ((cols * n_tiles - cols) / 2.0) * dc * X
    ipp_mosaic = ipp0 - shift

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.Manufacturer = "SIEMENS"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"]
    ds.SeriesNumber = 7
    ds.InstanceNumber = int(number)
    ds.AcquisitionNumber = int(number)
    ds.RepetitionTime = tr * 1000.0
    ds.ImageOrientationPatient = [float(v) for v in (*X, *Y)]
    ds.ImagePositionPatient = [float(v) for v in ipp_mosaic]
    ds.PixelSpacing = [float(dr), float(dc)]
    ds.SliceThickness = float(ds_) if (ds_ := spacing[2]) else 1.0
    ds.SpacingBetweenSlices = float(spacing[2])
    ds.Rows, ds.Columns = mosaic.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = float(slope), float(intercept)
    ds.private_block(0x0019, "SIEMENS MR HEADER", create=True).add_new(0x0A, "US", n_sl)
    csa = csa2_header({"NumberOfImagesInMosaic": ("IS", [str(n_sl)]),
                       "SliceNormalVector": ("FD", [f"{v:.8f}" for v in normal])})  # fmt: skip
    ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True).add_new(0x10, "OB", csa)
    ds.PixelData = mosaic.tobytes()
    pydicom.dcmwrite(str(path), ds, enforce_file_format=True)
    return Path(path)
