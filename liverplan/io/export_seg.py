"""DICOM Segmentation (SEG) of the liver, lesions, vessels and Couinaud segments, with highdicom.

The SEG references the source CT series (same study, same frame of reference) and has one frame
per source slice that holds a segment, so a PACS viewer lays it over the CT slice by slice.
Segments overlap (the liver contains its lesions, vessels and segments), hence BINARY type.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from liverplan import __version__
from liverplan.case import LIVER, SEGMENTS, TUMORS, VESSELS
from liverplan.errors import ExportError
from liverplan.geometry import same_grid
from liverplan.io.atomic import write_dicom
from liverplan.progress import Steps

_ANATOMY = codes.SCT.AnatomicalStructure
_ABNORMAL = codes.SCT.MorphologicallyAbnormalStructure
_COUINAUD = (codes.SCT.CouinaudHepaticSegmentI, codes.SCT.CouinaudHepaticSegmentII,
             codes.SCT.CouinaudHepaticSegmentIII, codes.SCT.CouinaudHepaticSegmentIV,
             codes.SCT.CouinaudHepaticSegmentV, codes.SCT.CouinaudHepaticSegmentVI,
             codes.SCT.CouinaudHepaticSegmentVII, codes.SCT.CouinaudHepaticSegmentVIII)
# Label value 2 of the vessel map holds the hepatic veins together with the IVC; SNOMED has no
# single concept for both, so it is coded as hepatic vein and the label says what it contains.
PORTAL_VEIN_LABEL = "Portal vein"
HEPATIC_VEINS_LABEL = "Hepatic veins and IVC"
LIVER_LABEL = "Liver"
# One colour per kind of structure, shared by the SEG, the 3D models and the report pictures.
STRUCTURE_RGB = {"liver": (200, 120, 90), "lesion": (240, 220, 40), "portal": (190, 60, 200),
                 "hepatic": (60, 100, 230), "remnant": (80, 190, 110), "resected": (225, 70, 60),
                 "cut": (255, 255, 255)}
# Distinct, print-safe colours for Couinaud segments 1-8.
_SEGMENT_RGB = ((141, 211, 199), (255, 255, 179), (190, 186, 218), (251, 128, 114),
                (128, 177, 211), (253, 180, 98), (179, 222, 105), (252, 205, 229))


def lesion_label(lesion_id: int) -> str:
    return f"Lesion {lesion_id}"


def segment_label(couinaud: int) -> str:
    return f"Segment {couinaud}"


def segment_colour(couinaud: int) -> tuple[int, int, int]:
    return _SEGMENT_RGB[couinaud - 1]


@dataclass(frozen=True)
class SegmentSpec:
    """One SEG segment: a name a radiologist reads, its codes and its display colour (RGB)."""
    label: str
    category: Code
    property_type: Code
    rgb: tuple[int, int, int]
    anatomic_region: Code | None = None


def segment_specs(labels: Mapping[str, sitk.Image]) -> list[tuple[SegmentSpec, np.ndarray]]:
    """Segments (with their boolean (z, y, x) masks) present in a Case's label images."""
    out: list[tuple[SegmentSpec, np.ndarray]] = []

    def view(name):
        image = labels.get(name)
        return None if image is None else sitk.GetArrayViewFromImage(image)

    liver = view(LIVER)
    if liver is not None and liver.any():
        out.append((SegmentSpec(LIVER_LABEL, _ANATOMY, codes.SCT.Liver, STRUCTURE_RGB["liver"]),
                    liver != 0))
    tumors = view(TUMORS)
    if tumors is not None:
        for lesion_id in np.unique(tumors[tumors > 0]):
            out.append((SegmentSpec(lesion_label(int(lesion_id)), _ABNORMAL, codes.SCT.Neoplasm,
                                    STRUCTURE_RGB["lesion"], anatomic_region=codes.SCT.Liver),
                        tumors == lesion_id))
    vessels = view(VESSELS)
    if vessels is not None:
        for value, label, code, kind in ((1, PORTAL_VEIN_LABEL, codes.SCT.PortalVein, "portal"),
                                         (2, HEPATIC_VEINS_LABEL, codes.SCT.HepaticVein, "hepatic")):
            if (vessels == value).any():
                out.append((SegmentSpec(label, _ANATOMY, code, STRUCTURE_RGB[kind]),
                            vessels == value))
    segments = view(SEGMENTS)
    if segments is not None:
        for n in range(1, 9):
            if (segments == n).any():
                out.append((SegmentSpec(segment_label(n), _ANATOMY, _COUINAUD[n - 1],
                                        segment_colour(n)), segments == n))
    return out



# Type 2 patient/study attributes (present, may be empty) that highdicom copies into derived
# objects; scanners and anonymisers sometimes drop them, so they are added empty when missing.
_TYPE2_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                   "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName")


_IDENTIFYING_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
NO_FRAME_OF_REFERENCE = (
    "The source CT has no Frame of Reference UID (often removed by anonymisation); the DICOM SEG "
    "uses one derived from the series UID and is tied to the CT by its referenced slices.")


def derived_frame_of_reference(ds: pydicom.Dataset) -> str:
    """The same Frame of Reference UID for every export of a series that lacks one."""
    return pydicom.uid.generate_uid(entropy_srcs=["liverplan-frame-of-reference",
                                                  str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)])


