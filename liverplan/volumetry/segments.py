"""Couinaud segments 1-8 from the portal tree (portal territories) or from landmark planes.

Portal territories: every portal branch is labelled with the segment it feeds, from the tree's
geometry: the right or left portal vein at the bifurcation; on the right, the anterior (5, 8) or
posterior (6, 7) sectoral branch, and above (7, 8) or below (5, 6) the bifurcation; on the left,
the side of the umbilical portion (4 medial to it, 2 and 3 lateral, 2 posterior and 3 anterior)
and the caudate (1) branches behind the bifurcation. Each liver voxel then belongs to the segment
of its nearest labelled branch (the caudate's only behind the bifurcation: the hilum is its front
border). Trunks that feed several segments are not used as seeds.

Landmark planes (fallback when the tree does not reach every segment, or on request): vertical
planes through the IVC and the right / middle hepatic veins and the umbilical fissure separate the
sectors, the horizontal plane of the portal bifurcation separates 5/6 from 8/7, the left hepatic
vein separates 2 from 3, and the caudate (1) lies between the IVC and the bifurcation.

LPS: +x is the patient's left, +y posterior, +z superior.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields, replace

import numpy as np
import SimpleITK as sitk
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from skimage.measure import label as label_components

from liverplan.errors import InputError, SegmentationError
from liverplan.geometry import image_from_array, index_to_lps, mask_volume_ml, same_grid
from liverplan.progress import Steps
from liverplan.volumetry.liver import bbox
from liverplan.volumetry.vessels import (PORTAL, TUMOUR_REACH_MM, VesselResult, branch_at,
                                         subtree_volume_mm3)

PORTAL_TERRITORIES = "portal territories"
LANDMARK_PLANES = "landmark planes"
SEGMENTS = tuple(range(1, 9))
SECTORS = {"right anterior": (5, 8), "right posterior": (6, 7), "left medial": (4,),
           "left lateral": (2, 3)}
HEMILIVERS = {"right": (5, 6, 7, 8), "left": (2, 3, 4), "caudate": (1,)}
_CAUDATE_BEHIND_MM = 8.0     # caudate branches run this far behind the bifurcation or more
_CAUDATE_LEFT_MM = 10.0      # the caudate (its branches, its landmark region) reaches this far
                             # left of the umbilical portion: the Spiegel lobe lies left of it,
                             # behind the lesser omentum (segment 2's branches run 20-60 mm
                             # further left)
_FISSURE_MM = 3.0            # a branch whose blood runs within this of the umbilical portion's
                             # end (left-right) continues it forward in the fissure: segment
                             # 4's side. Its centroid lies at that end by construction (the
                             # synthetic patient of seeds 3 and 4: 0.2 mm to the right of it,
                             # so a resampling could flip it); segment 3's branches leave it
                             # 17-32 mm to the left
_UMBILICAL_FROM_LEFT_VEIN_DEG = 20.0  # around the IVC, the umbilical fissure lies 17-25 deg
                             # right of the left hepatic vein (3D-IRCADb-01 and the synthetic
                             # patients of seeds 0, 2, 3 and 4; seed 1's left vein runs in front)
_BRIDGE_TRUST_MM = 10.0      # a piece joined to the tree across a wider gap seeds nothing
_INFERRED_DISTANCE_FACTOR = 1.3  # a branch's course through a tumour feeds a voxel only when
                             # this much nearer than every branch seen: a straight guess. Equal
                             # weight gave segment 3 of the synthetic patient (seed 0) 28 mL of
                             # segment 4, whose branches there were missed (Dice 0.843 -> 0.886);
                             # with no guess at all, seed 4's segment 3 took segment 4's
                             # parenchyma behind two lesions (0.920 -> 0.888; 0.919 here)
_CAUDATE_MIN_MM = 10.0       # caudate branches seen over less than this inside the liver (a stub
                             # at the hilum) do not show where the lobe lies
_SEGMENT_MIN_MM = 20.0       # ... nor any other segment's: its portal vein and branches run
                             # several cm (65 mm or more on the synthetic patients; 3D-IRCADb-01's
                             # trees reached segments 4 and 5 by twigs of 4-9 mm, and territories
                             # grown from one gave segment 5 22 mL against 503 mL for segment 8)


@dataclass(frozen=True)
class Landmarks:
    """Points (LPS mm) that define the landmark planes; all editable in the GUI."""
    ivc_lps_mm: tuple
    portal_bifurcation_lps_mm: tuple
    right_hepatic_vein_lps_mm: tuple
    middle_hepatic_vein_lps_mm: tuple
    left_hepatic_vein_lps_mm: tuple
    umbilical_fissure_lps_mm: tuple

    def to_dict(self) -> dict:
        return {k: list(map(float, v)) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Landmarks":
        return cls(**{k: tuple(map(float, v)) for k, v in d.items()})


LANDMARK_NAMES = tuple(f.name for f in fields(Landmarks))


@dataclass(frozen=True)
class SegmentEdits:
    """The user's segment corrections, kept with the case so that a later recompute (after a
    liver or vessel correction, or in another session) still applies them: the landmarks as
    moved, and the Branch -> segment clicks ((LPS point, segment 1-8 or 0), see
    `assignments_at`). `landmarks` are the landmarks as shown; only those named in `moved`
    (Landmarks field names) were placed by hand, the others follow the vessel trees."""
    landmarks: Landmarks | None = None
    branch_points: tuple = ()
    moved: tuple = ()

    def to_dict(self) -> dict:
        return {"landmarks": self.landmarks.to_dict() if self.landmarks else None,
                "branch_points": [[list(map(float, p)), int(s)] for p, s in self.branch_points],
                "moved": list(self.moved)}

    @classmethod
    def from_dict(cls, d: dict) -> "SegmentEdits":
        points = tuple((tuple(map(float, p)), int(s)) for p, s in d.get("branch_points", ()))
        if any(len(p) != 3 or not 0 <= s <= 8 for p, s in points):
            raise ValueError("a branch point is not (x, y, z) with a segment 0-8")
        landmarks = Landmarks.from_dict(d["landmarks"]) if d.get("landmarks") else None
        # a case saved before `moved` was kept: its landmarks all stay as they were
        moved = tuple(d.get("moved", LANDMARK_NAMES if landmarks else ()))
        if not set(moved) <= set(LANDMARK_NAMES):
            raise ValueError(f"unknown landmark(s) {sorted(set(moved) - set(LANDMARK_NAMES))}")
        return cls(landmarks, points, moved)

    def landmarks_over(self, automatic: Landmarks | None) -> Landmarks | None:
        """The landmarks to use: the automatic ones (from the vessel trees as they are now)
        with the moved ones in their hand-placed positions."""
        if automatic is None or self.landmarks is None:
            return self.landmarks or automatic
        return replace(automatic, **{k: getattr(self.landmarks, k) for k in self.moved})


@dataclass
class SegmentsResult:
    segments: sitk.Image                  # UInt8 1-8 inside the liver, 0 outside
    method: str                           # PORTAL_TERRITORIES or LANDMARK_PLANES
    landmarks: Landmarks | None
    assignments: dict                     # portal branch id -> segment (the seeds used)
    warnings: list = field(default_factory=list)
    caudate_from_landmarks: bool = False  # portal territories, but no caudate branch was found

    @property
    def description(self) -> str:
        """How the segments were made, as the report says it."""
        return self.method + (", segment 1 from the landmark planes"
                              if self.caudate_from_landmarks else "")

    @property
    def uses_landmarks(self) -> bool:
        return self.method == LANDMARK_PLANES or self.caudate_from_landmarks

    def to_dict(self) -> dict:
        return {"method": self.method, "description": self.description,
                "landmarks": None if self.landmarks is None else self.landmarks.to_dict(),
                "assignments": {str(k): int(v) for k, v in self.assignments.items()},
                "warnings": list(self.warnings)}


# --------------------------------------------------------------------------------------------


def couinaud_segments(liver: sitk.Image, vessels: VesselResult | None, *,
                      tumors: sitk.Image | None = None,
                      landmarks: Landmarks | None = None, assignments: dict | None = None,
                      method: str | None = None, working_spacing_mm: float = 2.0,
                      trunk_clearance_mm: float = 10.0,
                      progress=None, cancel=None) -> SegmentsResult:
    """Couinaud segments of `liver` (0/1 mask).

    vessels: the vessel result (its portal tree and landmarks); may be None with `landmarks`.
    tumors: lesion ids on the liver's grid: a branch running into a tumour also feeds the
    parenchyma beyond it (the CT does not show it inside the tumour; its course is followed).
    landmarks / assignments: user corrections that replace the automatic ones (assignments:
    portal branch id -> segment 1-8, 0 to drop a branch as a seed).
    method: force PORTAL_TERRITORIES or LANDMARK_PLANES; by default territories when the
    labelled tree reaches all eight segments (or all but the caudate, which then comes from the
    landmarks), else landmark planes.
    """
    steps = Steps(progress, cancel)
    if vessels is not None and not same_grid(vessels.vessels, liver):
        raise InputError("The vessels and the liver mask are not on the same grid.")
    if not np.any(sitk.GetArrayViewFromImage(liver)):
        raise SegmentationError("The liver mask is empty; segment or draw the liver first.")
    warnings: list[str] = []
    marks = landmarks or (automatic_landmarks(vessels, warnings) if vessels is not None else None)
    labels = dict(branch_segments(vessels)) if vessels is not None else {}
    assignments = assignments or {}
    labels.update(assignments)
    labels = {b: s for b, s in labels.items() if s}
    # a segment counts as reached by the tree through trusted pieces (see _trusted) running far
    # enough inside the liver, or through one assigned by hand; a branch running outside the
    # liver reaches no segment
    covered, trusted = set(), set()
    tumour = _tumour_points(tumors)
    if vessels is not None:
        trusted = _trusted(vessels, labels, assignments, tumour)
        for segment in SEGMENTS:
            own = [b for b in trusted if labels[b] == segment]
            least = _CAUDATE_MIN_MM if segment == 1 else _SEGMENT_MIN_MM
            if _inside_length_mm(vessels, own) >= least or any(
                    b in assignments and _inside(vessels.branches[b]).any() for b in own):
                covered.add(segment)
        # a hand assignment that can feed nothing is said, not silently dropped
        warnings += [f"Branch {b}, assigned to segment {s}, runs outside the liver mask and "
                     "feeds no segment: extend the liver around it, then recompute."
                     for b, s in sorted(assignments.items())
                     if s and not _inside(vessels.branches[b]).any()]
    # the caudate's own small branches are often not seen: its landmark region stands in
    caudate_from_planes = covered == set(SEGMENTS) - {1} and marks is not None
    if method is None:
        method = (PORTAL_TERRITORIES if covered == set(SEGMENTS) or caudate_from_planes
                  else LANDMARK_PLANES)
        if method == LANDMARK_PLANES and vessels is not None:
            missing = sorted(set(SEGMENTS) - covered)
            warnings.append("The portal tree does not reach segment(s) "
                            f"{', '.join(map(str, missing))} (or only by a twig); landmark planes "
                            "were used instead.")
    if method == LANDMARK_PLANES and marks is None:
        raise SegmentationError("Couinaud segments need either a portal tree that reaches every "
                                "segment or the landmarks (IVC, hepatic veins, portal bifurcation, "
                                "umbilical fissure); place the landmarks and try again.")
    steps.report(0.1, "Couinaud segments")
    grid = _liver_grid(liver, working_spacing_mm)
    points = grid.points
    caudate_from_landmarks = method == PORTAL_TERRITORIES and 1 not in covered \
        and marks is not None
    if method == PORTAL_TERRITORIES:
        seeds, seed_seg = _territory_seeds(vessels, labels, trusted, trunk_clearance_mm)
        ahead, ahead_seg = _through_tumours(vessels, labels, tumour)
        j = _nearest_seed(points, seeds, ahead)
        seeds, seed_seg = np.vstack([seeds, ahead]), np.concatenate([seed_seg, ahead_seg])
        seg = _caudate_behind_hilum(points, seed_seg[j], seeds, seed_seg,
                                    marks.portal_bifurcation_lps_mm if marks is not None
                                    else vessels.portal_bifurcation_lps_mm)
        if caudate_from_landmarks:
            seg = np.where(plane_segments(points, marks) == 1, 1, seg)
            warnings.append("No caudate portal branch was found (or one shorter than "
                            f"{_CAUDATE_MIN_MM:g} mm inside the liver): segment 1 is the landmark "
                            "region between the IVC and the portal bifurcation.")
    else:
        seg = plane_segments(points, marks)
    steps.report(0.6, "Couinaud segments: contiguity")
    out = grid.paint(_contiguous(seg.astype(np.uint8), grid), liver)
    for s in SEGMENTS:
        if not np.any(seg == s):
            warnings.append(f"Segment {s} is empty.")
    steps.report(1.0, "Couinaud segments done")
    return SegmentsResult(out, method, marks, labels if method == PORTAL_TERRITORIES else {},
                          warnings, caudate_from_landmarks)


def assignments_at(vessels: VesselResult, branch_points, *,
                   max_distance_mm: float = 10.0) -> tuple[dict, list[str]]:
    """(portal branch id -> segment, warnings) from clicks: each (LPS point, segment 1-8 or 0)
    names the portal branch nearest to the point (within `max_distance_mm`) and the branches it
    feeds; a later click overrides an earlier one. Clicks, unlike branch ids, stay valid when
    the vessels are corrected and their trees read again."""
    out, warnings = {}, []
    for point, segment in branch_points:
        b = branch_at(vessels, point, max_distance_mm=max_distance_mm, system=PORTAL)
        if b is None:
            where = ", ".join(f"{v:.0f}" for v in point)
            warnings.append(f"No portal branch lies within {max_distance_mm:.0f} mm of the point "
                            f"({where}) assigned to segment {segment}: that assignment was left "
                            "out.")
            continue
        out.update({d: segment for d in vessels.subtree(b)})
    return out, warnings


def _through_tumours(vessels: VesselResult, labels: dict, tumour: cKDTree | None,
                     max_mm: float = 80.0, course_mm: float = 5.0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Points 1 mm apart continuing each labelled end branch that runs into a tumour (within
    TUMOUR_REACH_MM ahead of its end) straight on through it, with the branch's segment: the
    parenchyma behind a metastasis is fed by the branch it interrupts (on the synthetic patient
    of seed 4, two segment-4 branches end in lesions; without their course, segment 3 took the
    parenchyma behind them). The branch's course is measured over its last `course_mm`.
    `tumour`: the tumour voxels (`_tumour_points`)."""
    points, segs = [np.empty((0, 3))], [np.empty(0, int)]
    if tumour is None:
        return points[0], segs[0]
    steps_mm = np.arange(1.0, max_mm)
    for b, s in labels.items():
        branch = vessels.branches[b]
        p = np.asarray(branch.points_lps_mm)
        if branch.children or len(p) < 3:
            continue
        back = np.linalg.norm(p - p[-1], axis=1) >= course_mm
        d = p[-1] - p[np.nonzero(back)[0][-1] if back.any() else 0]
        ahead = p[-1] + np.outer(steps_mm, d / max(np.linalg.norm(d), 1e-6))
        near = tumour.query(ahead, distance_upper_bound=TUMOUR_REACH_MM)[0] <= TUMOUR_REACH_MM
        if not near[1]:                               # not running into a tumour 2 mm ahead
            continue
        # up to where it leaves the reach (the first millimetre may lie short of it)
        n = 1 + int(np.argmin(near[1:])) if not near[1:].all() else len(near)
        points.append(ahead[:n])
        segs.append(np.full(n, s))
    return np.concatenate(points), np.concatenate(segs)


