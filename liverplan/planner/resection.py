"""Resection definitions: anatomical (Couinaud segments), wedge around lesions, free cut surfaces.

Each definition is a small frozen dataclass that knows how to mark the liver voxels it removes on
a PlanningContext (`resected(ctx)` -> bool per liver voxel); a plan is the union of several.
Because every liver voxel is decided exactly once, resected + remnant = liver with nothing lost.
Cut surfaces are in LPS mm and say explicitly which side is removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage
from scipy.interpolate import RectBivariateSpline

from liverplan.errors import PlanningError

if TYPE_CHECKING:
    from liverplan.planner.flr import PlanningContext

# Named anatomical resections (Brisbane 2000 terminology) -> Couinaud segments removed.
PRESETS: dict[str, tuple[int, ...]] = {
    "right_hemihepatectomy": (5, 6, 7, 8),
    "left_hemihepatectomy": (2, 3, 4),
    "extended_right_hepatectomy": (4, 5, 6, 7, 8),     # right trisectionectomy
    "extended_left_hepatectomy": (2, 3, 4, 5, 8),      # left trisectionectomy
    "right_anterior_sectionectomy": (5, 8),
    "right_posterior_sectionectomy": (6, 7),
    "left_lateral_sectionectomy": (2, 3),
}
DEFAULT_WEDGE_MARGIN_MM = 10.0
SIDES = ("along_normal", "against_normal")


def _unit(v, what: str) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    n = np.linalg.norm(v)
    if v.shape != (3,) or not np.isfinite(n) or n == 0:
        raise PlanningError(f"the {what} must be a non-zero 3D vector in LPS mm, got {v.tolist()}")
    return v / n


def _check_side(side: str) -> None:
    if side not in SIDES:
        raise PlanningError(f"resected side {side!r} must be one of {', '.join(SIDES)}")


@dataclass(frozen=True)
class SegmentResection:
    """Anatomical resection of whole Couinaud segments."""
    segments: tuple[int, ...]
    name: str = ""

    def __post_init__(self):
        bad = [s for s in self.segments if not 1 <= int(s) <= 8]
        if bad or not self.segments:
            raise PlanningError(f"segments must be a non-empty set of Couinaud numbers 1-8, "
                                f"got {list(self.segments)}")
        object.__setattr__(self, "segments", tuple(sorted({int(s) for s in self.segments})))

    @property
    def label(self) -> str:
        return self.name.replace("_", " ") or "segmentectomy " + ",".join(map(str, self.segments))

    def resected(self, ctx: "PlanningContext") -> np.ndarray:
        lut = np.zeros(9, dtype=bool)
        lut[list(self.segments)] = True
        return lut[ctx.segment]

    def to_dict(self) -> dict:
        return {"kind": "segments", "segments": list(self.segments), "name": self.name}


def preset(name: str) -> SegmentResection:
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    if key not in PRESETS:
        raise PlanningError(f"unknown resection {name!r}; choose one of {', '.join(PRESETS)} "
                            "or give the segments")
    return SegmentResection(PRESETS[key], key)


@dataclass(frozen=True)
class WedgeResection:
    """Non-anatomical, parenchyma-sparing resection: the lesion plus a gross margin around it."""
    lesion_id: int
    margin_mm: float = DEFAULT_WEDGE_MARGIN_MM

    def __post_init__(self):
        if not self.margin_mm >= 0:
            raise PlanningError(f"wedge margin must be >= 0 mm, got {self.margin_mm}")

    @property
    def label(self) -> str:
        return f"wedge lesion {self.lesion_id} ({self.margin_mm:g} mm)"

    def resected(self, ctx: "PlanningContext") -> np.ndarray:
        return ctx.wedge(self.lesion_id, self.margin_mm)

    def to_dict(self) -> dict:
        return {"kind": "wedge", "lesion_id": self.lesion_id, "margin_mm": self.margin_mm}


@dataclass(frozen=True)
class PlaneCut:
    """A plane through `point_mm` (LPS) with `normal`; `side` says which half-space is removed."""
    point_mm: tuple[float, float, float]
    normal: tuple[float, float, float]
    side: str = "along_normal"

    def __post_init__(self):
        _check_side(self.side)
        object.__setattr__(self, "normal", tuple(_unit(self.normal, "plane normal")))
        object.__setattr__(self, "point_mm", tuple(float(x) for x in self.point_mm))

    @property
    def label(self) -> str:
        return "plane cut"

    def resected(self, ctx: "PlanningContext") -> np.ndarray:
        d = ctx.linear(self.normal, self.point_mm)
        return d > 0 if self.side == "along_normal" else d <= 0

    def to_dict(self) -> dict:
        return {"kind": "plane", "point_mm": list(self.point_mm), "normal": list(self.normal),
                "side": self.side}


@dataclass(frozen=True)
class SurfaceCut:
    """A deformable cut: a height field over a base plane, interpolated smoothly.

    The base plane passes through `origin_mm` and is spanned by `u_axis` and `v_axis` (LPS);
    its normal is u x v. `heights_mm[i][j]` is the offset along the normal of the control point at
    (u_mm[i], v_mm[j]); between control points a (bi)cubic spline interpolates, beyond the grid
    the edge height continues. `side` says which side of the surface (along or against the
    normal) is removed.
    """
    origin_mm: tuple[float, float, float]
    u_axis: tuple[float, float, float]
    v_axis: tuple[float, float, float]
    u_mm: tuple[float, ...]
    v_mm: tuple[float, ...]
    heights_mm: tuple[tuple[float, ...], ...]
    side: str = "along_normal"

    def __post_init__(self):
        _check_side(self.side)
        u = _unit(self.u_axis, "surface u axis")
        v = np.asarray(self.v_axis, dtype=float)
        v = _unit(v - (v @ u) * u, "surface v axis (independent of u)")
        h = np.asarray(self.heights_mm, dtype=float)
        if h.shape != (len(self.u_mm), len(self.v_mm)) or min(h.shape) < 2:
            raise PlanningError(f"the control grid must be at least 2x2 with heights "
                                f"{len(self.u_mm)}x{len(self.v_mm)}, got {h.shape}")
        if np.any(np.diff(self.u_mm) <= 0) or np.any(np.diff(self.v_mm) <= 0):
            raise PlanningError("control point coordinates must increase along each axis")
        object.__setattr__(self, "u_axis", tuple(u))
        object.__setattr__(self, "v_axis", tuple(v))
        object.__setattr__(self, "origin_mm", tuple(float(x) for x in self.origin_mm))
        object.__setattr__(self, "u_mm", tuple(float(x) for x in self.u_mm))
        object.__setattr__(self, "v_mm", tuple(float(x) for x in self.v_mm))
        object.__setattr__(self, "heights_mm", tuple(tuple(float(x) for x in r) for r in h))

    @classmethod
    def from_plane(cls, point_mm, normal, *, half_extent_mm: float = 150.0, n: int = 5,
                   side: str = "along_normal") -> "SurfaceCut":
        """A flat n x n control grid on a plane: the starting point for dragging control points."""
        nrm = _unit(normal, "plane normal")
        helper = np.eye(3)[int(np.argmin(np.abs(nrm)))]
        u = np.cross(nrm, helper)
        u /= np.linalg.norm(u)
        v = np.cross(nrm, u)          # u x v = normal
        grid = tuple(np.linspace(-half_extent_mm, half_extent_mm, n))
        return cls(tuple(point_mm), tuple(u), tuple(v), grid, grid,
                   tuple((0.0,) * n for _ in range(n)), side)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.u_axis, self.v_axis)

    @property
    def label(self) -> str:
        return "surface cut"

    def _spline(self) -> RectBivariateSpline:
        h = np.asarray(self.heights_mm)
        return RectBivariateSpline(self.u_mm, self.v_mm, h, kx=min(3, h.shape[0] - 1),
                                   ky=min(3, h.shape[1] - 1), s=0)

    def height_mm(self, u, v) -> np.ndarray:
        """Surface offset along the normal at in-plane coordinates (u, v) in mm."""
        u = np.clip(u, self.u_mm[0], self.u_mm[-1])
        v = np.clip(v, self.v_mm[0], self.v_mm[-1])
        return self._spline().ev(u, v)

    def resected(self, ctx: "PlanningContext") -> np.ndarray:
        w = ctx.linear(self.normal, self.origin_mm)
        # The spline is sampled once on a lattice about as fine as the voxels (at most 1024 x
        # 1024) and interpolated bilinearly; only voxels whose normal offset lies within the
        # surface's height range (plus slack) need it, the others are decided by that offset.
        extent = max(self.u_mm[-1] - self.u_mm[0], self.v_mm[-1] - self.v_mm[0])
        step = max(float(min(ctx.spacing_zyx)), extent / 1024)
        uu = np.arange(self.u_mm[0], self.u_mm[-1] + step, step)
        vv = np.arange(self.v_mm[0], self.v_mm[-1] + step, step)
        lattice = self._spline()(np.minimum(uu, self.u_mm[-1]), np.minimum(vv, self.v_mm[-1]))
        slack = 0.05 * (np.ptp(lattice) + 1.0)
        lo, hi = lattice.min() - slack, lattice.max() + slack
        above = w > hi
        band = np.flatnonzero((w > lo) & (w <= hi))
        if band.size:
            u = (ctx.linear(self.u_axis, self.origin_mm, band) - self.u_mm[0]) / step
            v = (ctx.linear(self.v_axis, self.origin_mm, band) - self.v_mm[0]) / step
            h = ndimage.map_coordinates(lattice, [u, v], order=1, mode="nearest")
            above[band] = w[band] > h
        return above if self.side == "along_normal" else ~above

    def to_dict(self) -> dict:
        return {"kind": "surface", "origin_mm": list(self.origin_mm), "u_axis": list(self.u_axis),
                "v_axis": list(self.v_axis), "u_mm": list(self.u_mm), "v_mm": list(self.v_mm),
                "heights_mm": [list(r) for r in self.heights_mm], "side": self.side}


Resection = SegmentResection | WedgeResection | PlaneCut | SurfaceCut
_KINDS = {"segments": SegmentResection, "wedge": WedgeResection, "plane": PlaneCut,
          "surface": SurfaceCut}


def resection_from_dict(d: dict) -> Resection:
    d = dict(d)
    kind = d.pop("kind", None)
    if kind not in _KINDS:
        raise PlanningError(f"unknown resection kind {kind!r}; expected one of {', '.join(_KINDS)}")
    cls = _KINDS[kind]
    try:
        if cls is SegmentResection:
            return cls(tuple(d["segments"]), d.get("name", ""))
        return cls(**{k: tuple(map(tuple, v)) if k == "heights_mm" else
                      tuple(v) if isinstance(v, list) else v for k, v in d.items()})
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanningError(f"the {kind} resection definition is incomplete or malformed: {exc}")