def read_source_series(files: Sequence[str | Path]) -> list[pydicom.Dataset]:
    """The source slices as pydicom datasets (with pixel data: highdicom checks the frames).

    A SEG needs a Frame of Reference; a series without one (see NO_FRAME_OF_REFERENCE) gets a
    derived one in memory, the files are not changed.
    """
    datasets = []
    for f in files:
        try:
            ds = pydicom.dcmread(f)
            for keyword in _TYPE2_KEYWORDS:
                if keyword not in ds:
                    setattr(ds, keyword, "")
            # Some writers leave the SOP class/instance empty in the data set; the file meta
            # information of the same file names them.
            meta = getattr(ds, "file_meta", None)
            for keyword, meta_keyword in (("SOPClassUID", "MediaStorageSOPClassUID"),
                                          ("SOPInstanceUID", "MediaStorageSOPInstanceUID")):
                if not ds.get(keyword) and meta is not None and meta.get(meta_keyword):
                    setattr(ds, keyword, meta.get(meta_keyword))
            missing = [k for k in _IDENTIFYING_UIDS if not ds.get(k)]
            if missing:
                raise ExportError(f"this CT slice has no {', '.join(missing)} (removed by an "
                                  "anonymiser?); a DICOM SEG must reference them, so none can be "
                                  "made for this series. Export the models and the report instead.",
                                  path=f)
            if "FrameOfReferenceUID" not in ds:
                ds.FrameOfReferenceUID = derived_frame_of_reference(ds)
                ds.PositionReferenceIndicator = ""
            datasets.append(ds)
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            raise ExportError(f"cannot read this slice of the source series ({exc}); the SEG "
                              "must reference the original CT files, so keep them in place",
                              path=f) from exc
    return datasets


def _slices_in_mask_order(reference: sitk.Image, datasets: list[pydicom.Dataset]) -> list[pydicom.Dataset]:
    """The source slice for each z index of the mask grid, matched by ImagePositionPatient.

    A mask that is not on the source series' grid would be drawn on the wrong slices: refuse it.
    """
    by_position = {}
    for ds in datasets:
        if "ImagePositionPatient" not in ds:
            raise ExportError("a source slice has no ImagePositionPatient; a SEG cannot be placed "
                              "on it", path=getattr(ds, "filename", None))
        by_position[tuple(np.round(np.asarray(ds.ImagePositionPatient, float), 2))] = ds
    ordered = []
    tol = 0.01 + 0.05 * min(reference.GetSpacing())
    keys = np.array(list(by_position))
    values = list(by_position.values())
    for k in range(reference.GetSize()[2]):
        p = np.asarray(reference.TransformIndexToPhysicalPoint((0, 0, k)))
        d = np.linalg.norm(keys - p, axis=1)
        if d.min() > tol:
            raise ExportError(f"the segmentation does not lie on the source series (no slice at "
                              f"{p.round(2).tolist()} mm); segment the series you export against")
        ordered.append(values[int(d.argmin())])
    first = ordered[0]
    if (first.Rows, first.Columns) != (reference.GetSize()[1], reference.GetSize()[0]):
        raise ExportError("the segmentation's in-plane size differs from the source series")
    return ordered


def build_seg(labels: Mapping[str, sitk.Image], source_files: Sequence[str | Path], *,
              series_description: str = "LiverPlan segmentation", series_number: int = 900,
              progress=None, cancel=None) -> hd.seg.Segmentation:
    """The Case's label images as one DICOM SEG dataset referencing the source CT slices.

    `labels` maps Case label names (liver, tumors, vessels, segments) to masks on the CT grid;
    `source_files` are the CT slice files the masks were made on.
    """
    steps = Steps(progress, cancel)
    masks = {k: v for k, v in labels.items() if v is not None}
    if not masks:
        raise ExportError("there is no segmentation to export; segment the liver first")
    reference = next(iter(masks.values()))
    for name, mask in masks.items():
        if not same_grid(mask, reference):
            raise ExportError(f"the {name} mask is not on the same grid as the other masks")
    specs = segment_specs(masks)
    if not specs:
        raise ExportError("every segmentation is empty; there is nothing to export")
    steps.report(0.05, "Reading the source series")
    sources = _slices_in_mask_order(reference, read_source_series(source_files))
    steps.report(0.3, "Building the DICOM segmentation")
    pixels = np.stack([m for _, m in specs], axis=-1)   # (slices, rows, columns, segments)
    algorithm = hd.AlgorithmIdentificationSequence(
        name="LiverPlan", family=codes.cid7162.MorphologicalOperations, version=__version__)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=i + 1, segment_label=spec.label,
            segmented_property_category=spec.category, segmented_property_type=spec.property_type,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
            algorithm_identification=algorithm,
            anatomic_regions=[spec.anatomic_region] if spec.anatomic_region else None,
            display_color=hd.color.CIELabColor.from_rgb(*spec.rgb))
        for i, (spec, _) in enumerate(specs)]
    try:
        seg = hd.seg.Segmentation(
            source_images=sources, pixel_array=pixels,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=hd.UID(), series_number=series_number,
            sop_instance_uid=hd.UID(), instance_number=1,
            manufacturer="LiverPlan", manufacturer_model_name="LiverPlan",
            software_versions=__version__, device_serial_number="0",
            series_description=series_description,
            content_label="LIVERPLAN", content_description="Liver, lesions, vessels, segments")
    except (ValueError, TypeError) as exc:
        raise ExportError(f"the segmentation cannot be written as DICOM SEG: {exc}") from exc
    steps.report(1.0, "DICOM segmentation built")
    return seg


def write_seg(labels: Mapping[str, sitk.Image], source_files: Sequence[str | Path],
              out_path: str | Path, **kwargs) -> Path:
    """`build_seg` written atomically to `out_path`."""
    return write_dicom(build_seg(labels, source_files, **kwargs), out_path)
