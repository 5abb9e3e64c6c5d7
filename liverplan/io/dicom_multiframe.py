"""Enhanced (multi-frame) CT and MR images: one file, many slices.

Each frame's orientation, position, pixel spacing and rescale sit in the per-frame functional
groups, or in the shared ones when all frames agree. The scan turns every frame into a slice of
its own so that grouping, sorting and gap checks are the same as for one file per slice; the
loader decodes each file once with pydicom (pylibjpeg for compressed frames) and picks the
frames it needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.dataset import Dataset


@dataclass(frozen=True)
class Frame:
    orientation: tuple[float, ...]
    position: tuple[float, float, float]
    spacing: tuple[float, float]
    rescale: tuple[float, float]    # (slope, intercept)
    splitters: dict                 # echo / temporal position / stack: separate acquisitions


def frames(ds: Dataset) -> list[Frame]:
    """Per-frame geometry of a multi-frame image; ValueError if a frame cannot be placed."""
    shared_seq = ds.get("SharedFunctionalGroupsSequence") or [Dataset()]
    shared = shared_seq[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    n = int(ds.NumberOfFrames)
    if len(per_frame) != n:
        raise ValueError(f"{len(per_frame)} per-frame functional groups for {n} frames")

    def find(item: Dataset, sequence: str, keyword: str):
        for group in (item, shared):
            seq = group.get(sequence)
            if seq and keyword in seq[0] and seq[0][keyword].value not in (None, ""):
                return seq[0][keyword].value
        return ds.get(keyword)   # some writers keep it at the top level

    out = []
    for k, item in enumerate(per_frame):
        orientation = find(item, "PlaneOrientationSequence", "ImageOrientationPatient")
        position = find(item, "PlanePositionSequence", "ImagePositionPatient")
        spacing = find(item, "PixelMeasuresSequence", "PixelSpacing")
        if not orientation or not position or not spacing:
            raise ValueError(f"frame {k + 1} has no plane position, orientation or pixel spacing")
        slope = find(item, "PixelValueTransformationSequence", "RescaleSlope")
        intercept = find(item, "PixelValueTransformationSequence", "RescaleIntercept")
        splitters = {
            "EchoNumbers": find(item, "MREchoSequence", "EffectiveEchoTime"),
            "TemporalPositionIdentifier": find(item, "FrameContentSequence",
                                               "TemporalPositionIndex"),
            "StackID": find(item, "FrameContentSequence", "StackID"),
        }
        out.append(Frame(tuple(float(v) for v in orientation), tuple(float(v) for v in position),
                         tuple(float(v) for v in spacing),
                         (float(slope) if slope not in (None, "") else 1.0,
                          float(intercept) if intercept not in (None, "") else 0.0),
                         {key: str(v) for key, v in splitters.items() if v not in (None, "")}))
    return out


def read_frames(files, frame_numbers, steps) -> np.ndarray:
    """Stored values of the given frames (entry i is frame frame_numbers[i] of files[i])."""
    decoded: dict[str, np.ndarray] = {}
    out = None
    for i, (path, k) in enumerate(zip(files, frame_numbers)):
        if path not in decoded:
            steps.report(i / len(files), f"Decoding {path}")
            pixels = pydicom.dcmread(path).pixel_array
            decoded[path] = pixels[None] if pixels.ndim == 2 else pixels
        frame = decoded[path][k]
        if out is None:
            out = np.empty((len(files), *frame.shape), frame.dtype)
        out[i] = frame
    return out
