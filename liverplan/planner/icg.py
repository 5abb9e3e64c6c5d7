"""Expected ICG fluorescence on the liver surface and on a planned transection.

About 24 h after 10 mg of indocyanine green (ICG) i.v., colorectal liver metastases show a
fluorescent rim: ICG retained in the hepatocytes compressed by the tumour. A near-infrared (NIR)
camera sees it through a few mm of parenchyma. This module predicts what the camera will show.

Model (every parameter is a field of `IcgParameters`, stored in the plan file):

- Source. Each lesion is surrounded by a rim of parenchyma `rim_thickness_mm` thick (an explicit
  assumption, no published value; 0.5-5 mm) that emits `tbr` times as much as normal liver
  (tumour-to-background ratio, default 7). Normal liver emits the uniform `background`
  (1 = the normal liver the TBR was measured against). Tumour tissue itself does not emit in the
  "rim" pattern; in the "whole" pattern (as with hepatocellular tumours, chosen per lesion) the
  lesion itself emits `tbr`.
- Transport. Diffuse NIR light from depth z reaches the surface attenuated by exp(-mu_eff z)
  (`mu_eff_per_mm`). Seen from a surface point, the emitter is treated as a slab between the
  depths where it begins and ends along the shortest path, so it contributes
  tbr * (exp(-mu_eff * z_near) - exp(-mu_eff * z_far)). For a rim behind a point at distance s
  from the lesion that is z_near = max(s - rim, 0), z_far = s: the signal strictly falls with
  depth once the lesion is deeper than the rim, and a lesion reaching the surface shows the
  typical ring with a dark centre. A "whole" lesion contributes tbr * exp(-mu_eff s) *
  (1 - exp(-mu_eff * diameter)). Contributions of several lesions add; the background adds
  `background`.
- Detection. The camera's limit is calibrated once on a standard rim (the published default TBR
  and the default rim thickness, see liverplan.evidence) around a lesion lying exactly
  `detection_depth_mm` (default 8 mm) below the surface: a point is visible iff its expected
  intensity >= threshold = background + that standard rim's signal. A thicker or brighter rim is
  therefore seen deeper, a thinner or dimmer one less deep.
- Transection. The cut surface (boundary between the resected region and the remnant) is viewed
  from two sides: the specimen's cut face and the remnant cavity. Each side sees the rims of the
  lesion parts behind it, plus the part of the rim of a lesion on the other side that the cut
  leaves on its side (rim beyond a margin m < rim: tbr * (1 - exp(-mu_eff (rim - m)))).
  The margin printed beside NIR+/NIR- and behind the flags is the planner's (margins.py), the
  one that decides R0/R1 in the plan's verdict; a lesion left in the remnant gets no margin
  flag but a statement of what the cavity will show of it.
- Computation. Per lesion, a signed distance map (scipy EDT with the voxel spacing, corrected
  from voxel centres to voxel faces) is computed in a crop holding the lesion and the mesh
  vertices within its reach (where its signal is still >= 5% of the threshold contrast; beyond,
  it is dropped), then sampled at the vertices by trilinear interpolation. Depth below the
  capsule is the smallest sampled distance; for a lesion beyond its reach it is measured between
  the lesion mesh and the surface mesh instead.

Limits: the slab model ignores the lateral extent of the rim (a small lesion is predicted as
visible as a large one at the same depth), and light paths through vessels or air are not
modelled. Predictions say where fluorescence is expected, not that it will be seen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import pyvista as pv
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import cKDTree

from liverplan import evidence
from liverplan.errors import PlanningError
from liverplan.geometry import lps_to_index, same_grid
from liverplan.meshes import mask_to_mesh
from liverplan.planner.margins import LesionOutcome, outcomes_for_masks
from liverplan.progress import Steps

PATTERNS = ("rim", "whole")
RIM_THICKNESS_RANGE_MM = (0.5, 5.0)   # the adjustable range of the ICG_RIM_THICKNESS_MM assumption
SURFACE_ARRAY = "icg_intensity"
SPECIMEN_ARRAY = "icg_specimen"
CAVITY_ARRAY = "icg_cavity"
_NEGLIGIBLE = 0.05   # a lesion's signal below 5% of the threshold contrast is not computed


@dataclass(frozen=True)
class IcgParameters:
    """Every knob of the optics model, with published defaults or explicit assumptions."""

    rim_thickness_mm: float = evidence.ICG_RIM_THICKNESS_MM.value
    tbr: float = evidence.ICG_TBR.value
    background: float = 1.0
    mu_eff_per_mm: float = evidence.ICG_MU_EFF_PER_MM.value
    detection_depth_mm: float = evidence.ICG_DETECTION_DEPTH_MM.value
    lesion_patterns: tuple[tuple[int, str], ...] = ()   # (lesion id, "whole"); others use "rim"

    def __post_init__(self):
        lo, hi = RIM_THICKNESS_RANGE_MM
        checks = [
            (lo <= self.rim_thickness_mm <= hi, f"rim thickness must be {lo}-{hi} mm"),
            (1.0 < self.tbr <= 100.0, "the tumour-to-background ratio must be > 1 and <= 100"),
            (0.0 <= self.background <= 10.0, "the background must be 0-10"),
            (0.0 < self.mu_eff_per_mm <= 5.0, "the effective attenuation must be > 0 and <= 5 /mm"),
            (evidence.ICG_RIM_THICKNESS_MM.value < self.detection_depth_mm <= 30.0,
             f"the detection depth must be > {evidence.ICG_RIM_THICKNESS_MM.value} and <= 30 mm"),
            (all(p in PATTERNS for _, p in self.lesion_patterns),
             f"a lesion pattern must be one of {', '.join(PATTERNS)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise PlanningError(f"ICG parameters: {message}.")

    def pattern(self, lesion_id: int) -> str:
        return dict(self.lesion_patterns).get(int(lesion_id), "rim")

    def with_pattern(self, lesion_id: int, pattern: str) -> "IcgParameters":
        patterns = dict(self.lesion_patterns)
        patterns[int(lesion_id)] = pattern
        return replace(self, lesion_patterns=tuple(sorted(patterns.items())))

    @property
    def threshold_contrast(self) -> float:
        """Signal above background of the standard rim around a lesion at the detection depth."""
        rim = evidence.ICG_RIM_THICKNESS_MM.value
        return float(rim_behind(np.array(self.detection_depth_mm), rim, evidence.ICG_TBR.value,
                                self.mu_eff_per_mm))

    @property
    def threshold(self) -> float:
        """Expected intensity at which a signal is just visible."""
        return self.background + self.threshold_contrast

    def reach_mm(self, lesion_id: int) -> float:
        """Distance from the lesion beyond which its signal is < 5% of the threshold contrast."""
        mu = self.mu_eff_per_mm
        if self.pattern(lesion_id) == "whole":     # whole_behind(s) < tbr * exp(-mu s)
            amplitude, start = self.tbr, 0.0
        else:                                      # rim_behind(s) for s >= rim
            amplitude = self.tbr * (1.0 - math.exp(-mu * self.rim_thickness_mm))
            start = self.rim_thickness_mm
        return start + max(math.log(amplitude / (_NEGLIGIBLE * self.threshold_contrast)), 0.0) / mu

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lesion_patterns"] = {str(k): v for k, v in self.lesion_patterns}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "IcgParameters":
        d = dict(d)
        patterns = d.get("lesion_patterns", {})
        d["lesion_patterns"] = tuple(sorted((int(k), v) for k, v in patterns.items()))
        return cls(**d)


def rim_behind(s_mm: np.ndarray, rim_mm: float, tbr: float, mu: float) -> np.ndarray:
    """Signal of a rim lying behind a point at distance s from the lesion (slab model)."""
    s = np.maximum(s_mm, 0.0)
    return tbr * (np.exp(-mu * np.maximum(s - rim_mm, 0.0)) - np.exp(-mu * s))


def rim_in_front(s_mm: np.ndarray, rim_mm: float, tbr: float, mu: float) -> np.ndarray:
    """Signal of the part of a rim left on the viewer's side of a cut at margin s."""
    return tbr * (1.0 - np.exp(-mu * np.clip(rim_mm - np.maximum(s_mm, 0.0), 0.0, None)))


