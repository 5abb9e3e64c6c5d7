"""Future liver remnant: the planning context of a case and the evaluation of a plan.

`PlanningContext` precomputes, once per case, everything a plan needs (liver voxel list and its
face neighbours, filled Couinaud map, lesion boundaries, vessel graph with radii), all restricted
to the liver's bounding box. Evaluating a plan then works on 1-D arrays over the liver voxels,
which keeps re-evaluation after moving a cut interactive.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import cKDTree

from liverplan import evidence as ev
from liverplan.case import LIVER, SEGMENTS, TUMORS, VESSELS
from liverplan.errors import PlanningError
from liverplan.geometry import image_from_array, index_to_lps, same_grid, voxel_volume_ml
from liverplan.planner.margins import (LesionOutcome, VesselCrossing, lesion_outcomes,
                                       surface_distance_mm, vessel_crossings)
from liverplan.planner.patient import Patient
from liverplan.planner.remnant import RemnantCheck, VesselGraph, check_remnant
from liverplan.planner.resection import Resection, resection_from_dict
from liverplan.progress import Steps

@dataclass(frozen=True)
class LesionGeometry:
    lesion_id: int
    volume_ml: float
    diameter_mm: float             # diameter of the sphere of equal volume
    centroid_lps_mm: tuple[float, float, float]
    segment: int                   # Couinaud segment holding most of the lesion (0: unknown)
    liver_index: np.ndarray        # the lesion's voxels in the liver voxel list
    boundary_mm: np.ndarray        # (K, 3) crop coordinates in mm of its surface voxels
    tree: cKDTree                  # of boundary_mm
    centre_mm: np.ndarray          # crop coordinates in mm of the centroid
    reach_mm: float                # largest distance from the centre to a boundary voxel


class PlanningContext:
    """Per-case precomputation for fast plan evaluation. Build with `from_case`/`from_images`."""

    def __init__(self, liver: sitk.Image, tumors: sitk.Image | None = None,
                 segments: sitk.Image | None = None, vessels: sitk.Image | None = None, *,
                 info=None, progress=None, cancel=None):
        steps = Steps(progress, cancel)
        for name, img in (("tumour", tumors), ("segment", segments), ("vessel", vessels)):
            if img is not None and not same_grid(img, liver):
                raise PlanningError(f"the {name} mask is not on the liver mask's grid; "
                                    "resample it onto the CT first")
        self.reference, self.info, self.warnings = liver, info, []
        self.spacing_zyx = np.asarray(liver.GetSpacing()[::-1], dtype=float)
        self.voxel_ml = voxel_volume_ml(liver)
        full = sitk.GetArrayViewFromImage(liver) > 0
        vfull = (sitk.GetArrayViewFromImage(vessels) if vessels is not None
                 else np.zeros(full.shape, np.uint8))
        if not full.any():
            raise PlanningError("the liver mask is empty; segment the liver before planning")
        box = ndimage.find_objects((full | (vfull > 0)).astype(np.uint8))[0]
        box = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, full.shape))
        self.offset_zyx = np.array([s.start for s in box])
        liver_c = full[box]
        steps.report(0.05, "Indexing liver voxels")
        self.zyx = np.argwhere(liver_c).astype(np.int32)
        self.n = len(self.zyx)
        self.index = np.full(liver_c.shape, -1, np.int32)
        self.index[liver_c] = np.arange(self.n, dtype=np.int32)
        self.zyx_f = self.zyx.astype(np.float32)
        self.mm = self.zyx_f * self.spacing_zyx.astype(np.float32)
        self.faces, self._axes = self._face_pairs()
        self._flat = np.flatnonzero(liver_c)      # liver voxels in the crop, in index order
        steps.report(0.2, "Couinaud segments")
        self.segment = self._segments(segments, box, liver_c)
        self.contacts = self.faces[self.segment[self.faces[:, 0]] != self.segment[self.faces[:, 1]]]
        steps.report(0.35, "Lesions")
        self.tumor_crop = (sitk.GetArrayFromImage(tumors)[box] if tumors is not None
                           else np.zeros(liver_c.shape, np.uint16))
        self.tumor = self.tumor_crop[liver_c]
        self.lesions = self._lesions()
        steps.report(0.5, "Vessel graph")
        self.vessels = VesselGraph(vfull[box], self.index, self.segment, self.spacing_zyx,
                                   steps.sub(0.5, 1.0))
        self._wedges: dict[tuple[int, float], np.ndarray] = {}
        self._segment_total = np.bincount(self.segment, minlength=9)
        steps.report(1.0, "Planning context ready")

    @classmethod
    def from_case(cls, case, *, progress=None, cancel=None) -> "PlanningContext":
        liver = case.label(LIVER)
        if liver is None:
            raise PlanningError("the case has no liver mask; segment the liver before planning")
        return cls(liver, case.label(TUMORS), case.label(SEGMENTS), case.label(VESSELS),
                   info=case.info, progress=progress, cancel=cancel)

    # --- precomputation ---------------------------------------------------------------------
    def _face_pairs(self) -> tuple[np.ndarray, list]:
        """(F, 2) liver voxel pairs that share a face (6-neighbours), each pair once: along z,
        then y, then x, in the order of the crop grid; and per axis the neighbour slices and
        where such faces are, so that cut_faces can find the cut ones on the grid."""
        pairs, axes = [], []
        for axis in range(3):
            lo = [slice(None)] * 3
            hi = [slice(None)] * 3
            lo[axis], hi[axis] = slice(None, -1), slice(1, None)
            a, b = self.index[tuple(lo)], self.index[tuple(hi)]
            keep = (a >= 0) & (b >= 0)
            pairs.append(np.stack([a[keep], b[keep]], axis=1))
            axes.append((tuple(lo), tuple(hi), keep))
        return np.concatenate(pairs), axes

    def _segments(self, segments, box, liver_c) -> np.ndarray:
        """Couinaud number per liver voxel; liver voxels the map leaves at 0 take the nearest
        segment so that every voxel of parenchyma belongs to exactly one segment."""
        if segments is None:
            self.warnings.append("No Couinaud segment map: anatomical resections and the remnant "
                                 "inflow/outflow check are not available.")
            return np.zeros(self.n, np.uint8)
        seg = sitk.GetArrayViewFromImage(segments)[box]
        labelled = liver_c & (seg > 0) & (seg <= 8)
        if not labelled.any():
            raise PlanningError("the Couinaud segment map has no segment inside the liver")
        missing = liver_c & ~labelled
        if missing.any():
            self.warnings.append(f"{missing.sum() * self.voxel_ml:.1f} mL of liver had no segment "
                                 "label and was given the nearest segment.")
            nearest = ndimage.distance_transform_edt(~labelled, sampling=self.spacing_zyx,
                                                     return_distances=False, return_indices=True)
            seg = seg[tuple(nearest)]
        return seg[liver_c].astype(np.uint8)

    def _lesions(self) -> dict[int, LesionGeometry]:
        lesions = {}
        outside = (self.tumor_crop > 0) & (self.index < 0)
        if outside.any():
            self.warnings.append(f"{outside.sum() * self.voxel_ml:.2f} mL of tumour lies outside "
                                 "the liver mask and is ignored.")
        inside = np.where(self.index >= 0, self.tumor_crop, 0)
        for i, sl in enumerate(ndimage.find_objects(inside), start=1):
            if sl is None:
                continue
            sl = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
            sub = inside[sl] == i
            corner = np.array([s.start for s in sl])
            idx = self.index[sl][sub]
            boundary = np.argwhere(sub & ~ndimage.binary_erosion(sub)) + corner
            volume_ml = len(idx) * self.voxel_ml
            counts = np.bincount(self.segment[idx], minlength=9)
            counts[0] = 0
            centroid = index_to_lps(self.reference, self.zyx[idx].mean(axis=0) + self.offset_zyx)
            boundary_mm = (boundary * self.spacing_zyx).astype(np.float32)
            centre_mm = self.mm[idx].mean(axis=0)
            lesions[i] = LesionGeometry(
                i, volume_ml, float(2 * (3 * volume_ml * 1000 / (4 * np.pi)) ** (1 / 3)),
                tuple(float(c) for c in centroid[0]), int(counts.argmax()) if counts.any() else 0,
                idx, boundary_mm, cKDTree(boundary_mm), centre_mm,
                float(np.linalg.norm(boundary_mm - centre_mm, axis=1).max()))
        return lesions

    # --- queries used by resections and results ---------------------------------------------
    def linear(self, direction, point_mm, subset: np.ndarray | None = None) -> np.ndarray:
        """direction . (x - point) in mm for each liver voxel centre x (or the `subset`)."""
        d = np.asarray(self.reference.GetDirection()).reshape(3, 3)
        n = np.asarray(direction, dtype=float)
        coeff = ((n @ d) * np.asarray(self.reference.GetSpacing()))[::-1]   # per z, y, x
        const = n @ (np.asarray(self.reference.GetOrigin()) - np.asarray(point_mm, float))
        const += coeff @ self.offset_zyx
        zyx = self.zyx_f if subset is None else self.zyx_f[subset]
        # A matrix-vector product per direction: numpy's (n, 3) @ (3, k) is far slower.
        return zyx @ coeff.astype(np.float32) + np.float32(const)

    def cut_faces(self, resected: np.ndarray) -> np.ndarray:
        """(C, 2) faces between a resected and a kept voxel. Found on the crop grid by comparing
        neighbours along each axis (contiguous slices: tens of ms for a whole liver, whatever
        changed since the last plan, and no state shared between threads)."""
        grid = np.zeros(self.index.shape, bool)
        grid.ravel()[self._flat] = resected
        is_cut = np.concatenate([(grid[lo] != grid[hi])[keep] for lo, hi, keep in self._axes])
        return self.faces[np.flatnonzero(is_cut)]

    def segment_voxels(self, resected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Voxels per Couinaud segment (index 0-8): all of them, and those kept."""
        return self._segment_total, self._segment_total - np.bincount(self.segment[resected],
                                                                      minlength=9)

    def wedge(self, lesion_id: int, margin_mm: float) -> np.ndarray:
        """The lesion and the liver voxels within `margin_mm` of its surface (cached; read-only)."""
        key = (int(lesion_id), float(margin_mm))
        if key not in self._wedges:
            if lesion_id not in self.lesions:
                raise PlanningError(f"there is no lesion {lesion_id}; lesions are "
                                    f"{sorted(self.lesions) or 'none'}")
            zyx = self.zyx[self.lesions[lesion_id].liver_index]
            reach = np.ceil(margin_mm / self.spacing_zyx).astype(int) + 1
            lo = np.maximum(zyx.min(axis=0) - reach, 0)
            hi = np.minimum(zyx.max(axis=0) + reach + 1, self.index.shape)
            sl = tuple(slice(a, b) for a, b in zip(lo, hi))
            outside = self.tumor_crop[sl] != lesion_id
            nearest = ndimage.distance_transform_edt(outside, sampling=self.spacing_zyx,
                                                     return_distances=False, return_indices=True)
            delta = (np.indices(outside.shape) - nearest).reshape(3, -1).T * self.spacing_zyx
            near = surface_distance_mm(delta, self.spacing_zyx) <= margin_mm
            near = near.reshape(outside.shape)
            idx = self.index[sl][near | ~outside]
            mask = np.zeros(self.n, bool)
            mask[idx[idx >= 0]] = True
            mask.flags.writeable = False
            self._wedges[key] = mask
        return self._wedges[key]

    def to_lps(self, zyx_crop: np.ndarray) -> np.ndarray:
        return index_to_lps(self.reference, np.asarray(zyx_crop, float) + self.offset_zyx)


