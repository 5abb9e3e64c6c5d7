"""Focal liver lesions (metastases): automatic detection, click-to-segment and instance edits.

Colorectal metastases are hypodense to portal-venous parenchyma, some with an enhancing rim.
Detection looks for compact regions clearly darker than the parenchyma inside the liver; each one
is then delineated on its own at a fixed fraction of the contrast between its core and the
parenchyma (an edge that does not depend on the lesion's absolute HU), plus an adjoining bright
rim and a thin halo, on an image where the liver's partial-volume darkening under the capsule is
levelled out. A click delineates one lesion the same way, also one brighter than the liver
(MR), but not a long, thin structure (a vessel). The tumour map holds one instance id per lesion
(UInt16, 0 = none), ids 1..N by size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from liverplan.errors import SegmentationError
from liverplan.evidence import LESION_MIN_DIAMETER_MM
from liverplan.geometry import (blank_image, image_from_array, lps_to_index, same_grid,
                                without_cavities)
from liverplan.progress import Steps
from liverplan.volumetry.liver import bbox, dilate_mm, edt, peak_sd, smooth, widen


@dataclass(frozen=True)
class LesionParameters:
    """Algorithm settings (not clinical thresholds); stored with every result."""
    smoothing_mm: float = 1.2        # denoising for detection (less than the smallest lesion
                                     # radius)
    edge_smoothing_mm: float = 0.75  # lighter denoising to draw the outline: more blur spreads
                                     # the edge of small lesions outwards
    seed_contrast_sd: float = 3.5    # a lesion core is this many parenchyma SDs below its mode
    min_contrast_sd: float = 3.0     # ... and its median at least this far below (noise blobs)
    edge_fraction: float = 0.3       # the edge: 30 % of the core-to-parenchyma contrast below
                                     # the parenchyma (outside the half-contrast edge, which
                                     # cuts blurred lesion borders short)
    boundary_margin_mm: float = 3.0  # seeds are searched this far inside the capsule
    grow_limit_mm: float = 8.0       # a lesion may extend this far beyond its core
    halo_mm: float = 1.0             # the blurred transition zone belongs to the lesion
                                     # (conservative for margins; matches 3D-IRCADb contours)
    local_shell_mm: float = 5.0      # the parenchyma around a lesion is sampled this far out
    rim_mm: float = 3.0              # an enhancing rim is looked for this far around
    min_compactness: float = 0.1     # volume / sphere of its extent (drops fissures, vessels)
    min_local_contrast_sd: float = 2.5   # a lesion's median this many SDs below the
                                         # parenchyma around it

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Parenchyma:
    """Intensity of the liver parenchyma, measured inside the liver mask."""
    mode: float
    sd: float


def parenchyma(smoothed: np.ndarray, liver: np.ndarray, spacing_zyx,
               margin_mm: float = LesionParameters.boundary_margin_mm,
               depth_mm: np.ndarray | None = None) -> Parenchyma:
    """Measured `margin_mm` inside the capsule; `depth_mm`: the liver's distance map
    (liverplan.volumetry.liver.edt) when the caller has it."""
    inner = (edt(liver, spacing_zyx) if depth_mm is None else depth_mm) > margin_mm
    values = smoothed[inner if inner.any() else liver]
    if values.size == 0:
        raise SegmentationError("the liver mask is empty: segment the liver before its lesions")
    hist, edges = np.histogram(values, bins=200, range=np.percentile(values, [1, 99]))
    hist = ndi.gaussian_filter1d(hist.astype(float), 2.0)
    peak = int(np.argmax(hist))
    return Parenchyma(float(edges[peak]), max(peak_sd(hist, edges, peak), 1.0))


class _Crop:
    """The liver's bounding box (+ margin) of the smoothed image, the liver and a tumour map."""

    def __init__(self, image: sitk.Image, liver: sitk.Image, p: "LesionParameters",
                 margin_mm: float = 5.0):
        if not same_grid(image, liver):
            raise SegmentationError("the liver mask does not lie on the image grid")
        full = sitk.GetArrayViewFromImage(liver) > 0
        if not full.any():
            raise SegmentationError("the liver mask is empty: segment the liver before its lesions")
        sx, sy, sz = image.GetSpacing()
        self.spacing = (sz, sy, sx)
        self.box = widen(bbox(full), margin_mm, self.spacing, full.shape)
        self.shape = full.shape
        self.liver = full[self.box]
        region = sitk.RegionOfInterest(image, [b.stop - b.start for b in self.box[::-1]],
                                       [b.start for b in self.box[::-1]])
        self.a = sitk.GetArrayFromImage(smooth(region, p.smoothing_mm))
        self.depth_mm = edt(self.liver, self.spacing)
        self.tissue = parenchyma(self.a, self.liver, self.spacing, p.boundary_margin_mm,
                                 self.depth_mm)
        self.fine = _capsule_levelled(sitk.GetArrayFromImage(smooth(region, p.edge_smoothing_mm)),
                                      self.liver, self.depth_mm, self.tissue.mode,
                                      p.boundary_margin_mm)

    def to_full(self, crop_labels: np.ndarray, reference: sitk.Image) -> sitk.Image:
        out = np.zeros(self.shape, np.uint16)
        out[self.box] = crop_labels
        return image_from_array(out, reference)


