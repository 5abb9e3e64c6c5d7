"""Small DICOM series and objects with known answers, shared by the io tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from liverplan.io.dicom_write import write_series

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def ramp_volume(size=(12, 10, 8), spacing=(0.8, 0.7, 2.5), origin=(-40.0, 20.0, -100.0),
                direction=AXIAL) -> sitk.Image:
    """HU linear in the physical position (so linear interpolation reproduces it exactly) and
    below -500 somewhere (air)."""
    image = sitk.Image(size, sitk.sitkInt16)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return fill_with(image, ramp_hu)


def ramp_hu(points_mm: np.ndarray) -> np.ndarray:
    x, y, z = points_mm[..., 0], points_mm[..., 1], points_mm[..., 2]
    return -900.0 + 4.0 * (x + 40) + 3.0 * (y - 20) + 10.0 * (z + 100)


def fill_with(image: sitk.Image, fn) -> sitk.Image:
    points = physical_points(image)
    out = sitk.GetImageFromArray(np.rint(fn(points)).astype(np.int16))
    out.CopyInformation(image)
    return out


def physical_points(image: sitk.Image) -> np.ndarray:
    """(z, y, x, 3) LPS position of every voxel centre."""
    size = image.GetSize()
    k, j, i = np.meshgrid(*(np.arange(n) for n in reversed(size)), indexing="ij")
    ijk = np.stack([i, j, k], axis=-1).astype(float)
    d = np.array(image.GetDirection()).reshape(3, 3)
    return np.asarray(image.GetOrigin()) + (ijk * np.asarray(image.GetSpacing())) @ d.T


def write(image: sitk.Image, folder: Path, **kwargs) -> list[Path]:
    kwargs.setdefault("patient_name", "Test^Patient")
    return write_series(image, folder, **kwargs)


def edit(paths, **tags) -> None:
    """Set DICOM keywords in existing files (a value of None deletes the tag)."""
    for p in paths:
        ds = pydicom.dcmread(p)
        for keyword, value in tags.items():
            if value is None:
                if keyword in ds:
                    delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        ds.save_as(p, enforce_file_format=True)


def non_image(path: Path, sop_class: str, modality: str) -> Path:
    """A minimal non-image object (SR, SEG, RTSTRUCT, encapsulated PDF...)."""
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientName = "Test^Patient"
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path