@dataclass(frozen=True)
class Reason:
    """One rule checked for the verdict. status: pass | warn | fail."""
    rule: str
    status: str
    detail: str
    source: str = ""


@dataclass(frozen=True)
class PlanResult:
    liver_volume_ml: float
    tumor_volume_ml: float
    functional_volume_ml: float          # liver minus tumours
    resected_volume_ml: float
    remnant_volume_ml: float
    flr_ml: float                        # functional remnant (remnant minus tumours left in it)
    flr_percent: float                   # of the functional liver volume
    telv_ml: float | None
    sflr_percent: float | None           # FLR / TELV
    flr_bw_percent: float | None         # FLR (mL ~ g) / body weight
    sflr_min_percent: float
    driving: str                         # "sFLR" or "FLR%": the ratio the verdict uses
    lesions: tuple[LesionOutcome, ...]
    crossings: tuple[VesselCrossing, ...]
    remnant: RemnantCheck
    verdict: str                         # feasible | borderline | not feasible
    reasons: tuple[Reason, ...]
    warnings: tuple[str, ...] = ()

    @property
    def driving_percent(self) -> float:
        return self.sflr_percent if self.driving == "sFLR" else self.flr_percent

    def lesion(self, lesion_id: int) -> LesionOutcome:
        return next(x for x in self.lesions if x.lesion_id == lesion_id)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PlanResult":
        d = dict(d)
        d["lesions"] = tuple(LesionOutcome.from_dict(x) for x in d["lesions"])
        d["crossings"] = tuple(VesselCrossing.from_dict(x) for x in d["crossings"])
        d["remnant"] = RemnantCheck.from_dict(d["remnant"])
        d["reasons"] = tuple(Reason(**x) for x in d["reasons"])
        d["warnings"] = tuple(d.get("warnings", ()))
        return cls(**d)