def whole_behind(s_mm: np.ndarray, diameter_mm: float, tbr: float, mu: float) -> np.ndarray:
    """Signal of a whole-lesion emitter behind a point at distance s from it."""
    return tbr * np.exp(-mu * np.maximum(s_mm, 0.0)) * (1.0 - math.exp(-mu * diameter_mm))


# --- results ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class LesionSurfaceSignal:
    lesion_id: int
    pattern: str
    depth_mm: float            # lesion surface to liver capsule
    peak_intensity: float      # background + this lesion's signal, at its brightest vertex
    visible: bool              # peak_intensity >= threshold


@dataclass(frozen=True)
class LesionTransectionSignal:
    lesion_id: int
    pattern: str
    status: str                # the planner's: resected | left in place | cut through
    margin_mm: float | None    # the planner's margin (margins.py); None when left in place
    peak_specimen: float       # expected intensity on the specimen's cut face
    peak_cavity: float         # expected intensity in the remnant cavity
    nir_specimen: bool
    nir_cavity: bool
    flag: str = ""             # margin flag ("likely false positive" / "not seen"), or for a
                               # lesion left in place what the cavity shows of it; or ""

    @property
    def nir_positive(self) -> bool:
        return self.nir_specimen or self.nir_cavity


@dataclass(frozen=True)
class _IcgMap:
    """Parameters, detection threshold, one row per lesion, warnings (plan-file round trip)."""

    parameters: IcgParameters
    threshold: float
    lesions: tuple
    warnings: tuple[str, ...] = ()
    _row: ClassVar[type]

    def to_dict(self) -> dict:
        return {"parameters": self.parameters.to_dict(), "threshold": self.threshold,
                "lesions": [asdict(x) for x in self.lesions], "warnings": list(self.warnings)}

    @classmethod
    def from_dict(cls, d: dict):
        names = {f.name for f in fields(cls._row)}
        rows = tuple(cls._row(**{k: v for k, v in x.items() if k in names}) for x in d["lesions"])
        return cls(IcgParameters.from_dict(d["parameters"]), float(d["threshold"]), rows,
                   tuple(d.get("warnings", ())))


