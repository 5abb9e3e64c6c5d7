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
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from liverplan import evidence as ev

if TYPE_CHECKING:
    from liverplan.planner.flr import PlanningContext

SYSTEM_NAMES = {1: "portal", 2: "hepatic"}


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
    tree = None
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
                if tree is None:
                    tree = cKDTree((ctx.mm[cut[:, 0]] + ctx.mm[cut[:, 1]]) / 2)
                _, nearest = tree.query(les.boundary_mm)
                margin = float(surface_distance_mm(tree.data[nearest] - les.boundary_mm,
                                                   ctx.spacing_zyx).min())
        r0 = None if margin is None else margin >= ev.R0_MARGIN_MM.value
        out.append(LesionOutcome(les.lesion_id, les.volume_ml, les.diameter_mm,
                                 les.centroid_lps_mm, les.segment, status, margin, r0))
    return tuple(out)


def vessel_crossings(ctx: "PlanningContext", cut: np.ndarray) -> tuple[VesselCrossing, ...]:
    """Connected pieces of vessel lying on the cut surface, largest diameter first."""
    nodes = np.unique(ctx.liver_vnode[cut.ravel()]) if len(cut) else np.zeros(0, int)
    nodes = nodes[nodes >= 0]
    if not len(nodes):
        return ()
    local = np.full(len(ctx.vnode_zyx), -1, np.int64)
    local[nodes] = np.arange(len(nodes))
    a, b = local[ctx.vedges[:, 0]], local[ctx.vedges[:, 1]]
    keep = (a >= 0) & (b >= 0)
    graph = coo_matrix((np.ones(keep.sum(), bool), (a[keep], b[keep])),
                       shape=(len(nodes), len(nodes)))
    n, labels = connected_components(graph, directed=False)
    out = []
    for k in range(n):
        piece = nodes[labels == k]
        centre = ctx.to_lps(ctx.vnode_zyx[piece].mean(axis=0))[0]
        out.append(VesselCrossing(SYSTEM_NAMES[int(ctx.vnode_system[piece[0]])],
                                  float(2 * ctx.vradius_mm[piece].max()),
                                  tuple(float(c) for c in centre), len(piece)))
    return tuple(sorted(out, key=lambda c: -c.diameter_mm))
