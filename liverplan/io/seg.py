"""Read a DICOM Segmentation (SEG) onto the grid of the CT series it was drawn on.

highdicom decodes the SEG frames into a volume with its own LPS affine (it may cover only some
slices, in any slice order); each segment is then placed on the reference grid by nearest-
neighbour resampling in physical space, which is exact when the SEG frames lie on the
reference's voxel centres (the normal case) and correct otherwise.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import SimpleITK as sitk

from liverplan.errors import InputError
from liverplan.io.volume import Volume


def read_seg(seg_path, reference: Volume) -> dict[str, sitk.Image]:
    """{segment label: 0/1 UInt8 mask on reference.image's grid}."""
    path = Path(seg_path)
    try:
        seg = hd.seg.segread(str(path))
    except Exception as exc:   # pydicom/highdicom raise many types on a file that is no SEG
        raise InputError(f"not a readable DICOM Segmentation ({exc})", path=path) from exc
    _check_frame_of_reference(seg, reference, path)
    masks: dict[str, sitk.Image] = {}
    for number in seg.segment_numbers:
        label = seg.get_segment_description(number).SegmentLabel or f"segment {number}"
        if label in masks:
            label = f"{label} ({number})"
        try:
            volume = seg.get_volume(segment_numbers=[number])
        except (ValueError, RuntimeError) as exc:
            raise InputError(f"segment {label!r} does not form a regular 3-D stack ({exc})",
                             path=path) from exc
        masks[label] = _onto(volume, reference.image)
    return masks


def _check_frame_of_reference(seg, reference: Volume, path: Path) -> None:
    info = reference.info
    if info is None or not info.frame_of_reference_uid:
        return
    referenced = {s.SeriesInstanceUID for s in seg.get("ReferencedSeriesSequence", [])}
    if seg.FrameOfReferenceUID != info.frame_of_reference_uid and \
            info.series_instance_uid not in referenced:
        raise InputError("this segmentation was drawn on another scan (its frame of reference "
                         f"and referenced series differ from series {info.key}); open it with the "
                         "CT it belongs to", path=path)


def _onto(volume: hd.Volume, reference: sitk.Image) -> sitk.Image:
    """A highdicom volume (axes: slice, row, column) resampled onto `reference`."""
    array = np.ascontiguousarray(volume.array[..., 0] > 0, dtype=np.uint8)
    image = sitk.GetImageFromArray(array)
    d = np.asarray(volume.direction)
    image.SetDirection(tuple(d[:, ::-1].flatten()))          # sitk axes: column, row, slice
    image.SetSpacing(tuple(float(s) for s in volume.spacing[::-1]))
    image.SetOrigin(tuple(float(p) for p in volume.position))
    return sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                         sitk.sitkUInt8)