@dataclass(frozen=True)
class SurfaceMap(_IcgMap):
    _row: ClassVar[type] = LesionSurfaceSignal

    def lines(self) -> list[str]:
        """Plain-language summary for the terminal and the report."""
        visible = sum(r.visible for r in self.lesions)
        out = [f"ICG on the liver surface ({_describe(self.parameters)}): {visible} of "
               f"{len(self.lesions)} lesions expected visible."]
        for r in self.lesions:
            seen = "expected visible" if r.visible else "not expected visible (too deep or too dim)"
            out.append(f"  lesion {r.lesion_id} ({r.pattern}): {r.depth_mm:.1f} mm below the "
                       f"capsule, {seen}")
        return out + list(self.warnings)


@dataclass(frozen=True)
class TransectionMap(_IcgMap):
    _row: ClassVar[type] = LesionTransectionSignal

    @property
    def evidence(self) -> tuple[str, ...]:
        """The MIMIC figures to show beside the prediction."""
        return mimic_statement()

    def lines(self) -> list[str]:
        """Plain-language summary for the terminal and the report, with the MIMIC evidence."""
        out = [f"ICG on the transection ({_describe(self.parameters)}):"]
        for r in self.lesions:
            sides = [name for name, on in (("specimen face", r.nir_specimen),
                                           ("remnant cavity", r.nir_cavity)) if on]
            nir = f"NIR+ expected on the {' and '.join(sides)}" if sides else "NIR- expected"
            margin = "" if r.margin_mm is None else f"margin {r.margin_mm:.1f} mm, "
            out.append(f"  lesion {r.lesion_id} ({r.status}): {margin}{nir}")
            if r.flag:
                out.append(f"    ! {r.flag}")
        return out + list(self.warnings) + ["How far to trust a real NIR signal:"] + [
            f"  {line}" for line in self.evidence]

    def to_dict(self) -> dict:
        d = super().to_dict()
        for row, x in zip(d["lesions"], self.lesions):
            row["nir_positive"] = x.nir_positive
        d["evidence"] = list(self.evidence)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TransectionMap":
        # rows written before the planner's status was used held `resected` (a bool) instead
        rows = [{"status": "resected" if x.get("resected") else "left in place", **x}
                for x in d["lesions"]]
        return super().from_dict({**d, "lesions": rows})


