"""Save and open a case: a `NAME.liverplan` folder that survives a crash at any moment.

Layout:
    case.json                     schema_version, source, series, view settings, file names,
                                  patient, plans and segment corrections
    image-<digest>.mha            the CT (HU, LPS), written once and reused while unchanged
    <label>-<digest>.nii.gz       each label image of the Case

Data files are named by a digest of their content, so a save only writes what changed and never
overwrites a file that the current case.json points to; case.json is replaced atomically last,
then files it no longer names are removed. A reader therefore always sees a complete case.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from liverplan import __version__
from liverplan.case import LABEL_NAMES, Case
from liverplan.errors import InputError, LiverPlanError
from liverplan.geometry import same_grid
from liverplan.io.atomic import atomic_write, ensure_folder
from liverplan.io.dicom_scan import SeriesInfo
from liverplan.io.images import read_image, write_image
from liverplan.progress import Steps

SCHEMA_VERSION = 1
CASE_SUFFIX = ".liverplan"
MANIFEST = "case.json"


def case_path(path: str | Path) -> Path:
    """`path` with the case-folder suffix added if it is missing."""
    path = Path(path)
    return path if path.name.endswith(CASE_SUFFIX) else path.with_name(path.name + CASE_SUFFIX)


def is_case(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def image_digest(image: sitk.Image) -> str:
    """Digest of an image's voxels, pixel type and geometry (same digest = same image)."""
    h = hashlib.sha1()
    h.update(repr((image.GetSize(), image.GetOrigin(), image.GetSpacing(), image.GetDirection(),
                   image.GetPixelIDTypeAsString())).encode())
    h.update(np.ascontiguousarray(sitk.GetArrayViewFromImage(image)).data)
    return h.hexdigest()[:16]


def save_case(case: Case, path: str | Path, *, source: str | None = None,
              view: dict | None = None, progress=None, cancel=None) -> Path:
    """Write `case` (image, label images, series information) and view settings to a folder."""
    steps = Steps(progress, cancel)
    folder = ensure_folder(case_path(path))
    items = [("image", case.image, ".mha")] + [
        (name, case.labels[name], ".nii.gz") for name in LABEL_NAMES if name in case.labels]
    files = {}
    for n, (name, image, suffix) in enumerate(items):
        steps.report(n / len(items), f"Saving {name}")
        files[name] = f"{name}-{image_digest(image)}{suffix}"
        if not (folder / files[name]).is_file():
            write_image(image, folder / files[name])
    steps.report(0.95, "Saving the case description")
    info = case.info.to_dict() if hasattr(case.info, "to_dict") else None
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "written_by": f"liverplan {__version__}",
        "source": source,
        "series": info,
        "image": files.pop("image"),
        "labels": files,
        "warnings": list(case.warnings),
        "patient": case.patient.to_dict() if case.patient is not None else None,
        "plans": [p.to_dict() for p in case.plans],
        "segment_edits": case.segment_edits.to_dict() if case.segment_edits else None,
        "segments_method": case.segments_method,
        "view": view or {},
    }
    with atomic_write(folder / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))
    keep = {manifest["image"], *files.values(), MANIFEST}
    for old in folder.iterdir():
        if old.is_file() and old.name not in keep and not old.name.startswith("."):
            old.unlink()
    steps.report(1.0, "Case saved")
    return folder


def read_manifest(path: str | Path) -> dict:
    folder = Path(path)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise InputError("this folder is not a saved LiverPlan case (no case.json)", path=folder)
    except (OSError, ValueError) as exc:
        raise InputError(f"the case description cannot be read ({exc}); the case is damaged",
                         path=folder / MANIFEST) from exc
    version = manifest.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise InputError(f"this case was saved by a newer LiverPlan (schema {version}); "
                         "update LiverPlan to open it", path=folder)
    return manifest


def open_case(path: str | Path, *, progress=None, cancel=None) -> tuple[Case, dict]:
    """A saved case and its manifest (source, view settings)."""
    steps = Steps(progress, cancel)
    folder = Path(path)
    manifest = read_manifest(folder)
    steps.report(0.0, "Reading the image")
    image = read_image(folder / manifest["image"])
    info = SeriesInfo.from_dict(manifest["series"]) if manifest.get("series") else None
    case = Case(image=image, info=info, warnings=list(manifest.get("warnings", [])))
    labels = manifest.get("labels", {})
    for n, (name, file) in enumerate(labels.items()):
        steps.report(0.5 + 0.5 * n / len(labels), f"Reading {name}")
        if name not in LABEL_NAMES:
            raise InputError(f"unknown label image {name!r} in the case description; the case "
                             "is damaged or from another program", path=folder / MANIFEST)
        mask = read_image(folder / file)
        if not same_grid(mask, image):
            raise InputError(f"the {name} label image does not lie on the case image's grid; "
                             "the case is damaged", path=folder / file)
        case.labels[name] = mask
    _read_plans(case, manifest, folder)
    _read_segment_edits(case, manifest, folder)
    steps.report(1.0, "Case opened")
    return case, manifest


def _read_plans(case: Case, manifest: dict, folder: Path) -> None:
    # Imported here: the planner builds on io, not the other way round.
    from liverplan.planner.patient import Patient
    from liverplan.planner.planfile import PlanFile
    try:
        if manifest.get("patient"):
            case.patient = Patient.from_dict(manifest["patient"])
        case.plans = [PlanFile.from_dict(p) for p in manifest.get("plans", [])]
    except (KeyError, TypeError, ValueError, LiverPlanError) as exc:
        raise InputError(f"the patient data or plans in the case description cannot be read "
                         f"({exc}); the case is damaged", path=folder / MANIFEST) from exc


def _read_segment_edits(case: Case, manifest: dict, folder: Path) -> None:
    from liverplan.volumetry.segments import SegmentEdits     # volumetry builds on io
    try:
        if manifest.get("segment_edits"):
            case.segment_edits = SegmentEdits.from_dict(manifest["segment_edits"])
        method = manifest.get("segments_method")
        if method is not None and not isinstance(method, str):
            raise TypeError(f"the segments' method is {method!r}, not a text")
        case.segments_method = method
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"the segment corrections (landmarks, branch assignments) in the case "
                         f"description cannot be read ({exc}); the case is damaged",
                         path=folder / MANIFEST) from exc
