"""Automatic and one-click liver segmentation by classical image analysis (no learned weights).

Pipeline (each stage a small function, run at ~2 mm isotropic, then refined on the CT grid):
1. `coarse_grid`: smooth and resample to ~2 mm isotropic (speed; the answer is on the CT grid).
2. `body_mask` and `estimate_intensity`: the liver's HU mode is the dominant peak of homogeneous
   soft tissue in the patient's right half, deep to the body wall (the liver is the largest organ
   of the right upper abdomen).
3. `liver_core`: voxels in the liver's HU band, eroded by a few mm so that thin bridges to the
   pancreas, duodenum, heart, kidney and spleen break; the liver is the largest such core on the
   patient's right. `drop_low_medial_pieces`: a piece hanging on that core through a one-voxel
   neck low and medial is the pancreatic head or duodenum, not liver.
4. `grow_liver`: regrow the core within the band, limited in distance and to the core's
   watershed basin of the thickness map (a neighbour joined through a neck has its own basin),
   add the basins the liver walls in (parenchyma that vessels cut off at the hilum and around
   the caudate lobe) and the lobes they cut off (the Spiegel lobe), take in hypodense tumours
   (also those that bulge through the capsule) with the parenchyma around them, close and fill
   (intrahepatic vessels and tumours).
5. `refine_boundary`: re-decide a thin band around the coarse surface on the full-resolution CT
   (partial-volume voxels count when more than half liver), cut bridges through fat planes
   that the coarse grid blurred, and fill holes with tissue only (no gallbladder bile).
   `include_capsular_tumours`: small tumours that surface cuts through at the capsule join.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from liverplan.errors import InputError, SegmentationError
from liverplan.evidence import (LESION_MIN_DIAMETER_MM, LIVER_ENHANCED_MIN_HU,
                                LIVER_VOLUME_MAX_ML, LIVER_VOLUME_MIN_ML)
from liverplan.geometry import (image_from_array, index_to_lps, lps_to_index, mask_volume_ml,
                                spacing_volume_ml, voxel_volume_ml)
from liverplan.progress import Steps

AIR_HU = -400.0   # below this a voxel is air/lung, above it tissue (body outline)
# CT parenchyma noise is ~5-15 HU; the clip keeps the band sane on very smooth or noisy scans.
CT_PARENCHYMA_SD_HU = (5.0, 15.0)


@dataclass(frozen=True)
class LiverParameters:
    """Algorithm settings (not clinical thresholds); stored with every result."""
    coarse_spacing_mm: float = 2.0
    smoothing_mm: float = 1.0
    band_low_sd: float = 2.5        # liver band: mode - (k + 0.5) sd ... mode + (k + 1) sd
    band_high_sd: float = 3.0
    core_depth_mm: float = 8.0      # erosion depth that separates the liver from its neighbours
    low_piece_share: float = 1 / 3  # core pieces beyond a neck below this share of the core's
                                    # height, medial of it, are left out (pancreas, duodenum)
    regrow_mm: float = 16.0         # how far the boundary may move out from the core
    closing_mm: float = 6.0
    refine_band_mm: float = 3.0
    fine_opening_mm: float = 3.0    # bridges thinner than 2x this on the CT grid are cut
    tumour_opening_mm: float = 6.0  # hypodense blobs thinner than this are not tumours
    tumour_contact: float = 0.15    # share of a hypodense blob's surface that must touch liver
    tumour_regrow_mm: float = 8.0   # parenchyma around a tumour joins this far from it
    capsule_reach_mm: float = 10.0  # a small tumour the surface cuts in two: dark blobs this
                                    # far out ...
    capsule_contact: float = 0.4    # ... with this share of their border on the liver join
    pocket_contact: float = 0.35    # share of a band basin's border (outside the band) on the
                                    # liver that makes it liver: parenchyma vessels cut off ...
    pocket_reach_mm: float = 24.0   # ... in the liver's concavities (its closing by this)
    lobe_opening_mm: float = 2.0    # outside them, band pieces thinner than twice this are cut
    lobe_contact: float = 0.15      # ... and what is left joins with this share of its border
                                    # on the liver ...
    lobe_max_ml: float = 30.0       # ... unless it is larger than a lobe (an organ lying on it)
    seed_tissue_mm: float = 10.0    # seeded mode: the clicked tissue's level (median) this near
    seed_region_mm: float = 30.0    # ... and its histogram peak's width from this neighbourhood

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class IntensityModel:
    """The liver parenchyma's intensity as estimated from the scan itself."""
    mode: float          # HU on CT (signal units on MR in seeded mode)
    sd: float
    lower: float         # band accepted as parenchyma
    upper: float
    tumour_floor: float  # darker than this is fat/air/fluid, not tumour
    keep_floor: float    # at the surface, darker than this is not liver

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LiverResult:
    mask: sitk.Image                 # UInt8 0/1 on the input grid
    model: IntensityModel
    parameters: LiverParameters
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def volume_ml(self) -> float:
        return mask_volume_ml(self.mask)


