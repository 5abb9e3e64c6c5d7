"""Centerline graphs of vessel masks: skeleton branches with radii, joined at junctions.

A mask is skeletonised on an isotropic grid (skimage's 3D thinning assumes cubic voxels), the
skeleton is cut at its junction voxels into branches, and the branches that touch a common
junction become neighbours. A tree (parent/child) is then read from a root branch outward.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from skimage.morphology import skeletonize

_FULL = np.ones((3, 3, 3), bool)
_OFFSETS = np.array([o for o in np.argwhere(_FULL) - 1 if np.any(o != 0)])


def _at(array: np.ndarray, zyx: np.ndarray) -> np.ndarray:
    """Values of `array` at integer (z, y, x) points; 0 outside the array."""
    ok = np.all((zyx >= 0) & (zyx < array.shape), axis=1)
    out = np.zeros(len(zyx), array.dtype)
    out[ok] = array[tuple(zyx[ok].T)]
    return out


def _outside_tree(mask: np.ndarray, spacing_zyx_mm) -> cKDTree:
    """KD-tree of the voxels just outside `mask` (mm): radii are distances to it."""
    border = ndi.binary_dilation(mask) & ~mask
    return cKDTree(np.argwhere(border) * np.asarray(spacing_zyx_mm, float))


@dataclass(frozen=True)
class Branch:
    """One vessel branch between junctions. Points are ordered along the centerline (LPS mm)."""
    id: int
    system: int                      # 1 portal, 2 hepatic veins + IVC
    points_lps_mm: tuple             # ((x, y, z), ...)
    radii_mm: tuple                  # radius at each point
    parent: int | None = None
    children: tuple = ()
    name: str = ""                   # e.g. "right portal vein", "middle hepatic vein"
    depths_mm: tuple = ()            # depth of each point inside the liver (0 outside it)

    @property
    def length_mm(self) -> float:
        p = np.asarray(self.points_lps_mm)
        return float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum()) if len(p) > 1 else 0.0

    @property
    def inside_volume_mm3(self) -> float:
        """Volume of the part of the branch inside the liver (pi r^2 per point, 1 point/voxel)."""
        r = np.asarray(self.radii_mm)
        inside = np.asarray(self.depths_mm) > 0 if self.depths_mm else np.ones(len(r), bool)
        step = self.length_mm / max(len(r) - 1, 1)
        return float(np.pi * np.sum(r[inside] ** 2) * step)

    def to_dict(self) -> dict:
        return {"id": self.id, "system": self.system, "parent": self.parent,
                "children": list(self.children), "name": self.name,
                "points_lps_mm": [list(map(float, p)) for p in self.points_lps_mm],
                "radii_mm": [float(r) for r in self.radii_mm],
                "depths_mm": [float(d) for d in self.depths_mm]}

    @classmethod
    def from_dict(cls, d: dict) -> "Branch":
        return cls(id=int(d["id"]), system=int(d["system"]), parent=d["parent"],
                   children=tuple(d["children"]), name=d.get("name", ""),
                   points_lps_mm=tuple(tuple(p) for p in d["points_lps_mm"]),
                   radii_mm=tuple(d["radii_mm"]), depths_mm=tuple(d.get("depths_mm", ())))


@dataclass
class Skeleton:
    """Skeleton of a mask on a grid: branch voxels, their ordering and the branch adjacency."""
    branch_voxels: list            # per branch: (N, 3) int array of (z, y, x), ordered
    radii_mm: list                 # per branch: (N,) radius from the mask's distance map
    adjacency: np.ndarray          # (M, 2) pairs of branch indices that share a junction

    def median_radii_mm(self) -> np.ndarray:
        """Each branch's median radius (mm): its calibre, unmoved by junctions and stubs."""
        return np.array([float(np.median(r)) for r in self.radii_mm])

    def voxel_counts(self) -> np.ndarray:
        """Each branch's number of skeleton voxels: its length in voxels of the grid."""
        return np.array([len(v) for v in self.branch_voxels])


def skeletonize_mask(mask: np.ndarray, spacing_zyx_mm: np.ndarray) -> Skeleton:
    """Cut the skeleton of `mask` (z, y, x; isotropic voxels) into branches at its junctions."""
    skel = skeletonize(mask).astype(bool)
    pts = np.argwhere(skel)
    neighbours = sum(_at(skel, pts + off) for off in _OFFSETS)
    junction = np.zeros_like(skel)
    junction[tuple(pts[neighbours >= 3].T)] = True
    branches, n = ndi.label(skel & ~junction, _FULL)
    junctions, _ = ndi.label(junction, _FULL)
    voxels, radii = [], []
    outside = _outside_tree(mask, spacing_zyx_mm)
    for sl_index, sl in enumerate(ndi.find_objects(branches)):
        local = branches[sl] == sl_index + 1
        zyx = np.argwhere(local) + [s.start for s in sl]
        zyx = _order_path(zyx)
        voxels.append(zyx)
        radii.append(outside.query(zyx * np.asarray(spacing_zyx_mm, float))[0])
    # branches touching the same junction cluster are neighbours
    jz = np.argwhere(junction)
    jlab = junctions[tuple(jz.T)]
    hits = []
    for off in _OFFSETS:
        b = _at(branches, jz + off)
        hits.append(np.stack([jlab[b > 0], b[b > 0]], axis=1))
    hits = np.unique(np.concatenate(hits), axis=0) if hits else np.zeros((0, 2), int)
    pairs = set()
    for j in np.unique(hits[:, 0]):
        touching = hits[hits[:, 0] == j, 1]
        pairs.update((int(a) - 1, int(b) - 1) for a in touching for b in touching if a < b)
    return Skeleton(voxels, radii, np.array(sorted(pairs), dtype=int).reshape(-1, 2))