@dataclass(frozen=True)
class LaparoscopeView:
    """A laparoscope pose in patient space (LPS mm)."""

    position_lps_mm: tuple[float, float, float]
    focal_point_lps_mm: tuple[float, float, float]
    view_up_lps: tuple[float, float, float] = (0.0, 0.0, 1.0)   # superior up
    view_angle_deg: float = 70.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LaparoscopeView":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@dataclass(frozen=True)
class IcgResult:
    """Everything the plan file keeps of the ICG prediction: both maps, the files written (names
    relative to the plan's folder, so the folder can move) and the laparoscope pose of the
    rendered view."""

    surface: SurfaceMap
    transection: TransectionMap | None = None
    files: tuple[str, ...] = ()
    view: LaparoscopeView | None = None

    def paths(self, folder: str | Path) -> list[Path]:
        """The files written, in the plan's folder `folder`."""
        return [Path(folder) / name for name in self.files]

    def lines(self) -> list[str]:
        return self.surface.lines() + (self.transection.lines() if self.transection else [])

    def to_dict(self) -> dict:
        return {"surface": self.surface.to_dict(),
                "transection": self.transection.to_dict() if self.transection else None,
                "files": list(self.files), "view": self.view.to_dict() if self.view else None}

    @classmethod
    def from_dict(cls, d: dict) -> "IcgResult":
        transection = d.get("transection")
        return cls(SurfaceMap.from_dict(d["surface"]),
                   TransectionMap.from_dict(transection) if transection else None,
                   tuple(d.get("files", ())),
                   LaparoscopeView.from_dict(d["view"]) if d.get("view") else None)


def _describe(p: IcgParameters) -> str:
    return (f"rim {p.rim_thickness_mm:g} mm (assumed), TBR {p.tbr:g}, attenuation "
            f"{p.mu_eff_per_mm:g}/mm, detection depth {p.detection_depth_mm:g} mm")


def mimic_statement() -> tuple[str, ...]:
    """How far to trust a real NIR signal on the transection plane (MIMIC trial)."""
    e = evidence
    return (
        f"Fluorescence on the transection plane predicted a tumour-positive margin (< "
        f"{e.R0_MARGIN_MM.value:g} mm) with sensitivity {e.MIMIC_SENSITIVITY_PERCENT.value:g}%, "
        f"specificity {e.MIMIC_SPECIFICITY_PERCENT.value:g}%, PPV {e.MIMIC_PPV_PERCENT.value:g}%, "
        f"NPV {e.MIMIC_NPV_PERCENT.value:g}% (AUROC {e.MIMIC_AUROC.value:g}).",
        f"Re-resecting fluorescent tissue in the cavity raised R0 from "
        f"{e.MIMIC_R0_BEFORE_PERCENT.value:g}% to {e.MIMIC_R0_AFTER_PERCENT.value:g}%.",
        f"Source: {e.MIMIC_SENSITIVITY_PERCENT.source}.",
    )


# --- distance maps ---------------------------------------------------------------------------

def _distance_to_voxels_mm(mask: np.ndarray, spacing_zyx: np.ndarray) -> np.ndarray:
    """Distance from each voxel centre to the nearest voxel *face* of `mask` (0 inside).

    The EDT finds the nearest mask voxel centre; subtracting half a voxel per axis gives the
    distance to that voxel's box, so the field is right on anisotropic grids.
    """
    nearest = ndimage.distance_transform_edt(~mask, sampling=spacing_zyx, return_distances=False,
                                             return_indices=True)
    d2 = np.zeros(mask.shape, dtype=np.float32)
    for axis in range(3):
        shape = [1, 1, 1]
        shape[axis] = mask.shape[axis]
        here = np.arange(mask.shape[axis], dtype=nearest.dtype).reshape(shape)
        gap = np.abs(nearest[axis] - here).astype(np.float32)
        gap *= np.float32(spacing_zyx[axis])
        gap -= np.float32(spacing_zyx[axis] / 2)
        np.maximum(gap, 0.0, out=gap)
        d2 += gap * gap
    return np.sqrt(d2)


