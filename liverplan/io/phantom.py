"""The synthetic patient: a portal-venous CT of an adult abdomen with exact ground truth.

The anatomy is defined in continuous patient coordinates (LPS mm: +x patient's left, +y
posterior, +z head) and rasterized on the requested grid, so "small" and "full" show the same
patient. Couinaud segments are the territories of the portal branches (nearest segmental
branch), and the hepatic veins run between them, as in clinical anatomy. A second time point
shows the same patient some weeks after right portal vein embolization (PVE): the left liver
(segments 2-4) hypertrophied by an exact, requested percentage and the right liver atrophied.

Layout written by `generate(out_dir)`:
    dicom/            CT series (portal venous phase)
    truth/            liver, tumors, vessels, segments .nii.gz on the CT grid
    truth.json        lesions, volumes, patient data, landmarks
    followup/         the same for the post-PVE scan
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import ConvexHull, cKDTree

from liverplan.errors import InputError
from liverplan.geometry import image_from_array, index_to_lps
from liverplan.io.atomic import atomic_write
from liverplan.io.dicom_write import write_series
from liverplan.io.images import read_image, write_image
from liverplan.progress import Steps

GENERATOR_VERSION = 5     # 2: twigs clear of the IVC (seeds 0, 1, 2 and 4 changed);
                          # 3: right crus between the IVC and the aorta (every seed changed);
                          # 4: segment 1 ends at the hilum (seeds 0, 2 and 3 changed: twigs
                          # and lesions are placed by territory);
                          # 5: no twig wholly inside a lesion (seeds 0, 1 and 2 changed)

# (size x, y, z), (spacing x, y, z) mm: the same field of view, centred on the patient
SIZES = {"small": ((256, 256, 96), (1.5, 1.5, 2.5)),
         "full": ((512, 512, 130), (0.75, 0.75, 1.6))}

PATIENT = dict(patient_name="Phantom^Hepar", patient_id="LP-PHANTOM-0001", patient_sex="M",
               weight_kg=78.0, height_cm=176.0)
BASELINE_DATE = _dt.date(2026, 3, 2)
FUTURE_LIVER_REMNANT_SEGMENTS = (2, 3, 4)   # left liver: the remnant of a right hepatectomy
RIGHT_LIVER_SEGMENTS = (5, 6, 7, 8)
FOLLOWUP_SHIFT_MM = (3.0, -5.0, 12.0)       # the patient lies differently on the table
RIGHT_ATROPHY_SCALE = 0.035                 # linear contraction of the embolized right liver

# --- tissue classes and their portal-venous HU ---------------------------------------------------
(AIR, TABLE, FAT, FAT_VISC, MUSCLE, LIVER, TUMOR, TUMOR_RIM, PORTAL, PORTAL_R_MAIN, PORTAL_R_DISTAL,
 HEPATIC, IVC, AORTA, SPLEEN, KIDNEY_CORTEX, KIDNEY_MEDULLA, SINUS_FAT, GALLBLADDER, STOMACH_WALL,
 FLUID, GAS, BONE_CORTEX, BONE_MARROW, CARTILAGE, DISC, CSF, LUNG, HEART, PANCREAS, BOWEL_WALL,
 EMBOLIC, THROMBOSED, PORTAL_EXTRA) = range(34)
HU = np.zeros(34, np.float32)
HU[[AIR, TABLE, FAT, FAT_VISC, MUSCLE, LIVER, TUMOR, TUMOR_RIM, PORTAL, PORTAL_R_MAIN,
    PORTAL_R_DISTAL, HEPATIC, IVC, AORTA, SPLEEN, KIDNEY_CORTEX, KIDNEY_MEDULLA, SINUS_FAT,
    GALLBLADDER, STOMACH_WALL, FLUID, GAS, BONE_CORTEX, BONE_MARROW, CARTILAGE, DISC, CSF, LUNG,
    HEART, PANCREAS, BOWEL_WALL, EMBOLIC, THROMBOSED, PORTAL_EXTRA]] = [
    -1000, 120, -100, -95, 50, 110, 45, 118, 180, 180,
    180, 160, 160, 165, 120, 170, 140, -60,
    10, 65, 20, -950, 900, 320, 140, 85, 15, -860,
    140, 100, 85, 900, 40, 175]
PORTAL_CLASSES = (PORTAL, PORTAL_R_MAIN, PORTAL_R_DISTAL)
# After right PVE: glue/coils fill the right portal vein and its sectors, the branches beyond clot
_EMBOLIZED = np.arange(34, dtype=np.uint8)
_EMBOLIZED[[PORTAL_R_MAIN, PORTAL_R_DISTAL]] = [EMBOLIC, THROMBOSED]
# What the liver may not overlap: it is moulded around these.
HARD = np.zeros(34, bool)
HARD[[BONE_CORTEX, BONE_MARROW, CARTILAGE, DISC, CSF, AORTA, IVC, KIDNEY_CORTEX, KIDNEY_MEDULLA,
      SINUS_FAT, SPLEEN]] = True
NOISE_SD_HU = 12.0
BLUR_MM = 0.7             # partial-volume blur, also the correlation length of the noise


# --- the grid --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Grid:
    size: tuple[int, int, int]                   # x, y, z
    spacing: tuple[float, float, float]
    shift: tuple[float, float, float] = (0.0, 0.0, 0.0)   # patient offset on the table (mm)

    @property
    def origin(self) -> np.ndarray:
        # slice 0 is the most caudal; the field of view is centred on (0, 0, 0)
        return -(np.array(self.size) - 1) / 2 * np.array(self.spacing)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.size[::-1]

    def box(self, lo, hi):
        """Array slices (z, y, x) covering patient box [lo, hi] mm, and open patient coordinates."""
        o, s, t = self.origin, np.array(self.spacing), np.array(self.shift)
        i0 = np.clip(np.floor((np.asarray(lo) + t - o) / s).astype(int), 0, self.size)
        i1 = np.clip(np.ceil((np.asarray(hi) + t - o) / s).astype(int) + 1, 0, self.size)
        axes = [(o[k] + np.arange(i0[k], i1[k]) * s[k] - t[k]).astype(np.float32) for k in range(3)]
        sl = tuple(slice(i0[k], i1[k]) for k in (2, 1, 0))
        x, y, z = axes[0][None, None, :], axes[1][None, :, None], axes[2][:, None, None]
        return sl, x, y, z

    def full(self):
        return self.box(self.origin - self.shift - 1, -self.origin - self.shift + 1)

    def reference(self) -> sitk.Image:
        image = sitk.Image(*self.size, sitk.sitkUInt8)
        image.SetSpacing(self.spacing)
        image.SetOrigin(tuple(self.origin))
        return image


# --- shape primitives (broadcastable coordinate arrays, mm) ---------------------------------------
def _rot(ax: float = 0.0, ay: float = 0.0, az: float = 0.0) -> np.ndarray:
    """Rotation patient -> local frame, angles in degrees about x, then y, then z."""
    a, b, c = np.radians([ax, ay, az])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return (rz @ ry @ rx).T


def _quadric(x, y, z, center, semi, n=2.0, rot=None):
    """Normalized superquadric radius: < 1 inside."""
    d = [x - center[0], y - center[1], z - center[2]]
    if rot is not None:
        d = [rot[i, 0] * d[0] + rot[i, 1] * d[1] + rot[i, 2] * d[2] for i in range(3)]
    if n == 2.0:
        return np.sqrt((d[0] / semi[0]) ** 2 + (d[1] / semi[1]) ** 2 + (d[2] / semi[2]) ** 2)
    return (np.abs(d[0] / semi[0]) ** n + np.abs(d[1] / semi[1]) ** n
            + np.abs(d[2] / semi[2]) ** n) ** (1.0 / n)


def _smooth_min(values, k=0.08):
    """Smooth union of implicit radii (no crease where lobes meet)."""
    stacked = np.stack(np.broadcast_arrays(*values))
    m = stacked.min(axis=0)
    return m - k * np.log(np.exp(-(stacked - m) / k).sum(axis=0))


def _ellipse_r(x, y, semi_x, semi_y, cy=0.0):
    return np.sqrt((x / semi_x) ** 2 + ((y - cy) / semi_y) ** 2)


@dataclass
class _Tube:
    """One straight piece of a vessel: radius tapers linearly from a to b."""
    a: np.ndarray
    b: np.ndarray
    ra: float
    rb: float
    cls: int

    def bounds(self):
        r = max(self.ra, self.rb) + 1.0
        return np.minimum(self.a, self.b) - r, np.maximum(self.a, self.b) + r

    def inside(self, x, y, z):
        ab = self.b - self.a
        px, py, pz = x - self.a[0], y - self.a[1], z - self.a[2]
        t = np.clip((px * ab[0] + py * ab[1] + pz * ab[2]) / max(ab @ ab, 1e-9), 0, 1)
        d2 = (px - t * ab[0]) ** 2 + (py - t * ab[1]) ** 2 + (pz - t * ab[2]) ** 2
        return d2 <= (self.ra + t * (self.rb - self.ra)) ** 2


@dataclass
class _Branch:
    name: str
    points: np.ndarray          # (k, 3) control points, mm
    r0: float                   # radius at the first point
    r1: float                   # radius at the last point
    cls: int
    segment: int = 0            # Couinaud segment this branch feeds (0: a trunk)

    def tubes(self) -> list[_Tube]:
        lengths = np.r_[0, np.cumsum(np.linalg.norm(np.diff(self.points, axis=0), axis=1))]
        r = self.r0 + (self.r1 - self.r0) * lengths / lengths[-1]
        return [_Tube(self.points[i], self.points[i + 1], r[i], r[i + 1], self.cls)
                for i in range(len(self.points) - 1)]

    def samples(self, step_mm=1.0) -> np.ndarray:
        out = []
        for a, b in zip(self.points[:-1], self.points[1:]):
            n = max(int(np.ceil(np.linalg.norm(b - a) / step_mm)), 1)
            out.append(a + (b - a) * np.linspace(0, 1, n, endpoint=False)[:, None])
        return np.vstack(out + [self.points[-1:]])


def _put(target, mask, value):
    """target[mask] = value for a mask that broadcasts to target's shape."""
    target[np.broadcast_to(mask, target.shape)] = value


