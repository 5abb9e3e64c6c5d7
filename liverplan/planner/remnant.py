"""Remnant check: at least two contiguous Couinaud segments with portal inflow and hepatic outflow.

Rule (from the segment and vessel masks):
- a segment belongs to the remnant when at least REMNANT_SEGMENT_MIN_FRACTION of its parenchyma
  is kept;
- it has portal inflow when kept portal voxels inside it are still connected, through kept
  portal voxels, to the portal trunk (the portal vein outside the liver mask, else its main
  stem around the thickest voxel); hepatic venous outflow likewise with the hepatic veins and
  the IVC;
- vessel voxels in resected parenchyma are gone; the trunks (and anything outside the liver)
  never are, as a hepatectomy preserves the hilar portal vein and the IVC;
- segments are contiguous when kept voxels of the two touch face to face.
The check passes when the largest contiguous group of remnant segments with inflow and outflow
has at least two segments.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from liverplan import evidence as ev
from liverplan.progress import Steps

if TYPE_CHECKING:
    from liverplan.planner.flr import PlanningContext

SYSTEM_NAMES = {1: "portal", 2: "hepatic"}
# Half of the 26-neighbourhood: each undirected vessel edge is generated once.
_HALF_26 = [np.array(o) - 1 for o in np.ndindex(3, 3, 3) if o > (1, 1, 1)]
CLUSTER_BLOCK_MM = 5.0
# Main stem of an intrahepatic-only vessel mask: voxels at least this fraction as thick as the
# thickest (a geometric choice, not a clinical threshold).
TRUNK_RADIUS_FRACTION = 0.75


def _graph_labels(n: int, edges: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(len(edges), bool), (edges[:, 0], edges[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


class VesselGraph:
    """Vessel voxels of the planning crop as a 26-connected graph (within one system), with
    radius, segment and trunk per voxel.

    The trunk of a system (where inflow enters / outflow leaves, see `_trunk`) is preserved by
    every resection: hepatectomies keep the hilar portal vein and the IVC.

    For speed the voxels are grouped once into clusters (connected pieces within 5 mm blocks).
    A cluster whose voxels are all kept is one node; only clusters the cut passes through are
    expanded into voxels. Connectivity stays exact at voxel level.
    """

    def __init__(self, vcrop: np.ndarray, index: np.ndarray, segment: np.ndarray,
                 spacing_zyx: np.ndarray, steps: Steps):
        vcrop = np.where(np.isin(vcrop, list(SYSTEM_NAMES)), vcrop, 0).astype(np.uint8)
        on = vcrop > 0
        self.zyx = np.argwhere(on).astype(np.int32)
        self.system = vcrop[on]
        self.liver = index[on]
        m = len(self.zyx)
        inside = self.liver >= 0
        self.segment = np.zeros(m, np.uint8)
        self.segment[inside] = segment[self.liver[inside]]
        self.liver_node = np.full(len(segment), -1, np.int32)
        self.liver_node[self.liver[inside]] = np.flatnonzero(inside)
        self.radius_mm = np.zeros(m, np.float32)
        self.trunk = np.zeros(m, bool)
        for k, system in enumerate(SYSTEM_NAMES, start=1):
            steps.report(k / 4, f"{SYSTEM_NAMES[system]} vessel radius")
            this = self.system == system
            if not this.any():
                continue
            # Distance to the nearest non-vessel voxel centre, less half a voxel: the wall.
            # Computed in the system's bounding box (plus a background margin of one voxel).
            box = tuple(slice(max(lo - 1, 0), hi + 2) for lo, hi in
                        zip(self.zyx[this].min(axis=0), self.zyx[this].max(axis=0)))
            inside_box = np.pad(vcrop[box] == system, 1)
            edt = ndimage.distance_transform_edt(inside_box, sampling=spacing_zyx)[1:-1, 1:-1, 1:-1]
            self.radius_mm[this] = edt[vcrop[box] == system] - 0.5 * spacing_zyx.min()
        node = np.full(vcrop.shape, -1, np.int32)
        node[on] = np.arange(m, dtype=np.int32)
        edges = []
        for d in _HALF_26:
            src = tuple(slice(max(-x, 0), n - max(x, 0)) for x, n in zip(d, vcrop.shape))
            dst = tuple(slice(max(x, 0), n - max(-x, 0)) for x, n in zip(d, vcrop.shape))
            a, b = node[src], node[dst]
            keep = (a >= 0) & (b >= 0)
            a, b = a[keep], b[keep]
            edges.append(np.stack([a, b], axis=1)[self.system[a] == self.system[b]])
        self.edges = np.concatenate(edges)
        for system in SYSTEM_NAMES:
            self.trunk |= self._trunk(system)
        steps.report(0.8, "Vessel clusters")
        block_vox = np.maximum(np.round(CLUSTER_BLOCK_MM / spacing_zyx), 1)
        block = (self.zyx // block_vox).astype(np.int64)
        key = (block[:, 0] * 100_000 + block[:, 1]) * 100_000 + block[:, 2]
        a, b = self.edges[:, 0], self.edges[:, 1]
        self.cluster = _graph_labels(m, self.edges[key[a] == key[b]])
        self.n_clusters = int(self.cluster.max()) + 1 if m else 0
        self.cluster_size = np.bincount(self.cluster, minlength=self.n_clusters)
        ca, cb = self.cluster[a], self.cluster[b]
        between = ca != cb
        self.cluster_edges = (np.unique(np.stack([ca[between], cb[between]], axis=1), axis=0)
                              if between.any() else np.zeros((0, 2), np.int64))
        # Edges incident to each cluster (CSR): what expanding a cluster needs.
        owner = np.concatenate([ca, cb[between]])
        eid = np.concatenate([np.arange(len(a)), np.flatnonzero(between)])
        order = np.argsort(owner, kind="stable")
        self.incident = eid[order]
        counts = np.bincount(owner, minlength=self.n_clusters)
        self.incident_ptr = np.concatenate([[0], np.cumsum(counts)])
        steps.report(1.0, "Vessel graph ready")

    def _trunk(self, system: int) -> np.ndarray:
        """The system's part outside the liver mask (extrahepatic portal vein, IVC); when the
        mask holds none, its main stem: the voxels at least TRUNK_RADIUS_FRACTION as thick as
        the thickest one and connected to it through such voxels."""
        this = self.system == system
        outside = this & (self.liver < 0)
        if outside.any() or not this.any():
            return outside
        thick = this & (self.radius_mm >= TRUNK_RADIUS_FRACTION * self.radius_mm[this].max())
        e = self.edges[thick[self.edges[:, 0]] & thick[self.edges[:, 1]]]
        labels = _graph_labels(len(self), e)
        seed = np.flatnonzero(this)[np.argmax(self.radius_mm[this])]
        return thick & (labels == labels[seed])

    def __len__(self) -> int:
        return len(self.zyx)

    def has(self, system: int) -> bool:
        return bool(np.any(self.system == system))

    def _incident_edges(self, clusters: np.ndarray) -> np.ndarray:
        start, stop = self.incident_ptr[clusters], self.incident_ptr[clusters + 1]
        lens = stop - start
        offsets = np.repeat(start - np.cumsum(lens) + lens, lens) + np.arange(lens.sum())
        return self.edges[self.incident[offsets]]

    def pieces(self, nodes: np.ndarray) -> np.ndarray:
        """Connected-piece label of each of the given voxels within the subgraph they form."""
        local = np.full(len(self), -1, np.int64)
        local[nodes] = np.arange(len(nodes))
        e = local[self._incident_edges(np.unique(self.cluster[nodes]))]
        return _graph_labels(len(nodes), e[(e[:, 0] >= 0) & (e[:, 1] >= 0)])

    def alive(self, resected: np.ndarray) -> np.ndarray:
        """Voxels kept by the resection: those outside the liver and the trunk always are."""
        alive = np.ones(len(self), bool)
        inside = (self.liver >= 0) & ~self.trunk
        alive[inside] = ~resected[self.liver[inside]]
        return alive

    def connected_to_trunk(self, alive: np.ndarray) -> np.ndarray:
        """Kept voxels still connected to their system's trunk through kept voxels."""
        kept = np.bincount(self.cluster[alive], minlength=self.n_clusters)
        full = kept == self.cluster_size
        partial = (kept > 0) & ~full
        node = np.where(full[self.cluster], self.cluster, -1)
        expand = alive & partial[self.cluster]
        node[expand] = self.n_clusters + np.arange(expand.sum())
        coarse = self.cluster_edges[full[self.cluster_edges[:, 0]] & full[self.cluster_edges[:, 1]]]
        fine = node[self._incident_edges(np.flatnonzero(partial))]
        fine = fine[(fine[:, 0] >= 0) & (fine[:, 1] >= 0)]
        labels = _graph_labels(self.n_clusters + int(expand.sum()), np.concatenate([coarse, fine]))
        trunk_labels = np.unique(labels[node[self.trunk & alive]])
        return (node >= 0) & np.isin(labels[np.maximum(node, 0)], trunk_labels)




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
    total, remaining = ctx.segment_voxels(resected)
    fraction = np.divide(remaining, total, out=np.zeros(9), where=total > 0)
    in_remnant = [s for s in range(1, 9)
                  if total[s] and fraction[s] >= ev.REMNANT_SEGMENT_MIN_FRACTION.value]
    vessels = ctx.vessels
    missing = [name for system, name in SYSTEM_NAMES.items() if not vessels.has(system)]
    if not total[1:].any() or missing:
        what = "no Couinaud segment map" if not total[1:].any() else \
            f"no {' or '.join(missing)} vessels in the vessel mask"
        return RemnantCheck(False, False, (), (), f"Inflow/outflow not checked: {what}.")
    connected = vessels.connected_to_trunk(vessels.alive(resected))
    flows = {system: np.bincount(vessels.segment[connected & (vessels.system == system)],
                                 minlength=9) > 0 for system in SYSTEM_NAMES}
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