def _nearest_seed(points: np.ndarray, seen: np.ndarray, inferred: np.ndarray) -> np.ndarray:
    """Index of each point's seed in `seen` followed by `inferred` (the course of a branch
    through a tumour, a guess): an inferred seed wins only when `_INFERRED_DISTANCE_FACTOR`
    times nearer than every seen one."""
    d, j = cKDTree(seen).query(points, workers=-1)
    if not len(inferred):
        return j
    d_inferred, k = cKDTree(inferred).query(points, workers=-1)
    return np.where(d_inferred * _INFERRED_DISTANCE_FACTOR < d, len(seen) + k, j)


def _tumour_points(tumors: sitk.Image | None) -> cKDTree | None:
    """The tumour voxels (LPS mm), None without any."""
    voxels = np.argwhere(sitk.GetArrayViewFromImage(tumors) > 0) if tumors is not None else ()
    return cKDTree(index_to_lps(tumors, voxels)) if len(voxels) else None


def _trusted(vessels: VesselResult, labels: dict, assignments: dict,
             tumour: cKDTree | None) -> set:
    """The labelled branches whose segment can be relied on: those joined to the tree across a
    narrow gap (a piece bridged from afar is a guess: on 3D-IRCADb-01 segment 2 held only three
    pieces bridged 16-28 mm, and its territory took 282 mL from segment 3), those joined across
    a tumour (the far part of a branch the tumour interrupts: the synthetic patient of seed 1's
    segment-7 branch beyond L1, without which the caudate's territory took 32 mL of segment 7)
    and those assigned by hand. `tumour`: the tumour voxels (`_tumour_points`)."""
    out = set()
    for b in labels:
        gap = _join_to_parent_lps_mm(vessels, b)
        if b in assignments or np.linalg.norm(gap[1] - gap[0]) <= _BRIDGE_TRUST_MM:
            out.add(b)
        elif tumour is not None:
            line = gap[0] + np.outer(np.linspace(0, 1, 16), gap[1] - gap[0])
            near = tumour.query(line, distance_upper_bound=TUMOUR_REACH_MM)[0] <= TUMOUR_REACH_MM
            if near.mean() >= 0.5:
                out.add(b)
    return out