def _paint_tubes(target, grid: _Grid, tubes, where=None):
    """Paint each tube's class into `target` (z, y, x), only where `where` is True if given."""
    for tube in tubes:
        sl, x, y, z = grid.box(*tube.bounds())
        inside = tube.inside(x, y, z)
        if where is not None:
            inside &= where[sl]
        target[sl][inside] = tube.cls


# --- the patient ---------------------------------------------------------------------------------
BIFURCATION = (-28.0, 4.0, 2.0)
IVC_PATH = [(-22, 32, -130), (-22, 32, 60), (-18, 24, 85), (-8, 0, 125)]
IVC_RADIUS_MM = 11.0
# The right crus of the diaphragm fills the gap between the IVC and the aorta, from the spine
# forward (x centre, semi-axes x and y, y centre; mm): the caudate lobe lies in front of it.
CRUS = (-2.0, 10.0, 14.0, 34.0)

# name, control points (mm), r0, r1, class, segment
_PORTAL = [
    ("main portal vein", [(2, 14, -52), (-10, 10, -28), BIFURCATION], 7.0, 6.5, PORTAL, 0),
    ("right portal vein", [BIFURCATION, (-48, 6, 4)], 5.5, 5.0, PORTAL_R_MAIN, 0),
    ("right anterior", [(-48, 6, 4), (-60, -12, 8)], 4.0, 3.5, PORTAL_R_MAIN, 0),
    ("right posterior", [(-48, 6, 4), (-72, 22, 2)], 4.0, 3.5, PORTAL_R_MAIN, 0),
    ("segment 8", [(-60, -12, 8), (-66, -18, 35), (-72, -14, 62)], 3.0, 1.5, PORTAL_R_DISTAL, 8),
    ("segment 5", [(-60, -12, 8), (-70, -30, -20), (-84, -38, -50)], 3.0, 1.5, PORTAL_R_DISTAL, 5),
    ("segment 7", [(-72, 22, 2), (-95, 38, 30), (-105, 40, 55)], 3.0, 1.5, PORTAL_R_DISTAL, 7),
    ("segment 6", [(-72, 22, 2), (-104, 32, -25), (-118, 28, -55)], 3.0, 1.5, PORTAL_R_DISTAL, 6),
    ("segment 6 medial", [(-72, 22, 2), (-62, 42, -28), (-54, 48, -48)], 2.5, 1.5, PORTAL_R_DISTAL,
     6),
    ("segment 7 medial", [(-72, 22, 2), (-56, 46, 26), (-46, 50, 44)], 2.5, 1.5, PORTAL_R_DISTAL,
     7),
    ("left portal vein", [BIFURCATION, (-16, 10, 6), (-7, 6, 10)], 5.0, 4.5, PORTAL, 0),
    ("umbilical portion", [(-7, 6, 10), (-8, -20, 12), (-7, -45, 8)], 4.5, 3.5, PORTAL, 0),
    ("segment 2", [(-4, 2, 12), (26, 8, 32), (58, 4, 45)], 3.0, 1.5, PORTAL, 2),
    ("segment 3", [(-3, -35, 10), (32, -52, 18), (62, -55, 22)], 3.0, 1.5, PORTAL, 3),
    ("segment 4a", [(-9, -15, 12), (-20, -28, 35), (-27, -30, 55)], 2.5, 1.5, PORTAL, 4),
    ("segment 4b", [(-8, -42, 8), (-16, -58, -10), (-24, -62, -25)], 2.5, 1.5, PORTAL, 4),
    ("caudate", [(-14, 10, 5), (-10, 15, 15), (-5, 16, 28)], 2.0, 1.5, PORTAL, 1),
    ("segment 4 hilar", [(-9, -10, 10), (-22, -22, 2), (-32, -30, -8)], 2.0, 1.5, PORTAL, 4),
]
_HILAR_PORTAL = ("main portal vein", "right portal vein", "left portal vein", "umbilical portion")
_HEPATIC = [
    ("right hepatic vein", [(-26, 34, 66), (-55, 20, 52), (-78, 10, 25), (-90, -2, -18),
                            (-98, -10, -50)], 6.0, 2.0, HEPATIC, 0),
    ("middle hepatic vein", [(-20, 26, 70), (-38, 0, 50), (-42, -35, 15), (-45, -60, -25)],
     5.5, 2.0, HEPATIC, 0),
    ("left hepatic vein", [(-10, 26, 70), (10, 8, 55), (32, -18, 38), (55, -26, 30)],
     5.0, 2.0, HEPATIC, 0),
]
_EXTRAHEPATIC = [   # portal tributaries, gut and pancreas: not part of the liver truth
    ("splenic vein", [(2, 14, -52), (30, 20, -44), (70, 40, -10), (86, 46, 14)], 4.5, 4.0,
     PORTAL_EXTRA),
    ("superior mesenteric vein", [(2, 14, -52), (6, 4, -90), (8, -4, -140)], 5.0, 4.5,
     PORTAL_EXTRA),
    ("pancreas", [(-22, 0, -62), (0, -6, -52), (30, 4, -40), (80, 34, -8)], 13.0, 9.0, PANCREAS),
]
_COLON = [(-112, 12, -140), (-108, 0, -92), (-60, -62, -98), (20, -70, -96), (95, -20, -72),
          (105, 10, -110), (100, 15, -140)]
_ANTRUM = [(45, -30, 10), (15, -55, -25), (-20, -48, -42)]

# name, segment, equivalent diameter (mm), depth class, enhancing rim
_LESIONS = [
    ("L1", 7, 36.0, "medium", True),
    ("L2", 8, 14.0, "deep", False),
    ("L3", 3, 22.0, "superficial", True),
    ("L4", 6, 9.0, "superficial", False),
    ("L5", 4, 30.0, "medium", True),
]
DEEP_MM = 27.0            # "deep": more than 25 mm below the capsule
RIM_MM = 2.0
SEED_OFFSET_MM = 10     # samples are 1 mm apart
NEAR_MM = 25.0
FIELD_SLOPE_PER_MM = 0.1   # bound on |grad liver_f| (the crus, 10 mm across, is the steepest)
CAUDATE_SLEEVE_MM = 8.0
TWIG_R_MM = (1.6, 1.1)     # radius at a twig's start and end
TWIG_IVC_GAP_MM = 2.0      # parenchyma kept between a twig and the IVC


@dataclass
class _Lesion:
    id: int
    name: str
    segment: int
    center: np.ndarray
    radius_mm: float            # base radius before lobulation
    lobes: np.ndarray           # (k, 3) unit directions of the lobules
    lobe_amp: np.ndarray
    rim: bool
    core_hu: float

    def rho(self, x, y, z):
        """Normalized radius (< 1 inside) of this lobulated lesion."""
        dx, dy, dz = x - self.center[0], y - self.center[1], z - self.center[2]
        d = np.sqrt(dx * dx + dy * dy + dz * dz) + 1e-6
        radius = np.full(np.broadcast(dx, dy, dz).shape, self.radius_mm, np.float32)
        for v, amp in zip(self.lobes, self.lobe_amp):
            c = np.clip((dx * v[0] + dy * v[1] + dz * v[2]) / d, 0, 1)
            radius = radius * (1 + amp * c ** 4)
        return d / radius

    def max_radius_mm(self) -> float:
        return self.radius_mm * float(np.prod(1 + self.lobe_amp))


