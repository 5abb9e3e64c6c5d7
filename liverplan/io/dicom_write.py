"""Write a SimpleITK CT volume (HU, LPS mm) as an uncompressed CT Image Storage series.

One file per slice, named like a scanner does (no extension), each written atomically. The slice
geometry comes from the image: ImagePositionPatient is the physical point of voxel (0, 0, k),
ImageOrientationPatient the first two direction columns, so any direction and spacing survive
a round trip through a DICOM reader.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from liverplan import __version__
from liverplan.errors import Cancelled, ExportError
from liverplan.io.atomic import atomic_write, ensure_folder
from liverplan.progress import Steps

RESCALE_INTERCEPT = -1024   # stored value 0 is -1024 HU, so unsigned 16-bit storage covers CT


def _ds(value: float) -> str:
    """A decimal string (DS) of at most 16 characters."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if len(text) <= 16 else f"{value:.9g}"[:16]


def _date(value: _dt.date | str | None) -> str:
    if value is None:
        return _dt.date.today().strftime("%Y%m%d")
    return value.strftime("%Y%m%d") if isinstance(value, _dt.date) else str(value)


def _series_dataset(image: sitk.Image, *, modality, patient_name, patient_id, patient_sex,
                    weight_kg, height_cm, study_uid, series_uid, series_description,
                    study_date, extra_tags) -> Dataset:
    """The tags shared by every slice of the series."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"   # UTF-8: patient names with accents are fine
    ds.SOPClassUID = CTImageStorage
    ds.Modality = modality
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    # type 2 elements (present, empty when unknown) of the CT Image IOD; extra_tags may fill them
    ds.PatientBirthDate = ""
    ds.PatientSex = patient_sex or ""
    ds.PositionReferenceIndicator = ""
    ds.KVP = ""
    ds.AcquisitionNumber = 1                       # the series is one acquisition
    if weight_kg is not None:
        ds.PatientWeight = _ds(weight_kg)           # kg
    if height_cm is not None:
        ds.PatientSize = _ds(height_cm / 100.0)     # DICOM PatientSize is in metres
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = generate_uid()
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = _date(study_date)
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.SeriesDescription = series_description
    ds.Manufacturer = "LiverPlan"
    ds.SoftwareVersions = __version__
    ds.PatientPosition = "HFS"
    ds.BodyPartExamined = "ABDOMEN"

    d = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    sx, sy, sz = image.GetSpacing()
    ds.ImageOrientationPatient = [_ds(v) for v in (*d[:, 0], *d[:, 1])]
    ds.PixelSpacing = [_ds(sy), _ds(sx)]           # (row spacing, column spacing)
    ds.SliceThickness = _ds(sz)
    ds.SpacingBetweenSlices = _ds(sz)
    ds.Rows, ds.Columns = image.GetHeight(), image.GetWidth()
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = RESCALE_INTERCEPT
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    ds.WindowCenter, ds.WindowWidth = 40, 400
    for keyword, value in (extra_tags or {}).items():
        setattr(ds, keyword, value)
    return ds


def write_series(image: sitk.Image, out_dir, *, modality: str = "CT",
                 patient_name: str = "Anonymous", patient_id: str = "000000",
                 patient_sex: str | None = None, weight_kg: float | None = None,
                 height_cm: float | None = None, study_uid: str | None = None,
                 series_uid: str | None = None, series_description: str = "",
                 study_date: _dt.date | str | None = None, extra_tags: dict | None = None,
                 progress=None, cancel=None) -> list[Path]:
    """Write `image` (HU, 3-D) as one DICOM file per slice in `out_dir`; return the paths.

    Slice k of the image (array index [k]) becomes file IMG{k+1:04d} with InstanceNumber k+1.
    HU are stored as unsigned 16-bit with RescaleIntercept -1024 (values outside
    [-1024, 64511] HU are clipped). `extra_tags` maps DICOM keywords to values, e.g.
    {"ContrastBolusAgent": "Iohexol"}. On error or cancel no file of the series is left behind.
    """
    if image.GetDimension() != 3:
        raise ExportError(f"write_series needs a 3-D image, got {image.GetDimension()}-D")
    out_dir = Path(out_dir)
    steps = Steps(progress, cancel)
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    base = _series_dataset(image, modality=modality, patient_name=patient_name,
                           patient_id=patient_id, patient_sex=patient_sex, weight_kg=weight_kg,
                           height_cm=height_cm, study_uid=study_uid, series_uid=series_uid,
                           series_description=series_description, study_date=study_date,
                           extra_tags=extra_tags)
    hu = sitk.GetArrayViewFromImage(image)
    stored = np.clip(np.rint(hu) - RESCALE_INTERCEPT, 0, 65535).astype(np.uint16)
    normal = np.cross(*np.array(image.GetDirection(), dtype=float).reshape(3, 3)[:, :2].T)

    written: list[Path] = []
    try:
        ensure_folder(out_dir)
        n = stored.shape[0]
        for k in range(n):
            steps.report(k / n, f"Writing slice {k + 1} of {n}")
            position = np.array(image.TransformIndexToPhysicalPoint((0, 0, k)))
            ds = base.copy()
            ds.SOPInstanceUID = generate_uid()
            ds.InstanceNumber = k + 1
            ds.ImagePositionPatient = [_ds(v) for v in position]
            ds.SliceLocation = _ds(float(position @ normal))
            ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            path = out_dir / f"IMG{k + 1:04d}"
            with atomic_write(path) as tmp:
                pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
            written.append(path)
        steps.report(1.0, f"Wrote {n} slices")
    except (Cancelled, ExportError):
        for p in written:
            p.unlink(missing_ok=True)
        raise
    return written