@dataclass(frozen=True)
class Plan:
    """Inputs (resections, patient) and the result computed from them."""
    resections: tuple[Resection, ...]
    patient: Patient
    result: PlanResult
    name: str = ""
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return {"name": self.name, "resections": [r.to_dict() for r in self.resections],
                "patient": self.patient.to_dict(), "result": self.result.to_dict(),
                "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        return cls(tuple(resection_from_dict(r) for r in d["resections"]),
                   Patient.from_dict(d["patient"]), PlanResult.from_dict(d["result"]),
                   d.get("name", ""), tuple(d.get("notes", ())))


def resected_mask(ctx: PlanningContext, resections) -> np.ndarray:
    """Union of the resected regions, one bool per liver voxel."""
    resected = np.zeros(ctx.n, bool)
    for r in resections:
        if getattr(r, "segments", None) and not ctx.segment.any():
            raise PlanningError(f"{r.label} needs a Couinaud segment map; run the segmentation "
                                "first or use a cut plane")
        resected |= r.resected(ctx)
    return resected


def resected_image(ctx: PlanningContext, resections) -> sitk.Image:
    """The resected region as a 0/1 UInt8 mask on the CT grid (liver voxels only; the remnant
    is the liver mask minus it)."""
    array = np.zeros(sitk.GetArrayViewFromImage(ctx.reference).shape, np.uint8)
    z, y, x = (ctx.zyx[resected_mask(ctx, resections)] + ctx.offset_zyx).T
    array[z, y, x] = 1
    return image_from_array(array, ctx.reference)