@dataclass
class _Anatomy:
    seed: int
    deform: np.ndarray                  # (3, 3, 4): per axis, 3 waves of (kx, ky, kz, phase)
    branches: list[_Branch]
    seeds: cKDTree                      # segmental portal branch samples
    seed_labels: np.ndarray
    lesions: list[_Lesion] = field(default_factory=list)
    scale: float = 1.0                  # linear size of the lobes (sets the liver volume)
    near: tuple | None = None           # (axes, mask) of the coarse liver grown by NEAR_MM
    dome: tuple | None = None           # (x axis, y axis, z height map) of the diaphragm
    bowel: tuple | None = None          # (axes, loop field, gas field) of the bowel loops
    caudate: _Branch | None = None      # the caudate branch, once its sleeve is part of the liver

    # -- organs ------------------------------------------------------------------------------
    def liver_r(self, x, y, z):
        """Implicit liver: smooth union of a right lobe, the left lobe and the caudate lobe."""
        d = []
        for axis in range(3):
            w = self.deform[axis]
            d.append(sum(6.0 * np.sin(w[j, 0] * x + w[j, 1] * y + w[j, 2] * z + w[j, 3])
                         for j in range(len(w))))
        c = LIVER_CENTER_MM
        xyz = x, y, z
        x, y, z = ((v + dv - cv) / self.scale + cv for v, dv, cv in zip((x, y, z), d, c))
        low = np.clip((10.0 - z) / 90.0, 0, 1)         # 0 above the hilum, 1 at the inferior tip
        right = _quadric(x, y, z, (-72 - 12 * low, 10 + 8 * low, 6), (55 * (1 - 0.3 * low),
                         64 * (1 - 0.4 * low), 75), n=2.4)
        wedge = 1 - 0.3 * np.clip(x / 90.0, 0, 1)       # the left lateral section thins out
        left = _quadric(x, y, z, (8, -26, 32), (74, 46 * wedge, 36 * wedge), n=2.2)
        caudate = _quadric(x, y, z, (-6, 22, 16), (14, 13, 26))
        lobes = [right, left, caudate]
        if self.caudate is not None:
            lobes.append(self._caudate_sleeve(*xyz))
        return _smooth_min(lobes)

    def _caudate_sleeve(self, x, y, z):
        """Parenchyma around the caudate branch (< 1 within CAUDATE_SLEEVE_MM of its axis, in
        patient space): the caudate lobe holds its own portal branch whatever the deformation
        (which moves the small caudate lobe by up to 18 mm, and left the branch of seed 2
        running in the fat beside the IVC, with no parenchyma of its own in the image)."""
        d = np.inf
        for a, b in zip(self.caudate.points[:-1], self.caudate.points[1:]):
            ab = b - a
            px, py, pz = x - a[0], y - a[1], z - a[2]
            t = np.clip((px * ab[0] + py * ab[1] + pz * ab[2]) / (ab @ ab), 0, 1)
            d = np.minimum(d, np.sqrt((px - t * ab[0]) ** 2 + (py - t * ab[1]) ** 2
                                      + (pz - t * ab[2]) ** 2))
        return 1.0 + FIELD_SLOPE_PER_MM * (d - CAUDATE_SLEEVE_MM)

    def liver_f(self, x, y, z):
        """The liver's envelope (< 1 inside): the lobes minus gallbladder, porta hepatis, the
        kidneys' impressions and the right crus, within the abdominal wall. The IVC is carved out
        later, when the body is composited. Changes by less than FIELD_SLOPE_PER_MM per mm."""
        fields = [self.liver_r(x, y, z), _ellipse_r(x, y, *CAVITY) / 0.98,
                  2 - _gallbladder_r(x, y, z), 2 - _quadric(x, y, z, (-22, 2, -14), (28, 14, 16)),
                  2 - _crus_r(x, y)]
        fields += [2 - _quadric(x, y, z, c, np.array(semi) + 3, rot=rot) for c, semi, rot in _KIDNEYS]
        return functools.reduce(np.maximum, fields)

    def liver_inside(self, x, y, z):
        return self.liver_f(x, y, z) < 1.0

    def near_liver(self, x, y, z):
        """True within NEAR_MM of the liver (coarse; where a warped liver can reach)."""
        axes, mask = self.near
        idx = [np.clip(np.rint((c - a[0]) / (a[1] - a[0])).astype(np.intp), 0, len(a) - 1)
               for c, a in zip((x, y, z), axes)]
        return mask[idx[2], idx[1], idx[0]]

    @property
    def bifurcation_lps_mm(self) -> np.ndarray:
        """The portal bifurcation: the end of the main portal vein."""
        return self.branches[0].points[-1]

    def segment_of(self, points: np.ndarray) -> np.ndarray:
        """Couinaud segment = territory of the nearest segmental portal branch; the caudate's
        territory ends at the hilum: in front of the portal bifurcation, the nearest other's
        (the caudate branch, close behind the bifurcation, was the nearest seed for up to
        29 mL of hilar parenchyma of segments 4, 2 and 8)."""
        workers = 2 if len(points) > 20000 else 1
        labels = self.seed_labels[self.seeds.query(points, workers=workers)[1]]
        front = (labels == 1) & (points[:, 1] < self.bifurcation_lps_mm[1])
        if front.any():
            others = self.seed_labels != 1
            _, idx = cKDTree(self.seeds.data[others]).query(points[front], workers=workers)
            labels[front] = self.seed_labels[others][idx]
        return labels

    def diaphragm_z(self, x, y):
        """Height of the diaphragm (mm) over each (x, y)."""
        ax, ay, zmap = self.dome
        ix = np.interp(np.ravel(x), ax, np.arange(len(ax)))
        iy = np.interp(np.ravel(y), ay, np.arange(len(ay)))
        gy, gx = np.meshgrid(iy, ix, indexing="ij")
        return ndimage.map_coordinates(zmap, [gy, gx], order=1, mode="nearest")


_KIDNEYS = [((-72.0, 64.0, -66.0), (30.0, 24.0, 52.0), _rot(0, -15, 30)),
            ((74.0, 64.0, -48.0), (30.0, 24.0, 52.0), _rot(0, 15, -30))]
_SPLEEN = ((98.0, 56.0, 30.0), (30.0, 56.0, 50.0), _rot(0, 10, 52))
_STOMACH = ((52.0, -12.0, 38.0), (40.0, 36.0, 52.0), _rot(25, -20, 0))


def _crus_r(x, y):
    return _ellipse_r(x - CRUS[0], y, *CRUS[1:])


def _gallbladder_r(x, y, z):
    return _quadric(x, y, z, (-48, -36, -26), (13, 14, 32), rot=_rot(-35, 10, 0))


def _jitter(rng, points, mm=2.5):
    points = np.array(points, float)
    return points + rng.uniform(-mm, mm, points.shape) * (np.arange(len(points)) > 0)[:, None]


def _build_anatomy(seed: int) -> _Anatomy:
    rng = np.random.default_rng(seed)
    waves = rng.normal(size=(3, 3, 3))
    waves *= (2 * np.pi / 170.0) / np.linalg.norm(waves, axis=2, keepdims=True)
    deform = np.concatenate([waves, rng.uniform(0, 2 * np.pi, (3, 3, 1))], axis=2)
    branches = []
    for name, pts, r0, r1, cls, seg in _PORTAL + _HEPATIC:
        # _jitter keeps each root; _reconnect then puts it back on its parent branch
        branches.append(_Branch(name, _jitter(rng, pts), r0, r1, cls, seg))
    _reconnect(branches)
    segmental = [b for b in branches if b.segment]
    # a branch's first centimetre sits on its parent trunk: it does not define the territory
    samples = [b.samples()[SEED_OFFSET_MM:] for b in segmental]
    anatomy = _Anatomy(seed, deform, branches, cKDTree(np.vstack(samples)),
                       np.concatenate([np.full(len(s), b.segment, np.uint8)
                                       for s, b in zip(samples, segmental)]))
    _veins_between_territories(anatomy)
    anatomy.scale = _volume_scale(anatomy)
    _add_twigs(anatomy, rng)
    _place_lesions(anatomy, rng)
    _drop_swallowed_twigs(anatomy)
    _left_vein_to_ivc(anatomy)
    # The caudate sleeve comes last, so that it leaves the lobe scale, the twigs and the
    # lesions of every seed as they were (it adds 1-8 mL around the caudate branch only).
    anatomy.caudate = next(b for b in branches if b.name == "caudate")
    anatomy.dome = _diaphragm(anatomy)
    anatomy.bowel = _bowel_fields(rng)
    return anatomy


def _volume_scale(anatomy: _Anatomy) -> float:
    """The lobe scale that gives every seed a liver of about LIVER_TARGET_ML (before the IVC
    is carved out), whatever its random deformation."""
    step = 3.0
    ax, ay, az = _coarse_axes(*LIVER_BOX_MM, step)
    inside = anatomy.liver_inside(ax[None, None, :], ay[None, :, None], az[:, None, None])
    volume_ml = np.count_nonzero(inside) * step ** 3 / 1000.0
    return float((LIVER_TARGET_ML / volume_ml) ** (1 / 3))


def _reconnect(branches: list[_Branch]) -> None:
    """After jitter, start each portal branch exactly on a branch listed before it."""
    portal = [b for b in branches if b.cls in PORTAL_CLASSES]
    for i, b in enumerate(portal[1:], start=1):
        pts = np.vstack([o.samples() for o in portal[:i]])
        b.points[0] = pts[np.argmin(np.linalg.norm(pts - b.points[0], axis=1))]


# Each hepatic vein runs in the plane between two portal territories (the sectional planes).
_VEIN_PLANES = {"right hepatic vein": ((5, 8), (6, 7)), "middle hepatic vein": ((5, 8), (4,)),
                "left hepatic vein": ((2,), (3,))}


