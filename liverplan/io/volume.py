"""One entry point to open an image: a DICOM folder or file, a scanned series, or NIfTI/NRRD/MHA.

`load` checks only what makes a volume wrong (no 3-D grid, unreadable pixels, unsafe geometry).
Whether a volume is enough for planning is a separate check, `require_3d`, so that short series
(e.g. a 3-slice reference for a DICOM SEG) still load for viewing and overlays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import SimpleITK as sitk

from liverplan.errors import InputError
from liverplan.evidence import PLANNING_MIN_EXTENT_MM
from liverplan.io.dicom_load import read_series
from liverplan.io.dicom_scan import ScanResult, SeriesInfo, scan
from liverplan.io.images import SUFFIXES, image_suffix, read_image
from liverplan.progress import Steps


@dataclass(frozen=True)
class Volume:
    image: sitk.Image               # CT in HU, LPS mm
    info: SeriesInfo | None         # None for NIfTI/NRRD/MHA
    warnings: tuple[str, ...]
    source: Path


def load(source, *, series: str | None = None, progress=None, cancel=None) -> Volume:
    """Open `source` as a 3-D volume.

    source: a DICOM folder (searched recursively), one DICOM file (its series is loaded from the
    files beside it), a SeriesInfo from `scan`, or a .nii/.nii.gz/.nrrd/.nhdr/.mha/.mhd file.
    series: key or SeriesInstanceUID of the series to load when a folder holds several.
    """
    steps = Steps(progress, cancel)
    if isinstance(source, SeriesInfo):
        if not source.files:
            raise InputError(f"series {source.key} lists no files; open its DICOM folder again")
        return _load_series(source, Path(source.files[0]).parent, steps)
    path = Path(source)
    if image_suffix(path) is not None:
        return _load_image_file(path)
    found, file = scan_source(path, progress=steps.sub(0.0, 0.3).report, cancel=cancel)
    folder = path if path.is_dir() else path.parent
    info = _choose(found, folder, series, file)
    return _load_series(info, folder, steps.sub(0.3, 1.0))


def scan_source(path: Path, *, progress=None, cancel=None) -> tuple[ScanResult, Path | None]:
    """(the scan of the DICOM folder `path`, None), or for one DICOM file (its series is read
    from the files beside it) (the scan of its folder, the file). A DICOMDIR stands for its
    whole folder."""
    if not path.exists():
        raise InputError("this file or folder does not exist; check the path", path=path)
    file = None if path.is_dir() or path.name.upper() == "DICOMDIR" else path
    try:
        return scan(path if path.is_dir() else path.parent, progress=progress, cancel=cancel), file
    except InputError:
        if file is None:
            raise
        raise InputError("cannot load this file: it is neither a DICOM image nor a volume file "
                         f"({', '.join(SUFFIXES)})", path=file) from None


def _load_series(info: SeriesInfo, source: Path, steps: Steps) -> Volume:
    image, warnings = read_series(info, progress=steps.report, cancel=steps.cancel)
    return Volume(image, info, tuple(info.warnings) + tuple(warnings), source)


def _choose(found: ScanResult, folder: Path, series: str | None, file: Path | None) -> SeriesInfo:
    if file is not None and series is None:
        own = found.of_file(file)
        if not own.series:
            why = own.skipped[0].reason if own.skipped else "it is not part of any image series"
            raise InputError(f"cannot load this file: {why}", path=file)
        return own.series[0]
    if series is not None:
        match = [s for s in found.series if series in (s.key, s.series_instance_uid)]
        if len(match) == 1:
            return match[0]
        problem = (f"series {series!r} is not in this folder" if not match else
                   f"series {series!r} was split into {len(match)} stacks; choose one by key")
        raise InputError(f"{problem}. Series found:\n{describe_series(found.series)}",
                         path=folder)
    if len(found.series) == 1:
        return found.series[0]
    raise InputError(f"this folder holds {len(found.series)} image series; choose one "
                     f"(series=<key>):\n{describe_series(found.series)}", path=folder)


def describe_series(series: list[SeriesInfo]) -> str:
    return "\n".join(f"  {s.key}  {s.modality} {s.study_date} {s.description or '(no description)'}"
                     f"  {s.n_images} images {s.columns}x{s.rows}" for s in series)


def _load_image_file(path: Path) -> Volume:
    image = read_image(path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("this is a colour or vector image, not a CT volume", path=path)
    if image.GetDimension() != 3 or image.GetSize()[2] < 2:
        raise InputError(f"this is a {image.GetDimension()}-D image of size {image.GetSize()}, "
                         "not a 3-D volume; open the whole CT series", path=path)
    return Volume(image, None, (), path)


def require_3d(volume: Volume) -> None:
    """Refuse a volume too short to hold a whole liver (planning and volumetry call this)."""
    size, spacing = volume.image.GetSize(), volume.image.GetSpacing()
    extent = (size[2] - 1) * spacing[2]
    limit = float(PLANNING_MIN_EXTENT_MM)
    if extent < limit:
        raise InputError(f"the volume covers only {extent:.0f} mm along its slice axis "
                         f"({size[2]} slices); planning needs at least {limit:.0f} mm to hold a "
                         "whole liver (an adult liver spans 10-17 cm). Load the complete "
                         "abdominal series", path=volume.source)