# --- stage 1: coarse grid ----------------------------------------------------------------------
def smooth(image: sitk.Image, sigma_mm: float) -> sitk.Image:
    return sitk.SmoothingRecursiveGaussian(sitk.Cast(image, sitk.sitkFloat32), sigma_mm)


def coarse_grid(smooth: sitk.Image, spacing_mm: float) -> sitk.Image:
    """`smooth` resampled to isotropic `spacing_mm` (same origin and direction)."""
    image = smooth
    size = [max(1, int(round(n * s / spacing_mm))) for n, s in zip(image.GetSize(), image.GetSpacing())]
    return sitk.Resample(smooth, size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(),
                         [spacing_mm] * 3, image.GetDirection(), -1024.0, sitk.sitkFloat32)


def lps_axis(image: sitk.Image, axis: int) -> np.ndarray:
    """LPS coordinate `axis` (0 x->left, 1 y->posterior, 2 z->superior) of every voxel, (z, y, x)."""
    d = np.array(image.GetDirection()).reshape(3, 3)
    nx, ny, nz = image.GetSize()
    sx, sy, sz = image.GetSpacing()
    return (image.GetOrigin()[axis]
            + d[axis, 0] * sx * np.arange(nx)[None, None, :]
            + d[axis, 1] * sy * np.arange(ny)[None, :, None]
            + d[axis, 2] * sz * np.arange(nz)[:, None, None])


def edt(mask: np.ndarray, spacing_zyx=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Distance (mm) from each voxel of `mask` to the nearest voxel outside it (0 outside), as
    scipy's distance_transform_edt but multi-threaded (ITK's Maurer transform)."""
    outside = sitk.GetImageFromArray((~mask).astype(np.uint8))
    outside.SetSpacing([float(s) for s in spacing_zyx[::-1]])
    d = sitk.SignedMaurerDistanceMap(outside, insideIsPositive=False, squaredDistance=False,
                                     useImageSpacing=True)
    return np.where(mask, sitk.GetArrayFromImage(d), 0.0)


def dilate_mm(mask: np.ndarray, radius_mm: float, spacing_zyx=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Euclidean dilation by `radius_mm` via a distance map (fast for large radii)."""
    return ~erode_mm(~mask, radius_mm, spacing_zyx)


def erode_mm(mask: np.ndarray, radius_mm: float, spacing_zyx=(1.0, 1.0, 1.0)) -> np.ndarray:
    return edt(mask, spacing_zyx) > radius_mm


