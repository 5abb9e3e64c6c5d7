"""Remnant check: at least two contiguous Couinaud segments with portal inflow and hepatic outflow.

Rule (from the segment and vessel masks):
- a segment belongs to the remnant when at least REMNANT_SEGMENT_MIN_FRACTION of its parenchyma
  is kept;
- it has portal inflow when kept portal voxels inside it are still connected, through kept
  portal voxels, to the portal trunk (the portal vein outside the liver mask, else its thickest
  voxel); hepatic venous outflow likewise with the hepatic veins and the IVC;
- vessel voxels in resected parenchyma are gone; vessel voxels outside the liver never are;
- segments are contiguous when kept voxels of the two touch face to face.
The check passes when the largest contiguous group of remnant segments with inflow and outflow
has at least two segments.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from liverplan import evidence as ev

if TYPE_CHECKING:
    from liverplan.planner.flr import PlanningContext


@dataclass(frozen=True)
class SegmentStatus:
    segment: int
    kept_fraction: float
    inflow: bool
    outflow: bool


@dataclass(frozen=True)
class RemnantCheck:
    checked: bool                       # False when segments or vessels are missing
    passed: bool
    segments: tuple[SegmentStatus, ...]  # remnant segments (kept), with their vessels
    group: tuple[int, ...]              # largest contiguous group with inflow and outflow
    detail: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RemnantCheck":
        return cls(d["checked"], d["passed"], tuple(SegmentStatus(**s) for s in d["segments"]),
                   tuple(d["group"]), d["detail"])


def _connected_to_trunk(ctx: "PlanningContext", resected: np.ndarray) -> np.ndarray:
    """Per vessel node: kept and still connected to its system's trunk through kept nodes."""
    alive = np.ones(len(ctx.vnode_zyx), bool)
    inside = ctx.vnode_liver >= 0
    alive[inside] = ~resected[ctx.vnode_liver[inside]]
    a, b = ctx.vedges[:, 0], ctx.vedges[:, 1]
    keep = alive[a] & alive[b]
    m = len(alive)
    graph = coo_matrix((np.ones(keep.sum(), bool), (a[keep], b[keep])), shape=(m, m))
    _, labels = connected_components(graph, directed=False)
    trunk_labels = np.unique(labels[ctx.vtrunk & alive])
    return alive & np.isin(labels, trunk_labels)


def _largest_group(members: list[int], adjacent: np.ndarray) -> tuple[int, ...]:
    best: set[int] = set()
    left = set(members)
    while left:
        group, todo = set(), [left.pop()]
        while todo:
            s = todo.pop()
            group.add(s)
            todo += [t for t in list(left) if adjacent[s, t]]
            left -= set(todo)
        if len(group) > len(best):
            best = group
    return tuple(sorted(best))


def check_remnant(ctx: "PlanningContext", resected: np.ndarray) -> RemnantCheck:
    kept = ~resected
    total = np.bincount(ctx.segment, minlength=9)
    remaining = np.bincount(ctx.segment[kept], minlength=9)
    fraction = np.divide(remaining, total, out=np.zeros(9), where=total > 0)
    in_remnant = [s for s in range(1, 9) if total[s] and fraction[s] >= ev.REMNANT_SEGMENT_MIN_FRACTION.value]
    missing = [name for system, name in ((1, "portal"), (2, "hepatic"))
               if not np.any(ctx.vnode_system == system)]
    if not total[1:].any() or missing:
        what = "no Couinaud segment map" if not total[1:].any() else \
            f"no {' or '.join(missing)} vessels in the vessel mask"
        return RemnantCheck(False, False, (), (), f"Inflow/outflow not checked: {what}.")
    connected = _connected_to_trunk(ctx, resected)
    flows = {}
    for system in (1, 2):
        nodes = connected & (ctx.vnode_system == system) & (ctx.vnode_liver >= 0)
        flows[system] = np.bincount(ctx.segment[ctx.vnode_liver[nodes]], minlength=9) > 0
    a, b = ctx.contacts[:, 0], ctx.contacts[:, 1]
    both = kept[a] & kept[b]
    adjacent = np.zeros((9, 9), bool)
    adjacent[ctx.segment[a[both]], ctx.segment[b[both]]] = True
    adjacent |= adjacent.T
    statuses = tuple(SegmentStatus(s, float(fraction[s]), bool(flows[1][s]), bool(flows[2][s]))
                     for s in in_remnant)
    good = [st.segment for st in statuses if st.inflow and st.outflow]
    group = _largest_group(good, adjacent)
    passed = len(group) >= 2
    lacking = [f"{st.segment} ({'no portal inflow' if not st.inflow else 'no hepatic outflow'})"
               for st in statuses if not (st.inflow and st.outflow)]
    detail = (f"remnant segments {', '.join(map(str, in_remnant)) or 'none'}; contiguous with "
              f"inflow and outflow: {', '.join(map(str, group)) or 'none'}")
    if lacking:
        detail += f"; without: {', '.join(lacking)}"
    return RemnantCheck(True, passed, statuses, group, detail)