def _veins_between_territories(anatomy: _Anatomy) -> None:
    """Move each hepatic vein's control points (not its root at the IVC) onto the boundary of
    the two territories it separates, so that the veins and the segments agree."""
    trees = {}
    for segs in {s for pair in _VEIN_PLANES.values() for s in pair}:
        trees[segs] = cKDTree(anatomy.seeds.data[np.isin(anatomy.seed_labels, segs)])
    for branch in anatomy.branches:
        if branch.name not in _VEIN_PLANES:
            continue
        a, b = (trees[s] for s in _VEIN_PLANES[branch.name])
        mids = (branch.points[:-1] + branch.points[1:]) / 2      # twice the control points
        branch.points = np.insert(branch.points, np.arange(1, len(branch.points)), mids, axis=0)
        pts = branch.points[1:]
        for _ in range(10):   # project on the bisector of the two nearest seeds, repeatedly
            qa = a.data[a.query(pts)[1]]
            qb = b.data[b.query(pts)[1]]
            n = (qb - qa) / np.linalg.norm(qb - qa, axis=1, keepdims=True)
            pts = pts - np.sum((pts - (qa + qb) / 2) * n, axis=1, keepdims=True) * n
        branch.points[1:] = pts


def _left_vein_to_ivc(anatomy: _Anatomy) -> None:
    """Let the left hepatic vein enter the IVC through the left liver: from its root at the top
    of the IVC it would climb through the thorax, and the hepatic veins' confluence here lies in
    the right liver, which a right hepatectomy removes (the left vein is always kept). It enters
    at the highest IVC point from which it runs inside the liver and outside segments 5-8.
    Done after the lesions are placed, which keeps their positions."""
    left = next(b for b in anatomy.branches if b.name == "left hepatic vein")
    target = left.points[1]
    ivc = _ivc().samples()
    for p in ivc[np.argsort(-ivc[:, 2])]:
        line = p + (target - p) * np.linspace(0, 1, 60)[:, None]
        line = line[np.linalg.norm(line - p, axis=1) > IVC_RADIUS_MM]
        if (anatomy.liver_inside(line[:, 0], line[:, 1], line[:, 2]).all()
                and not np.isin(anatomy.segment_of(line), RIGHT_LIVER_SEGMENTS).any()):
            left.points[0] = p
            return
    raise AssertionError("the left hepatic vein finds no way through the left liver to the IVC")


def _ivc() -> _Branch:
    return _Branch("IVC", np.array(IVC_PATH, float), IVC_RADIUS_MM, IVC_RADIUS_MM, IVC)


def _add_twigs(anatomy: _Anatomy, rng) -> None:
    """Small side branches, kept inside the liver, clear of the IVC (the liver's envelope holds
    its lumen until the body is composited: a caudate twig running in it was no vessel in the
    image, yet its territory was segment 1's) and (portal) inside their own territory."""
    ivc = cKDTree(_ivc().samples())
    twigs = []
    for parent in list(anatomy.branches):
        if not parent.segment and parent.cls != HEPATIC:
            continue
        samples = parent.samples()
        accepted, tries = 0, 0
        while accepted < 4 and tries < 16:
            tries += 1
            start = samples[int(rng.uniform(0.25, 0.9) * (len(samples) - 1))]
            axis = parent.points[-1] - parent.points[0]
            direction = axis / np.linalg.norm(axis) * 0.4 + rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            length = rng.uniform(14, 30)
            pts = start + direction * np.linspace(0, length, 6)[:, None]
            if not anatomy.liver_inside(pts[:, 0], pts[:, 1], pts[:, 2])[1:].all():
                continue
            twig = _Branch(f"{parent.name} twig", pts[[0, 2, 5]], TWIG_R_MM[0], TWIG_R_MM[1],
                           parent.cls, parent.segment)
            gap = ivc.query(twig.samples())[0].min() - IVC_RADIUS_MM - TWIG_R_MM[0]
            if gap < TWIG_IVC_GAP_MM:
                continue
            if parent.segment and not (anatomy.segment_of(pts) == parent.segment).all():
                continue
            twigs.append(twig)
            accepted += 1
    anatomy.branches += twigs
    portal_twigs = [t for t in twigs if t.segment]
    if portal_twigs:
        samples = [t.samples() for t in portal_twigs]
        points = np.vstack([anatomy.seeds.data] + samples)
        labels = np.concatenate([anatomy.seed_labels] + [np.full(len(s), t.segment, np.uint8)
                                                        for s, t in zip(samples, portal_twigs)])
        anatomy.seeds, anatomy.seed_labels = cKDTree(points), labels


def _drop_swallowed_twigs(anatomy: _Anatomy) -> None:
    """A twig lying wholly inside a lesion is no vessel in the image (the tumour replaces it)
    and feeds no parenchyma beyond it: it goes, with its territory seeds (seed 1's two segment-7
    twigs inside L1 held 13 mL of parenchyma beyond L1, which no vessel in the image feeds).
    Twigs are placed before the lesions and are removed after them, which keeps the lesions'
    positions."""
    swallowed = [b for b in anatomy.branches if "twig" in b.name and any(
        (lesion.rho(*b.samples().T) < 1).all() for lesion in anatomy.lesions)]
    if not swallowed:
        return
    anatomy.branches[:] = [b for b in anatomy.branches if all(b is not t for t in swallowed)]
    gone = cKDTree(np.vstack([b.samples() for b in swallowed])).query(anatomy.seeds.data)[0] == 0
    anatomy.seeds = cKDTree(anatomy.seeds.data[~gone])
    anatomy.seed_labels = anatomy.seed_labels[~gone]


def _coarse_axes(lo, hi, step):
    return [np.arange(lo[k], hi[k] + step / 2, step) for k in range(3)]


BODY = (168.0, 118.0, 5.0)     # semi-axes x, y and centre y of the skin outline (mm)
WALL = (155.0, 105.0, 5.0)     # outer surface of the abdominal wall muscles
CAVITY = (142.0, 92.0, 5.0)    # the abdominal cavity
LIVER_CENTER_MM = (-45.0, 5.0, 15.0)
LIVER_TARGET_ML = 1600.0
LIVER_BOX_MM = (np.array([-150.0, -105.0, -105.0]), np.array([115.0, 100.0, 105.0]))


def _place_lesions(anatomy: _Anatomy, rng) -> None:
    """Place each lesion in its segment at its depth class, clear of large vessels and of each other."""
    step = 2.5
    ax, ay, az = _coarse_axes(*LIVER_BOX_MM, step)
    inside = anatomy.liver_inside(ax[None, None, :], ay[None, :, None], az[:, None, None])
    depth = ndimage.distance_transform_edt(inside, sampling=step)
    anatomy.near = ((ax, ay, az), ndimage.distance_transform_edt(~inside, sampling=step) < NEAR_MM)
    zz, yy, xx = np.nonzero(inside)
    points = np.c_[ax[xx], ay[yy], az[zz]]
    segment = anatomy.segment_of(points)
    big = [b for b in anatomy.branches if max(b.r0, b.r1) >= 3.0] + [_ivc()]
    vessel_pts = np.vstack([b.samples() for b in big])
    vessel_r = np.concatenate([np.full(len(b.samples()), max(b.r0, b.r1)) for b in big])
    vd, vi = cKDTree(vessel_pts).query(points, workers=2)
    clearance = vd - vessel_r[vi]
    placed: list[_Lesion] = []
    for i, (name, seg, diameter, depth_class, rim) in enumerate(_LESIONS):
        lobes = rng.normal(size=(3, 3))
        lobes /= np.linalg.norm(lobes, axis=1, keepdims=True)
        amp = rng.uniform(0.03, 0.07, 3) if diameter > 10 else np.zeros(3)
        lesion = _Lesion(i + 1, name, seg, np.zeros(3), 1.0, lobes, amp, rim,
                         float(rng.uniform(35, 55)))
        lesion.radius_mm = diameter / 2 / _mean_radius_factor(lesion)
        r_max = lesion.max_radius_mm()
        d = depth[zz, yy, xx]
        ok = (segment == seg) & (clearance > r_max + 2)
        for other in placed:
            ok &= np.linalg.norm(points - other.center, axis=1) > r_max + other.max_radius_mm() + 8
        below = d - r_max          # depth of the lesion's shallowest point below the capsule
        if depth_class == "superficial":
            want = ok & (below > 1.0) & (below < 3.0)
        elif depth_class == "deep":
            want = ok & (below > DEEP_MM + step)
        else:
            want = ok & (below > 6.0) & (below < 18.0)
        if want.any():
            choice = rng.choice(np.flatnonzero(want))
        else:   # the shape does not allow it: the deepest spot left (a test checks the result)
            choice = np.flatnonzero(ok)[np.argmax(below[ok])]
        lesion.center = points[choice]
        placed.append(lesion)
    anatomy.lesions = placed