def _territory_seeds(vessels: VesselResult, labels: dict, trusted: set, clearance_mm: float):
    """Centerline points of the labelled branches inside the liver, leaving out those within
    `clearance_mm` of a trunk (a branch feeding several segments): a segment's territory is
    fed by its branch beyond the trunk, not by the stump on it. Branches not `trusted` are left
    out too, unless their segment has no other: which branch they belong to is a guess (a
    3-voxel fragment by the left hepatic vein, joined 23 mm away from a segment-2 branch,
    carried segment 2 across 4)."""
    trunks = [b.id for b in vessels.branches.values() if b.system == 1 and b.id not in labels]
    near_trunk = cKDTree(_points(vessels, trunks)) if trunks else None
    seeded = {labels[b] for b in trusted}
    trusted = set(trusted) | {b for b, s in labels.items() if s not in seeded}
    seeds, segs = [], []
    for b, s in labels.items():
        branch = vessels.branches[b]
        if b not in trusted:
            continue
        p = np.asarray(branch.points_lps_mm)
        keep = _inside(branch)
        if near_trunk is not None:
            far = near_trunk.query(p)[0] > clearance_mm
            keep &= far if (keep & far).any() else keep
        if keep.any():
            seeds.append(p[keep])
            segs.append(np.full(int(keep.sum()), s))
    if not seeds:
        raise SegmentationError("No portal branch lies inside the liver; check the vessels.")
    return np.concatenate(seeds), np.concatenate(segs)