def _order_path(zyx: np.ndarray) -> np.ndarray:
    """Order the voxels of a junction-free skeleton piece from one end to the other."""
    if len(zyx) <= 2:
        return zyx
    index = {tuple(p): i for i, p in enumerate(zyx)}
    nbrs = [[index[t] for t in map(tuple, p + _OFFSETS) if t in index] for p in zyx]
    ends = [i for i, n in enumerate(nbrs) if len(n) <= 1]
    order, seen = [ends[0] if ends else 0], set()
    seen.add(order[0])
    while True:
        nxt = [j for j in nbrs[order[-1]] if j not in seen]
        if not nxt:
            break
        order.append(nxt[0])
        seen.add(nxt[0])
    rest = [i for i in range(len(zyx)) if i not in seen]   # loops: keep every voxel
    return zyx[order + rest]


def bridge_gaps(skeleton: Skeleton, start: int) -> Skeleton:
    """Join every skeleton piece to the one holding `start` across the shortest gaps.

    Vessels cut by partial volume or noise fall apart into pieces; each piece is attached by
    its point nearest to the pieces already joined (greedy, nearest first), so every branch gets
    a parent. A piece joined by the middle of a branch has that branch cut there: the bridge
    ends at a junction, so a piece holding two veins whose common stem was lost (the middle and
    right hepatic veins cut from the IVC: one U-shaped branch) becomes the two veins.
    """
    voxels, radii = list(skeleton.branch_voxels), list(skeleton.radii_mm)
    pairs = [tuple(p) for p in skeleton.adjacency.reshape(-1, 2)]
    comp = list(components(len(voxels), pairs))
    if len(set(comp)) == 1:
        return skeleton
    joined = {comp[start]}
    while len(joined) < len(set(comp)):
        owner = np.concatenate([np.full(len(v), i) for i, v in enumerate(voxels)])
        position = np.concatenate([np.arange(len(v)) for v in voxels])
        points = np.concatenate(voxels)
        inside = np.isin(np.asarray(comp)[owner], list(joined))
        tree = cKDTree(points[inside])
        d, j = tree.query(points[~inside])
        k = int(np.argmin(d))
        theirs = np.nonzero(inside)[0][j[k]]
        mine = np.nonzero(~inside)[0][k]
        joined.add(comp[owner[mine]])
        meeting = _cut(voxels, radii, pairs, comp, int(owner[mine]), int(position[mine]))
        meeting.append(int(owner[theirs]))
        pairs += [(a, b) for a in meeting for b in meeting if a < b]
    return Skeleton(voxels, radii, np.array(sorted(set(pairs)), dtype=int).reshape(-1, 2))


def components(n: int, pairs) -> np.ndarray:
    """Connected component of each of `n` branches joined by `pairs`."""
    a, b = np.array(pairs, dtype=int).reshape(-1, 2).T
    return connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)),
                                directed=False)[1]


def _cut(voxels, radii, pairs, comp, b: int, k: int, keep: int = 2) -> list[int]:
    """Cut branch `b` (in place) before its point `k` if both parts keep `keep` points; the
    branches that then meet at that point (`b`, or its two parts)."""
    v, r = voxels[b], radii[b]
    if not keep <= k <= len(v) - keep:
        return [b]
    new = len(voxels)
    voxels[b], radii[b] = v[:k], r[:k]
    voxels.append(v[k:])
    radii.append(r[k:])
    comp.append(comp[b])
    for i, pair in enumerate(pairs):       # a neighbour at the far end now meets the new part
        if b in pair:
            other = pair[0] + pair[1] - b
            d = np.linalg.norm(voxels[other][:, None] - v[[0, -1]][None], axis=2).min(axis=0)
            if d[1] < d[0]:
                pairs[i] = (min(other, new), max(other, new))
    return [b, new]


def geodesic(skeleton: Skeleton, roots: list[int],
             factor: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Geodesic cost from each root branch to every branch, and the shortest-path predecessors.

    Crossing a branch costs its length over its squared radius (times `factor`, per branch, if
    given), so a path through a thin touching point between two systems is expensive and a path
    along a trunk is cheap. Rows are roots; a predecessor of -9999 means "root or unreachable".
    """
    n = len(skeleton.branch_voxels)
    weight = (np.maximum(skeleton.voxel_counts(), 1)
              / np.maximum(skeleton.median_radii_mm(), 0.5) ** 2)
    if factor is not None:
        weight = weight * factor
    a, b = (skeleton.adjacency.T if len(skeleton.adjacency)
            else (np.array([], int), np.array([], int)))
    w = 0.5 * (weight[a] + weight[b]) + 1e-6     # half of each branch's own cost
    graph = coo_matrix((np.r_[w, w], (np.r_[a, b], np.r_[b, a])), shape=(n, n)).tocsr()
    cost, pred = dijkstra(graph, indices=roots, return_predecessors=True)
    return cost + 0.5 * weight[np.asarray(roots)][:, None], pred