def signed_distance_mm(mask: np.ndarray, spacing_zyx) -> np.ndarray:
    """Signed distance to the boundary of a non-empty `mask` (negative inside), 0 on its faces.

    The inside part is computed only in the mask's bounding box (plus one voxel): it is small
    there, and only its sign and its value next to the boundary matter for the optics.
    """
    spacing_zyx = np.asarray(spacing_zyx, dtype=float)
    distance = _distance_to_voxels_mm(mask, spacing_zyx)
    nz = np.nonzero(mask)
    box = tuple(slice(max(a.min() - 1, 0), b.max() + 2) for a, b in zip(nz, nz))
    distance[box] -= _distance_to_voxels_mm(~mask[box], spacing_zyx)
    return distance


class _Crop:
    """The part of the grid needed for one lesion: the lesion and the mesh vertices within
    `reach_mm` of its bounding box (the EDT cost is in this box, so it is kept tight)."""

    def __init__(self, labels: np.ndarray, box: tuple[slice, ...], lesion_id: int,
                 spacing_zyx: np.ndarray, reach_mm: float, vertex_index: np.ndarray):
        lesion_lo = np.array([b.start for b in box]) - 1
        lesion_hi = np.array([b.stop for b in box]) + 1
        # vertices within reach of the lesion's bounding box: a cheap slab test along z first,
        # then the Euclidean distance (mm) to the box
        pad_z = reach_mm / spacing_zyx[0]
        z = vertex_index[:, 0]
        slab = np.nonzero((z >= lesion_lo[0] - pad_z) & (z <= lesion_hi[0] + pad_z))[0]
        near_z = vertex_index[slab]
        outside = np.maximum(np.maximum(lesion_lo - near_z, near_z - lesion_hi), 0)
        self.vertices = slab[np.sum((outside * spacing_zyx) ** 2, axis=1) <= reach_mm**2]
        near = vertex_index[self.vertices]
        lo, hi = lesion_lo, lesion_hi
        if len(near):
            lo = np.minimum(lo, np.floor(near.min(axis=0)).astype(int))
            hi = np.maximum(hi, np.ceil(near.max(axis=0)).astype(int) + 1)
        self.lo = np.maximum(lo, 0)
        self.slices = tuple(slice(a, b) for a, b in zip(self.lo, np.minimum(hi, labels.shape)))
        self.spacing, self.reach_mm = spacing_zyx, reach_mm
        self.lesion = labels[self.slices] == lesion_id
        self.coords = (near - self.lo).T

    def distance(self, mask: np.ndarray) -> np.ndarray:
        """Signed distance (mm) from each vertex in the crop to `mask` (inf if it is empty)."""
        if not mask.any():
            return np.full(len(self.vertices), np.inf)
        if not len(self.vertices):
            return np.zeros(0)
        field_ = signed_distance_mm(mask, self.spacing)
        return ndimage.map_coordinates(field_, self.coords, order=1, mode="nearest")

    def gap_mm(self, distances: np.ndarray, surface_points: np.ndarray,
               lesion_mesh: Callable[[], pv.PolyData]) -> float:
        """Distance between the lesion and the surface: from the distance map when a vertex lies
        within the reach (vertices outside the crop are farther), else between the meshes."""
        if distances.size and distances.min() <= self.reach_mm:
            return max(float(distances.min()), 0.0)
        return _gap_mm(surface_points, lesion_mesh(), float(self.spacing.max()))


def _gap_mm(surface_points: np.ndarray, lesion: pv.PolyData, tolerance_mm: float) -> float:
    """Smallest distance between a surface (its vertices) and a lesion mesh, in mm.

    Only surface vertices that can be closer than the one nearest the lesion centre are
    searched. The distance is taken point-to-plane at the nearest lesion vertex where that
    vertex lies within a voxel sideways (removes the vertex spacing error), else point-to-point.
    """
    q = np.asarray(lesion.points, dtype=float)
    normals = np.asarray(lesion.point_normals, dtype=float)
    tree = cKDTree(q)
    centre_gap = np.sum((surface_points - q.mean(axis=0)) ** 2, axis=1)
    bound = tree.query(surface_points[np.argmin(centre_gap)])[0]
    lo, hi = q.min(axis=0) - bound, q.max(axis=0) + bound
    near = np.all((surface_points >= lo) & (surface_points <= hi), axis=1)
    points = surface_points[near]
    d, i = tree.query(points)
    plane = np.abs(np.einsum("ij,ij->i", points - q[i], normals[i]))
    lateral = np.sqrt(np.maximum(d**2 - plane**2, 0.0))
    return float(np.min(np.where(lateral <= tolerance_mm, plane, d)))