def _capsule_levelled(a: np.ndarray, liver: np.ndarray, depth_mm: np.ndarray, mode: float,
                      margin_mm: float) -> np.ndarray:
    """`a` with the capsule's partial-volume darkening taken out: each liver voxel less than
    `margin_mm` deep (`depth_mm`: the liver's distance map) is raised by how much darker the
    liver is at its depth (median over the whole surface) than its mode, so a lesion's edge
    does not run on along the capsule."""
    depth = np.round(depth_mm, 2)
    out = a.astype(np.float32, copy=True)
    shallow = liver & (depth < margin_mm)
    levels, inverse = np.unique(depth[shallow], return_inverse=True)
    medians = ndi.median(a[shallow], inverse, np.arange(len(levels)))
    out[shallow] += mode - np.minimum(np.asarray(medians), mode)[inverse]
    return out


def _delineate(a: np.ndarray, core: np.ndarray, allowed: np.ndarray, tissue: Parenchyma,
               spacing, p: LesionParameters) -> tuple[np.ndarray, float]:
    """One lesion from its core: the region inside the contrast edge, an adjoining enhancing
    rim, and a thin halo. Also returns the extent (mm) of its half-contrast body, the size that
    the minimal-diameter rule applies to (edge blur and halo are not the lesion's size)."""
    core_hu = float(np.median(a[core]))
    reach = dilate_mm(core, p.grow_limit_mm, spacing) & allowed
    lesion, core = _inside_edge(a, core, reach, tissue.mode, core_hu, p.edge_fraction)
    # The contrast that matters is against the parenchyma around this lesion, which may be
    # brighter or darker than the liver's mode (perfusion varies): re-draw the edge against it.
    edge = tissue.mode - p.edge_fraction * (tissue.mode - core_hu)
    shell = dilate_mm(lesion, p.local_shell_mm, spacing) & ~dilate_mm(lesion, p.halo_mm, spacing)
    around = a[shell & allowed & (a >= edge)]        # (a few vessels do not move the median)
    background = float(np.median(around)) if around.size >= 20 else tissue.mode
    lesion, core = _inside_edge(a, core, reach, background, core_hu, p.edge_fraction)
    body = ndi.binary_propagation(core, mask=lesion & (a < (background + core_hu) / 2.0)) | core
    shell = dilate_mm(lesion, p.rim_mm, spacing) & ~lesion
    rim = shell & allowed & (a > background + 2 * tissue.sd)
    if rim.sum() > 0.3 * np.count_nonzero(shell):
        lesion = ndi.binary_fill_holes(lesion | rim)   # an enhancing rim, not a vessel passing by
    opened = ndi.binary_opening(lesion) | core
    lesion = ndi.binary_propagation(core, mask=opened)   # noise islands the opening cut off
    return dilate_mm(lesion, p.halo_mm, spacing) & allowed, _extent_mm(body, spacing)