def _caudate_behind_hilum(points, seg, seeds, seed_seg, bifurcation_lps_mm) -> np.ndarray:
    """The caudate (1) lies behind the hilum: parenchyma in front of the portal bifurcation's
    coronal plane that is nearest a caudate branch belongs to the nearest other branch (the
    caudate's branches leave the left portal vein close behind the bifurcation and were the
    nearest seeds of hilar parenchyma of segments 4, 2 and 8)."""
    if bifurcation_lps_mm is None:
        return seg
    front = (seg == 1) & (points[:, 1] < bifurcation_lps_mm[1])
    others = seed_seg != 1
    if not front.any() or not others.any():
        return seg
    _, j = cKDTree(seeds[others]).query(points[front], workers=-1)
    seg = seg.copy()
    seg[front] = seed_seg[others][j]
    return seg


def _inside_length_mm(vessels: VesselResult, branch_ids) -> float:
    """Length of the branches' centerlines inside the liver (steps between two points inside)."""
    length = 0.0
    for branch in (vessels.branches[b] for b in branch_ids):
        inside = _inside(branch)
        steps = np.linalg.norm(np.diff(np.asarray(branch.points_lps_mm), axis=0), axis=1)
        length += float(steps[inside[:-1] & inside[1:]].sum())
    return length


def _inside(branch) -> np.ndarray:
    """Which of a branch's points lie inside the liver."""
    return (np.asarray(branch.depths_mm) > 0 if branch.depths_mm
            else np.ones(len(branch.points_lps_mm), bool))


def _join_to_parent_lps_mm(vessels: VesselResult, b: int) -> np.ndarray:
    """The closest (parent point, point of `b`), LPS mm, where branch `b` joins its parent (the
    same point twice for a root; a few mm apart where the skeleton joins at a junction, more
    where a gap in the vessel mask was bridged)."""
    branch = vessels.branches[b]
    ends = np.asarray(branch.points_lps_mm)[[0, -1]]
    if branch.parent is None:
        return ends[[0, 0]]
    parent = np.asarray(vessels.branches[branch.parent].points_lps_mm)
    d = np.linalg.norm(parent[:, None] - ends[None], axis=2)
    i, j = np.unravel_index(np.argmin(d), d.shape)
    return np.array([parent[i], ends[j]])


@dataclass(frozen=True)
class _LiverGrid:
    """The liver cut into pieces of about the working spacing (each block of whole CT voxels
    split into its face-connected parts of liver), with their face contacts: segments are
    labelled per piece and made contiguous on the piece graph, which is contiguity on the CT
    grid itself."""
    box: tuple                  # the liver's bounding box (z, y, x slices of the CT grid)
    piece: np.ndarray           # box-shaped: piece id + 1 of each liver voxel, 0 outside
    points: np.ndarray          # (n, 3) LPS centroid of each piece
    sizes: np.ndarray           # (n,) voxels per piece
    edges: np.ndarray           # (m, 2) pieces sharing faces
    contact: np.ndarray         # (m,) faces they share

    def paint(self, labels: np.ndarray, liver: sitk.Image) -> sitk.Image:
        out = np.zeros(sitk.GetArrayViewFromImage(liver).shape, np.uint8)
        out[self.box] = np.concatenate([[0], labels])[self.piece]
        return image_from_array(out, liver)


_GRID_CACHE: dict = {}      # the last liver's grid: an edit recomputes only the labels