def _check_masks(liver: sitk.Image, tumors: sitk.Image, *others: sitk.Image) -> None:
    for image in (tumors, *others):
        if not same_grid(liver, image):
            raise PlanningError("The liver, lesion and resection masks are not on the same image "
                                "grid; recompute them on the planning CT before the ICG map.")
    if not sitk.GetArrayViewFromImage(liver).any():
        raise PlanningError("The liver mask is empty; segment the liver before the ICG map.")


def _lesion_boxes(labels: np.ndarray) -> dict[int, tuple[slice, ...]]:
    """Bounding box of each lesion id, searched only in the box around all of them (a scan of
    the whole CT grid took most of the time of a small liver's map)."""
    spans = [np.flatnonzero(labels.any(axis=tuple(a for a in range(3) if a != k)))
             for k in range(3)]
    if not len(spans[0]):
        return {}
    crop = tuple(slice(int(s[0]), int(s[-1]) + 1) for s in spans)
    return {i + 1: tuple(slice(b.start + c.start, b.stop + c.start) for b, c in zip(box, crop))
            for i, box in enumerate(ndimage.find_objects(labels[crop])) if box is not None}


def _lesion_mesh(tumors: sitk.Image, box: tuple[slice, ...], lesion_id: int) -> pv.PolyData:
    """Surface of one lesion, meshed from its bounding box only (fast on a large CT)."""
    index = [int(b.start) for b in reversed(box)]
    size = [int(b.stop - b.start) for b in reversed(box)]
    return mask_to_mesh(sitk.RegionOfInterest(tumors, size, index), label=lesion_id)


def _diameter_mm(n_voxels: int, spacing_zyx: np.ndarray) -> float:
    """Diameter of the sphere with the lesion's volume."""
    return float((6.0 * n_voxels * np.prod(spacing_zyx) / math.pi) ** (1 / 3))


# --- surface map -----------------------------------------------------------------------------

def surface_fluorescence(liver: sitk.Image, tumors: sitk.Image,
                         params: IcgParameters = IcgParameters(), *,
                         mesh: pv.PolyData | None = None, progress=None, cancel=None
                         ) -> tuple[pv.PolyData, SurfaceMap]:
    """Expected fluorescence on the liver surface seen by a NIR camera.

    liver: 0/1 mask; tumors: 0..N instance ids on the same grid. `mesh` (the liver surface in
    LPS mm from mask_to_mesh, shared with the 3D view) is made from `liver` when not given.
    Returns a copy of the mesh with the point array SURFACE_ARRAY, and the per-lesion table.
    """
    _check_masks(liver, tumors)
    steps = Steps(progress, cancel)
    steps.report(0.0, "ICG: liver surface")
    mesh = (mask_to_mesh(liver) if mesh is None else mesh).copy()
    intensity = np.full(mesh.n_points, params.background)
    points = np.asarray(mesh.points, dtype=float)
    rows = []
    for lesion_id, box, crop in _lesion_crops(tumors, params, mesh, steps):
        diameter = _diameter_mm(int(crop.lesion.sum()), crop.spacing)
        distances = crop.distance(crop.lesion)
        signal = _behind(params, lesion_id, distances, diameter)
        intensity[crop.vertices] += signal
        peak = params.background + (float(signal.max()) if signal.size else 0.0)
        depth = crop.gap_mm(distances, points, lambda: _lesion_mesh(tumors, box, lesion_id))
        rows.append(LesionSurfaceSignal(lesion_id, params.pattern(lesion_id), round(depth, 2),
                                        peak, peak >= params.threshold))
    mesh.point_data[SURFACE_ARRAY] = intensity
    steps.report(1.0, "ICG: surface map done")
    warnings = () if rows else ("No lesions in the lesion mask: the ICG map shows background "
                                "only.",)
    return mesh, SurfaceMap(params, params.threshold, tuple(rows), warnings)