def evaluate(ctx: PlanningContext, resections, patient: Patient | None = None) -> PlanResult:
    """Volumes, FLR ratios, lesion margins, crossed vessels, remnant check and verdict."""
    patient = patient or Patient()
    resected = resected_mask(ctx, resections)
    tumor = ctx.tumor > 0
    liver_ml = ctx.n * ctx.voxel_ml
    tumor_ml = np.count_nonzero(tumor) * ctx.voxel_ml
    resected_ml = np.count_nonzero(resected) * ctx.voxel_ml
    functional_ml = liver_ml - tumor_ml
    flr_ml = np.count_nonzero(~resected & ~tumor) * ctx.voxel_ml
    telv = patient.telv_ml
    cut = ctx.cut_faces(resected)
    lesions = lesion_outcomes(ctx, resected, cut)
    crossings = vessel_crossings(ctx, cut)
    remnant = check_remnant(ctx, resected)
    result = dict(
        liver_volume_ml=liver_ml, tumor_volume_ml=tumor_ml, functional_volume_ml=functional_ml,
        resected_volume_ml=resected_ml, remnant_volume_ml=liver_ml - resected_ml, flr_ml=flr_ml,
        flr_percent=100.0 * flr_ml / functional_ml if functional_ml > 0 else 0.0,
        telv_ml=telv, sflr_percent=100.0 * flr_ml / telv if telv else None,
        flr_bw_percent=flr_ml / (10.0 * patient.weight_kg) if patient.weight_kg else None,
        sflr_min_percent=float(patient.sflr_min), driving="sFLR" if telv else "FLR%",
        lesions=lesions, crossings=crossings, remnant=remnant)
    reasons = reasons_for(result, patient)
    warnings = list(ctx.warnings)
    if not telv:
        warnings.append("Weight and height unknown: the verdict uses the FLR as a percentage of "
                        "the measured functional liver volume instead of the standardized FLR.")
    return PlanResult(**result, verdict=verdict_of(reasons), reasons=tuple(reasons),
                      warnings=tuple(warnings))