def _mean_radius_factor(lesion: _Lesion) -> float:
    """Equivalent-sphere radius of the lobulated shape for a base radius of 1."""
    u = np.random.default_rng(0).normal(size=(4000, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    probe = _Lesion(0, "", 0, np.zeros(3), 1.0, lesion.lobes, lesion.lobe_amp, False, 0)
    r = 1.0 / probe.rho(u[:, 0] * 0.5, u[:, 1] * 0.5, u[:, 2] * 0.5) * 0.5
    return float(np.mean(r ** 3) ** (1 / 3))


def _diaphragm(anatomy: _Anatomy):
    """The diaphragm hugs the tops of the liver, spleen and stomach; a dome elsewhere."""
    step = 3.0
    ax, ay, az = _coarse_axes((-150, -110, -40), (150, 120, 120), step)
    x, y, z = ax[None, None, :], ay[None, :, None], az[:, None, None]
    organs = (anatomy.liver_r(x, y, z) < 1) | (_quadric(x, y, z, *_SPLEEN[:2], rot=_SPLEEN[2]) < 1)
    organs |= _quadric(x, y, z, *_STOMACH[:2], rot=_STOMACH[2]) < 1
    for branch in anatomy.branches:     # the hepatic veins join the IVC below the diaphragm
        if branch.name in _VEIN_PLANES:
            organs |= branch.tubes()[0].inside(x, y, z)
    has = organs.any(axis=0)
    top = np.where(has, az[::-1][np.argmax(organs[::-1], axis=0)], -np.inf)
    gx, gy = np.meshgrid(ax, ay)
    default = np.maximum.reduce([
        82 - 0.0035 * (gx + 60) ** 2 - 0.004 * (gy - 5) ** 2,
        72 - 0.0035 * (gx - 55) ** 2 - 0.004 * (gy - 5) ** 2,
        np.full_like(gx, 55.0)]) - 45 * np.clip((gy - 40) / 60, 0, 1)
    zmap = np.where(has, np.maximum(top + 4.0, default - 30), default)
    return ax, ay, ndimage.gaussian_filter(zmap, 1.5)


# --- rendering ----------------------------------------------------------------------------------
def _render_body(anatomy: _Anatomy, grid: _Grid) -> np.ndarray:
    """Every tissue class except the liver and what lies in it (uint8 (z, y, x))."""
    tissue = np.zeros(grid.shape, np.uint8)
    sl, x, y, z = grid.full()
    _put(tissue, (y > 138) & (y < 146) & (np.abs(x) < 180), TABLE)
    outer = _ellipse_r(x, y, *BODY)
    wall = _ellipse_r(x, y, *WALL)
    cavity = _ellipse_r(x, y, *CAVITY)
    _put(tissue, outer < 1, FAT)
    _put(tissue, wall < 1, MUSCLE)
    _put(tissue, cavity < 1, FAT_VISC)
    _put(tissue, (_crus_r(x, y) < 1) & (cavity < 1), MUSCLE)     # the lungs cover its top
    # back muscles, psoas
    for side in (-1, 1):
        _put(tissue, _ellipse_r(x - side * 34, y - 100, 26, 17) < 1, MUSCLE)
        psoas_r = np.clip((-25 - z) / 3.5, 0, 20)
        _put(tissue, np.hypot(x - side * 38, y - 66) < psoas_r, MUSCLE)
    _paint_ribs(tissue, x, y, z, wall)
    # lungs and heart above the diaphragm
    zd = anatomy.diaphragm_z(x, y).reshape(y.shape[1], x.shape[2])[None]
    thorax = (cavity < 1) & (z > zd + 4)
    _put(tissue, thorax, LUNG)
    heart = (_quadric(x, y, z, (18, -30, 120), (62, 48, 58)) < 1) & (z > zd + 4)
    _put(tissue, heart, HEART)
    sl_s, xs, ys, zs = grid.box((-45.0, 30.0, -200.0), (45.0, 125.0, 200.0))
    _paint_spine(tissue[sl_s], xs, ys, zs)
    # great vessels, gut, solid organs
    aorta = np.hypot(x - 18, y - 30) < 12.5
    _put(tissue, aorta, AORTA)
    # each hepatic vein's last part reaches the IVC even where the liver's surface dips between
    # them, below the diaphragm (painted before the IVC, which keeps its lumen)
    below = ~np.isin(tissue, (LUNG, HEART))
    for branch in anatomy.branches:
        if branch.name in _VEIN_PLANES:
            _paint_tubes(tissue, grid, branch.tubes()[:1], where=below)
    r = IVC_RADIUS_MM
    _paint_tubes(tissue, grid, [_Tube(np.array(a, float), np.array(b, float), r, r, IVC)
                                for a, b in zip(IVC_PATH[:-1], IVC_PATH[1:])])
    for name, pts, r0, r1, cls in _EXTRAHEPATIC:
        _paint_tubes(tissue, grid, _Branch(name, np.array(pts, float), r0, r1, cls).tubes())
    # the main portal vein runs outside the liver from the confluence to the hilum, and its right
    # and left veins and the umbilical portion in the hilar plate and the umbilical fissure: a
    # dip of the liver's surface there must not cut them (with fat) from the intrahepatic tree,
    # nor the first part of a branch leaving them (through the fissure's fat)
    for branch in anatomy.branches:
        if branch.name in _HILAR_PORTAL:
            _paint_tubes(tissue, grid, branch.tubes())
    fat = tissue == FAT_VISC
    for branch in anatomy.branches:
        if (branch.cls in PORTAL_CLASSES and branch.name not in _HILAR_PORTAL
                and not branch.name.endswith("twig")):
            _paint_tubes(tissue, grid, branch.tubes()[:1], where=fat)
    for tube in _Branch("colon", np.array(_COLON, float), 22, 22, BOWEL_WALL).tubes():
        _paint_tubes(tissue, grid, [tube])
        sl_t, xt, yt, zt = grid.box(*tube.bounds())
        lumen = _Tube(tube.a, tube.b, 19, 19, 0).inside(xt, yt, zt)
        gas = yt < (tube.a[1] + tube.b[1]) / 2 - 4          # gas rises anteriorly (supine)
        tissue[sl_t][lumen & gas] = GAS
        tissue[sl_t][lumen & ~gas] = FLUID
    _paint_stomach(tissue, grid)
    _paint_bowel(tissue, grid, anatomy.bowel)
    for center, semi, rot in _KIDNEYS:
        sl_k, xk, yk, zk = grid.box(np.array(center) - 60, np.array(center) + 60)
        r = _quadric(xk, yk, zk, center, semi, rot=rot)
        part = tissue[sl_k]
        _put(part, r < 1, KIDNEY_CORTEX)
        _put(part, r < 0.75, KIDNEY_MEDULLA)
        medial = (xk - center[0]) * -np.sign(center[0]) > 8
        _put(part, (r < 0.6) & medial, SINUS_FAT)
    sl_s, xs, ys, zs = grid.box(np.array(_SPLEEN[0]) - 60, np.array(_SPLEEN[0]) + 60)
    spleen = _quadric(xs, ys, zs, *_SPLEEN[:2], rot=_SPLEEN[2]) < 1
    spleen &= _quadric(xs, ys, zs, (62, 26, 30), (36, 36, 60)) > 1      # concave hilum side
    spleen &= _ellipse_r(xs, ys, *CAVITY) < 0.97
    tissue[sl_s][spleen & (tissue[sl_s] != LUNG)] = SPLEEN
    return tissue


def _paint_ribs(tissue, x, y, z, wall):
    """Ribs descend from the spine around the flank; the lower ones stop short (costal margin)."""
    dy = (y - WALL[2] + 0 * x)[0]
    r_xy = np.hypot(x[0], dy)
    wall2d = np.broadcast_to(wall, (1,) + tissue.shape[1:])[0]
    radial = (wall2d - 0.95) * r_xy / np.maximum(wall2d, 1e-6)     # mm from the rib circle
    iy, ix = np.nonzero(np.abs(radial) < 5)                        # only a band is evaluated
    phi = np.arccos(np.clip(dy / np.maximum(r_xy, 1e-6), -1, 1))[iy, ix]   # 0 back .. pi front
    radial = radial[iy, ix]
    zc = z.reshape(-1, 1)
    band = tissue[:, iy, ix]
    for z0 in np.arange(150.0, -70.0, -30.0):
        reach = np.pi * np.clip(0.92 - 0.1 * max(0, 2 - (z0 - 20) / 30) ** 1.3, 0.35, 0.92)
        d = (radial / 4.5) ** 2 + ((zc - (z0 - 110 * (phi / np.pi) ** 1.2)) / 5.0) ** 2
        rib = (d < 1) & (phi > 0.2) & (phi < reach)
        band[rib] = BONE_CORTEX
        band[rib & (d < 0.45)] = BONE_MARROW
        band[rib & (phi > reach - 0.5)] = CARTILAGE
    tissue[:, iy, ix] = band


def _paint_spine(tissue, x, y, z):
    body = _ellipse_r(x, y - 62, 22, 17) + 0 * z
    level = np.mod(z + 12, 32.0)
    disc = level < 7
    _put(tissue, body < 1, BONE_CORTEX)
    _put(tissue, (body < 0.88), BONE_MARROW)
    _put(tissue, (body < 1) & disc, DISC)
    canal = np.hypot(x, y - 92) + 0 * z
    arch = (canal > 9) & (canal < 15) & (y > 84)
    spinous = (np.abs(x) < 4) & (y > 100) & (y < 114)
    transverse = ((np.abs(x) > 10) & (np.abs(x) < 30) & (np.abs(y - 84 - 0.25 * np.abs(x)) < 3)
                  & (level > 14) & (level < 24))
    _put(tissue, (arch | spinous | transverse) & ~disc, BONE_CORTEX)
    _put(tissue, canal < 9, CSF)


BOWEL_BOX_MM = (np.array([-150.0, -110.0, -135.0]), np.array([150.0, 45.0, 15.0]))


def _bowel_fields(rng):
    """Smooth random fields on a fixed 4 mm grid: their level sets are the bowel loops."""
    step = 4.0
    axes = _coarse_axes(*BOWEL_BOX_MM, step)
    shape = tuple(len(a) for a in axes[::-1])
    fields = [ndimage.gaussian_filter(rng.standard_normal(shape), sd) for sd in (2.0, 1.5)]
    return axes, *(f / f.std() for f in fields)


def _paint_bowel(tissue, grid, bowel):
    """Fluid-filled loops with a wall and pockets of gas in the visceral fat below the liver."""
    axes, loops, gas = bowel
    sl, x, y, z = grid.box(*BOWEL_BOX_MM)
    part = tissue[sl]
    # the fields vary over centimetres: sample them on every second voxel
    xc, yc, zc = x[..., ::2], y[:, ::2], z[::2]
    idx = np.meshgrid(*[(c.ravel() - a[0]) / (a[1] - a[0]) for c, a in zip((zc, yc, xc), axes[::-1])],
                      indexing="ij")
    f = ndimage.map_coordinates(loops, idx, order=1).reshape(idx[0].shape)
    # fewer loops up towards the liver and back towards the retroperitoneum
    f -= 2.5 * np.clip((zc + 20) / 30, 0, 1) + 3.0 * np.clip((yc - 15) / 30, 0, 1)
    f = _upsample2(f.astype(np.float32), part.shape)
    g = _upsample2(ndimage.map_coordinates(gas, idx, order=1).reshape(idx[0].shape), part.shape)
    bowel = np.where(f > 0.65, np.where(g > 1.4, GAS, FLUID), np.where(f > 0.3, BOWEL_WALL, 0))
    fat = (part == FAT_VISC) & (bowel > 0)
    part[fat] = bowel[fat]


def _paint_stomach(tissue, grid):
    center, semi, rot = _STOMACH
    sl, x, y, z = grid.box(np.array(center) - 80, np.array(center) + 80)
    r = _quadric(x, y, z, center, semi, rot=rot)
    part = tissue[sl]
    _put(part, r < 1, STOMACH_WALL)
    lumen = r < 1 - 4.0 / min(semi)
    _put(part, lumen & (y >= -20), FLUID)
    _put(part, lumen & (y < -20), GAS)
    for tube in _Branch("antrum", np.array(_ANTRUM, float), 18, 15, STOMACH_WALL).tubes():
        _paint_tubes(tissue, grid, [tube], where=tissue != GAS)
        sl_t, xt, yt, zt = grid.box(*tube.bounds())
        lumen = _Tube(tube.a, tube.b, tube.ra - 4, tube.rb - 4, 0).inside(xt, yt, zt)
        tissue[sl_t][lumen] = FLUID


def _render_liver(anatomy: _Anatomy, grid: _Grid):
    """Liver-region classes (0 elsewhere), segments and lesion ids on the grid."""
    region = np.zeros(grid.shape, np.uint8)
    sl, x, y, z = grid.box(*LIVER_BOX_MM)
    f = _refined(anatomy.liver_f, x, y, z, FIELD_SLOPE_PER_MM * _half_diagonal_mm(grid))
    inside = f < 1
    part = region[sl]
    part[inside] = LIVER
    sl_g, xg, yg, zg = grid.box(np.array([-75, -90, -80.0]), np.array([-10, -15, 10.0]))
    _put(region[sl_g], _gallbladder_r(xg, yg, zg) < 1, GALLBLADDER)
    liver = np.zeros(grid.shape, bool)
    liver[sl] = inside
    for branch in anatomy.branches:
        _paint_tubes(region, grid, branch.tubes(), where=liver)
    tumors = np.zeros(grid.shape, np.uint16)
    for lesion in anatomy.lesions:
        r = lesion.max_radius_mm() + 1
        sl_l, xl, yl, zl = grid.box(lesion.center - r, lesion.center + r)
        rho = lesion.rho(xl, yl, zl)
        in_l = (rho < 1) & liver[sl_l]
        region[sl_l][in_l] = TUMOR
        if lesion.rim:
            region[sl_l][in_l & (rho > 1 - RIM_MM / lesion.radius_mm)] = TUMOR_RIM
        tumors[sl_l][in_l] = lesion.id
    segments = np.zeros(grid.shape, np.uint8)
    segments[sl] = _segments(anatomy, x, y, z, inside)
    return region, segments, tumors


def _half_diagonal_mm(grid: _Grid) -> float:
    """Farthest a voxel lies from the nearest point of the grid subsampled by 2."""
    return float(np.linalg.norm(grid.spacing))


def _upsample_index(n_fine: int, n_coarse: int) -> np.ndarray:
    """For each fine index, the nearest index of the grid subsampled by 2."""
    i = np.arange(n_fine)
    return np.minimum(i // 2 + i % 2, n_coarse - 1)


def _upsample2(coarse: np.ndarray, shape) -> np.ndarray:
    """Linear interpolation of values on every second voxel back to the full `shape`."""
    out = coarse
    for axis, n in enumerate(shape):
        a = np.moveaxis(out, axis, 0)
        up = np.empty((2 * len(a) - 1,) + a.shape[1:], a.dtype)
        up[0::2], up[1::2] = a, (a[:-1] + a[1:]) / 2
        if len(up) < n:    # an even count: the last voxel takes its neighbour's value
            up = np.concatenate([up, up[-1:]])
        out = np.moveaxis(up[:n], 0, axis)
    return out


def _refined(field, x, y, z, band: float) -> np.ndarray:
    """`field` on the open grid (x, y, z): on every second voxel, then exactly where the value
    is within `band` of the level 1 (the only place where the nearest coarse value may mislead)."""
    coarse = field(x[..., ::2], y[:, ::2], z[::2])
    shape = np.broadcast_shapes(x.shape, y.shape, z.shape)
    ix = [_upsample_index(n, c) for n, c in zip(shape, coarse.shape)]
    approx = coarse[np.ix_(*ix)]
    kz, ky, kx = np.nonzero(np.abs(approx - 1) < band)
    approx[kz, ky, kx] = field(x.ravel()[kx], y.ravel()[ky], z.ravel()[kz])
    return approx


def _segments(anatomy: _Anatomy, x, y, z, inside) -> np.ndarray:
    """Segment labels of the voxels `inside`: from every second voxel where all coarse
    neighbours agree, exactly (nearest branch) elsewhere."""
    xc, yc, zc = x[..., ::2].ravel(), y[:, ::2].ravel(), z[::2].ravel()
    near = ndimage.binary_dilation(inside[::2, ::2, ::2], iterations=2)
    kz, ky, kx = np.nonzero(near)
    coarse = np.zeros(near.shape, np.uint8)
    coarse[kz, ky, kx] = anatomy.segment_of(np.c_[xc[kx], yc[ky], zc[kz]])
    uniform = ndimage.maximum_filter(coarse, 3) == ndimage.minimum_filter(coarse, 3)
    ix = [_upsample_index(n, c) for n, c in zip(inside.shape, coarse.shape)]
    labels = np.where(inside, coarse[np.ix_(*ix)], 0).astype(np.uint8)
    kz, ky, kx = np.nonzero(inside & ~uniform[np.ix_(*ix)])
    labels[kz, ky, kx] = anatomy.segment_of(np.c_[x.ravel()[kx], y.ravel()[ky], z.ravel()[kz]])
    return labels


def _composite(body, region, segments, tumors):
    """Liver over the body except where the body is HARD; returns tissue and truth masks."""
    put = (region > 0) & ~HARD[body]
    tissue = np.where(put, region, body)
    # a hepatic vein piece cut off from the IVC (by a lesion or the liver's edge) would have
    # no outflow: render it as parenchyma, so every hepatic vein drains into the IVC
    veins = np.isin(tissue, (HEPATIC, IVC))
    pieces, n = ndimage.label(veins, structure=np.ones((3, 3, 3)))
    drains = np.zeros(n + 1, bool)
    drains[pieces[tissue == IVC]] = True
    tissue[veins & ~drains[pieces]] = LIVER
    liver = put & (region != GALLBLADDER)
    segments = np.where(liver, segments, 0).astype(np.uint8)
    tumors = np.where(liver, tumors, 0).astype(np.uint16)
    vessels = np.zeros(body.shape, np.uint8)
    vessels[np.isin(tissue, PORTAL_CLASSES)] = 1
    vessels[np.isin(tissue, (HEPATIC, IVC))] = 2
    return tissue, liver.astype(np.uint8), segments, tumors, vessels


def _ct(tissue, tumors, lesion_hu, grid: _Grid, rng) -> np.ndarray:
    """HU with partial-volume blur and spatially correlated noise."""
    hu = HU[tissue]
    core = (tissue == TUMOR)
    hu[core] = lesion_hu[tumors[core]]
    sigma = BLUR_MM / np.array(grid.spacing)[::-1]
    # one blur makes both the partial volume and the noise correlation; white noise is scaled
    # so that its SD after the blur is NOISE_SD_HU
    hu += rng.standard_normal(grid.shape, dtype=np.float32) * (NOISE_SD_HU / _blur_gain(sigma))
    hu = ndimage.gaussian_filter(hu, sigma, truncate=3.0)
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


def _blur_gain(sigma) -> float:
    """SD of unit white noise after scipy's gaussian_filter(sigma, truncate=3)."""
    gain = 1.0
    for sd in sigma:
        radius = int(3.0 * sd + 0.5)
        k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sd) ** 2)
        gain *= np.sqrt(np.sum((k / k.sum()) ** 2))
    return float(gain)


# --- the post-PVE follow-up --------------------------------------------------------------------
@dataclass
class _Warp:
    """Follow-up -> baseline map: the left liver expanded about the hilum, the right contracted.

    Defined directly as the pull-back q = M(p) so every baseline structure can be sampled at q;
    the weights are smoothed territories, so the map is smooth across Cantlie's plane.
    """
    axes: list                          # coarse grid axes (x, y, z) of the weights
    w_left: np.ndarray                  # (z, y, x) weight of the hypertrophying left liver
    w_right: np.ndarray
    alpha: float = 0.0                  # linear growth of the left liver (before anisotropy)
    center_left = np.array([-30.0, 10.0, 15.0], np.float32)
    center_right = np.array([-75.0, 20.0, 10.0], np.float32)
    anisotropy = np.array([1.0, 0.8, 0.5], np.float32)   # it grows to the left and forwards, hardly upwards

    def weights(self, p: np.ndarray):
        idx = [np.interp(p[:, k], self.axes[k], np.arange(len(self.axes[k]))) for k in (2, 1, 0)]
        return (ndimage.map_coordinates(self.w_left, idx, order=1)[:, None],
                ndimage.map_coordinates(self.w_right, idx, order=1)[:, None])

    def __call__(self, p: np.ndarray, weights=None) -> np.ndarray:
        wl, wr = self.weights(p) if weights is None else weights
        grown = self.center_left + (p - self.center_left) / (1 + self.alpha * self.anisotropy)
        shrunk = self.center_right + (p - self.center_right) * (1 + RIGHT_ATROPHY_SCALE)
        return p + wl * (grown - p) + wr * (shrunk - p)

    def inverse(self, q: np.ndarray) -> np.ndarray:
        """The follow-up point that maps onto baseline point q (fixed-point iteration)."""
        p = np.atleast_2d(np.asarray(q, float)).copy()
        for _ in range(50):
            p += q - self(p)
        return p


def _make_warp(anatomy: _Anatomy) -> _Warp:
    step = 3.0
    lo, hi = LIVER_BOX_MM
    axes = _coarse_axes(lo - 20, hi + 20, step)
    gz, gy, gx = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    seg = anatomy.segment_of(np.c_[gx.ravel(), gy.ravel(), gz.ravel()]).reshape(gx.shape)
    w_left, w_right = (ndimage.gaussian_filter(np.isin(seg, segs).astype(np.float32), 8.0 / step)
                       for segs in (FUTURE_LIVER_REMNANT_SEGMENTS, RIGHT_LIVER_SEGMENTS))
    return _Warp(axes, w_left, w_right)


def _render_followup(anatomy, base_grid, fu_grid, base_region, base_segments, base_tumors,
                     base_left_voxels, body, growth_percent):
    """Sample the baseline liver through the warp; find the growth that gives `growth_percent`.

    base_segments/base_tumors are the liver render's own (not yet cut by the body's HARD organs),
    so that every pasted liver voxel carries its segment.
    """
    warp = _make_warp(anatomy)
    sl, x, y, z = fu_grid.box(*LIVER_BOX_MM)
    near = anatomy.near_liver(x, y, z)          # only here can the warped liver land
    p = np.stack([np.broadcast_to(c, near.shape)[near] for c in (x, y, z)], axis=-1)
    weights = warp.weights(p)
    hard = HARD[body[sl][near]]
    o, s = base_grid.origin.astype(np.float32), np.array(base_grid.spacing, np.float32)
    size = np.array(base_grid.size)
    is_left = np.isin(np.arange(256), FUTURE_LIVER_REMNANT_SEGMENTS)

    def sample(alpha, stride=1):
        warp.alpha = alpha
        q = warp(p[::stride], (weights[0][::stride], weights[1][::stride]))
        ijk = np.clip(np.rint((q - o) / s).astype(np.intp), 0, size - 1)
        return ijk[:, 2], ijk[:, 1], ijk[:, 0]

    target = base_left_voxels * (1 + growth_percent / 100.0)

    def miss(alpha, stride):
        """Left-liver voxels at growth `alpha` minus the target (estimated from every stride-th)."""
        k = sample(alpha, stride)
        left = is_left[base_segments[k]] & (base_region[k] != GALLBLADDER) & ~hard[::stride]
        return np.count_nonzero(left) * stride - target

    # secant on a subsample (the left volume grows smoothly and monotonically with alpha),
    # then one step on every voxel
    a0, a1 = 0.0, growth_percent / 100.0 / 2.3
    f0, f1 = miss(a0, 8), miss(a1, 8)
    for _ in range(8):
        if f1 == f0 or abs(f1) <= 5e-4 * target:
            break
        a0, a1, f0 = a1, a1 - f1 * (a1 - a0) / (f1 - f0), f1
        f1 = miss(a1, 8)
    slope = (f1 - f0) / (a1 - a0) if a1 != a0 else None
    exact = miss(a1, 1)
    if slope and abs(exact) > 1e-3 * target:
        a1 -= exact / slope
    k = sample(a1)      # (the exact check above already ran on every voxel: one more pass)
    out = [np.zeros(fu_grid.shape, np.uint8), np.zeros(fu_grid.shape, np.uint8),
           np.zeros(fu_grid.shape, np.uint16)]
    for arr, part in zip(out, (_EMBOLIZED[base_region[k]], base_segments[k], base_tumors[k])):
        box = arr[sl]
        box[near] = part
    return (*out, warp)


# --- truth ---------------------------------------------------------------------------------------
def _centroid(mask: np.ndarray, reference: sitk.Image, offset=(0, 0, 0)) -> list[float]:
    """Centroid in LPS mm of `mask`, a sub-array starting at index `offset` (z, y, x)."""
    n = np.count_nonzero(mask)
    idx = [np.dot(np.count_nonzero(mask, axis=tuple(a for a in range(3) if a != k)),
                  np.arange(mask.shape[k])) / n + offset[k] for k in range(3)]
    return [round(float(v), 2) for v in index_to_lps(reference, idx).ravel()]


def _lesion_truth(tumors, liver, segments, reference, anatomy):
    spacing_zyx = np.array(reference.GetSpacing())[::-1]
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    pad = tuple(slice(max(int(np.argmax(m)) - 2, 0), len(m) - int(np.argmax(m[::-1])) + 2)
                for m in (np.any(liver, axis=tuple(a for a in range(3) if a != k)) for k in range(3)))
    depth = np.zeros(liver.shape, np.float32)
    depth[pad] = ndimage.distance_transform_edt(liver[pad], sampling=spacing_zyx)
    out = []
    boxes = ndimage.find_objects(tumors)
    for lesion in anatomy.lesions:
        if lesion.id > len(boxes) or boxes[lesion.id - 1] is None:
            continue
        box = boxes[lesion.id - 1]
        mask = tumors[box] == lesion.id
        n = int(np.count_nonzero(mask))
        points = np.argwhere(mask) * spacing_zyx
        hull = points[ConvexHull(points).vertices] if n >= 8 else points
        max_d = float(np.max(np.linalg.norm(hull[:, None] - hull[None], axis=2)))
        segs, counts = np.unique(segments[box][mask], return_counts=True)
        volume_ml = n * voxel_ml
        out.append({
            "id": lesion.id, "name": lesion.name,
            "centroid_lps_mm": _centroid(mask, reference, [b.start for b in box]),
            "diameter_mm": round((6 * volume_ml * 1000 / np.pi) ** (1 / 3), 2),
            "max_diameter_mm": round(max_d, 2),
            "volume_ml": round(volume_ml, 3),
            "depth_mm": round(float(depth[box][mask].min()), 2),
            "segment": int(segs[np.argmax(counts)]),
            "rim": lesion.rim,
            "core_hu": round(lesion.core_hu, 1),
        })
    return out


def _truth(tissue, liver, segments, tumors, reference, anatomy, bifurcation_lps) -> dict:
    voxel_ml = float(np.prod(reference.GetSpacing())) / 1000.0
    counts = np.bincount(segments.ravel(), minlength=9)
    seg_ml = {str(k): round(int(counts[k]) * voxel_ml, 3) for k in range(1, 9)}
    left = sum(seg_ml[str(k)] for k in FUTURE_LIVER_REMNANT_SEGMENTS)
    right = sum(seg_ml[str(k)] for k in RIGHT_LIVER_SEGMENTS)
    sl, x, y, z = _Grid(reference.GetSize(), reference.GetSpacing()).full()
    spine = np.isin(tissue, (BONE_MARROW, DISC)) & np.broadcast_to(
        (np.abs(x) < 30) & (np.abs(y - 62) < 25), tissue.shape)
    return {
        "generator_version": GENERATOR_VERSION,
        "seed": anatomy.seed,
        "sex": PATIENT["patient_sex"], "weight_kg": PATIENT["weight_kg"],
        "height_cm": PATIENT["height_cm"],
        "liver_volume_ml": round(np.count_nonzero(liver) * voxel_ml, 3),
        "tumor_volume_ml": round(np.count_nonzero(tumors) * voxel_ml, 3),
        "segment_volume_ml": seg_ml,
        "left_liver_segments": list(FUTURE_LIVER_REMNANT_SEGMENTS),
        "left_liver_volume_ml": round(left, 3),
        "right_liver_volume_ml": round(right, 3),
        "lesions": _lesion_truth(tumors, liver, segments, reference, anatomy),
        "markers": {
            "spine_centroid_lps_mm": _centroid(spine, reference),
            "spleen_centroid_lps_mm": _centroid(tissue == SPLEEN, reference),
            "liver_centroid_lps_mm": _centroid(liver, reference),
            "portal_bifurcation_lps_mm": [round(float(v), 2) for v in bifurcation_lps],
        },
        "labels": {
            "liver": "1 = liver including intrahepatic tumours and vessels; the gallbladder, "
                     "the IVC and the extrahepatic portal vein are outside",
            "tumors": "lesion id (see lesions)",
            "vessels": "1 = enhancing portal vein (main trunk and intrahepatic branches), "
                       "2 = hepatic veins and IVC; splenic and mesenteric veins are not labelled",
            "segments": "Couinaud segment 1-8 (territory of the nearest segmental portal branch; "
                        "segment 1 only behind the portal bifurcation)",
            "depth_mm": "shortest distance from the lesion to the liver surface",
        },
    }


# --- writing ------------------------------------------------------------------------------------
def _write_timepoint(root: Path, grid: _Grid, tissue, liver, segments, tumors, vessels, ct,
                     truth: dict, study_date, description: str, steps: Steps) -> None:
    reference = grid.reference()
    image = image_from_array(ct, reference)
    write_series(image, root / "dicom", **PATIENT, study_date=study_date,
                 series_description=description,
                 extra_tags={"ContrastBolusAgent": "Iohexol 350 mg I/mL",
                             "ContrastBolusRoute": "IV", "StudyDescription": "CT abdomen",
                             "PatientBirthDate": "19610514", "KVP": "120",
                             "ContrastBolusVolume": "100"},
                 progress=steps.sub(0.0, 0.7).report, cancel=steps.cancel)
    (root / "truth").mkdir(exist_ok=True)
    for name, arr in (("liver", liver), ("tumors", tumors), ("vessels", vessels),
                      ("segments", segments)):
        write_image(image_from_array(arr, reference), root / "truth" / f"{name}.nii.gz")
    with atomic_write(root / "truth.json") as tmp:
        tmp.write_text(json.dumps(truth, indent=1))
    steps.report(1.0, "Written")


# --- public API ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PhantomCase:
    """A generated synthetic patient on disk: DICOM series, truth masks and truth.json."""
    root: Path
    truth: dict
    followup: "PhantomCase | None" = None

    @property
    def dicom_dir(self) -> Path:
        return self.root / "dicom"

    @property
    def truth_dir(self) -> Path:
        return self.root / "truth"

    def mask(self, name: str) -> sitk.Image:
        """A truth mask ("liver", "tumors", "vessels", "segments") on the CT grid."""
        return read_image(self.truth_dir / f"{name}.nii.gz")

    @classmethod
    def open(cls, root) -> "PhantomCase":
        root = Path(root)
        if not (root / "truth.json").is_file():
            raise InputError("not a synthetic patient folder (truth.json is missing); create one "
                             "with `liverplan demo --out FOLDER`", path=root)
        truth = json.loads((root / "truth.json").read_text())
        followup = cls.open(root / "followup") if (root / "followup" / "truth.json").is_file() \
            else None
        return cls(root, truth, followup)


def cached(cache_dir=None, **kwargs) -> PhantomCase:
    """`generate(**kwargs)` once into `cache_dir` (by default $LIVERPLAN_TEST_CACHE or
    ~/.cache/liverplan-tests: the tests' and benchmarks' patients), reused while the generator
    (this module and the DICOM writer) is unchanged. Built in a temporary folder and renamed: a
    half-built patient is never reused, and two sessions building the same one do not collide."""
    here = Path(__file__).parent
    source = b"".join((here / name).read_bytes() for name in ("phantom.py", "dicom_write.py"))
    key = hashlib.sha1(source + repr(sorted(kwargs.items())).encode()).hexdigest()[:12]
    cache = Path(cache_dir or os.environ.get("LIVERPLAN_TEST_CACHE",
                                            Path.home() / ".cache" / "liverplan-tests"))
    root = cache / f"phantom-{key}"
    if not root.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".building-"))
        generate(tmp, **kwargs)
        try:
            os.replace(tmp, root)
        except OSError:             # another session finished the same patient first
            shutil.rmtree(tmp)
    return PhantomCase.open(root)