def _lesion_crops(tumors: sitk.Image, params: IcgParameters, mesh: pv.PolyData, steps: Steps):
    """(lesion id, bounding box, crop) for every lesion, reporting progress."""
    labels = sitk.GetArrayViewFromImage(tumors)
    if labels.dtype.kind not in "iu":            # e.g. a float NIfTI: instance ids are integers
        labels = np.rint(labels).astype(np.int32)
    spacing = np.asarray(tumors.GetSpacing())[::-1]
    vertex_index = lps_to_index(tumors, np.asarray(mesh.points))
    boxes = _lesion_boxes(labels)
    for n, (lesion_id, box) in enumerate(boxes.items()):
        steps.report(0.1 + 0.9 * n / len(boxes), f"ICG: lesion {lesion_id}")
        yield lesion_id, box, _Crop(labels, box, lesion_id, spacing, params.reach_mm(lesion_id),
                                    vertex_index)


def _behind(params: IcgParameters, lesion_id: int, s: np.ndarray, diameter_mm: float) -> np.ndarray:
    if params.pattern(lesion_id) == "whole":
        return whole_behind(s, diameter_mm, params.tbr, params.mu_eff_per_mm)
    return rim_behind(s, params.rim_thickness_mm, params.tbr, params.mu_eff_per_mm)


def _in_front(params: IcgParameters, lesion_id: int, s: np.ndarray) -> np.ndarray:
    if params.pattern(lesion_id) == "whole":
        return np.zeros_like(s)   # the lesion itself lies on the other side of the cut
    return rim_in_front(s, params.rim_thickness_mm, params.tbr, params.mu_eff_per_mm)


# --- transection map -------------------------------------------------------------------------

def cut_surface(liver: sitk.Image, resected: sitk.Image) -> pv.PolyData:
    """The transection surface: boundary between resected and remnant liver (LPS mm).

    Normals point from the specimen into the remnant.
    """
    _check_masks(liver, resected)
    live = sitk.GetArrayViewFromImage(liver) != 0
    cut = sitk.GetArrayViewFromImage(resected) != 0
    if not (live & cut).any() or not (live & ~cut).any():
        raise PlanningError("The resection removes no liver or all of it: there is no "
                            "transection surface for the ICG map.")
    specimen = sitk.GetImageFromArray((live & cut).astype(np.uint8))
    specimen.CopyInformation(liver)
    mesh = mask_to_mesh(specimen)
    # A vertex on the cut face lies half a voxel from remnant voxels; on the capsule it does not.
    return sub_surface(mesh, mask_fraction(live & ~cut, liver, mesh.points) >= 0.25)


def mask_fraction(mask: np.ndarray, reference: sitk.Image, points: np.ndarray) -> np.ndarray:
    """Trilinear value of a (z, y, x) 0/1 array on `reference`'s grid at LPS points (0..1)."""
    index = lps_to_index(reference, np.asarray(points))
    return ndimage.map_coordinates(mask.astype(np.float32), index.T, order=1, mode="nearest")


def sub_surface(mesh: pv.PolyData, keep: np.ndarray) -> pv.PolyData:
    """The triangles of `mesh` whose three vertices are kept (point arrays come along)."""
    part = mesh.extract_points(np.nonzero(keep)[0], adjacent_cells=False)
    return part.extract_surface(algorithm="dataset_surface")


