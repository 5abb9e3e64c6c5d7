"""Build one scanned DICOM series into a SimpleITK volume: HU for CT, exact LPS geometry.

Pixels are read once per file: uncompressed little-endian 16-bit files straight from disk (the
pixel data element is the last one in the file, which is checked byte by byte), everything else
(JPEG 2000, JPEG lossless, JPEG-LS, RLE, big endian, 8/32-bit) through SimpleITK's GDCM reader on
our own sorted file list, and frames of enhanced multi-frame files through pydicom. Geometry
never comes from a reader: origin, spacing and direction are set from the slice positions and
orientation found by the scan. Missing slices are filled by linear
interpolation onto a regular grid (with a warning naming each gap), gantry tilt is resampled onto
an untilted grid; anything else irregular is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from liverplan.errors import Cancelled, InputError
from liverplan.evidence import MAX_INTERPOLATED_GAP_MM
from liverplan.io.dicom_multiframe import read_frames
from liverplan.io.dicom_header import pixel_data_at_end
from liverplan.io.dicom_scan import SeriesInfo
from liverplan.io.slice_geometry import SliceGeometry, analyse
from liverplan.progress import Steps, check_cancel

# Below this no voxel of a body CT is air: the values are probably not HU (rescale missing).
_AIR_HU = -500


def read_series(info: SeriesInfo, *, progress=None, cancel=None) -> tuple[sitk.Image, list[str]]:
    """The series as a 3-D image on a regular LPS grid, and what the loader had to do to it."""
    where = Path(info.files[0]).parent if info.files else None
    if info.n_images < 2:
        raise InputError(f"series {info.key} has a single image: a 3-D volume needs a series of "
                         "slices; choose the axial CT series", path=where)
    if len(info.orientation) != 6 or len(info.positions_mm) != info.n_images:
        raise InputError(f"series {info.key}: the slice positions are not known (a saved series "
                         "description without geometry); open the DICOM folder again", path=where)
    geo = analyse(info.orientation, info.positions_mm, info.pixel_spacing_mm)
    if geo.duplicates:
        raise InputError(f"series {info.key}: {geo.duplicates} image(s) lie at the same position "
                         "as another and nothing (echo, phase, acquisition number) tells them "
                         "apart; export each acquisition as its own series", path=where)
    if not geo.collinear:
        raise InputError(f"series {info.key}: the slice positions do not lie on one straight "
                         "line, so they do not form one volume; choose a single reconstruction",
                         path=where)
    too_big = [g for g in geo.gaps if g.size_mm > float(MAX_INTERPOLATED_GAP_MM)]
    if too_big:
        raise InputError(f"series {info.key} has a hole too large to fill: {too_big[0].describe()}"
                         f" (limit {float(MAX_INTERPOLATED_GAP_MM):g} mm); re-export the complete "
                         "series from the PACS", path=where)
    steps = Steps(progress, cancel)
    pixels = _read_pixels(info, steps.sub(0.0, 0.9))
    if np.any(geo.order != np.arange(len(geo.order))):   # info.files is normally sorted already
        pixels = pixels[geo.order]
    warnings = []
    if geo.gaps:
        pixels = _regularize(pixels, geo)
        warnings.append(f"irregular slice spacing ({len(geo.gaps)} gap(s)): resampled onto a "
                        f"regular {geo.step_mm:.2f} mm grid by linear interpolation; values "
                        "inside the gaps are interpolated, not measured")
    image = sitk.GetImageFromArray(pixels)
    row_mm, col_mm = info.pixel_spacing_mm
    image.SetSpacing((col_mm, row_mm, geo.step_mm))
    image.SetOrigin(tuple(geo.origin_mm))
    image.SetDirection(tuple(geo.direction.flatten()))
    if geo.tilt_deg:
        steps.report(0.9, "Correcting gantry tilt")
        image = _untilt(image, geo)
        warnings.append(f"gantry tilt of {geo.tilt_deg:.1f} degrees: resampled onto an untilted "
                        "grid by linear interpolation")
    if info.modality == "CT" and float(pixels.min()) > _AIR_HU:
        warnings.append(f"no voxel below {_AIR_HU} HU: the values may not be Hounsfield units "
                        "(check RescaleSlope/RescaleIntercept)")
    steps.report(1.0, "Loaded")
    return image, warnings


def _read_pixels(info: SeriesInfo, steps: Steps) -> np.ndarray:
    """(n, rows, columns) in rescaled units (HU for CT), in the order of info.files."""
    if info.frames:
        pixels = _rescale(read_frames(info.files, info.frames, steps), info.rescale)
    else:
        pixels = _read_raw(info, steps) if info.raw_dtype else None
    if pixels is None:
        pixels = _read_gdcm(info, steps)
    if pixels.shape != (info.n_images, info.rows, info.columns):
        raise InputError(f"series {info.key}: decoded pixel data has shape {pixels.shape}, "
                         f"expected {(info.n_images, info.rows, info.columns)}",
                         path=Path(info.files[0]).parent)
    return _compact(pixels)


def _read_raw(info: SeriesInfo, steps: Steps) -> np.ndarray | None:
    """Read native pixel bytes directly; None if any file does not end with its pixel data."""
    nbytes = info.rows * info.columns * 2
    stored = np.empty((info.n_images, info.rows, info.columns), dtype=info.raw_dtype)
    for i, path in enumerate(info.files):
        if i % 16 == 0:
            steps.report(i / info.n_images, f"Reading slice {i + 1} of {info.n_images}")
        if not pixel_data_at_end(path, nbytes):
            return None
        with open(path, "rb") as fh:
            fh.seek(-nbytes, os.SEEK_END)
            fh.readinto(stored[i].reshape(-1).view(np.uint8))
    if info.raw_dtype == "<u2" and info.bits_stored < 16:
        stored &= np.uint16((1 << info.bits_stored) - 1)   # bits above BitsStored are not pixel
    return _rescale(stored, info.rescale)


def _rescale(stored: np.ndarray, rescale) -> np.ndarray:
    """Stored values to output units, slice by slice (no full-size temporary)."""
    slopes = np.array([s for s, _ in rescale])
    intercepts = np.array([b for _, b in rescale])
    if np.all(slopes == 1) and np.all(intercepts == 0):
        return stored
    if np.all(slopes == 1) and np.all(intercepts == np.round(intercepts)):
        low = int(stored.min()) + int(intercepts.min())
        high = int(stored.max()) + int(intercepts.max())
        out = np.empty(stored.shape, np.int16 if -32768 <= low and high <= 32767 else np.int32)
        for k in range(len(stored)):
            out[k] = stored[k].astype(np.int32) + int(intercepts[k])
        return out
    out = np.empty(stored.shape, np.float32)
    for k in range(len(stored)):
        out[k] = stored[k].astype(np.float32) * np.float32(slopes[k]) + np.float32(intercepts[k])
    return out


def _compact(pixels: np.ndarray) -> np.ndarray:
    """int16 when integer values fit (the usual CT case), else the type as read."""
    if pixels.dtype.kind in "iu" and pixels.dtype != np.int16 and pixels.size:
        if pixels.min() >= -32768 and pixels.max() <= 32767:
            return pixels.astype(np.int16)
    return pixels


def _read_gdcm(info: SeriesInfo, steps: Steps) -> np.ndarray:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(info.files))
    slopes = {s for s, _ in info.rescale}
    if len(set(info.rescale)) > 1 or any(s != round(s) for s in slopes):
        reader.SetOutputPixelType(sitk.sitkFloat32)   # per-slice rescale must not be truncated

    def on_progress():
        try:
            steps.report(reader.GetProgress(), "Decoding slices")
        except Cancelled:
            reader.Abort()   # an exception must not cross the C++ callback

    reader.AddCommand(sitk.sitkProgressEvent, on_progress)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        check_cancel(steps.cancel)
        bad = _first_undecodable(info.files)
        raise InputError(f"cannot decode the pixel data ({str(exc).strip().splitlines()[-1]}); "
                         "the file may be damaged or use an unsupported compression",
                         path=bad or Path(info.files[0]).parent) from exc
    check_cancel(steps.cancel)
    return sitk.GetArrayFromImage(image)


def _first_undecodable(files) -> str | None:
    for f in files:
        try:
            sitk.ReadImage(f)
        except RuntimeError:
            return f
    return None


def _regularize(pixels: np.ndarray, geo: SliceGeometry) -> np.ndarray:
    """Linear interpolation along the normal onto positions first + k * step."""
    d = geo.distances_mm - geo.distances_mm[0]
    n_out = int(np.floor(d[-1] / geo.step_mm + 1e-6)) + 1   # never beyond the last slice
    target = np.arange(n_out) * geo.step_mm
    upper = np.clip(np.searchsorted(d, target, side="right"), 1, len(d) - 1)
    lower = upper - 1
    w = ((target - d[lower]) / (d[upper] - d[lower])).astype(np.float32)[:, None, None]
    out = pixels[lower] * (1 - w) + pixels[upper] * w
    return np.rint(out).astype(pixels.dtype) if pixels.dtype.kind in "iu" else out


def _untilt(image: sitk.Image, geo: SliceGeometry) -> sitk.Image:
    """Resample a sheared (tilted) stack onto the orthonormal grid of its own slice planes."""
    direction = geo.direction
    axis = geo.step_mm * direction[:, 2] + geo.shear_mm
    sheared = sitk.Image(image)
    sheared.SetSpacing((*image.GetSpacing()[:2], float(np.linalg.norm(axis))))
    sheared.SetDirection(tuple(np.column_stack([direction[:, :2],
                                                axis / np.linalg.norm(axis)]).flatten()))
    size = np.array(image.GetSize())
    corners = np.array([sheared.TransformContinuousIndexToPhysicalPoint(
        [float(c) for c in np.array(corner) * (size - 1)])
        for corner in np.ndindex(2, 2, 2)])
    local = (corners - geo.origin_mm) @ direction     # in (row, column, normal) mm
    spacing = np.array([*image.GetSpacing()[:2], geo.step_mm])
    lo, hi = local.min(axis=0), local.max(axis=0)
    out_size = [int(v) for v in np.floor((hi - lo) / spacing + 1e-6) + 1]
    origin = geo.origin_mm + direction @ lo
    air = float(sitk.GetArrayViewFromImage(image).min())
    return sitk.Resample(sheared, out_size, sitk.Transform(), sitk.sitkLinear, tuple(origin),
                         tuple(spacing), tuple(direction.flatten()), air, image.GetPixelID())