def _inside_edge(a, core, reach, background: float, core_hu: float,
                 fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(lesion, core within it): the region darker than the edge `fraction` of the way from
    `background` down to `core_hu`, connected to the core. Core voxels brighter than the edge
    (the detection image's blur at the lesion's caps) are dropped unless none is darker."""
    dark = reach & (a < background - fraction * (background - core_hu))
    if (core & dark).any():
        core = core & dark
    return ndi.binary_fill_holes(ndi.binary_propagation(core, mask=dark | core)), core


def _extent_mm(mask: np.ndarray, spacing) -> float:
    """Largest extent along the array axes in mm (a cheap lower bound of the 3D diameter)."""
    box = bbox(mask)
    return max((b.stop - b.start) * s for b, s in zip(box, spacing))


def detect_lesions(image: sitk.Image, liver: sitk.Image, *,
                   min_diameter_mm: float = LESION_MIN_DIAMETER_MM.value,
                   parameters: LesionParameters = LesionParameters(),
                   progress=None, cancel=None) -> sitk.Image:
    """Instance map (UInt16, ids 1..N by decreasing volume) of the focal hypodense lesions."""
    p, steps = parameters, Steps(progress, cancel)
    steps.report(0.0, "Looking for lesions")
    c = _Crop(image, liver, p)
    sp, t = c.spacing, c.tissue
    allowed = c.liver
    inner = c.depth_mm > p.boundary_margin_mm
    seeds = inner & (c.a < t.mode - p.seed_contrast_sd * t.sd)
    seeds = ndi.binary_opening(seeds)
    labels, n = ndi.label(seeds)
    out = np.zeros(c.liver.shape, np.uint16)
    voxel_mm3 = float(np.prod(sp))
    min_core_mm3 = np.pi / 6.0 * min_diameter_mm ** 3 / 8   # a core of half the minimal size
    objects = ndi.find_objects(labels)
    kept = []
    for k, sl in enumerate(objects, start=1):
        steps.report(0.1 + 0.8 * k / max(n, 1), "Delineating lesions")
        if sl is None:
            continue
        box = widen(sl, p.grow_limit_mm, sp, labels.shape)
        core = labels[box] == k
        if np.count_nonzero(core) * voxel_mm3 < min_core_mm3:
            continue
        a = c.a[box]
        if np.median(a[core]) > t.mode - p.min_contrast_sd * t.sd:
            continue
        lesion, size_mm = _delineate(c.fine[box], core, allowed[box] & (out[box] == 0), t, sp, p)
        lesion = without_cavities(lesion) & (out[box] == 0)   # pockets left out of the liver mask
        volume_mm3 = np.count_nonzero(lesion) * voxel_mm3
        if volume_mm3 == 0 or size_mm < min_diameter_mm:
            continue                       # too small, or swallowed by a neighbour's halo
        if _elongated(lesion, sp, p):
            continue                       # a fissure or vessel wall, not a lesion
        if _local_contrast_sd(a, lesion, allowed[box] & (out[box] == 0), t, sp, p) \
                < p.min_local_contrast_sd:
            continue                       # hardly darker than the liver around it
        out[box][lesion] = len(kept) + 1
        kept.append(volume_mm3)
    steps.report(1.0, f"{len(kept)} lesion(s) found")
    return c.to_full(_by_size(out), image)


def _elongated(lesion: np.ndarray, spacing, p: LesionParameters) -> bool:
    """Long and thin: its volume is below `min_compactness` of the sphere of its extent."""
    volume_mm3 = np.count_nonzero(lesion) * float(np.prod(spacing))
    return volume_mm3 < p.min_compactness * np.pi / 6.0 * _extent_mm(lesion, spacing) ** 3


def _local_contrast_sd(a: np.ndarray, lesion: np.ndarray, allowed: np.ndarray,
                       tissue: Parenchyma, spacing, p: LesionParameters) -> float:
    """How many parenchyma SDs the lesion's median lies below the parenchyma just around it
    (`halo_mm` to `local_shell_mm` beyond its outline). Voxels brighter than the mode by 2 SDs
    are left out of both (vessels around it, its own enhancing rim). A region darker than the
    liver's mode only because the liver around it is darker too (a streak or beam-hardening
    band, periportal tissue) has little contrast here."""
    darkish = a < tissue.mode + 2 * tissue.sd
    shell = (dilate_mm(lesion, p.local_shell_mm, spacing) & ~dilate_mm(lesion, p.halo_mm, spacing)
             & allowed & darkish)
    if np.count_nonzero(shell) < 20 or not (lesion & darkish).any():
        return np.inf                      # nothing to compare: keep it
    return float(np.median(a[shell]) - np.median(a[lesion & darkish])) / tissue.sd


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber instance ids 1..N by decreasing volume (0 stays background)."""
    counts = np.bincount(labels.ravel())
    counts[0] = 0
    order = [k for k in np.argsort(-counts, kind="stable") if counts[k] > 0]
    lut = np.zeros(counts.size, np.uint16)
    lut[order] = np.arange(1, len(order) + 1, dtype=np.uint16)
    return lut[labels]