def transection_fluorescence(liver: sitk.Image, tumors: sitk.Image, resected: sitk.Image,
                             params: IcgParameters = IcgParameters(), *,
                             outcomes: Sequence[LesionOutcome] | None = None,
                             mesh: pv.PolyData | None = None, progress=None, cancel=None
                             ) -> tuple[pv.PolyData, TransectionMap]:
    """Expected fluorescence on both sides of a planned transection.

    resected: 0/1 mask of the region to be removed (liver voxels inside it are the specimen);
    outcomes: the planner's per-lesion status and margin for this resection (PlanResult.lesions),
    computed here with the planner's own measure when not given, so the margin beside NIR+/NIR-
    is the one behind the plan's R0/R1 call; `mesh` is cut_surface(liver, resected), made here
    when not given. Returns a copy of the cut surface with point arrays SPECIMEN_ARRAY and
    CAVITY_ARRAY and, per lesion, NIR+/NIR- beside the margin, with flags where the two disagree.
    """
    _check_masks(liver, tumors, resected)
    steps = Steps(progress, cancel)
    steps.report(0.0, "ICG: transection surface")
    if outcomes is None:
        outcomes = outcomes_for_masks(liver, tumors, resected)
    planned = {o.lesion_id: o for o in outcomes}
    mesh = (cut_surface(liver, resected) if mesh is None else mesh).copy()
    removed = sitk.GetArrayViewFromImage(resected) != 0
    sides = {SPECIMEN_ARRAY: np.full(mesh.n_points, params.background),
             CAVITY_ARRAY: np.full(mesh.n_points, params.background)}
    rows = []
    for lesion_id, _, crop in _lesion_crops(tumors, params, mesh, steps):
        side = removed[crop.slices]
        diameter = _diameter_mm(int(crop.lesion.sum()), crop.spacing)
        in_specimen = crop.distance(crop.lesion & side)
        in_remnant = crop.distance(crop.lesion & ~side)
        signals = {
            SPECIMEN_ARRAY: _behind(params, lesion_id, in_specimen, diameter)
            + _in_front(params, lesion_id, in_remnant),
            CAVITY_ARRAY: _behind(params, lesion_id, in_remnant, diameter)
            + _in_front(params, lesion_id, in_specimen)}
        peaks = {}
        for name, signal in signals.items():
            sides[name][crop.vertices] += signal
            peaks[name] = params.background + (float(signal.max()) if signal.size else 0.0)
        outcome = planned.get(lesion_id)
        if outcome is None:
            raise PlanningError(f"The plan has no result for lesion {lesion_id} (it lies outside "
                                "the liver mask, or the plan is from other masks); recompute the "
                                "plan on these masks before the ICG map.")
        rows.append(_transection_row(params, lesion_id, outcome, peaks[SPECIMEN_ARRAY],
                                     peaks[CAVITY_ARRAY]))
    for name, values in sides.items():
        mesh.point_data[name] = values
    steps.report(1.0, "ICG: transection map done")
    warnings = () if rows else ("No lesions in the lesion mask: the transection map shows "
                                "background only.",)
    return mesh, TransectionMap(params, params.threshold, tuple(rows), warnings)


def _transection_row(params: IcgParameters, lesion_id: int, outcome: LesionOutcome,
                     peak_specimen: float, peak_cavity: float) -> LesionTransectionSignal:
    nir_specimen, nir_cavity = peak_specimen >= params.threshold, peak_cavity >= params.threshold
    r0 = evidence.R0_MARGIN_MM.value
    margin_mm = outcome.margin_mm
    flag = ""
    if margin_mm is None:   # left in place: any glow on the cut is the lesion itself
        flag = "Left in place in the remnant (not resected): " + (
            "its own rim is expected to fluoresce through the remnant's cut face (cavity side)"
            if nir_cavity else
            "its rim lies too deep behind the remnant's cut face to be seen from the cavity")
        if nir_specimen:
            flag += "; the cut passes through its rim, so the specimen's face glows too"
        flag += (". That signal is this lesion, not a positive margin." if nir_cavity or nir_specimen
                 else ".")
    elif (nir_specimen or nir_cavity) and margin_mm >= r0:
        flag = (f"NIR+ expected although the margin is {margin_mm:.1f} mm (>= {r0:g} mm): a "
                f"fluorescent signal here would likely be a false positive.")
    elif margin_mm < r0 and not (nir_specimen or nir_cavity):
        flag = (f"Margin {margin_mm:.1f} mm (< {r0:g} mm) but NIR- expected: the rim is too weak "
                f"or too deep to be seen on the transection; do not rely on fluorescence here.")
    return LesionTransectionSignal(lesion_id, params.pattern(lesion_id), outcome.status,
                                   None if margin_mm is None else round(margin_mm, 2),
                                   peak_specimen, peak_cavity,
                                   bool(nir_specimen), bool(nir_cavity), flag)
