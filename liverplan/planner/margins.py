"""Per-lesion outcome and margin, and the vessels a cut crosses.

The cut surface is the set of faces between a resected and a kept liver voxel; a face sits at
the midpoint of its two voxel centres. A lesion's margin is the smallest distance from that
surface to the lesion's surface, measured in mm with the image's anisotropic spacing. The lesion
surface lies on average half a voxel beyond its outermost voxel centres, so the distance from a
boundary voxel centre is reduced by half the voxel's extent in that direction
(`surface_distance_mm`); wedges use the same measure, so a 10 mm wedge reads as a 10 mm margin.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

from liverplan import evidence as ev
from liverplan.planner.remnant import SYSTEM_NAMES

if TYPE_CHECKING:
    from liverplan.planner.flr import PlanningContext


@dataclass(frozen=True)
class LesionOutcome:
    lesion_id: int
    volume_ml: float
    diameter_mm: float
    centroid_lps_mm: tuple[float, float, float]
    segment: int
    status: str                  # resected | left in place | cut through
    margin_mm: float | None      # resected: distance to the cut surface; cut through: 0
    r0: bool | None              # margin >= R0_MARGIN_MM; None when left in place

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LesionOutcome":
        return cls(**{**d, "centroid_lps_mm": tuple(d["centroid_lps_mm"])})


@dataclass(frozen=True)
class VesselCrossing:
    system: str                  # portal | hepatic
    diameter_mm: float
    position_lps_mm: tuple[float, float, float]
    voxels: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VesselCrossing":
        return cls(**{**d, "position_lps_mm": tuple(d["position_lps_mm"])})


def surface_distance_mm(delta_mm: np.ndarray, spacing_zyx: np.ndarray) -> np.ndarray:
    """Distance from lesion voxel centres to points `delta_mm` (N, 3) away from them, less half
    the voxel's extent along that direction (>= 0)."""
    length = np.linalg.norm(delta_mm, axis=1)
    unit = delta_mm / np.maximum(length, 1e-9)[:, None]
    half = 0.5 * np.linalg.norm(unit * spacing_zyx, axis=1)
    return np.maximum(length - half, 0.0)


def lesion_outcomes(ctx: "PlanningContext", resected: np.ndarray,
                    cut: np.ndarray) -> tuple[LesionOutcome, ...]:
    """Status and margin of every lesion for the resected voxels and cut faces (C, 2)."""
    mids = None
    out = []
    for les in ctx.lesions.values():
        n_out = np.count_nonzero(resected[les.liver_index])
        margin = None
        if n_out == 0:
            status = "left in place"
        elif n_out < len(les.liver_index):
            status, margin = "cut through", 0.0
        else:
            status = "resected"
            if len(cut):
                if mids is None:
                    mids = (ctx.mm[cut[:, 0]] + ctx.mm[cut[:, 1]]) / 2
                # Exact distance of the face nearest the lesion centre bounds the margin; a face
                # whose centre distance minus the lesion's reach exceeds it cannot do better.
                dc = np.linalg.norm(mids - les.centre_mm, axis=1)
                first = int(dc.argmin())
                bound = les.tree.query(mids[first])[0] + ctx.spacing_zyx.max()
                near = mids[dc - les.reach_mm <= bound]
                dist, nearest = les.tree.query(near, distance_upper_bound=bound)
                near, nearest = near[np.isfinite(dist)], nearest[np.isfinite(dist)]
                margin = float(surface_distance_mm(near - les.boundary_mm[nearest],
                                                   ctx.spacing_zyx).min())
        r0 = None if margin is None else margin >= ev.R0_MARGIN_MM.value
        out.append(LesionOutcome(les.lesion_id, les.volume_ml, les.diameter_mm,
                                 les.centroid_lps_mm, les.segment, status, margin, r0))
    return tuple(out)


def outcomes_for_masks(liver: sitk.Image, tumors: sitk.Image,
                       resected: sitk.Image) -> tuple[LesionOutcome, ...]:
    """`lesion_outcomes` for a resected-region mask (0/1 on the liver's grid), for callers that
    have masks rather than a planning context: the same margin as in the plan's verdict."""
    from liverplan.planner.flr import PlanningContext   # flr imports this module

    ctx = PlanningContext(liver, tumors)
    z, y, x = (ctx.zyx + ctx.offset_zyx).T
    removed = np.ascontiguousarray(sitk.GetArrayViewFromImage(resected)[z, y, x] != 0)
    return lesion_outcomes(ctx, removed, ctx.cut_faces(removed))


def vessel_crossings(ctx: "PlanningContext", cut: np.ndarray) -> tuple[VesselCrossing, ...]:
    """Connected pieces of vessel lying on the cut surface, largest diameter first."""
    vessels = ctx.vessels
    nodes = np.unique(vessels.liver_node[cut.ravel()]) if len(cut) else np.zeros(0, int)
    nodes = nodes[nodes >= 0]
    if not len(nodes):
        return ()
    labels = vessels.pieces(nodes)
    out = []
    for k in range(labels.max() + 1):
        piece = nodes[labels == k]
        centre = ctx.to_lps(vessels.zyx[piece].mean(axis=0))[0]
        out.append(VesselCrossing(SYSTEM_NAMES[int(vessels.system[piece[0]])],
                                  float(2 * vessels.radius_mm[piece].max()),
                                  tuple(float(c) for c in centre), len(piece)))
    return tuple(sorted(out, key=lambda c: -c.diameter_mm))