# --- interactive edits (each returns a new instance map; ids renumbered 1..N by size) -----------
def segment_lesion_at(image: sitk.Image, liver: sitk.Image, tumors: sitk.Image, seed_lps, *,
                      box_mm: float = 40.0,
                      parameters: LesionParameters = LesionParameters()) -> sitk.Image:
    """Add the lesion under one click (LPS mm); only a box of +-`box_mm` around it is processed."""
    if not (same_grid(image, liver) and same_grid(image, tumors)):
        raise SegmentationError("the liver and tumour maps must lie on the image grid")
    zyx = np.round(lps_to_index(image, seed_lps)[0]).astype(int)
    full_liver = sitk.GetArrayViewFromImage(liver)
    if np.any(zyx < 0) or np.any(zyx >= full_liver.shape) or not full_liver[tuple(zyx)]:
        raise SegmentationError("the click is outside the liver mask. If the lesion lies at the "
                                "liver's edge, add it to the liver first (Include seed or Brush), "
                                "then click it again.")
    tum = sitk.GetArrayFromImage(tumors)
    if tum[tuple(zyx)]:
        # a second lesion made of the first one's fringe would be counted as a metastasis
        raise SegmentationError(f"the click is inside lesion {tum[tuple(zyx)]}, which is already "
                                "segmented. To draw it again, remove it and click it; to "
                                "enlarge it, use the Brush with it selected.")
    sx, sy, sz = image.GetSpacing()
    sp = (sz, sy, sx)
    box = widen(tuple(slice(int(i), int(i) + 1) for i in zyx), box_mm, sp, full_liver.shape)
    region = sitk.RegionOfInterest(image, [b.stop - b.start for b in box[::-1]],
                                   [b.start for b in box[::-1]])
    p = parameters
    a = sitk.GetArrayFromImage(smooth(region, p.smoothing_mm))
    liv = full_liver[box] > 0
    free = liv & (tum[box] == 0)       # the new lesion takes nothing from the others
    tissue = parenchyma(a, free, sp, p.boundary_margin_mm)
    local = tuple(int(i - b.start) for i, b in zip(zyx, box))
    near = tuple(slice(max(0, i - 1), i + 2) for i in local)
    seed_value = float(np.median(a[near]))
    if abs(seed_value - tissue.mode) < 1.0 * tissue.sd:
        raise SegmentationError("no lesion at this point: it is neither darker nor brighter than "
                                "the surrounding liver. Click in the centre of the lesion.")
    depth_mm = edt(liv, sp)
    fine = _capsule_levelled(sitk.GetArrayFromImage(smooth(region, p.edge_smoothing_mm)), liv,
                             depth_mm, tissue.mode, p.boundary_margin_mm)
    bright = seed_value > tissue.mode
    if bright:
        # A lesion brighter than the liver (MR T2 or diffusion, a hypervascular lesion) is
        # delineated as a dark one on the image mirrored about the parenchyma's mode.
        a, fine, seed_value = (2.0 * tissue.mode - v for v in (a, fine, seed_value))
    # The core is searched away from the capsule, as in detection: the partial-volume rim under
    # it is as dark and carried the core along the liver's surface (3D-IRCADb-01: lesions of
    # 0.4-7.5 mL came out as 6-31 mL). The lesion is then delineated up to the capsule.
    dark = a < (seed_value + tissue.mode) / 2.0
    labels, _ = ndi.label(dark & (depth_mm > p.boundary_margin_mm) & free)
    core = labels == labels[local] if labels[local] else np.zeros_like(dark)
    core[local] = True
    lesion, _ = _delineate(fine, core, free, tissue, sp, p)
    lesion = without_cavities(lesion) & (tum[box] == 0)
    if _elongated(lesion, sp, p):
        raise SegmentationError("no lesion at this point: what is there is long and thin (a "
                                "vessel or a fissure), not a lesion. Use the Brush to draw it.")
    tum[box][lesion] = tum.max() + 1
    return image_from_array(_by_size(tum), tumors)


