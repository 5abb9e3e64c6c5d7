"""Find the DICOM image series in a folder, reading headers only.

Files of any name are tried (no extension, DICOMDIR or not). Images are grouped by
SeriesInstanceUID; a UID that mixes orientations or matrix sizes, or that holds several
acquisitions at the same positions (MR echoes, dynamic phases, repeated scans), is split into
one series per stack. Each frame of an enhanced (multi-frame) image counts as a slice. Everything
that is not an image slice is listed as skipped with its kind.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from liverplan.errors import InputError
from liverplan.io import dicom_multiframe as multiframe
from liverplan.io.dicom_header import Header, pixels_complete
from liverplan.io.slice_geometry import analyse
from liverplan.progress import Steps

# Uncompressed little-endian transfer syntaxes whose pixel bytes the loader may read directly.
_NATIVE_LE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}

# Series description words that name the contrast phase (checked in this order).
_PHASES = (
    ("arterial", r"\b(arterial|art|hap|arteriell)\b"),
    ("portal venous", r"\b(portal|pv|pvp|venous|venos|portalvenous)\b"),
    ("delayed", r"\b(delayed|late|equilibrium|spät)\b"),
    ("non-contrast", r"\b(native|nativ|non[- ]?contrast|unenhanced|plain|nc|sans)\b"),
)


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str
    kind: str = ""    # e.g. "Segmentation Storage", "not DICOM", "unreadable"


@dataclass(frozen=True)
class SeriesInfo:
    key: str                          # unique per series: the UID, plus ":<split>" if split
    series_instance_uid: str
    study_instance_uid: str
    frame_of_reference_uid: str
    patient_name: str
    patient_id: str
    patient_sex: str
    study_date: str                   # YYYYMMDD as in the file
    modality: str
    description: str
    n_images: int
    rows: int
    columns: int
    pixel_spacing_mm: tuple[float, float]     # (between rows, between columns)
    slice_spacing_mm: float | None            # regular step along the slice normal
    phase_hint: str | None
    weight_kg: float | None
    height_cm: float | None
    files: tuple[str, ...]                    # in slice order (along the slice normal)
    warnings: tuple[str, ...] = ()
    # Geometry and pixel format of each file, in the order of `files`, for the loader.
    orientation: tuple[float, ...] = ()       # ImageOrientationPatient
    positions_mm: tuple[tuple[float, float, float], ...] = ()
    rescale: tuple[tuple[float, float], ...] = ()   # (slope, intercept) per file
    raw_dtype: str | None = None   # "<i2"/"<u2" when the pixels may be read directly
    bits_stored: int = 16
    frames: tuple[int, ...] = ()   # frame of each file to use, when multi-frame files are in it

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SeriesInfo":
        tuples = {"pixel_spacing_mm", "files", "warnings", "orientation", "frames"}
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        for name in tuples & values.keys():
            values[name] = tuple(values[name])
        for name in ("positions_mm", "rescale"):
            if name in values:
                values[name] = tuple(tuple(v) for v in values[name])
        return cls(**values)


@dataclass(frozen=True)
class ScanResult:
    series: list[SeriesInfo]
    skipped: list[SkippedFile]
    warnings: list[str]

    def to_dict(self) -> dict:
        return {"series": [s.to_dict() for s in self.series],
                "skipped": [asdict(s) for s in self.skipped], "warnings": list(self.warnings)}

    def of_file(self, file: str | Path) -> "ScanResult":
        """The series that `file` belongs to (a folder's scan: one file stands for its series),
        or the reason it was skipped."""
        return ScanResult([s for s in self.series if str(file) in s.files],
                          [k for k in self.skipped if Path(k.path) == Path(file)],
                          list(self.warnings))


@dataclass
class _Slice:
    """What the grouping needs from one image file."""
    path: str
    group: str              # SeriesInstanceUID (or a stand-in when it is missing)
    sop_uid: str
    geometry_key: tuple     # orientation, matrix, pixel spacing: must agree within a series
    orientation: tuple
    spacing: tuple          # PixelSpacing (between rows, between columns)
    position: tuple
    rescale: tuple
    splitters: dict         # EchoNumbers etc.: tell acquisitions at the same positions apart
    raw_dtype: str | None
    bits_stored: int
    frame: int | None = None   # frame number in a multi-frame file


def _sop_class(ds) -> str:
    return Header(ds).text("SOPClassUID") or str(ds.file_meta.get("MediaStorageSOPClassUID", ""))


def _is_image_class(ds) -> bool:
    """False for SOP classes known to hold no image slices (SR, SEG, RTSTRUCT, PDF, ...)."""
    sop = _sop_class(ds)
    name = UID(sop).name
    return not sop or name == sop or "Image" in name   # unknown classes are tried as images


def _not_image(path: str, ds, reason: str) -> SkippedFile:
    """A skipped file named by its kind (SOP class, e.g. "Segmentation Storage")."""
    sop = _sop_class(ds)
    kind = UID(sop).name if sop else str(ds.get("Modality") or "unknown object")
    return SkippedFile(path, f"{kind}: {reason}", kind)


def _float(value, default=None):
    try:
        return float(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _read_header(path: str):
    """(dataset, None) or (None, SkippedFile)."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        return None, SkippedFile(path, "not a DICOM file", "not DICOM")
    except Exception as exc:   # pydicom raises many types on damaged files
        return None, SkippedFile(path, f"unreadable DICOM header ({exc})", "unreadable")
    return ds, None


def _geometry_key(iop, rows: int, cols: int, spacing) -> tuple:
    return (tuple(round(v, 3) for v in iop), rows, cols, tuple(round(v, 4) for v in spacing))


def _slices(path: str, ds) -> tuple[list[_Slice], SkippedFile | None]:
    """The image slices in a file (one, or one per frame), or the reason it holds none."""
    if "DirectoryRecordSequence" in ds:
        return [], SkippedFile(path, "DICOMDIR index (the files it lists are scanned directly)",
                               "DICOMDIR")
    if not _is_image_class(ds):
        return [], _not_image(path, ds, "not an image (a non-image object); skipped")
    h = Header(ds)
    rows, cols = h.ushort("Rows", 0), h.ushort("Columns", 0)
    if not rows or not cols:   # an image class without its image tags: a cut-off header
        return [], SkippedFile(path, f"unreadable: {_not_image(path, ds, '').kind} header is "
                               "incomplete (file damaged or truncated)", "unreadable")
    bits = h.ushort("BitsAllocated", 16)
    bits_stored, samples = h.ushort("BitsStored", bits), h.ushort("SamplesPerPixel", 1)
    try:
        n_frames = int((h.numbers("NumberOfFrames") or (1,))[0])
    except ValueError:
        n_frames = 1
    nbytes = rows * cols * max(bits, 8) // 8 * samples
    native = str(ds.file_meta.get("TransferSyntaxUID", "")) in _NATIVE_LE
    if native and not pixels_complete(path, nbytes * n_frames):
        return [], SkippedFile(path, f"truncated file: its {rows}x{cols} pixel data is "
                               "incomplete", "truncated")
    uid, sop = h.text("SeriesInstanceUID"), h.text("SOPInstanceUID")
    if n_frames > 1:
        try:
            per_frame = multiframe.frames(ds)
        except (ValueError, TypeError, AttributeError) as exc:
            return [], _not_image(path, ds, f"multi-frame image whose frames cannot be placed "
                                  f"in 3-D ({exc})")
        return [_Slice(path, uid, f"{sop}#{k}", _geometry_key(f.orientation, rows, cols, f.spacing),
                       f.orientation, f.spacing, f.position, f.rescale, f.splitters, None,
                       bits_stored, frame=k) for k, f in enumerate(per_frame)], None
    try:
        iop, ipp = h.numbers("ImageOrientationPatient"), h.numbers("ImagePositionPatient")
        spacing = h.numbers("PixelSpacing")
    except ValueError:
        iop = ()
    if len(iop) != 6 or len(ipp) != 3 or len(spacing) != 2 or min(spacing) <= 0:
        return [], _not_image(path, ds, "image without valid patient position, orientation or "
                              "pixel spacing; it cannot be placed in 3-D")
    raw = None
    if native and bits == 16 and samples == 1 and h.text("PhotometricInterpretation") == \
            "MONOCHROME2":
        raw = "<i2" if h.ushort("PixelRepresentation", 0) else "<u2"
        if raw == "<i2" and bits_stored != 16:
            raw = None   # sign extension of short signed values: left to the general reader
    splitters = {k: h.text(k) for k in ("EchoNumbers", "TemporalPositionIdentifier",
                                        "TriggerTime", "AcquisitionNumber")}
    rescale = (_float(h.text("RescaleSlope"), 1.0), _float(h.text("RescaleIntercept"), 0.0))
    return [_Slice(path, uid, sop, _geometry_key(iop, rows, cols, spacing), iop, spacing, ipp,
                   rescale, {k: v for k, v in splitters.items() if v}, raw, bits_stored)], None


def _files(root: Path, skipped: list[SkippedFile]) -> list[str]:
    if root.is_file():
        return [str(root)]
    out = []

    def unreadable(exc: OSError) -> None:
        skipped.append(SkippedFile(str(exc.filename), f"folder not readable ({exc.strerror})",
                                   "unreadable"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames.sort()
        out.extend(os.path.join(dirpath, f) for f in sorted(filenames))
    return out


def scan(path, *, progress=None, cancel=None) -> ScanResult:
    """All image series under `path` (a folder, searched recursively, or one file)."""
    root = Path(path)
    if not root.exists():
        raise InputError("this file or folder does not exist; check the path", path=root)
    steps = Steps(progress, cancel)
    slices: list[_Slice] = []
    skipped: list[SkippedFile] = []
    files = _files(root, skipped)
    headers: dict[str, object] = {}    # first header of each UID group, for series-level tags
    for i, f in enumerate(files):
        if i % 32 == 0:
            steps.report(i / max(len(files), 1), f"Reading DICOM headers ({i}/{len(files)})")
        ds, skip = _read_header(f)
        if ds is not None:
            found, skip = _slices(f, ds)
            for s in found:
                s.group = s.group or _standin_uid(ds)
                headers.setdefault(s.group, ds)
            slices.extend(found)
        if skip is not None:
            skipped.append(skip)
    warnings = [f"Files without a SeriesInstanceUID were grouped by study, frame of reference, "
                f"series number and description as {g}" for g in headers if g.startswith("no-uid-")]
    series = []
    for group in _group(slices, warnings):
        series.append(_series_info(group.key, group.slices, headers[group.slices[0].group]))
    steps.report(1.0, f"Found {len(series)} series")
    if not series:
        kinds = sorted({s.kind for s in skipped})
        found = f" (found only: {', '.join(kinds)})" if kinds else " (the folder is empty)"
        raise InputError(f"no DICOM image series found{found}; choose the folder that holds the "
                         "CT images", path=root)
    series.sort(key=lambda s: (s.study_date, s.key))
    return ScanResult(series, skipped, warnings)


def _standin_uid(ds) -> str:
    """A stable group key for files whose SeriesInstanceUID is empty (over-anonymised)."""
    parts = [str(ds.get(k, "")) for k in ("StudyInstanceUID", "FrameOfReferenceUID",
                                          "SeriesNumber", "SeriesDescription", "Modality")]
    return "no-uid-" + hashlib.sha1("|".join(parts).encode()).hexdigest()[:10]


@dataclass
class _Group:
    key: str
    slices: list[_Slice]


def _group(slices: list[_Slice], warnings: list[str]) -> list[_Group]:
    by_uid: dict[str, list[_Slice]] = defaultdict(list)
    for s in slices:
        by_uid[s.group].append(s)
    out = []
    for uid, members in by_uid.items():
        by_geometry: dict[tuple, list[_Slice]] = defaultdict(list)
        for s in members:
            by_geometry[s.geometry_key].append(s)
        parts = sorted(by_geometry.values(), key=len, reverse=True)
        if len(parts) > 1:
            warnings.append(f"Series {uid} mixes {len(parts)} orientations or matrix sizes; "
                            "split into one series per stack")
        for p, part in enumerate(parts, 1):
            key = uid if len(parts) == 1 else f"{uid}:part-{p}"
            out.extend(_split_acquisitions(key, _unique_instances(part, key, warnings), warnings))
    return out


def _unique_instances(part: list[_Slice], key: str, warnings: list[str]) -> list[_Slice]:
    """Drop copies of the same instance (same SOPInstanceUID found twice)."""
    seen, out = set(), []
    for s in part:
        if s.sop_uid and s.sop_uid in seen:
            warnings.append(f"Series {key}: {s.path} is a second copy of an image already "
                            "found; ignored")
            continue
        seen.add(s.sop_uid)
        out.append(s)
    return out


def _position_key(s: _Slice) -> tuple:
    return tuple(round(v, 2) for v in s.position)


def _split_acquisitions(key: str, part: list[_Slice], warnings: list[str]) -> list[_Group]:
    """Split only when positions repeat: that is when one UID holds several acquisitions."""
    if len({_position_key(s) for s in part}) == len(part):
        return [_Group(key, part)]
    for attr, label in (("EchoNumbers", "echo"), ("TemporalPositionIdentifier", "phase"),
                        ("TriggerTime", "trigger"), ("AcquisitionNumber", "acq"),
                        ("StackID", "stack")):
        values: dict[str, list[_Slice]] = defaultdict(list)
        for s in part:
            values[s.splitters.get(attr, "")].append(s)
        if len(values) > 1 and all(len({_position_key(s) for s in v}) == len(v)
                                   for v in values.values()):
            warnings.append(f"Series {key} holds {len(values)} acquisitions at the same "
                            f"positions; split by {attr}")
            return [_Group(f"{key}:{label}-{v or 'none'}", members)
                    for v, members in sorted(values.items(), key=lambda kv: _natural(kv[0]))]
    return [_Group(key, part)]   # the geometry check reports the repeated positions


def _natural(text: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def phase_hint(description: str, contrast_agent: str) -> str | None:
    text = description.lower()
    for phase, pattern in _PHASES:
        if re.search(pattern, text):
            return phase
    return "contrast (phase not named)" if contrast_agent.strip() else None


def _person_name(value) -> str:
    if not value:
        return ""
    family, given = value.family_name.strip(), value.given_name.strip()
    if family and given:
        return f"{family}, {given}"
    return family or given or str(value).replace("^", " ").strip()


def _series_info(key: str, members: list[_Slice], ds) -> SeriesInfo:
    first = members[0]
    orientation, spacing, (rows, cols) = first.orientation, first.spacing, first.geometry_key[1:3]
    geo = analyse(orientation, [s.position for s in members], spacing)
    members = [members[i] for i in geo.order]
    warnings = []
    if len(members) == 1:
        warnings.append("single image: a 3-D volume needs a series of slices")
    if geo.duplicates:
        warnings.append(f"{geo.duplicates} image(s) share a position with another image and "
                        "nothing tells them apart (echo, phase, acquisition)")
    warnings.extend(g.describe() for g in geo.gaps)
    if not geo.collinear:
        warnings.append("slice positions do not lie on one straight line: not a single stack")
    elif geo.tilt_deg:
        warnings.append(f"gantry tilt of {geo.tilt_deg:.1f} degrees (slices sheared along the "
                        "stack)")
    weight = _float(ds.get("PatientWeight"))
    size_m = _float(ds.get("PatientSize"))
    height = None
    if size_m:
        if 0.3 <= size_m <= 2.5:
            height = round(size_m * 100.0, 1)
        else:
            warnings.append(f"PatientSize {size_m} is not a height in metres; height ignored")
    description = str(ds.get("SeriesDescription", "") or "")
    raw = {s.raw_dtype for s in members}
    return SeriesInfo(
        key=key, series_instance_uid=str(ds.get("SeriesInstanceUID", "") or ""),
        study_instance_uid=str(ds.get("StudyInstanceUID", "") or ""),
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "") or ""),
        patient_name=_person_name(ds.get("PatientName")),
        patient_id=str(ds.get("PatientID", "") or ""),
        patient_sex=str(ds.get("PatientSex", "") or ""),
        study_date=str(ds.get("StudyDate", "") or ""), modality=str(ds.get("Modality", "") or ""),
        description=description, n_images=len(members), rows=rows, columns=cols,
        pixel_spacing_mm=spacing, slice_spacing_mm=geo.step_mm,
        phase_hint=phase_hint(description, str(ds.get("ContrastBolusAgent", "") or "")),
        weight_kg=weight if weight and weight > 0 else None, height_cm=height,
        files=tuple(s.path for s in members), warnings=tuple(warnings),
        orientation=orientation,
        positions_mm=tuple(s.position for s in members),
        rescale=tuple(s.rescale for s in members),
        raw_dtype=raw.pop() if len(raw) == 1 else None,
        bits_stored=min(s.bits_stored for s in members),
        frames=tuple(s.frame or 0 for s in members)
        if any(s.frame is not None for s in members) else ())