def generate(out_dir, *, seed: int = 0, size: str = "small", followup: bool = True,
             followup_growth_percent: float = 40.0, weeks_after_pve: float = 4.0,
             progress=None, cancel=None) -> PhantomCase:
    """Write the synthetic patient (and, by default, its post-PVE follow-up) into `out_dir`."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, not {size!r}")
    steps = Steps(progress, cancel)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    base_steps = steps.sub(0.0, 0.5 if followup else 1.0)
    base_steps.report(0.0, "Building the anatomy")
    anatomy = _build_anatomy(seed)
    grid = _Grid(*SIZES[size])
    base_steps.report(0.15, "Rendering the body")
    body = _render_body(anatomy, grid)
    base_steps.report(0.35, "Rendering the liver")
    region, seg_raw, tum_raw = _render_liver(anatomy, grid)
    lesion_hu = np.r_[0, [les.core_hu for les in anatomy.lesions]].astype(np.float32)
    tissue, liver, segments, tumors, vessels = _composite(body, region, seg_raw, tum_raw)
    base_steps.report(0.5, "Simulating the CT")
    ct = _ct(tissue, tumors, lesion_hu, grid, np.random.default_rng([seed, 0]))
    bifurcation = anatomy.bifurcation_lps_mm
    truth = _truth(tissue, liver, segments, tumors, grid.reference(), anatomy, bifurcation)
    truth.update(size=size, study_date=BASELINE_DATE.isoformat(), timepoint="baseline")
    _write_timepoint(root, grid, tissue, liver, segments, tumors, vessels, ct, truth,
                     BASELINE_DATE, "Portal venous phase", base_steps.sub(0.6, 1.0))
    if not followup:
        return PhantomCase.open(root)

    fu_steps = steps.sub(0.5, 1.0)
    fu_steps.report(0.0, "Rendering the follow-up after PVE")
    fu_grid = _Grid(*SIZES[size], shift=FOLLOWUP_SHIFT_MM)
    body_fu = _render_body(anatomy, fu_grid)
    fu_steps.report(0.25, "Growing the left liver")
    left_voxels = np.count_nonzero(np.isin(segments, FUTURE_LIVER_REMNANT_SEGMENTS))
    region_fu, seg_fu, tum_fu, warp = _render_followup(anatomy, grid, fu_grid, region, seg_raw,
                                                       tum_raw, left_voxels, body_fu,
                                                       followup_growth_percent)
    tissue_fu, liver_fu, seg_fu, tum_fu, ves_fu = _composite(body_fu, region_fu, seg_fu, tum_fu)
    fu_steps.report(0.5, "Simulating the follow-up CT")
    ct_fu = _ct(tissue_fu, tum_fu, lesion_hu, fu_grid, np.random.default_rng([seed, 1]))
    bif_fu = warp.inverse(bifurcation).ravel() + FOLLOWUP_SHIFT_MM
    truth_fu = _truth(tissue_fu, liver_fu, seg_fu, tum_fu, fu_grid.reference(), anatomy, bif_fu)
    date_fu = BASELINE_DATE + _dt.timedelta(days=round(7 * weeks_after_pve))
    growth = 100.0 * (truth_fu["left_liver_volume_ml"] / truth["left_liver_volume_ml"] - 1)
    truth_fu.update(
        size=size, study_date=date_fu.isoformat(), timepoint="followup after right PVE",
        weeks_after_pve=weeks_after_pve,
        embolized=["right portal vein", "right anterior", "right posterior", "segments 5-8"],
        hypertrophy={
            "segments": list(FUTURE_LIVER_REMNANT_SEGMENTS),
            "requested_growth_percent": followup_growth_percent,
            "growth_percent": round(growth, 3),
            "baseline_volume_ml": truth["left_liver_volume_ml"],
            "followup_volume_ml": truth_fu["left_liver_volume_ml"],
            "kgr_percent_per_week": round(growth / weeks_after_pve, 3),
            "right_liver_change_percent": round(
                100.0 * (truth_fu["right_liver_volume_ml"] / truth["right_liver_volume_ml"] - 1), 3),
        },
        baseline={"liver_volume_ml": truth["liver_volume_ml"],
                  "segment_volume_ml": truth["segment_volume_ml"]},
        patient_shift_mm=list(FOLLOWUP_SHIFT_MM))
    truth_fu["labels"]["vessels"] += "; embolized right portal branches are not labelled"
    _write_timepoint(root / "followup", fu_grid, tissue_fu, liver_fu, seg_fu, tum_fu, ves_fu,
                     ct_fu, truth_fu, date_fu, "Portal venous phase", fu_steps.sub(0.6, 1.0))
    return PhantomCase.open(root)
