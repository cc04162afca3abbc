"""Small DICOM files and NIfTI volumes written with pydicom and nibabel, for the medical-format tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

INTERCEPT = -1024.0  # stored value 0 is -1024 HU, as on most CT scanners


def write_ct_dicom(path: Path, hu: np.ndarray, *, uid: str | None = None, compressed: bool = False,
                   modality: str = "CT", preamble_only: bool = False, photometric: str = "MONOCHROME2") -> Path:
    """A CT slice: 16-bit signed stored values, RescaleSlope 1, RescaleIntercept -1024.

    `compressed` declares JPEG-LS and stores bytes no decoder could read; `preamble_only` names the
    file without extension (the DICM preamble is what identifies it).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, JPEGLSLossless, generate_uid

    uid = uid or generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = JPEGLSLossless if compressed else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, uid, modality
    ds.Rows, ds.Columns = hu.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.RescaleSlope, ds.RescaleIntercept = 1, INTERCEPT
    stored = np.round(np.asarray(hu, dtype=np.float64) - INTERCEPT).astype("<i2")
    if compressed:
        ds.PixelData = encapsulate([b"\xff\xd8 not really JPEG-LS \xff\xd9\x00"])
        ds["PixelData"].VR = "OB"
    else:
        ds.PixelData = stored.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_acr_nema(path: Path, hu: np.ndarray) -> Path:
    """A CT slice as an old ACR-NEMA file stores it: the data set alone, implicit VR, no preamble, no file meta."""
    from pydicom import dcmread

    dicom = write_ct_dicom(path.with_name(path.name + ".dcm"), hu)
    ds = dcmread(dicom)
    del ds.file_meta
    ds.preamble = None
    ds.save_as(path, implicit_vr=True, little_endian=True)
    dicom.unlink()
    return path


def write_nifti(path: Path, hu: np.ndarray) -> Path:
    """A (x, y, z) volume in RAS+ (identity affine), int16 stored values scaled to HU by scl_slope/scl_inter."""
    import nibabel as nib

    stored = np.round(np.asarray(hu, dtype=np.float64) - INTERCEPT).astype(np.int16)
    img = nib.Nifti1Image(stored, np.eye(4))
    img.header.set_slope_inter(1.0, INTERCEPT)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def u8_to_hu(u8: np.ndarray) -> np.ndarray:
    """The HU the lung window (-1000..400) shows as these 8-bit values."""
    return -1000.0 + np.asarray(u8, dtype=np.float64) * (1400.0 / 255.0)