def no_lesions(reference: sitk.Image) -> sitk.Image:
    """An empty lesion map (UInt16) on `reference`'s grid."""
    return blank_image(reference, np.uint16)


def delete_lesion(tumors: sitk.Image, lesion_id: int) -> sitk.Image:
    a = sitk.GetArrayFromImage(tumors)
    _require_ids(a, [lesion_id])
    a[a == lesion_id] = 0
    return image_from_array(_by_size(a), tumors)


def merge_lesions(tumors: sitk.Image, lesion_ids) -> sitk.Image:
    """One lesion from several (e.g. a confluent metastasis detected in pieces)."""
    a = sitk.GetArrayFromImage(tumors)
    ids = sorted(set(int(i) for i in lesion_ids))
    _require_ids(a, ids)
    a[np.isin(a, ids)] = ids[0]
    return image_from_array(_by_size(a), tumors)


def split_lesion(tumors: sitk.Image, lesion_id: int, seeds_lps=None) -> sitk.Image:
    """Two lesions from one: watershed on its distance map from two seeds (given as LPS points,
    or else the two deepest points that lie in different lobes of the lesion)."""
    a = sitk.GetArrayFromImage(tumors)
    _require_ids(a, [lesion_id])
    sx, sy, sz = tumors.GetSpacing()
    sp = (sz, sy, sx)
    box = widen(bbox(a == lesion_id), 2.0, sp, a.shape)
    lesion = a[box] == lesion_id
    depth = edt(lesion, sp)
    markers = np.zeros(lesion.shape, np.int32)
    if seeds_lps is not None:
        origin = np.array([b.start for b in box])
        for k, point in enumerate(np.round(lps_to_index(tumors, seeds_lps)).astype(int)[:2], 1):
            local = tuple(point - origin)
            if np.any(point - origin < 0) or np.any(point - origin >= lesion.shape) \
                    or not lesion[local]:
                raise SegmentationError("both split points must lie inside the lesion")
            markers[local] = k
    else:
        peaks = (depth == ndi.maximum_filter(depth, size=5)) & (depth > 0)
        lobes, n = ndi.label(peaks)
        if n < 2:
            raise SegmentationError("this lesion has a single compact core; place two points to "
                                    "split it")
        top = np.argsort(ndi.maximum(depth, lobes, np.arange(1, n + 1)))[::-1][:2] + 1
        markers[lobes == top[0]], markers[lobes == top[1]] = 1, 2
    parts = watershed(-depth, markers, mask=lesion)
    if len(np.unique(parts[lesion])) < 2:
        raise SegmentationError("the split points fall in the same part of the lesion")
    new_id = a.max() + 1
    a[box][parts == 2] = new_id
    return image_from_array(_by_size(a), tumors)


def _require_ids(a: np.ndarray, ids) -> None:
    missing = [i for i in ids if i <= 0 or not np.any(a == i)]
    if missing:
        raise SegmentationError(f"no lesion with id {', '.join(map(str, missing))} in this map")