def close_mm(mask: np.ndarray, radius_mm: float, spacing_zyx=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Closing by `radius_mm`; the array is padded so objects at the border are not eroded."""
    pad = int(np.ceil(radius_mm / min(spacing_zyx))) + 1
    m = np.pad(mask, pad)
    m = erode_mm(dilate_mm(m, radius_mm, spacing_zyx), radius_mm, spacing_zyx)
    return m[(slice(pad, -pad),) * 3]


def largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndi.label(mask)
    if n == 0:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == np.argmax(sizes)


# --- stage 2: body and intensity model ----------------------------------------------------------
def body_mask(a: np.ndarray) -> np.ndarray:
    """The patient (largest non-air region, filled slice by slice so lungs and bowel gas count)."""
    body = largest_component(a > AIR_HU)
    return np.stack([ndi.binary_fill_holes(s) for s in body])


def looks_like_ct(image: sitk.Image) -> bool:
    """Whether the image looks like CT in Hounsfield units (air near -1000 HU)."""
    return bool(np.percentile(sitk.GetArrayViewFromImage(image)[::4, ::8, ::8], 1) <= -700)


def check_ct(image: sitk.Image, *, path=None) -> None:
    """InputError unless the image looks like CT in Hounsfield units."""
    if not looks_like_ct(image):
        raise InputError("this series does not look like CT in Hounsfield units (no air near "
                         "-1000 HU): automatic liver segmentation needs contrast-enhanced CT. For "
                         "MR or other images use the seeded mode (one click in the liver; in the "
                         "desktop app: Segment step, Liver from the crosshair).", path=path)


def estimate_intensity(a: np.ndarray, body: np.ndarray, x_lps: np.ndarray,
                       p: LiverParameters) -> IntensityModel:
    """Liver HU mode: the largest peak of homogeneous soft tissue in the right half of the body,
    more than 2 cm deep to the skin (which leaves out most of the body-wall muscle)."""
    local_mean = ndi.uniform_filter(a, 3)
    local_sd = np.sqrt(np.maximum(ndi.uniform_filter(a * a, 3) - local_mean ** 2, 0.0))
    centre_x = np.median(np.broadcast_to(x_lps, a.shape)[body])
    deep = erode_mm(body, 20.0, (p.coarse_spacing_mm,) * 3)
    sel = body & deep & (x_lps < centre_x) & (local_sd < 12.0) & (a > 0) & (a < 250)
    values = a[sel]
    if values.size < 1000:
        raise SegmentationError("no liver found: the scan holds too little soft tissue on the "
                                "patient's right (is this an abdominal CT?)")
    hist, edges = np.histogram(values, bins=125, range=(0.0, 250.0))
    hist = ndi.gaussian_filter1d(hist.astype(float), 2.0)
    mode = float(edges[np.argmax(hist)] + 1.0)
    near = values[np.abs(values - mode) < 30.0]
    return make_model(mode, float(np.clip(np.std(near), *CT_PARENCHYMA_SD_HU)), p)


def peak_sd(hist: np.ndarray, edges: np.ndarray, peak: int) -> float:
    """Noise SD from the full width at half maximum of a histogram peak (FWHM = 2.355 SD).
    Only the peak itself is used: bright vessels, tumours and regions that enhance differently
    (perfusion) widen the tails, which inflated the upper-half SD (3D-IRCADb-01: 12.3 HU
    against 8.6 HU from the peak)."""
    below = hist < hist[peak] / 2         # the first bins below half height on either side
    left = peak + 1 - int(np.argmax(below[peak::-1])) if below[:peak].any() else 0
    right = peak + int(np.argmax(below[peak:])) if below[peak:].any() else hist.size
    return float(edges[right] - edges[left]) / 2.355


def seeded_model(a: np.ndarray, seed_zyx, p: LiverParameters, *, hu: bool) -> IntensityModel:
    """The intensity model of the tissue around a click (`a` on the coarse grid): the peak of
    the histogram within `seed_region_mm` nearest to the clicked tissue's level, and its width.
    The clicked neighbourhood alone is too small for the spread: on 3D-IRCADb-01 its median
    absolute deviation gave 4.3 HU (the automatic model: 9.3 HU), and the narrow band grew a
    liver of 47-441 mL from every click. On CT (`hu`) the spread is clipped as in automatic
    mode."""
    def box(radius_mm):
        return a[widen(tuple(slice(c, c + 1) for c in seed_zyx), radius_mm,
                       (p.coarse_spacing_mm,) * 3, a.shape)]
    tissue = float(np.median(box(p.seed_tissue_mm)))
    values = box(p.seed_region_mm).ravel()
    hist, edges = np.histogram(values, bins=200, range=np.percentile(values, [1, 99]))
    hist = ndi.gaussian_filter1d(hist.astype(float), 2.0)
    padded = np.pad(hist, 1, constant_values=-1.0)
    peaks = np.nonzero((hist >= padded[:-2]) & (hist > padded[2:])
                       & (hist >= 0.2 * hist.max()))[0]       # not the noise's small bumps
    centres = (edges[:-1] + edges[1:]) / 2
    peak = int(peaks[np.argmin(np.abs(centres[peaks] - tissue))])
    sd = peak_sd(hist, edges, peak)
    if hu:
        sd = float(np.clip(sd, *CT_PARENCHYMA_SD_HU))
    return make_model(float(centres[peak]), max(sd, 1e-3 * max(abs(tissue), 1.0)), p, hu=hu)


def make_model(mode: float, sd: float, p: LiverParameters, *, hu: bool = True) -> IntensityModel:
    """The parenchyma band and the darker limits, in units of the parenchyma's own spread so
    that the same rules serve CT and, in seeded mode, MR signal. On CT (`hu`) the darker limits
    are also kept at least 90/60 HU below the mode: metastases are typically 40-80 HU darker
    than portal-venous liver, whatever the noise of the scan."""
    tumour_floor, keep_floor = mode - 9.5 * sd, mode - 6.5 * sd
    if hu:
        tumour_floor, keep_floor = min(tumour_floor, mode - 90.0), min(keep_floor, mode - 60.0)
    return IntensityModel(mode, sd, mode - p.band_low_sd * sd - 0.5 * sd,
                          mode + p.band_high_sd * sd + sd, tumour_floor, keep_floor)


# --- stage 3: core ---------------------------------------------------------------------------
def liver_core(band: np.ndarray, x_lps: np.ndarray, centre_x: float, p: LiverParameters,
               seed_zyx: tuple[int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(core, thickness map in mm): the deep part of the liver band.

    Automatic: the largest deep component whose centroid lies on the patient's right.
    Seeded: the deep component nearest to the seed."""
    thickness = edt(band, (p.coarse_spacing_mm,) * 3)
    labels, n = ndi.label(thickness > p.core_depth_mm)
    if n == 0:
        return np.zeros_like(band), thickness
    if seed_zyx is not None:
        _, nearest = ndi.distance_transform_edt(labels == 0, return_indices=True)
        k = labels[tuple(nearest[:, seed_zyx[0], seed_zyx[1], seed_zyx[2]])]
        return labels == k, thickness
    sizes = np.bincount(labels.ravel())
    mean_x = ndi.mean(np.broadcast_to(x_lps, band.shape), labels, np.arange(n + 1))
    sizes[0] = 0
    sizes[~(mean_x < centre_x)] = 0       # the liver lies on the patient's right (smaller LPS x)
    if sizes.max() == 0:
        return np.zeros_like(band), thickness
    return labels == np.argmax(sizes), thickness


def drop_low_medial_pieces(core: np.ndarray, x_lps: np.ndarray, z_lps: np.ndarray,
                           p: LiverParameters) -> np.ndarray:
    """`core` without the pieces joined to it through a neck one voxel thin that lie in the
    lowest `low_piece_share` of its height and medial of it (automatic mode: the liver is on
    the patient's right, so medial is larger LPS x).

    The pancreatic head and the duodenum touch the liver's visceral surface below the porta
    hepatis (about mid-height of the liver), medial of the right lobe, and can match the
    parenchyma in HU and texture: a neck of liver-like tissue only a little deeper than the core
    depth joins them (3D-IRCADb-01: ~60 mL). A lobe joined through such a neck lies higher (left
    lobe) or laterally (right lobe tip) and stays. When the scan cuts off the liver's lower end
    its height is unknown, and nothing is dropped (on the partial totalseg-example scan the rule
    would take 0.7 mL of liver)."""
    main = core & ndi.binary_dilation(largest_component(ndi.binary_opening(core)))
    labels, n = ndi.label(core & ~main)
    if n == 0 or not main.any():
        return core
    z = np.broadcast_to(z_lps, core.shape)
    bottom, top = z[main].min(), z[main].max()
    if bottom < z.min() + p.coarse_spacing_mm:
        return core
    x = np.broadcast_to(x_lps, core.shape)
    idx = np.arange(1, n + 1)
    low = np.asarray(ndi.mean(z, labels, idx)) < bottom + p.low_piece_share * (top - bottom)
    medial = np.asarray(ndi.mean(x, labels, idx)) > x[main].mean()
    keep = np.concatenate([[False], ~(low & medial)])
    return main | keep[labels]


# --- stage 4: grow -------------------------------------------------------------------------------
def grow_liver(core: np.ndarray, band: np.ndarray, thickness: np.ndarray, a: np.ndarray,
               model: IntensityModel, p: LiverParameters) -> np.ndarray:
    """Regrow the core into the band, add tumours with the parenchyma around them, close, fill."""
    sp = p.coarse_spacing_mm
    peaks = (thickness == ndi.maximum_filter(thickness, size=3)) & (thickness >= 2.0) \
        & ~ndi.binary_dilation(core, iterations=2)
    markers, _ = ndi.label(peaks)
    markers[markers > 0] += 1
    markers[core] = 1
    basins = watershed(-thickness, markers, mask=band)
    grown = core.copy()
    for _ in range(int(round(p.regrow_mm / sp))):
        grown = ndi.binary_dilation(grown) & (basins == 1)
    grown = _pockets(basins, grown, p)
    grown = _lobes(band, grown, p)
    tumours = _include_hypodense(grown, a, model, p) & ~grown
    # A tumour splits the thickness map, so the parenchyma around it (between it and the
    # capsule) falls in a basin of its own: regrow that from the tumour, as from the core.
    around = tumours.copy()
    for _ in range(int(round(p.tumour_regrow_mm / sp))):
        around = (ndi.binary_dilation(around) & band) | tumours
    grown = close_mm(grown | around, p.closing_mm, (sp,) * 3)
    grown = np.stack([ndi.binary_fill_holes(s) for s in grown])
    return largest_component(ndi.binary_fill_holes(grown))


def _pockets(basins: np.ndarray, liver: np.ndarray, p: LiverParameters) -> np.ndarray:
    """`liver` with the band basins it walls in: parenchyma that the portal vein, the IVC and
    their branches cut off from the core's basin (their lumens split the thickness map at the
    hilum and around the caudate lobe, and noise splits it into small basins). A basin joins when
    the liver makes up `pocket_contact` of what borders it outside the band (a face between two
    basins says nothing), pass after pass, so a chain of pockets joins; but only basins lying
    in the liver's concavities (half of them in its closing by `pocket_reach_mm`): on
    3D-IRCADb-01 the chain otherwise runs on into the pancreas (+60 mL)."""
    labels = np.where(liver | (basins == 1), 0, basins)
    n = int(labels.max()) + 1
    concave = close_mm(liver, p.pocket_reach_mm, (p.coarse_spacing_mm,) * 3)
    within = np.bincount(labels[concave], minlength=n) >= 0.5 * np.bincount(labels.ravel(),
                                                                             minlength=n)
    labels[~within[labels]] = 0
    joined = liver.copy()
    while True:
        new = (_share_touching(labels, joined) >= p.pocket_contact)[labels]
        if not new.any():
            return joined
        joined |= new
        labels[new] = 0


def _lobes(band: np.ndarray, liver: np.ndarray, p: LiverParameters) -> np.ndarray:
    """`liver` with the lobes the thickness basins cut off outside its concavities: the Spiegel
    lobe, between the IVC, the crus and the lesser omentum, is thin where it joins the caudate
    process behind the portal vein, so noise splits it into small basins that touch the liver
    only through each other (synthetic seed 0: 13 mL of the 71 mL segment 1 left out, its Dice
    0.66). The band outside the liver is cut into pieces by an opening that removes what is
    thinner than twice `lobe_opening_mm` (the partial-volume rims of the bright vessels, bowel
    walls: they link everything); a piece joins when the liver makes up `lobe_contact` of its
    border (the lobes of seeds 0 and 3: 0.18-0.20; pieces of 0.5 mL or more outside the
    3D-IRCADb-01 reference liver: 0.11 or less). The pieces are small (those lobes: 8 and 5 mL
    here; on 3D-IRCADb-01 none with over 5 % of its border on the liver exceeds 2.3 mL): one
    larger than `lobe_max_ml` is an organ in the band lying against the liver (a kidney or the
    spleen, 100-200 mL: on MR in seeded mode, or at another phase) and does not join by its
    share."""
    spacing = (p.coarse_spacing_mm,) * 3
    rest = band & ~liver
    rest &= dilate_mm(erode_mm(rest, p.lobe_opening_mm, spacing), p.lobe_opening_mm, spacing)
    labels, _ = ndi.label(rest)
    small = np.bincount(labels.ravel()) * spacing_volume_ml(spacing) <= p.lobe_max_ml
    return liver | ((_share_touching(labels, liver) >= p.lobe_contact) & small)[labels]


def _share_touching(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """For each label id, the share of the unlabelled voxels around it that lie in `mask`; 0 for
    the background (id 0)."""
    shell = ndi.binary_dilation(labels > 0) & ~(labels > 0)
    owner = ndi.grey_dilation(labels, size=3)[shell]      # which label each shell voxel borders
    n = int(labels.max()) + 1
    share = np.bincount(owner[mask[shell]], minlength=n) / np.maximum(
        np.bincount(owner, minlength=n), 1)
    share[0] = 0.0
    return share


def _include_hypodense(liver: np.ndarray, a: np.ndarray, model: IntensityModel,
                       p: LiverParameters) -> np.ndarray:
    """Liver plus thick hypodense blobs (tumours) that border on the liver over a good share of
    their surface.

    A subcapsular metastasis is darker than parenchyma and not a hole, so filling alone misses
    it. An opening of `tumour_opening_mm` cuts it free of the thin body-wall muscle and bowel wall
    of similar HU; bowel, gallbladder or muscle beside the liver then touch it on a small share of
    their surface only."""
    spacing = (p.coarse_spacing_mm,) * 3
    near = dilate_mm(liver, 30.0, spacing)
    # The tumour's part already inside the liver counts too: a tumour that bulges through the
    # capsule is thick as a whole even where the part outside is a thin cap.
    dark = near & (a > model.tumour_floor) & (a < model.lower + 0.5 * model.sd)
    dark &= dilate_mm(erode_mm(dark, p.tumour_opening_mm, spacing), p.tumour_opening_mm, spacing)
    labels, n = ndi.label(dark)
    if n == 0:
        return liver
    return liver | (_share_touching(labels, liver) >= p.tumour_contact)[labels]


def include_capsular_tumours(mask: np.ndarray, smoothed: np.ndarray, model: IntensityModel,
                             p: LiverParameters, spacing_zyx) -> np.ndarray:
    """`mask` (CT grid) with the small hypodense blobs just outside it that it half encloses.

    A metastasis under the capsule thinner than twice `tumour_opening_mm` is not a tumour for
    the coarse grid's inclusion, and the refined surface runs through it (synthetic 9 mm lesion
    1-3 mm below the capsule: 39-50 % inside the liver on seeds 1, 2 and 4). Blobs in the
    tumour range (from `smoothed`, the CT at the stages' smoothing) of at least the smallest
    lesion's volume join when the liver makes up `capsule_contact` of their border: bowel and
    muscle lie on the liver with a smaller share, fat and bile outside the tumour range (on
    synthetic seeds 0-4 only the lesion joins; on 3D-IRCADb-01 0.44 mL, 0.38 of it in its
    reference liver)."""
    box = widen(bbox(mask), p.capsule_reach_mm, spacing_zyx, mask.shape)
    liver, a = mask[box] > 0, smoothed[box]
    dark = dilate_mm(liver, p.capsule_reach_mm, spacing_zyx) & ~liver \
        & (a > model.tumour_floor) & (a < model.lower)
    labels, n = ndi.label(dark)
    if n == 0:
        return mask
    min_voxels = np.pi / 6 * LESION_MIN_DIAMETER_MM.value ** 3 / np.prod(spacing_zyx)
    keep = (_share_touching(labels, liver) >= p.capsule_contact) \
        & (np.bincount(labels.ravel(), minlength=n + 1) >= min_voxels)
    out = mask.copy()
    out[box] |= keep[labels].astype(out.dtype)
    return out


# --- stage 5: refine on the CT grid -----------------------------------------------------------
def refine_boundary(image: sitk.Image, coarse_mask: sitk.Image, model: IntensityModel,
                    p: LiverParameters) -> np.ndarray:
    """The coarse surface re-decided voxel by voxel on the CT grid, within +-refine_band_mm.

    Outside the coarse surface a voxel joins if it is parenchyma; inside it leaves only if it is
    clearly not liver (fat, air, bone), so tumours and vessels at the capsule stay in. Denoising
    here is a 3x3x3 median: it keeps edges, where a Gaussian would blur the boundary voxels into
    the neighbours' HU."""
    coarse_dist = sitk.SignedMaurerDistanceMap(coarse_mask, insideIsPositive=False,
                                               squaredDistance=False, useImageSpacing=True)
    # Resampled only where it can be near the surface (about a third of the CT grid; ~1 s).
    near = _covering_box(coarse_dist, sitk.GetArrayFromImage(coarse_dist)
                         < p.refine_band_mm + 1.0, image)
    reference = sitk.Image([b.stop - b.start for b in near[::-1]], sitk.sitkUInt8)
    reference.SetSpacing(image.GetSpacing())
    reference.SetDirection(image.GetDirection())
    reference.SetOrigin(image.TransformIndexToPhysicalPoint([b.start for b in near[::-1]]))
    dist = sitk.GetArrayFromImage(sitk.Resample(coarse_dist, reference, sitk.Transform(),
                                                sitk.sitkLinear, 1e3, sitk.sitkFloat32))
    inside_near = bbox(dist < p.refine_band_mm + 1.0)
    d = dist[inside_near]
    box = tuple(slice(n.start + b.start, n.start + b.stop) for n, b in zip(near, inside_near))
    region = sitk.RegionOfInterest(image, [b.stop - b.start for b in box[::-1]],
                                   [b.start for b in box[::-1]])
    a = sitk.GetArrayFromImage(sitk.Median(region, [1, 1, 1]))
    # Half-way between the parenchyma and the darkest tissue within ~3 mm: where a partial-volume
    # voxel next to fat or air belongs to the liver (it is more than half liver).
    size = [max(3, int(round(3.0 / s))) for s in (image.GetSpacing()[::-1])]
    half = (model.mode + ndi.minimum_filter(a, size=size)) / 2.0
    deep = d < -p.refine_band_mm        # deep inside only fat leaves (tumours and vessels stay)
    inner = (deep & (a >= np.minimum(model.tumour_floor, half))) \
        | ((d < 0) & ~deep & (a >= np.minimum(model.keep_floor, half))
           & (a < model.upper + 6.0 * model.sd))
    outer = (d >= 0) & (d <= p.refine_band_mm) & (a >= model.lower) & (a <= model.upper)
    liver = inner | outer
    partial = (d >= 0) & (d <= p.refine_band_mm) & (a >= half) & (a < model.lower)
    liver |= partial & ndi.binary_dilation(liver)          # one voxel layer, no creeping
    # A thin fat plane that the coarse grid blurred (liver against duodenum or pancreas) now
    # separates them: cut the last bridges with a small opening and keep the liver's side.
    sp = tuple(image.GetSpacing()[::-1])
    body = largest_component(erode_mm(liver, p.fine_opening_mm, sp))
    crop = ndi.binary_opening(liver) & dilate_mm(body, p.fine_opening_mm + 0.5 * max(sp), sp)
    crop = largest_component(crop)
    # Fill vessels and tumours, not fluid: a gallbladder wrapped by the liver in a slice stays out.
    crop |= np.stack([ndi.binary_fill_holes(s) for s in crop]) & (a >= model.tumour_floor)
    out = np.zeros(image.GetSize()[::-1], np.uint8)
    out[box] = crop
    return out


def bbox(mask: np.ndarray) -> tuple[slice, ...]:
    idx = np.nonzero(mask.any(axis=(1, 2)))[0], np.nonzero(mask.any(axis=(0, 2)))[0], \
        np.nonzero(mask.any(axis=(0, 1)))[0]
    return tuple(slice(int(i[0]), int(i[-1]) + 1) for i in idx)


def widen(box: tuple[slice, ...], margin_mm: float, spacing, shape) -> tuple[slice, ...]:
    """`box` grown by `margin_mm` (+1 voxel) on every side, clipped to `shape`."""
    pad = [int(np.ceil(margin_mm / s)) + 1 for s in spacing]
    return tuple(slice(max(0, b.start - p), min(n, b.stop + p))
                 for b, p, n in zip(box, pad, shape))


def _covering_box(coarse: sitk.Image, mask: np.ndarray, image: sitk.Image) -> tuple[slice, ...]:
    """The box of `image` voxels that linear interpolation from `coarse` can reach from the
    voxels of `mask` (its bounding box grown by one coarse voxel)."""
    box = bbox(mask)
    lo = [max(b.start - 1, 0) for b in box]
    hi = [min(b.stop, n - 1) for b, n in zip(box, mask.shape)]
    corners = np.array([(z, y, x) for z in (lo[0], hi[0]) for y in (lo[1], hi[1])
                        for x in (lo[2], hi[2])], float)
    zyx = lps_to_index(image, index_to_lps(coarse, corners))
    shape = image.GetSize()[::-1]
    start = np.clip(np.floor(zyx.min(axis=0)).astype(int), 0, shape)
    stop = np.clip(np.ceil(zyx.max(axis=0)).astype(int) + 1, 0, shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(start, stop))


# --- drivers -------------------------------------------------------------------------------------
def segment_liver(image: sitk.Image, *, parameters: LiverParameters = LiverParameters(),
                  path=None, progress=None, cancel=None) -> LiverResult:
    """Fully automatic liver mask for contrast-enhanced abdominal CT (HU)."""
    p, steps = parameters, Steps(progress, cancel)
    check_ct(image, path=path)
    steps.report(0.0, "Smoothing the CT")
    sm = smooth(image, p.smoothing_mm)
    coarse = coarse_grid(sm, p.coarse_spacing_mm)
    a = sitk.GetArrayFromImage(coarse)
    steps.report(0.25, "Finding the liver")
    body = body_mask(a)
    x = lps_axis(coarse, 0)
    centre_x = float(np.median(np.broadcast_to(x, a.shape)[body]))
    model = estimate_intensity(a, body, x, p)
    warnings = []
    if model.mode < LIVER_ENHANCED_MIN_HU.value:
        warnings.append(f"The liver measures {model.mode:.0f} HU, below {LIVER_ENHANCED_MIN_HU.value:.0f} "
                        "HU: this looks like an unenhanced (or arterial) series. Lesions may be "
                        "missed; use a portal venous phase CT if there is one.")
    band = body & (a >= model.lower) & (a <= model.upper)
    core, thickness = liver_core(band, x, centre_x, p)
    if not core.any():
        raise SegmentationError("no liver found on the patient's right side of this scan. Check "
                                "that the series is an abdominal CT, or use the seeded mode.",
                                path=path)
    z = lps_axis(coarse, 2)
    _require_liver_region(a, body, core, x, z, centre_x, coarse, path)
    core = drop_low_medial_pieces(core, x, z, p)
    steps.report(0.45, "Growing the liver")
    liver = grow_liver(core, band, thickness, a, model, p)
    steps.report(0.7, "Refining the liver surface")
    mask = _refined(image, sm, liver, coarse, model, p)
    result = image_from_array(mask, image)
    warnings += check_plausible(result, path=path)
    steps.report(1.0, "Liver done")
    return LiverResult(result, model, p, tuple(warnings))


def segment_liver_from_seed(image: sitk.Image, seed_lps, *,
                            parameters: LiverParameters = LiverParameters(), path=None,
                            progress=None, cancel=None) -> LiverResult:
    """Liver mask from one click inside the liver (MR or unusual CT): the intensity model comes
    from the tissue around the seed (`seeded_model`) instead of from HU assumptions."""
    p, steps = parameters, Steps(progress, cancel)
    steps.report(0.0, "Smoothing the image")
    sm = smooth(image, p.smoothing_mm)
    coarse = coarse_grid(sm, p.coarse_spacing_mm)
    a = sitk.GetArrayFromImage(coarse)
    zyx = np.round(lps_to_index(coarse, seed_lps)[0]).astype(int)
    if np.any(zyx < 0) or np.any(zyx >= a.shape):
        raise SegmentationError("the seed point lies outside the image; click inside the liver",
                                path=path)
    model = seeded_model(a, zyx, p, hu=looks_like_ct(image))
    steps.report(0.3, "Growing from the seed")
    band = (a >= model.lower) & (a <= model.upper)
    band[tuple(zyx)] = True
    core, thickness = liver_core(band, lps_axis(coarse, 0), np.inf, p, seed_zyx=tuple(zyx))
    if not core.any():
        raise SegmentationError("the region around the seed is too thin or too inhomogeneous to "
                                "grow a liver from; click deeper inside the liver", path=path)
    liver = grow_liver(core, band, thickness, a, model, p)
    steps.report(0.7, "Refining the liver surface")
    mask = _refined(image, sm, liver, coarse, model, p)
    result = image_from_array(mask, image)
    warnings = check_plausible(result, path=path, seeded=True)
    steps.report(1.0, "Liver done")
    return LiverResult(result, model, p, tuple(warnings))


def _refined(image, sm, liver, coarse, model, p) -> np.ndarray:
    """The coarse liver's surface on the CT grid, with the tumours it cuts at the capsule."""
    mask = refine_boundary(image, image_from_array(liver.astype(np.uint8), coarse), model, p)
    return include_capsular_tumours(mask, sitk.GetArrayViewFromImage(sm), model, p,
                                    tuple(image.GetSpacing()[::-1]))


def _require_liver_region(a, body, core, x, z, centre_x, coarse, path) -> None:
    """The liver sits under the right hemidiaphragm: without lung base on the patient's right,
    the largest right-sided soft-tissue organ is the liver only if it runs off the top of the
    scan (a scan that starts inside the liver); otherwise this is not a liver scan (head,
    pelvis, limbs)."""
    lung = body & (a < AIR_HU) & (a > -960.0) & (np.broadcast_to(x, a.shape) < centre_x)
    lung_ml = np.count_nonzero(largest_component(lung)) * voxel_volume_ml(coarse)
    top = z.max() if z.size else 0.0
    runs_off_top = np.any(np.broadcast_to(z, a.shape)[core] > top - 2 * coarse.GetSpacing()[2])
    if lung_ml < 50.0 and not runs_off_top:
        raise SegmentationError("this scan does not seem to contain the liver (no lung base "
                                "above a right upper abdominal organ). Load an abdominal CT "
                                "that covers the liver.", path=path)


def check_plausible(mask: sitk.Image, *, path=None, seeded: bool = False) -> list[str]:
    """Warnings for a plausible liver; SegmentationError for an implausible one (`seeded`: made
    in seeded mode, whose advice is another click)."""
    volume_ml = mask_volume_ml(mask)
    a = sitk.GetArrayViewFromImage(mask)
    cut = bool(a[0].any() or a[-1].any())
    leaked, failed = (("Click elsewhere in the liver or correct it by hand.",
                       "Click deeper inside the liver.") if seeded else
                      ("Use the seeded mode or correct it by hand.",
                       "Use the seeded mode (one click in the liver)."))
    if volume_ml > LIVER_VOLUME_MAX_ML.value:
        raise SegmentationError(f"the liver segmentation measures {volume_ml:.0f} mL, more than "
                                f"{LIVER_VOLUME_MAX_ML.value:.0f} mL: it has leaked into "
                                f"neighbouring organs. {leaked}", path=path)
    if volume_ml < LIVER_VOLUME_MIN_ML.value and not cut:
        raise SegmentationError(f"the liver segmentation measures only {volume_ml:.0f} mL (less "
                                f"than {LIVER_VOLUME_MIN_ML.value:.0f} mL): it failed. {failed}",
                                path=path)
    if cut:
        return ["The liver runs off the first or last slice of the scan: the volume covers only "
                "the scanned part of the liver."]
    return []