def _liver_grid(liver: sitk.Image, spacing_mm: float) -> _LiverGrid:
    """The piece graph of `liver`, kept for the last liver mask seen (same content, grid and
    spacing): it is the slow part and does not change when landmarks or branches are edited."""
    a = sitk.GetArrayViewFromImage(liver)
    key = (hashlib.blake2b(np.ascontiguousarray(a).data, digest_size=16).hexdigest(),
           liver.GetOrigin(), liver.GetSpacing(), liver.GetDirection(), spacing_mm)
    grid = _GRID_CACHE.get(key)
    if grid is None:        # (built before the swap: a worker thread may be reading the old one)
        grid = _build_liver_grid(a > 0, liver, spacing_mm)
        _GRID_CACHE.clear()
        _GRID_CACHE[key] = grid
    return grid


def _build_liver_grid(inside_all: np.ndarray, liver: sitk.Image, spacing_mm: float) -> _LiverGrid:
    nz = [np.nonzero(inside_all.any(axis=tuple(j for j in range(3) if j != i)))[0]
          for i in range(3)]
    box = tuple(slice(int(n[0]), int(n[-1]) + 1) for n in nz)
    inside = inside_all[box]
    step = [max(int(round(spacing_mm / s)), 1) for s in np.array(liver.GetSpacing())[::-1]]
    zyx = np.indices(inside.shape, sparse=True)
    blocks = ((zyx[0] // step[0]) * ((inside.shape[1] - 1) // step[1] + 1)
              + zyx[1] // step[1]) * ((inside.shape[2] - 1) // step[2] + 1) + zyx[2] // step[2]
    piece = label_components(np.where(inside, blocks + 1, 0), background=0, connectivity=1).astype(np.int32)
    n = int(piece.max())
    where = np.nonzero(piece)
    ids = piece[where] - 1
    sizes = np.bincount(ids, minlength=n)
    centroid = np.stack([np.bincount(ids, weights=w + b.start, minlength=n) / sizes
                         for w, b in zip(where, box)], axis=1)
    pairs = []
    for axis in range(3):
        a = piece[tuple(slice(None, -1) if i == axis else slice(None) for i in range(3))]
        b = piece[tuple(slice(1, None) if i == axis else slice(None) for i in range(3))]
        touch = (a > 0) & (b > 0) & (a != b)
        pairs.append(np.stack([a[touch], b[touch]], axis=1) - 1)
    pairs = np.sort(np.concatenate(pairs), axis=1).astype(np.int64)
    keys, contact = np.unique(pairs[:, 0] * n + pairs[:, 1], return_counts=True)
    return _LiverGrid(box, piece, index_to_lps(liver, centroid), sizes,
                      np.stack([keys // n, keys % n], axis=1), contact)


def _contiguous(labels: np.ndarray, grid: _LiverGrid) -> np.ndarray:
    """Keep one connected piece per segment; stray pieces join the neighbouring segment they
    touch most (repeated until stable). A detached island of liver keeps its label."""
    labels = labels.copy()
    a, b = grid.edges.T
    n = len(labels)
    for _ in range(4):
        same = labels[a] == labels[b]
        _, comp = connected_components(coo_matrix((np.ones(same.sum()), (a[same], b[same])),
                                                  shape=(n, n)), directed=False)
        size = np.bincount(comp, weights=grid.sizes)
        comp_label = np.zeros(len(size), np.uint8)
        comp_label[comp] = labels
        # the largest component of each segment stays; the others are strays
        order = np.lexsort((-size, comp_label))
        first = np.r_[True, comp_label[order][1:] != comp_label[order][:-1]]
        stray = np.ones(len(size), bool)
        stray[order[first]] = False
        if not stray[comp].any():
            break
        # faces each stray component shares with each other segment
        votes = np.zeros((len(size), 9))
        for u, v in ((a, b), (b, a)):
            other = ~same & stray[comp[u]]
            np.add.at(votes, (comp[u][other], labels[v][other]), grid.contact[other])
        target = np.where(votes.any(axis=1), votes.argmax(axis=1), comp_label)
        moved = np.where(stray[comp], target[comp], labels).astype(np.uint8)
        if np.array_equal(moved, labels):
            break
        labels = moved
    return labels


# --------------------------------------------------------------------------------------------
# Branch labels and landmarks from the portal tree


def _stem(vessels: VesselResult, starts: list[int]) -> list[int]:
    """The main stem from the largest of `starts`: follow the child with the largest subtree
    volume down to a leaf."""
    mass = subtree_volume_mm3(vessels)
    stem = [max(starts, key=lambda b: mass.get(b, 0.0))]
    while vessels.branches[stem[-1]].children:
        stem.append(max(vessels.branches[stem[-1]].children, key=lambda c: mass.get(c, 0.0)))
    return stem


def _points(vessels: VesselResult, branch_ids) -> np.ndarray:
    return np.concatenate([np.asarray(vessels.branches[b].points_lps_mm) for b in branch_ids])


def _blood_centroid(vessels: VesselResult, branch_ids) -> np.ndarray:
    """Centroid of the branches' centerlines weighted by their cross-section (radius^2): where
    a subtree's blood goes is its thick vessels' course, not its twigs' (the synthetic patient
    of seed 4: segment 4b's branch, leaving the umbilical portion's end toward the right, had a
    1 mm twig running left; by plain centroid it lay 0.4 mm left of the umbilical point and
    was labelled 3, which took 27 mL of segment 4)."""
    r2 = np.concatenate([np.square(vessels.branches[b].radii_mm) for b in branch_ids])
    return np.average(_points(vessels, branch_ids), axis=0, weights=r2)


def automatic_landmarks(vessels: VesselResult, warnings: list) -> Landmarks | None:
    """Landmarks read from the vessel trees; None (with a warning) if one cannot be found."""
    bif = vessels.portal_bifurcation_lps_mm
    left = vessels.portal_sides.get("left")
    hv = vessels.hepatic_veins
    missing = [n for n, ok in (("portal bifurcation", bif is not None),
                               ("left portal vein", bool(left)),
                               ("right, middle and left hepatic veins", len(hv) == 3)) if not ok]
    if missing:
        warnings.append("Landmarks not found in the vessel trees: " + ", ".join(missing)
                        + "; place them by hand if the segments look wrong.")
        return None

    def centroid(b):
        return tuple(_points(vessels, vessels.subtree(b)).mean(axis=0))
    # the veins' mean start gives the confluence's height; where they start depends on how far
    # the tree had to be opened to name them, so the IVC itself is taken from the stem they share
    height = np.mean([vessels.branches[hv[n]].points_lps_mm[0][2] for n in hv])
    ivc = _ivc_at(vessels, list(hv.values()), height)
    right_vein, middle, left_vein = (centroid(hv[n]) for n in ("right", "middle", "left"))
    a_right, a_middle, a_left = _azimuth(np.array([right_vein, middle, left_vein]), ivc)
    # the middle vein runs in front of the IVC, left of the right vein; a "middle" vein elsewhere
    # (a tributary of the right vein named when the real one is joined to another vein) shows
    # neither the main portal fissure nor, with the left vein, the umbilical one
    middle_in_place = a_middle > a_right
    umbilical = _umbilical_point(vessels, left)
    left_tree_followed = umbilical[0] > (max(bif[0], middle[0]) if middle_in_place else bif[0])
    if not left_tree_followed:
        # the umbilical portion lies left of the bifurcation and of the middle hepatic vein;
        # a point elsewhere means the left portal tree was not followed: the fissure is then
        # put half-way between the middle and left hepatic veins, which it lies between, or
        # without the middle vein _UMBILICAL_FROM_LEFT_VEIN_DEG right of the left vein
        umbilical = (tuple(0.5 * (np.asarray(middle) + np.asarray(left_vein))) if middle_in_place
                     else _at_azimuth(ivc, a_left - _UMBILICAL_FROM_LEFT_VEIN_DEG,
                                      np.array([left_vein])))
        warnings.append("The umbilical portion of the left portal vein was not found: the "
                        "umbilical fissure was placed from the hepatic veins (between the middle "
                        "and left veins, or just right of the left vein); check the segment 4 / "
                        "segments 2-3 border.")
    a_umbilical = _azimuth(np.array([umbilical]), ivc)[0]
    if not a_right < a_middle < a_umbilical:
        # the middle vein runs between the right vein and the umbilical fissure; one elsewhere
        # would leave the right anterior sector or segment 4 empty: the main portal fissure is
        # then put half-way between the portal branches of the right anterior sector and of
        # segment 4 (it separates them), or, without them (segment 4's are named from the
        # umbilical portion) or where they do not lie in that order, half-way between the right
        # vein and the umbilical fissure
        labels = branch_segments(vessels)
        sides = [[b for b, s in labels.items() if s in segs] for segs in ((5, 8), (4,))]
        angle = (np.mean([_azimuth(_points(vessels, bs), ivc).mean() for bs in sides])
                 if all(sides) and left_tree_followed else np.nan)
        if not a_right < angle < a_umbilical:
            angle = 0.5 * (a_right + a_umbilical)
        middle = _at_azimuth(ivc, angle, np.array([right_vein, umbilical]))
        warnings.append("The middle hepatic vein was not found where it runs (between the right "
                        "hepatic vein and the umbilical fissure): the right liver / segment 4 "
                        "border was put between their portal territories; check it.")
    return Landmarks(
        ivc_lps_mm=tuple(ivc),
        portal_bifurcation_lps_mm=tuple(bif),
        right_hepatic_vein_lps_mm=right_vein,
        middle_hepatic_vein_lps_mm=middle,
        left_hepatic_vein_lps_mm=left_vein,
        umbilical_fissure_lps_mm=umbilical)


# Where each landmark typically lies in the liver's bounding box (fractions of its LPS extent,
# x right to left, y front to back, z foot to head): the means of the automatic landmarks on
# 3D-IRCADb-01 and the synthetic patients of seeds 0-4, which agree within 0.1 but for the IVC's
# and the umbilical fissure's depth (y 0.53-0.78, 0.14-0.31).
_TYPICAL_LANDMARKS = {
    "ivc_lps_mm": (0.50, 0.69, 0.83),
    "portal_bifurcation_lps_mm": (0.48, 0.52, 0.48),
    "right_hepatic_vein_lps_mm": (0.25, 0.55, 0.54),
    "middle_hepatic_vein_lps_mm": (0.39, 0.36, 0.64),
    "left_hepatic_vein_lps_mm": (0.59, 0.39, 0.73),
    "umbilical_fissure_lps_mm": (0.58, 0.25, 0.55),
}


def typical_landmarks(liver: sitk.Image) -> Landmarks:
    """Starting positions for landmarks placed by hand when the vessel trees give none (no
    vessels, e.g. MR or unenhanced CT, or trees too incomplete): each at its typical place in
    the liver's bounding box. Only a start: the user moves each to where it belongs."""
    mask = sitk.GetArrayViewFromImage(liver) > 0
    if not mask.any():
        raise SegmentationError("The liver mask is empty; segment or draw the liver first.")
    box = bbox(mask)
    corners = index_to_lps(liver, np.array([[b.start for b in box], [b.stop - 1 for b in box]],
                                           float))
    low, high = corners.min(axis=0), corners.max(axis=0)
    return Landmarks(**{k: tuple(map(float, low + np.asarray(f) * (high - low)))
                        for k, f in _TYPICAL_LANDMARKS.items()})


def _ivc_at(vessels: VesselResult, veins: list[int], height_mm: float) -> tuple:
    """The IVC at `height_mm`: the thick part of the hepatic stem all `veins` hang from (the
    hepatic root up to where the first of them branches off), at its point nearest that
    height."""
    def ancestors(b):
        out = []
        while vessels.branches[b].parent is not None:
            b = vessels.branches[b].parent
            out.append(b)
        return set(out)
    stem = set.intersection(*map(ancestors, veins))
    if not stem:
        p = np.array([vessels.branches[v].points_lps_mm[0] for v in veins])
    else:
        radius = {b: float(np.median(vessels.branches[b].radii_mm)) for b in stem}
        p = _points(vessels, [b for b in stem if radius[b] >= 0.5 * max(radius.values())])
    x, y, _ = p[np.argmin(np.abs(p[:, 2] - height_mm))]
    return (float(x), float(y), float(height_mm))


def _azimuth(points: np.ndarray, ivc) -> np.ndarray:
    """Angle (degrees) around the IVC's vertical axis from the patient's right (0) through the
    front (90) to the left (180); behind the IVC on the left continues past 180."""
    d = np.atleast_2d(points) - np.asarray(ivc)
    ang = np.degrees(np.arctan2(-d[:, 1], -d[:, 0]))
    return np.where(ang < -90.0, ang + 360.0, ang)


def _at_azimuth(ivc, angle_deg: float, between: np.ndarray) -> tuple:
    """A point at `angle_deg` around the IVC, at the mean horizontal distance and height of
    the points `between`."""
    d = np.asarray(between) - np.asarray(ivc)
    r = float(np.hypot(d[:, 0], d[:, 1]).mean())
    a = np.radians(angle_deg)
    return (ivc[0] - r * np.cos(a), ivc[1] - r * np.sin(a), float(np.asarray(between)[:, 2].mean()))


def _umbilical_split(vessels: VesselResult, stem: list[int]) -> int:
    """Index of the first stem branch after the umbilical portion: the stem of the left portal
    vein runs forward in the umbilical fissure, then turns to the patient's left (segment 3)."""
    seen_forward = False
    for i, b in enumerate(stem):
        p = np.asarray(vessels.branches[b].points_lps_mm)
        dx, dy = p[-1][0] - p[0][0], p[-1][1] - p[0][1]
        if -dy > abs(dx):
            seen_forward = True
        elif seen_forward and dx > abs(dy):
            return i
    return len(stem) - 1 if len(stem) > 1 else len(stem)


def _umbilical_point(vessels: VesselResult, left: list[int]) -> tuple:
    """The end of the umbilical portion of the left portal vein (its most anterior point)."""
    stem = _stem(vessels, left)
    points = _points(vessels, stem[:max(_umbilical_split(vessels, stem), 1)])
    return tuple(points[np.argmin(points[:, 1])])


def branch_segments(vessels: VesselResult) -> dict:
    """Portal branch id -> segment it feeds (trunks feeding several segments are left out)."""
    right = vessels.portal_sides.get("right")
    left = vessels.portal_sides.get("left")
    bif = vessels.portal_bifurcation_lps_mm
    if not right or not left or bif is None:
        return {}
    own: dict[int, int] = {}
    # right liver: anterior (5, 8) or posterior (6, 7) sector, above or below where the
    # sector's vein divides (its far end)
    for sector, (low, high) in _sectors(vessels, right):
        split_z = vessels.branches[sector].points_lps_mm[-1][2]
        for b in vessels.subtree(sector):
            z = np.asarray(vessels.branches[b].points_lps_mm)[:, 2].mean()
            own[b] = high if z >= split_z else low
    # left liver: each branch leaving the stem (left portal vein and umbilical portion) feeds
    # one segment with its whole subtree: 1 well behind the bifurcation, or behind it and leaving
    # backwards, toward the IVC (medial to the umbilical portion or just lateral to it); else
    # medial to the umbilical portion or in its fissure 4, lateral to it 2 (the posterior group)
    # or 3 (the anterior one)
    stem = _stem(vessels, left)
    k = _umbilical_split(vessels, stem)
    umb_x = _umbilical_point(vessels, left)[0]
    firsts = [c for b in stem[:k] for c in vessels.branches[b].children if c not in stem]
    firsts += stem[k:k + 1] + [b for b in left if b not in stem]
    # (a branch running outside the liver, at the hilum, feeds no segment)
    firsts = [f for f in firsts if any(_inside(vessels.branches[b]).any()
                                       for b in vessels.subtree(f))]
    lateral = {}
    for first in firsts:
        c = _blood_centroid(vessels, vessels.subtree(first))
        start = vessels.branches[first].points_lps_mm[0]
        backwards = c[1] > max(bif[1], start[1])   # leaves backwards, behind the bifurcation
        behind = c[1] > bif[1] + _CAUDATE_BEHIND_MM or backwards
        if behind and c[0] < umb_x + _CAUDATE_LEFT_MM:
            label = 1
        elif c[0] < umb_x + _FISSURE_MM:
            label = 4
        else:
            lateral[first] = c[1]
            continue
        own.update({b: label for b in vessels.subtree(first)})
    posterior = _posterior_group(lateral)
    for first in lateral:
        own.update({b: 2 if first in posterior else 3 for b in vessels.subtree(first)})
    # a branch whose subtree feeds several segments is a trunk, not a seed
    return {b: s for b, s in own.items()
            if all(own.get(d, s) == s for d in vessels.subtree(b))}


def _posterior_group(y_of: dict) -> set:
    """The keys of the posterior (larger y) group when the values split best into two groups
    (two-means in one dimension)."""
    if len(y_of) < 2:
        return set()
    keys = sorted(y_of, key=y_of.get)
    y = np.array([y_of[k] for k in keys])
    cost = [y[:i].var() * i + y[i:].var() * (len(y) - i) for i in range(1, len(y))]
    return set(keys[int(np.argmin(cost)) + 1:])


def _sectors(vessels: VesselResult, right: list[int]) -> list:
    """[(anterior branch, (5, 8)), (posterior branch, (6, 7))]: the first split of the right
    portal vein into two substantial subtrees (or the two right branches of a trifurcation);
    the one lying further forward (smaller y) is anterior."""
    mass = subtree_volume_mm3(vessels)
    kids = sorted(right, key=lambda c: mass.get(c, 0.0), reverse=True)
    while len(kids) < 2 or mass[kids[1]] < 0.2 * mass[kids[0]]:
        nxt = sorted(vessels.branches[kids[0]].children, key=lambda c: mass.get(c, 0.0),
                     reverse=True)
        if not nxt:
            return [(kids[0], (5, 8))]
        kids = nxt + kids[1:]
        kids.sort(key=lambda c: mass.get(c, 0.0), reverse=True)
    a, b = kids[0], kids[1]
    y = {c: _points(vessels, vessels.subtree(c))[:, 1].mean() for c in (a, b)}
    anterior, posterior = (a, b) if y[a] < y[b] else (b, a)
    return [(anterior, (5, 8)), (posterior, (6, 7))]


# --------------------------------------------------------------------------------------------
# Landmark planes


def plane_segments(points: np.ndarray, m: Landmarks) -> np.ndarray:
    """Segment of each LPS point (N, 3) from the landmark planes."""
    ivc = np.asarray(m.ivc_lps_mm)
    bif = np.asarray(m.portal_bifurcation_lps_mm)

    a = _azimuth(points, ivc)
    a_rhv, a_mhv, a_umb = _azimuth(np.array([m.right_hepatic_vein_lps_mm,
                                             m.middle_hepatic_vein_lps_mm,
                                             m.umbilical_fissure_lps_mm]), ivc)
    above = points[:, 2] >= bif[2]
    seg = np.where(a < a_rhv, np.where(above, 7, 6),
                   np.where(a < a_mhv, np.where(above, 8, 5),
                            np.where(a < a_umb, 4, 3)))
    # 2 vs 3: the side of the left hepatic vein's plane (through the IVC, containing the vein
    # and the horizontal perpendicular to it); 2 lies above/behind it
    lhv = np.asarray(m.left_hepatic_vein_lps_mm) - ivc
    horizontal = np.cross([0.0, 0.0, 1.0], lhv)
    normal = np.cross(lhv, horizontal)
    normal *= np.sign(normal[2]) or 1.0
    seg = np.where((seg == 3) & ((points - ivc) @ normal > 0), 2, seg)
    # caudate: behind the bifurcation (the hilum is its front border; its branches run further
    # back, but its parenchyma starts there), in front of the IVC's back wall, from just right
    # of the IVC's centre to just left of the umbilical fissure (the Spiegel lobe), below the
    # hepatic vein confluence
    caudate = ((points[:, 1] > bif[1]) & (points[:, 1] < ivc[1] + 10.0)
               & (points[:, 0] > ivc[0] - 15.0)
               & (points[:, 0] < m.umbilical_fissure_lps_mm[0] + _CAUDATE_LEFT_MM)
               & (points[:, 2] < ivc[2]))
    return np.where(caudate, 1, seg).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Volumes and lesions


def segment_volumes_ml(segments: sitk.Image) -> dict[int, float]:
    return {s: mask_volume_ml(segments, s) for s in SEGMENTS}


def segment_pieces(segments: sitk.Image) -> dict[int, int]:
    """Face-connected pieces of each segment within the liver's main body (a detached island
    of liver cannot join any segment); 1 everywhere for contiguous segments."""
    a = sitk.GetArrayViewFromImage(segments)
    body = sitk.GetArrayFromImage(sitk.RelabelComponent(sitk.ConnectedComponent(
        image_from_array((a > 0).astype(np.uint8), segments), False))) == 1
    return {s: int(sitk.GetArrayFromImage(sitk.ConnectedComponent(
        image_from_array(((a == s) & body).astype(np.uint8), segments), False)).max())
        for s in SEGMENTS}


def sector_volumes_ml(segments: sitk.Image) -> dict[str, float]:
    v = segment_volumes_ml(segments)
    return {name: sum(v[s] for s in segs) for name, segs in SECTORS.items()}


def hemiliver_volumes_ml(segments: sitk.Image) -> dict[str, float]:
    """Right liver (5-8), left liver (2-4) and the caudate (1) reported on its own."""
    v = segment_volumes_ml(segments)
    return {name: sum(v[s] for s in segs) for name, segs in HEMILIVERS.items()}


def lesion_segments(tumors: sitk.Image, segments: sitk.Image, *,
                    min_fraction: float = 0.05) -> dict[int, dict[int, float]]:
    """Lesion id -> {segment: fraction of the lesion's volume in it}, for every segment holding
    at least `min_fraction` of the lesion (the largest one always), largest first."""
    if not same_grid(tumors, segments):
        raise InputError("The lesion map and the segments are not on the same grid.")
    t = sitk.GetArrayViewFromImage(tumors)
    s = sitk.GetArrayViewFromImage(segments)
    out = {}
    for lesion in np.unique(t[t > 0]):
        inside = s[t == lesion]
        counts = np.bincount(inside[inside > 0], minlength=9)[1:]
        if counts.sum() == 0:
            out[int(lesion)] = {}
            continue
        frac = counts / counts.sum()
        keep = [(i + 1, float(f)) for i, f in enumerate(frac)
                if f >= min_fraction or i == int(np.argmax(frac))]
        out[int(lesion)] = dict(sorted(keep, key=lambda kv: -kv[1]))
    return out