def plan(ctx: PlanningContext, resections, patient: Patient | None = None, *, name: str = "",
         notes=()) -> Plan:
    """Evaluate `resections`; keep them with the patient and the result (DESIGN: planner.plan)."""
    patient = patient or Patient()
    resections = tuple(resections)
    return Plan(resections, patient, evaluate(ctx, resections, patient),
                name or ", ".join(r.label for r in resections), tuple(notes))


def verdict_of(reasons) -> str:
    """Any failed rule: not feasible; else any warning: borderline; else feasible."""
    return ("not feasible" if any(r.status == "fail" for r in reasons) else
            "borderline" if any(r.status == "warn" for r in reasons) else "feasible")


def reasons_for(r: dict, patient: Patient) -> list[Reason]:
    """The rules behind the verdict for the figures `r` (PlanResult fields), each with its
    figure and source; none is ever hidden."""
    reasons = []
    thr = patient.sflr_min
    value = r["sflr_percent"] if r["driving"] == "sFLR" else r["flr_percent"]
    if r["driving"] == "sFLR":     # the TELV is itself a formula: its inputs and source shown
        detail = (f"sFLR (FLR / TELV) = {value:.1f}% (FLR {r['flr_ml']:.0f} mL, TELV "
                  f"{patient.telv_ml:.0f} mL from BSA {patient.bsa_m2:.2f} m2)")
        source = f"{thr.source}; TELV: {patient.telv_source}"
    else:
        detail = (f"FLR % of the measured functional liver volume = {value:.1f}% "
                  f"(FLR {r['flr_ml']:.0f} mL)")
        source = thr.source
    ok = value >= thr.value
    reasons.append(Reason(f"{r['driving']} >= {thr.value:g}% ({thr.note})",
                          "pass" if ok else "fail", detail, source))
    if r["flr_bw_percent"] is not None:
        bw_ok = r["flr_bw_percent"] >= ev.FLR_BW_MIN_PERCENT.value
        reasons.append(Reason(
            f"FLR/BW >= {ev.FLR_BW_MIN_PERCENT.value:g}%", "pass" if bw_ok else "warn",
            f"FLR/BW = {r['flr_bw_percent']:.2f}% (FLR {r['flr_ml']:.0f} mL, weight "
            f"{patient.weight_kg:g} kg, 1 mL taken as 1 g)", ev.FLR_BW_MIN_PERCENT.source))
    r0 = ev.R0_MARGIN_MM
    for les in r["lesions"]:
        name = f"Lesion {les.lesion_id} (segment {les.segment or '?'}, {les.diameter_mm:.0f} mm)"
        if les.status == "cut through":
            reasons.append(Reason(f"No tumour on the cut surface (R0 >= {r0.value:g} mm)", "fail",
                                  f"{name}: the cut passes through the tumour", r0.source))
        elif les.status == "left in place":
            reasons.append(Reason("All lesions removed", "warn",
                                  f"{name} is left in the remnant: not a complete clearance "
                                  "(acceptable only as a stage of a staged strategy)"))
        elif les.margin_mm is not None:
            reasons.append(Reason(f"Margin >= {r0.value:g} mm (R0)",
                                  "pass" if les.r0 else "warn",
                                  f"{name}: margin {les.margin_mm:.1f} mm", r0.source))
    rem = r["remnant"]
    reasons.append(Reason(
        "Remnant: >= 2 contiguous segments with portal inflow and hepatic venous outflow",
        ("pass" if rem.passed else "fail") if rem.checked else "warn", rem.detail,
        f"{thr.source}; {ev.REMNANT_SEGMENT_MIN_FRACTION.source}"))
    return reasons
