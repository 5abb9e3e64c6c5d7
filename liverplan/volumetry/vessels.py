"""Hepatic vessels on portal-venous CT: portal venous system (1) and hepatic veins + IVC (2).

Method (issue 4):
1. Inside the liver, vessels are brighter than the parenchyma around them. The contrast is
   measured against a *local* parenchyma level (a Gaussian-weighted mean of parenchyma-like
   voxels), which absorbs slow enhancement gradients, and thresholded with hysteresis: voxels
   above the high contrast seed the vessels, which grow through voxels above the low contrast.
   Both contrasts default to fractions of the scan's own vessel contrast (bright tail of the liver
   histogram above the parenchyma mode), so a weakly enhanced scan gets lower thresholds.
2. Bright blood-like voxels just outside the liver that continue these vessels are added
   (the IVC behind the liver, the portal trunk at the hilum when it is visible), and they seed
   faint branches that run from them deep into the liver (the caudate's, whose trunk the liver
   mask leaves out); outside the liver only the root vessels and thin links from the portal
   trunk into the liver stay in the tree.
3. The mask is skeletonised (liverplan.volumetry.centerlines) and split into the two systems
   by competing geodesic fronts on the branch graph from two roots: the hilum (thickest branch
   leaving the liver in its lower part) and the IVC / hepatic confluence (thickest branch
   leaving the liver in its upper part). Crossing a branch costs length / radius^2, so the
   fronts meet at thin touching points, not along trunks.
4. Each system's tree is read from its root; the portal bifurcation and the right / middle /
   left hepatic veins are named from the tree's geometry. The portal tree is read from its
   trunk where the mask holds it outside the liver (it divides where the ways to the right and
   the left liver part), else from the hilum.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage.filters import apply_hysteresis_threshold
from skimage.segmentation import watershed

from liverplan.errors import InputError, SegmentationError
from liverplan.geometry import (image_from_array, index_to_lps, lps_to_index, same_grid,
                                spacing_volume_ml)
from liverplan.progress import Steps
from liverplan.volumetry.centerlines import (Branch, bridge_gaps, components, geodesic,
                                            skeletonize_mask)
from liverplan.volumetry.liver import bbox, dilate_mm, widen

PORTAL, HEPATIC = 1, 2
SYSTEM_NAMES = {PORTAL: "portal venous system", HEPATIC: "hepatic veins and IVC"}
HEPATIC_VEIN_NAMES = ("right", "middle", "left")
IVC_REACH_MM = 35.0
IVC_WALL_MM = 1.5        # vessel or blood voxels this close to the IVC's column: its blurred wall
IVC_CLEARANCE_MM = 2.0   # kept clear around the IVC below the veins' junctions (portal, caudate)
# A vessel this close to a segmented tumour runs against it: the segmented edge can fall short of
# the real one by a few mm (blurred edge, enhancing rim)
TUMOUR_REACH_MM = 4.0
# The hepatic veins join the IVC high in the liver: at 0.82-0.90 of its cranio-caudal height on
# 3D-IRCADb-01's reference, 0.73-0.90 on the synthetic patient (seeds 0-4; the portal
# bifurcation lies at 0.40-0.52). Two uses, two margins: veins draining into the IVC are looked
# for from CONFLUENCE_HEIGHT_FRACTION up (generous: the region where the code tells the
# confluence from the portal hilum below it); the IVC is kept clear of other vessels below
# IVC_CLEAR_BELOW_FRACTION (below the junctions: at 0.6 a caudate portal branch running against
# the IVC at 0.65 joined the hepatic veins; a major vein the clearance cuts from the IVC still
# roots the hepatic front as a vein draining into it).
CONFLUENCE_HEIGHT_FRACTION = 0.6
IVC_CLEAR_BELOW_FRACTION = 0.7
# A portal branch no thicker than a segmental one (the synthetic patient's: radius 1.5-3 mm);
# thicker vessels outside the liver mask at the hilum are sectoral or lobar veins or more
SEGMENTAL_RADIUS_MM = 2.5
CONFLUENCE_MM = 10.0         # branches leaving the portal trunk this near its bifurcation leave
                             # at it (a trifurcation; the trunk is ~10 mm across)
IVC_TOUCH_MM = 5.0          # a vein whose wall comes this close to the IVC's drains into it
DRAINING_TO_IVC_RADIUS = 0.3  # least radius (against the IVC's) of a vein draining into it from afar
DRAINING_MIN_MM = 5.0       # ... and its least length: a shorter piece of skeleton is a vessel's
                            # stretch between two of its divisions, no vein of its own
# A vein gathers thinner tributaries at its end away from the IVC; a branch that leaves a vessel
# this many times as thick there is that vessel's distal branch, not a vein draining into the IVC
PARENT_OF_DRAINING_RADIUS = 1.5
PORTAL_TO_IVC_RADIUS = 0.35  # the portal trunk's least radius against the IVC's (anatomy: ~0.5)
_GUESSED = 4     # added to a system label while it is the nearest trunk's guess


@dataclass
class VesselResult:
    """Vessels on the CT grid, their centerline graphs and the named landmarks."""
    vessels: sitk.Image                 # UInt8: 1 portal, 2 hepatic veins + IVC
    branch_map: sitk.Image              # UInt32: vessel voxel -> id of its branch (0 elsewhere)
    branches: dict                      # id -> Branch (both systems)
    roots: dict                         # system -> root branch id
    portal_bifurcation_lps_mm: tuple | None
    hepatic_veins: dict                 # "right"/"middle"/"left" -> first branch id of that vein
    warnings: list = field(default_factory=list)
    portal_sides: dict = field(default_factory=dict)   # "right"/"left" -> first branch ids
    threshold_hu: float | None = None   # low vessel threshold (HU above local parenchyma)
    notes: list = field(default_factory=list)          # how the result was made

    def system_branches(self, system: int) -> list[Branch]:
        return [b for b in self.branches.values() if b.system == system]

    def subtree(self, branch_id: int) -> list[int]:
        """The branch and all its descendants."""
        out, stack = [], [branch_id]
        while stack:
            b = stack.pop()
            out.append(b)
            stack.extend(self.branches[b].children)
        return out

    def to_dict(self) -> dict:
        return {"branches": [b.to_dict() for b in self.branches.values()],
                "roots": {str(k): v for k, v in self.roots.items()},
                "portal_bifurcation_lps_mm": (None if self.portal_bifurcation_lps_mm is None
                                              else list(self.portal_bifurcation_lps_mm)),
                "hepatic_veins": dict(self.hepatic_veins),
                "portal_sides": {k: list(v) for k, v in self.portal_sides.items()},
                "threshold_hu": self.threshold_hu, "notes": list(self.notes),
                "warnings": list(self.warnings)}


# --------------------------------------------------------------------------------------------
# Segmentation


def segment_vessels(ct: sitk.Image, liver: sitk.Image, *, smoothing_mm: float = 1.2,
                    twig_smoothing_mm: float = 0.8,
                    background_mm: float = 8.0, low_fraction: float = 0.45,
                    high_fraction: float = 1.1, min_piece_ml: float = 0.02,
                    graph_spacing_mm: float = 1.0, extrahepatic_mm: float = 12.0,
                    portal_seed_lps_mm=None, hepatic_seed_lps_mm=None,
                    tumors: sitk.Image | None = None, progress=None,
                    cancel=None) -> VesselResult:
    """Portal and hepatic vessels inside `liver` (a 0/1 mask on `ct`'s grid).

    low_fraction / high_fraction: hysteresis thresholds as fractions of the scan's vessel
    contrast (HU above the local parenchyma). twig_smoothing_mm: the lighter smoothing at which
    portal twigs too thin for `smoothing_mm` are looked for. The seeds override the automatic
    roots (a click on the portal trunk / the IVC). `tumors` (lesion ids on `ct`'s grid): a
    vessel a tumour interrupts is followed beyond it and kept in the system it belongs to.
    """
    steps = Steps(progress, cancel)
    _check_inputs(ct, liver)
    steps.report(0.0, "Finding vessels")
    box = _liver_box(liver, margin_mm=2 * background_mm)
    sp = np.array(ct.GetSpacing())[::-1]
    crop = _crop_image(ct, box)
    inside = sitk.GetArrayViewFromImage(liver)[box] > 0
    smooth, contrast, mode_hu, vessel_contrast_hu = _local_contrast(crop, inside, smoothing_mm,
                                                                    background_mm)
    steps.report(0.25, "Vessel thresholds")
    low, high = low_fraction * vessel_contrast_hu, high_fraction * vessel_contrast_hu
    # the hysteresis connects through a tumour and its reach (but seeds nothing there): a branch
    # it interrupts is kept beyond it, though its far part may be too faint to hold a seed
    tumour_ids = (np.zeros(inside.shape, np.uint16) if tumors is None
                  else sitk.GetArrayFromImage(tumors)[box])
    tumour = tumour_ids > 0
    near_tumour = _within(tumour, TUMOUR_REACH_MM, sp)
    passable = np.where(near_tumour & inside,
                        np.maximum(contrast, 0.5 * (low + high)), contrast)
    mask = apply_hysteresis_threshold(np.where(inside, passable, -1e3), low, high)
    mask &= (contrast >= low) & ~tumour
    mask = _drop_small(mask, min_piece_ml / spacing_volume_ml(sp))
    # outside the liver only blood-like HU: not bone, not contrast-filled kidney or bowel
    blood = _blood(smooth, mode_hu + low, mode_hu + 3.0 * vessel_contrast_hu, sp)
    ivc = _ivc(blood, inside, sp)
    # The IVC is added whole. Around its blurred wall (the vessel or blood voxels within
    # IVC_WALL_MM of its blood column) a layer IVC_CLEARANCE_MM thick is kept clear below the
    # hepatic veins' junctions (IVC_CLEAR_BELOW_FRACTION of the liver's height): outside
    # the liver it is not grown into, so the portal vein lying against the IVC at the epiploic
    # foramen does not merge with it; inside, it is cut from the branch graph (the voxels stay
    # vessels), so a portal branch running past the IVC (the caudate's) is not reached by the
    # hepatic front, which starts from the whole IVC.
    wall, clear = _ivc_wall_and_clearance(ivc, mask | blood, inside, sp)
    mask = _extrahepatic(mask | ivc, blood & ~(clear & ~inside), inside, sp, extrahepatic_mm)
    mask = _seeded_from_outside(mask, inside & (contrast >= low) & ~tumour & ~wall & ~clear,
                                inside, sp)
    cut = clear & inside
    warnings = []
    if not mask.any():
        raise SegmentationError("No enhanced vessels were found inside the liver: check that the "
                                "scan is a contrast-enhanced portal-venous phase.")
    steps.report(0.45, "Vessel centerlines")
    labels = _separate(mask, crop, inside, ivc, wall, cut, tumour_ids, graph_spacing_mm,
                       portal_seed_lps_mm, hepatic_seed_lps_mm, warnings, steps.sub(0.45, 0.8))
    full = np.zeros(tuple(reversed(ct.GetSize())), np.uint8)
    full[box] = labels
    steps.report(0.8, "Thin portal twigs")
    twigs = _portal_twigs(crop, labels, inside & ~cut & ~near_tumour,
                          twig_smoothing_mm, background_mm, low_fraction, high_fraction)
    steps.report(0.85, "Vessel trees")

    def trees(label_array: np.ndarray) -> VesselResult:
        return analyse_vessels(image_from_array(label_array, ct), liver,
                               graph_spacing_mm=graph_spacing_mm)
    if not twigs.any():
        result = trees(full)
    else:
        # twigs add leaves to the tree; where they would move its portal bifurcation by more
        # than a graph voxel, they changed its structure (3D-IRCADb-01 on its reference liver,
        # with an earlier vessel stage: the bifurcation's sides and sectors changed) and are not
        # trusted. The bifurcation without them needs only the portal tree (the hepatic one is
        # analysed once).
        twigged = full.copy()
        twigged[box][twigs] = PORTAL
        result = trees(twigged)
        if not _same_bifurcation(trees((full == PORTAL).astype(np.uint8)), result,
                                 graph_spacing_mm):
            result = trees(full)
            result.notes.append("Thin portal twigs were left out: they changed the portal tree's "
                                "structure.")
    result.warnings[:0] = warnings
    result.threshold_hu = low
    result.notes.append(f"Vessel thresholds: {low:.0f} / {high:.0f} HU above the local "
                        f"parenchyma (vessel contrast {vessel_contrast_hu:.0f} HU).")
    steps.report(1.0, "Vessels done")
    return result


def _portal_twigs(crop, labels, allowed, smoothing_mm, background_mm, low_fraction,
                  high_fraction) -> np.ndarray:
    """Portal twigs too thin for the main smoothing (radius 1-1.6 mm: its blur leaves them
    less than the low contrast): vessel pieces found at `smoothing_mm` (the same thresholds,
    relative to the contrast at that smoothing) within `allowed`, not yet in `labels`, that touch
    the portal system and come no closer than two voxels to a hepatic vein."""
    _, contrast, _, vessel_contrast_hu = _local_contrast(crop, allowed, smoothing_mm,
                                                         background_mm)
    thin = apply_hysteresis_threshold(np.where(allowed, contrast, -1e3),
                                      low_fraction * vessel_contrast_hu,
                                      high_fraction * vessel_contrast_hu) & (labels == 0)
    cube = np.ones((3, 3, 3), bool)
    pieces, n = ndi.label(thin, cube)
    portal = np.bincount(pieces[ndi.binary_dilation(labels == PORTAL, cube)], minlength=n + 1)
    hepatic = np.bincount(pieces[ndi.binary_dilation(labels == HEPATIC, cube, iterations=2)],
                          minlength=n + 1)
    keep = (portal > 0) & (hepatic == 0)
    keep[0] = False
    return keep[pieces]


def _same_bifurcation(a: VesselResult, b: VesselResult, tolerance_mm: float) -> bool:
    p, q = a.portal_bifurcation_lps_mm, b.portal_bifurcation_lps_mm
    return p is not None and q is not None and np.linalg.norm(np.subtract(p, q)) <= tolerance_mm


def _check_inputs(ct: sitk.Image, liver: sitk.Image) -> None:
    if not same_grid(ct, liver):
        raise InputError("The liver mask does not lie on the CT's grid; segment the liver on "
                         "this scan first.")
    if not np.any(sitk.GetArrayViewFromImage(liver)):
        raise SegmentationError("The liver mask is empty; segment or draw the liver first.")


def _liver_box(liver: sitk.Image, margin_mm: float) -> tuple:
    a = sitk.GetArrayViewFromImage(liver)
    sp = np.array(liver.GetSpacing())[::-1]
    nz = [np.nonzero(a.any(axis=tuple(j for j in range(3) if j != i)))[0] for i in range(3)]
    pad = np.ceil(margin_mm / sp).astype(int)
    return tuple(slice(max(int(n[0]) - p, 0), min(int(n[-1]) + p + 1, s))
                 for n, p, s in zip(nz, pad, a.shape))


def _crop_image(image: sitk.Image, box: tuple) -> sitk.Image:
    """The sub-image covering `box` (z, y, x slices), keeping origin/spacing/direction exact."""
    start = [box[2].start, box[1].start, box[0].start]
    size = [box[2].stop - box[2].start, box[1].stop - box[1].start, box[0].stop - box[0].start]
    return sitk.RegionOfInterest(image, [int(v) for v in size], [int(v) for v in start])


def _gaussian(array: np.ndarray, grid: sitk.Image, sigma_mm: float) -> np.ndarray:
    """Gaussian smoothing with a physical sigma (recursive filter: fast for large sigmas)."""
    image = image_from_array(array.astype(np.float32), grid)
    return sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(image, sigma_mm))


def _local_contrast(crop, inside, smoothing_mm, background_mm):
    """(`crop` smoothed by `smoothing_mm`, its HU above the local parenchyma level, the
    parenchyma mode, the scan's vessel contrast).

    The parenchyma mode is the histogram peak inside the liver; parenchyma-like voxels (within
    a window around it) give a Gaussian-weighted local level, so bright vessels and dark
    lesions do not bias it. The vessel contrast is the 99.5th percentile of the contrast inside
    the liver (the bright tail that vessels make up).
    """
    smooth = _gaussian(sitk.GetArrayViewFromImage(crop).astype(np.float32), crop, smoothing_mm)
    values = smooth[inside]
    hist, edges = np.histogram(values, bins=np.arange(-200.0, 400.0, 2.0))
    mode = float(edges[np.argmax(hist)] + 1.0)
    spread = 1.4826 * float(np.median(np.abs(values - mode)))
    weight = (inside & (np.abs(smooth - mode) < 2.0 * spread)).astype(np.float32)
    level = (_gaussian(smooth * weight, crop, background_mm)
             / np.maximum(_gaussian(weight, crop, background_mm), 1e-3))
    contrast = np.where(inside, smooth - level, 0.0)
    return smooth, contrast, mode, max(float(np.percentile(contrast[inside], 99.5)), 1.0)


def _blood(smooth, low_hu, high_hu, sp, bone_clearance_mm: float = 2.0):
    """Blood-like voxels: between the vessel threshold and bone, and not at a bone's edge
    (partial volume makes a cortex's rim look like blood)."""
    r = np.ceil(bone_clearance_mm / sp[1:]).astype(int)
    bone = ndi.maximum_filter(smooth >= high_hu, size=(1, 2 * r[0] + 1, 2 * r[1] + 1))
    return (smooth > low_hu) & ~bone


def _ivc(blood, inside, sp, *, min_radius_mm: float = 3.0, max_width_mm: float = 40.0,
         touch_mm: float = 3.0, step_mm: float = 8.0, skip_mm: float = 10.0,
         trim_mm: float = 2.0) -> np.ndarray:
    """The IVC's lumen within the liver's height (False everywhere if it is not found).

    In each axial slice of the liver's upper three fifths, the blood-filled cross-sections
    outside the liver that touch it (within `touch_mm`) and are vessel-sized are counted per
    column: the IVC, running cranio-caudally against the liver's back, is the column counted
    most often (the aorta lies further from the liver, behind fat and the crus), and at least
    in a third of those slices. From there its cross-section is followed slice by slice up and
    down (centre moving less than `step_mm`; where it merges with a neighbour for up to
    `skip_mm` it is skipped), to the liver's top (the heart lies above). Where the liver mask
    wraps the IVC (a segmented liver often takes in its intrahepatic part) the cross-section
    is followed through the blood inside the mask. Thinner vessels touching the lumen (a
    caudate portal branch that the liver mask left outside) are trimmed off each cross-section
    (opening by a disk of `trim_mm`): counted in the IVC they joined the hepatic front's root.
    """
    zs = np.nonzero(inside.any(axis=(1, 2)))[0]
    out = np.zeros(inside.shape, bool)
    near = dilate_mm(inside, touch_mm, sp)
    min_area = np.pi * min_radius_mm ** 2 / (sp[1] * sp[2])

    def sections(mask, touching=None):
        lab, n = ndi.label(mask)
        ok = np.bincount(lab.ravel(), minlength=n + 1) >= min_area
        if touching is not None:
            ok[np.setdiff1d(np.arange(n + 1), lab[touching])] = False
        for i, sl in enumerate(ndi.find_objects(lab), start=1):
            extent = max((sl[0].stop - sl[0].start) * sp[1], (sl[1].stop - sl[1].start) * sp[2])
            ok[i] &= extent <= max_width_mm
        ok[0] = False
        return lab, ok
    outside = {z: sections(blood[z] & ~inside[z], near[z]) for z in range(zs[0], zs[-1] + 1)}
    upper = [z for z in outside if z >= zs[0] + 0.4 * (zs[-1] - zs[0])]
    count = sum(outside[z][1][outside[z][0]].astype(np.int32) for z in upper)
    if count.max() < (zs[-1] - zs[0]) * 0.6 / 3:
        return out
    column = np.array(np.unravel_index(np.argmax(count), count.shape))
    start = next(z for z in upper if outside[z][1][outside[z][0][tuple(column)]])
    lab = outside[start][0]
    first = np.array(ndi.center_of_mass(lab == lab[tuple(column)]))

    def nearest(lab, ok, centre):
        ids = np.nonzero(ok)[0]
        if not len(ids):
            return None, None
        centres = np.array(ndi.center_of_mass(np.ones_like(lab), lab, ids))
        gap = np.linalg.norm((centres - centre) * sp[1:], axis=1)
        k = int(np.argmin(gap))
        return (lab == ids[k], centres[k]) if gap[k] <= step_mm else (None, None)
    for direction in (1, -1):
        centre, z, missed = first, start, 0
        while zs[0] <= z <= zs[-1] and missed * sp[0] <= skip_mm:
            lumen, c = nearest(*outside[z], centre)
            if lumen is None:
                lumen, c = nearest(*sections(blood[z]), centre)
            if lumen is not None:
                out[z], centre, missed = _trimmed(lumen, sp[1:], trim_mm), c, 0
            else:       # merged with a neighbour (the portal vein) or lost for a few slices
                missed += 1
            z += direction
    return out


def _ivc_wall_and_clearance(ivc, filled, inside, sp) -> tuple[np.ndarray, np.ndarray]:
    """The IVC's blurred wall (`filled`: vessel or blood voxels, within IVC_WALL_MM of its
    lumen) and the layer IVC_CLEARANCE_MM thick around it, below the hepatic veins' junctions
    (IVC_CLEAR_BELOW_FRACTION of the liver's height)."""
    wall = _within(ivc, IVC_WALL_MM, sp) & filled
    clear = _within(wall, IVC_CLEARANCE_MM, sp) & ~wall
    clear[int(_height_level(inside, IVC_CLEAR_BELOW_FRACTION)):] = False
    return wall, clear


def _trimmed(lumen: np.ndarray, sp_yx, radius_mm: float) -> np.ndarray:
    """An axial cross-section without the thinner vessels attached to it: its largest piece
    after an opening by a disk of `radius_mm`."""
    r = np.ceil(radius_mm / np.asarray(sp_yx)).astype(int)
    yy, xx = np.ogrid[-r[0]:r[0] + 1, -r[1]:r[1] + 1]
    disk = (yy * sp_yx[0]) ** 2 + (xx * sp_yx[1]) ** 2 <= radius_mm ** 2
    opened = ndi.binary_opening(lumen, disk)
    if not opened.any():
        return lumen
    lab, _ = ndi.label(opened)
    return lab == np.argmax(np.bincount(lab.ravel())[1:]) + 1


def _extrahepatic(mask, bright, inside, sp, reach_mm):
    """Add the bright vessels just outside the liver that continue intrahepatic ones: the IVC
    and the portal trunk at the hilum, which anchor the two trees. Nothing is added above the
    liver's top slice (the heart lies there)."""
    size = 2 * np.ceil(reach_mm / sp).astype(int) + 1
    near = ndi.maximum_filter(inside.astype(np.uint8), size=tuple(size)) > 0
    near[np.nonzero(inside.any(axis=(1, 2)))[0][-1] + 1:] = False
    cc, _ = ndi.label(mask | (bright & near & ~inside), np.ones((3, 3, 3), bool))
    keep = np.zeros(cc.max() + 1, bool)
    keep[np.unique(cc[mask])] = True
    keep[0] = False
    return keep[cc]


def _seeded_from_outside(mask, weak, inside, sp, depth_mm: float = 3.0):
    """`mask` with the `weak` intrahepatic pieces (above the low threshold, never the high)
    that touch its extrahepatic part and run into the liver deeper than `depth_mm`: a thin
    branch leaving its trunk where the liver mask does not reach (the caudate's, off the left
    portal vein at the hilum: 7-13 mm deep on the synthetic patients) has no voxel above the
    high threshold inside the liver, and the hysteresis, confined to the liver, lost it. The
    depth leaves out the partial-volume rim of a bright neighbour along the liver's edge
    (1.6 mm deep at most on 3D-IRCADb-01)."""
    cube = np.ones((3, 3, 3), bool)
    cc, _ = ndi.label(weak & ~mask, cube)
    touching = np.unique(cc[ndi.binary_dilation(mask & ~inside, cube)])
    deep = np.unique(cc[inside & ~_within(~inside, depth_mm, sp)])
    return mask | np.isin(cc, np.intersect1d(touching, deep[deep > 0]))


def _within(mask: np.ndarray, mm: float, sp) -> np.ndarray:
    """`mask` grown by `mm` along each axis (a box)."""
    return ndi.maximum_filter(mask, size=tuple(2 * np.ceil(mm / np.asarray(sp)).astype(int) + 1))


def _drop_small(mask: np.ndarray, min_voxels: float) -> np.ndarray:
    cc, n = ndi.label(mask, np.ones((3, 3, 3), bool))
    sizes = np.bincount(cc.ravel())
    keep = sizes >= min_voxels
    keep[0] = False
    return keep[cc]


def _to_grid(mask: np.ndarray, crop: sitk.Image, spacing_mm: float, *, label: bool = False):
    """A mask (or label array) of `crop`'s grid resampled onto an isotropic grid."""
    image = image_from_array(mask.astype(np.uint16 if label else np.float32), crop)
    size = [max(int(round(n * s / spacing_mm)), 1) for n, s in zip(crop.GetSize(), crop.GetSpacing())]
    out = sitk.Resample(image, size, sitk.Transform(), sitk.sitkNearestNeighbor if label
                        else sitk.sitkLinear, crop.GetOrigin(), [spacing_mm] * 3,
                        crop.GetDirection(), 0, image.GetPixelID())
    a = sitk.GetArrayFromImage(out)
    return (a if label else a >= 0.5), out


def _separate(mask, crop, inside, ivc, wall, cut, tumour_ids, spacing_mm, portal_seed,
              hepatic_seed, warnings, steps, direction_weight: float = 5.0):
    """Label each vessel voxel 1 (portal) or 2 (hepatic) by competing fronts on the skeleton.

    Each system's front starts from its whole root vessel (the IVC, the portal trunk) and
    crosses a branch more cheaply the better it points at that root: portal branches radiate
    from the hilum, hepatic veins converge on the IVC, so where the two trees touch each front
    keeps to its own branches. `cut`: voxels left out of the branch graph (they take the system
    of the vessel they continue, outside the IVC's blurred `wall`). `tumour_ids`: lesion ids on
    `crop`'s grid.
    """
    iso, grid = _to_grid(mask & ~cut, crop, spacing_mm)
    liver_iso, _ = _to_grid(inside, crop, spacing_mm)
    ivc_iso, _ = _to_grid(ivc, crop, spacing_mm)
    sk = skeletonize_mask(iso, np.full(3, spacing_mm))
    n = len(sk.branch_voxels)
    if n == 0:
        raise SegmentationError("The vessels found inside the liver are too small to follow; "
                                "check the contrast phase of the scan.")
    steps.report(0.4, "Separating portal and hepatic veins")
    roots, sources, dropped = _find_roots(sk, liver_iso, ivc_iso, grid, portal_seed,
                                          hepatic_seed, warnings)
    comp = components(n, sk.adjacency)
    contacts = _tumour_contacts(sk, _to_grid(tumour_ids, crop, spacing_mm, label=True)[0],
                                spacing_mm)
    # a piece a tumour cut off from both root vessels continues the vessel the tumour
    # interrupts (below); it is not a vein draining into the IVC, unless it runs against the IVC
    cut_off = ({comp[i] for i in range(n) if contacts[i]} - {comp[r] for r in roots.values()}
               - _against_ivc(sk, iso, ivc_iso, liver_iso, spacing_mm, comp))
    sources[HEPATIC] = [i for i in sources[HEPATIC] if comp[i] not in cut_off]
    cost = np.array([geodesic(sk, sources[k], _alignment_cost(sk, sources[k], k, direction_weight))
                     [0].min(axis=0) for k in (PORTAL, HEPATIC)])
    system = np.where(cost[0] <= cost[1], PORTAL, HEPATIC)
    unreached = ~np.isfinite(cost).any(axis=0)
    guessed = np.zeros(n, bool)     # system guessed from the nearest root trunk
    if unreached.any():
        # a piece connected to neither root: one against a tumour continues the vessel the
        # tumour interrupts (of those connected and running against the same tumour, the one
        # pointing at it); any other (a vein cut off by partial volume) goes to the system
        # whose root trunk (its branches as thick as the root) its thickest branch is nearest
        # to: veins are thickest where they drain into the IVC, portal branches where they
        # leave the hilum
        radius = sk.median_radii_mm()
        nbrs = _neighbours(sk)
        roots_at = {k: cKDTree(np.concatenate([sk.branch_voxels[i] for i in _piece(
            nbrs, r, ~unreached & (system == k) & (radius >= 0.6 * radius[r]))]))
            for k, r in roots.items()}
        for c in np.unique(comp[unreached]):
            members = np.nonzero(comp == c)[0]
            touched = set().union(*(contacts[m] for m in members))
            across = [i for i in np.nonzero(~unreached)[0] if contacts[i] & touched]
            if across:
                system[members] = system[_continued(sk, members, across, radius)]
                continue
            thick = sk.branch_voxels[members[np.argmax(radius[members])]]
            d = {k: t.query(thick)[0].min() for k, t in roots_at.items()}
            system[members] = min(d, key=d.get)
            guessed[members] = True
    system[dropped], guessed[dropped] = 0, False
    # every vessel voxel takes the system of its nearest skeleton voxel; inside the liver, of
    # its nearest kept one
    skel_zyx = np.concatenate(sk.branch_voxels)
    skel_sys = np.concatenate([np.full(len(v), system[i] + _GUESSED * guessed[i])
                               for i, v in enumerate(sk.branch_voxels)])
    labels = _nearest_labels(mask, crop, grid, skel_zyx, skel_sys)
    lost = mask & inside & (labels == 0)
    if lost.any():
        kept = skel_sys > 0
        labels[lost] = _nearest_labels(lost, crop, grid, skel_zyx[kept], skel_sys[kept])[lost]
    # a piece the cut layer severed (a caudate portal branch's tip beyond the IVC's clearance)
    # continues, through the cut, the vessel it was cut from
    loose = labels > _GUESSED
    labels[loose] -= _GUESSED
    _through_cut(labels, mask & (cut | loose), mask & ~cut & ~wall & ~loose)
    return labels.astype(np.uint8)


def _continued(sk, piece, across, radius, course_voxels: int = 6) -> int:
    """Of the branches `across` a tumour from a cut-off `piece` (branch ids), the thickest of
    those whose end points at the piece (its last `course_voxels` aimed within 45 degrees of
    the piece's nearest voxel), else the thickest: not simply the thickest, as a hepatic vein
    passing the tumour is often thicker than the portal branch the tumour interrupts."""
    points = cKDTree(np.concatenate([sk.branch_voxels[i] for i in piece]))

    def aims(v: np.ndarray) -> bool:          # v: the branch's voxels from its end back
        course = v[0] - v[min(course_voxels, len(v) - 1)]
        gap = points.data[points.query(v[0])[1]] - v[0]
        norms = np.linalg.norm(course) * np.linalg.norm(gap)
        return norms > 0 and course @ gap >= np.cos(np.pi / 4) * norms
    aiming = [i for i in across if aims(sk.branch_voxels[i][::-1].astype(float))
              or aims(sk.branch_voxels[i].astype(float))]
    return max(aiming or across, key=lambda i: radius[i])


def _through_cut(labels, region, sources) -> None:
    """Vessel voxels of the layer cut around the IVC take, in place, the system of the vessel
    they continue (flooded from `sources` through `region`), not of the nearest centreline,
    which may be the IVC's: a caudate portal branch running along the IVC stays portal. Voxels
    connected only to the IVC's wall (a short vein draining into it) keep their label."""
    if not region.any():
        return
    box = widen(bbox(region), 2.0, np.ones(3), region.shape)
    markers = np.where(sources[box], labels[box], 0)
    flooded = watershed(np.zeros(markers.shape, np.uint8), markers,
                        mask=region[box] | (markers > 0))
    inner = labels[box]
    reached = region[box] & (flooded > 0)
    inner[reached] = flooded[reached]


def _height_level(inside: np.ndarray, fraction: float) -> float:
    """The slice (index, may be fractional) at `fraction` of the liver's height (from its
    lowest slice)."""
    zs = np.nonzero(inside.any(axis=(1, 2)))[0]
    return zs[0] + fraction * (zs[-1] - zs[0])


def _against_ivc(sk, iso, ivc_iso, liver_iso, spacing_mm: float, comp) -> set:
    """The graph components with a vessel voxel within IVC_TOUCH_MM of the IVC in the
    confluence region: veins draining into it that partial volume cut from it."""
    if not ivc_iso.any():
        return set()
    vox = np.argwhere(iso & ~ivc_iso)
    vox = vox[vox[:, 0] >= _height_level(liver_iso, CONFLUENCE_HEIGHT_FRACTION)]
    if not len(vox):
        return set()
    lumen = cKDTree(np.argwhere(ivc_iso) * spacing_mm)
    close = vox[lumen.query(vox * spacing_mm, distance_upper_bound=IVC_TOUCH_MM)[0]
                <= IVC_TOUCH_MM]
    pieces, _ = ndi.label(iso, np.ones((3, 3, 3), bool))
    touching = set(np.unique(pieces[tuple(close.T)]).tolist())
    return {comp[i] for i, v in enumerate(sk.branch_voxels) if pieces[tuple(v[0])] in touching}


def _tumour_contacts(sk, tumour_ids_iso: np.ndarray, spacing_mm: float) -> list[set]:
    """The ids of the tumours each branch runs against: its centreline within TUMOUR_REACH_MM
    plus a vessel radius (2 mm)."""
    if not tumour_ids_iso.any():
        return [set() for _ in sk.branch_voxels]
    reach = TUMOUR_REACH_MM + 2.0
    near = ndi.maximum_filter(tumour_ids_iso, size=2 * int(reach / spacing_mm) + 1)
    return [set(np.unique(near[tuple(v.T)]).tolist()) - {0} for v in sk.branch_voxels]


def _alignment_cost(sk, sources: list[int], system: int, weight: float) -> np.ndarray:
    """Cost factor per branch for one system's front: 1 for a branch pointing at the system's
    root (its sources' centre; for the hepatic veins the top of the IVC, where they join it),
    up to 1 + `weight` for one at right angles to it. Short branches (< 4 voxels) have no
    direction: factor 1."""
    points = np.concatenate([sk.branch_voxels[i] for i in sources]).astype(float)
    target = points[np.argmax(points[:, 0])] if system == HEPATIC else points.mean(axis=0)
    out = np.ones(len(sk.branch_voxels))
    for i, v in enumerate(sk.branch_voxels):
        if len(v) >= 4:
            d, t = (v[-1] - v[0]).astype(float), target - v.mean(axis=0)
            cos = abs(d @ t) / max(np.linalg.norm(d) * np.linalg.norm(t), 1e-6)
            out[i] = 1.0 + weight * (1.0 - cos)
    return out


def _nearest_labels(mask, crop, grid, source_zyx, source_labels) -> np.ndarray:
    """Label each voxel of `mask` (on `crop`'s grid) like its nearest source point (`grid`
    indices)."""
    target = np.argwhere(mask)
    where = lps_to_index(grid, index_to_lps(crop, target))
    _, j = cKDTree(source_zyx).query(where)
    out = np.zeros(mask.shape, source_labels.dtype)
    out[tuple(target.T)] = source_labels[j]
    return out


def _find_roots(sk, liver_iso, ivc_iso, grid, portal_seed, hepatic_seed, warnings):
    """Root branches of the two systems: the seeds if given, else anatomy.

    Both systems leave the liver: the IVC behind it and the portal trunk at the hilum, in front
    of the IVC (the epiploic foramen lies between them). The hepatic root is the thickest branch
    lying in the IVC (`ivc_iso`, found in the CT), in the liver's upper two fifths where the
    hepatic veins join it if it reaches there; the portal trunk is the thickest vessel outside
    the liver at least 10 mm in front of the IVC and clear of it (10 mm beyond its wall).
    Without them (a liver-only mask) the thickest branch reaching the surface in the upper two
    fifths / lower three fifths of the liver is used.
    """
    spacing = float(grid.GetSpacing()[0])
    depth = branch_depths_mm(sk, liver_iso, spacing)
    nbrs = _neighbours(sk)
    outside = np.array([np.mean(d <= 0) > 0.5 for d in depth])
    surface = np.array([d.min() <= 4.0 for d in depth])
    centroid = np.array([v.mean(axis=0) for v in sk.branch_voxels]) * spacing
    radius = sk.median_radii_mm()
    # in the confluence region
    cranial = centroid[:, 0] / spacing >= _height_level(liver_iso, CONFLUENCE_HEIGHT_FRACTION)
    in_ivc = np.array([np.mean(ivc_iso[tuple(v.T)]) >= 0.5 for v in sk.branch_voxels])
    thick = outside & (radius >= 0.6 * (radius[outside].max() if outside.any() else 0.0))
    # LPS y grows toward the back (compared in LPS: the grid has the CT's direction)
    posterior = index_to_lps(grid, centroid / spacing)[:, 1]
    roots = {}
    for system, seed in ((HEPATIC, hepatic_seed), (PORTAL, portal_seed)):
        if seed is not None:
            zyx = lps_to_index(grid, seed)[0]
            roots[system] = int(np.argmin([np.min(np.linalg.norm(v - zyx, axis=1))
                                           for v in sk.branch_voxels]))
            continue
        if system == HEPATIC:
            upper = in_ivc & cranial
            score = np.where(upper if upper.any() else in_ivc, radius, -np.inf)
            if not in_ivc.any():
                score = np.where(surface & ~outside & cranial, radius, -np.inf)
        else:
            ivc_r = radius[in_ivc].max() if in_ivc.any() else radius[roots[HEPATIC]]
            clear = _axial_gap_mm(sk, _ivc_axis_mm(ivc_iso, spacing) if in_ivc.any() else
                                  _root_axis_mm(sk, nbrs, roots[HEPATIC], outside, spacing),
                                  spacing) > ivc_r + 10.0
            in_front = posterior < posterior[roots[HEPATIC]] - 10.0
            wide = radius >= PORTAL_TO_IVC_RADIUS * ivc_r
            score = np.where(outside & wide & in_front & clear & ~in_ivc, radius, -np.inf)
            if not np.isfinite(score).any():
                score = np.where(surface & ~outside & ~cranial & clear, radius, -np.inf)
        if not np.isfinite(score).any():
            warnings.append(f"The {SYSTEM_NAMES[system]} root was not found where expected; "
                            "check the vessel labels and correct them with a seed.")
            score = np.where(np.arange(len(radius)) != roots.get(HEPATIC, -1), radius, -np.inf)
        roots[system] = int(np.argmax(score))
    # each front starts from its whole root vessel: the IVC, the portal trunk outside the liver
    sources = {HEPATIC: [roots[HEPATIC]], PORTAL: [roots[PORTAL]]}
    if hepatic_seed is None and in_ivc.any():
        # with the veins that end against the IVC in the liver's upper part (they drain into
        # it even where partial volume cuts them from it); only major veins count from afar:
        # thinner branches ending there are as often portal (the caudate's, running up beside
        # the IVC; distal pieces of segments 7 and 8)
        axis = _ivc_axis_mm(ivc_iso, spacing)
        end_mm = np.array([np.linalg.norm(v[[0, -1]][:, None] * spacing - axis[None],
                                          axis=2).min(axis=1) for v in sk.branch_voxels])
        radius_ivc = radius[in_ivc].max()
        length_mm = sk.voxel_counts() * spacing
        draining = ((end_mm.min(axis=1) <= radius_ivc + IVC_REACH_MM) & cranial
                    & (radius >= DRAINING_TO_IVC_RADIUS * radius_ivc)
                    & (length_mm >= DRAINING_MIN_MM))
        # ... and not a portal branch running up toward the dome from a thicker one
        # (3D-IRCADb-01: radius 2.0 mm, leaving branches of 3.4 and 2.9 mm at its far end, its
        # near end 33 mm from the IVC's axis)
        for i in np.nonzero(draining & ~in_ivc)[0]:
            far = _neighbours_at(sk, nbrs, i, int(np.argmax(end_mm[i])))
            if far and radius[far].max() >= PARENT_OF_DRAINING_RADIUS * radius[i]:
                draining[i] = False
        sources[HEPATIC] = sorted(set(np.nonzero(in_ivc | draining)[0]) - {roots[PORTAL]})
    # the portal trunk outside the liver is followed through branches at least half as thick
    # as it, not as thick as the IVC: its right and left portal veins before they enter the
    # liver are thinner than the IVC, and dropping them cut the trunk from the intrahepatic tree
    trunk = _piece(nbrs, roots[PORTAL],
                   outside & ~in_ivc & (radius >= 0.5 * radius[roots[PORTAL]]))
    if portal_seed is None and outside[roots[PORTAL]]:
        sources[PORTAL] = sorted(set(trunk) - set(sources[HEPATIC]) | {roots[PORTAL]})
    # outside the liver only the two root vessels and the thin links from the portal trunk into
    # the liver are kept (not the aorta, crus or kidney)
    thin = outside & ~in_ivc & (radius <= SEGMENTAL_RADIUS_MM)
    keep = (set(_piece(nbrs, roots[HEPATIC], thick | in_ivc)) | set(np.nonzero(in_ivc)[0])
            | set(trunk) | _hilar_links(nbrs, trunk, outside, thin))
    dropped = [i for i in np.nonzero(outside)[0] if i not in keep and i not in roots.values()]
    return roots, sources, dropped


def _hilar_links(nbrs, trunk: list[int], outside: np.ndarray, thin: np.ndarray) -> set:
    """The `thin` branches (outside the liver, segmental or thinner, not the IVC) that link the
    portal trunk to a branch in the liver: a branch leaving the trunk where the liver mask does
    not reach (the caudate's, off the left portal vein in the hilar plate). Dropped as
    extrahepatic, its part in the liver was joined to the tree across the gap, to whichever
    branch lay nearest (synthetic patients of seeds 0 and 1: 11 mm away, or to segment 2's).
    Thicker links are not made: on 3D-IRCADb-01 two of radius 3.6 mm rerouted the left portal
    vein behind the bifurcation. `nbrs`: the skeleton's `_neighbours`."""
    loose = thin.copy()
    loose[trunk] = False
    links, seen = set(), set()
    for b in sorted({nb for t in trunk for nb in nbrs[t] if loose[nb]}):
        if b in seen:
            continue
        piece = _piece(nbrs, b, loose)
        seen.update(piece)
        if any(not outside[nb] for p in piece for nb in nbrs[p]):
            links.update(piece)
    return links


def _neighbours_at(sk, nbrs, b: int, end: int) -> list[int]:
    """The branches joining branch `b` at its first (`end` 0) or last (1) voxel (`nbrs`: the
    skeleton's `_neighbours`)."""
    v = sk.branch_voxels[b]
    here, there = (v[0], v[-1]) if end == 0 else (v[-1], v[0])
    return [j for j in set(nbrs[b]) - {b}
            if np.linalg.norm(sk.branch_voxels[j][[0, -1]] - here, axis=1).min()
            < np.linalg.norm(sk.branch_voxels[j][[0, -1]] - there, axis=1).min()]


def _ivc_axis_mm(ivc_iso: np.ndarray, spacing: float) -> np.ndarray:
    """Centre of the IVC's cross-section in each slice (z, y, x mm on the isotropic grid)."""
    zs = np.nonzero(ivc_iso.any(axis=(1, 2)))[0]
    return np.array([[z, *np.argwhere(ivc_iso[z]).mean(axis=0)] for z in zs]) * spacing


def _root_axis_mm(sk, nbrs, root: int, outside: np.ndarray, spacing: float) -> np.ndarray:
    """Centerline points of the hepatic root vessel outside the liver as thick as the root (mm):
    small veins joining it do not count as the IVC."""
    r0 = float(np.median(sk.radii_mm[root]))
    return np.concatenate([sk.branch_voxels[i][np.asarray(sk.radii_mm[i]) >= 0.6 * r0]
                           for i in _piece(nbrs, root, outside)]) * spacing


def _axial_gap_mm(sk, axis: np.ndarray, spacing: float) -> np.ndarray:
    """Distance in the axial plane from each branch to the IVC's axis (z, y, x mm) within
    15 mm in height."""
    gap = np.full(len(sk.branch_voxels), np.inf)
    if len(axis) == 0:
        return gap
    for i, v in enumerate(sk.branch_voxels):
        p = v * spacing
        level = np.abs(p[:, None, 0] - axis[None, :, 0]) < 15.0
        d = np.hypot(p[:, None, 1] - axis[None, :, 1], p[:, None, 2] - axis[None, :, 2])
        if level.any():
            gap[i] = d[level].min()
    return gap


def _neighbours(sk) -> list[list[int]]:
    """For each branch, the branches sharing a junction with it."""
    out = [[] for _ in sk.branch_voxels]
    for a, b in np.asarray(sk.adjacency, int).reshape(-1, 2):
        out[a].append(int(b))
        out[b].append(int(a))
    return out


def _piece(nbrs: list, start: int, allowed: np.ndarray) -> list[int]:
    """Branches reachable from `start` through `allowed` branches (e.g. the IVC outside the
    liver). `nbrs`: the skeleton's `_neighbours`."""
    seen, stack = {start}, [start]
    while stack:
        for nb in nbrs[stack.pop()]:
            if allowed[nb] and nb not in seen:
                seen.add(nb)
                stack.append(nb)
    return sorted(seen)


def branch_depths_mm(sk, inside: np.ndarray, spacing_mm: float, *,
                     signed: bool = False) -> list[np.ndarray]:
    """Depth (mm) of each branch's points inside the liver; 0 at and outside its surface
    (`signed`: minus the distance from it outside)."""
    surface = inside & ~ndi.binary_erosion(inside)
    tree = cKDTree(np.argwhere(surface) * spacing_mm)
    out = []
    for v in sk.branch_voxels:
        d, _ = tree.query(v * spacing_mm)
        out.append(np.where(inside[tuple(v.T)], d, -d if signed else 0.0))
    return out


# --------------------------------------------------------------------------------------------
# Graphs and landmarks of labelled vessels


def analyse_vessels(vessels: sitk.Image, liver: sitk.Image, *,
                    graph_spacing_mm: float = 1.0) -> VesselResult:
    """Centerline trees, portal bifurcation and hepatic veins of a labelled vessel image.

    Works on any 1 portal / 2 hepatic label image (automatic, edited or a reference), so the
    same definitions measure the result and the truth.
    """
    _check_inputs(vessels, liver)
    labels_all = sitk.GetArrayViewFromImage(vessels)
    if not labels_all.any():
        raise SegmentationError("The vessel label image is empty.")
    box = _liver_box(liver, margin_mm=20.0)
    labels = labels_all[box]
    crop = _crop_image(vessels, box)
    inside, _ = _to_grid(sitk.GetArrayViewFromImage(liver)[box] > 0, crop, graph_spacing_mm)
    branches, roots, portal_split, branch_iso, grid = {}, {}, None, None, None
    warnings = []
    next_id = 1
    for system in (PORTAL, HEPATIC):
        iso, grid = _to_grid(labels == system, crop, graph_spacing_mm)
        if branch_iso is None:
            branch_iso = np.zeros(iso.shape, np.uint32)
        if not iso.any():
            warnings.append(f"No {SYSTEM_NAMES[system]} was found.")
            continue
        sk = skeletonize_mask(iso, np.full(3, graph_spacing_mm))
        if not sk.branch_voxels:
            continue
        depths = branch_depths_mm(sk, inside, graph_spacing_mm)
        root = _root_of(sk, depths)
        sk = bridge_gaps(sk, root)          # (may cut branches: depths again)
        signed = branch_depths_mm(sk, inside, graph_spacing_mm, signed=True)
        depths = [np.maximum(d, 0.0) for d in signed]
        trunk = _trunk_branch(sk, signed) if system == PORTAL else None
        root = root if trunk is None else trunk
        cost, pred = geodesic(sk, [root])
        split, parting = root, []
        # with the trunk outside the liver the portal tree is read from it, and it divides where
        # the ways from it to the right and the left liver part; without it, from the hilum
        if trunk is not None:
            _, split, parting = _tip_path(sk, depths, pred[0])
        elif system == PORTAL:
            root = split = _hilum_branch(sk, depths, pred[0])
            cost, pred = geodesic(sk, [root])
        ids = {i: next_id + i for i in range(len(sk.branch_voxels))}
        next_id += len(sk.branch_voxels)
        parent = {i: (None if pred[0, i] < 0 else int(pred[0, i])) for i in ids}
        children = {i: [] for i in ids}
        for i, p in parent.items():
            if p is not None:
                children[p].append(i)
        for i, vox in enumerate(sk.branch_voxels):
            radii, depth = sk.radii_mm[i], depths[i]
            if _reversed(vox, None if parent[i] is None else sk.branch_voxels[parent[i]]):
                vox, radii, depth = vox[::-1], radii[::-1], depth[::-1]
            branches[ids[i]] = Branch(
                id=ids[i], system=system,
                points_lps_mm=tuple(map(tuple, index_to_lps(grid, vox))),
                radii_mm=tuple(float(r) for r in radii),
                depths_mm=tuple(float(d) for d in depth),
                parent=None if parent[i] is None else ids[parent[i]],
                children=tuple(ids[c] for c in children[i]))
            branch_iso[tuple(vox.T)] = ids[i]
        roots[system] = ids[root]
        if system == PORTAL:
            portal_split = ids[split], [ids[c] for c in parting]
    branch_map = _branch_map(branch_iso, branches, grid, crop, labels, box, vessels)
    result = VesselResult(vessels=vessels, branch_map=branch_map, branches=branches, roots=roots,
                          portal_bifurcation_lps_mm=None, hepatic_veins={}, warnings=warnings)
    if portal_split is not None:
        _name_portal(result, *portal_split)
    _name_hepatic(result)
    return result


def _root_of(sk, depths) -> int:
    """Root branch of one system's skeleton: the thickest branch reaching the liver surface
    (the IVC or the portal trunk, or where they enter when they are not labelled), on the
    largest connected tree."""
    radius = sk.median_radii_mm()
    size = sk.voxel_counts()
    surface = np.array([d.min() <= 4.0 for d in depths])
    comp = components(len(radius), sk.adjacency)
    main = comp == np.argmax(np.bincount(comp, weights=size * radius ** 2))
    candidates = main & surface if (main & surface).any() else main
    return int(np.argmax(np.where(candidates, radius, -1.0)))


def _trunk_branch(sk, signed_depths, reach_mm: float = 5.0) -> int | None:
    """The portal trunk, when the mask holds it outside the liver: of the thick branches
    (radius at least half the largest) lying mostly outside, the one reaching farthest from the
    liver, at least `reach_mm`. (A right portal vein that the liver mask leaves out at the hilum
    runs along the liver, and was as thick as the trunk on a synthetic patient; the trunk runs
    away from it, down to the pancreas.) `signed_depths`: `branch_depths_mm(signed=True)`."""
    radius = sk.median_radii_mm()
    reach = np.array([-d.min() if np.mean(d <= 0) > 0.5 else 0.0 for d in signed_depths])
    reach[radius < 0.5 * radius.max()] = 0.0
    best = int(np.argmax(reach))
    return best if reach[best] >= reach_mm else None


def _tip_path(sk, depths, pred: np.ndarray) -> tuple[list[int], int, list[int]]:
    """The tree path (branch ids) between the rightmost and the leftmost portal branch ends in
    the liver (smallest and largest x), the branch on it nearest the tree's root and the path's
    branches leaving that one: read from the trunk, where the ways to the right and the left
    liver part."""
    ends = np.concatenate([v[[0, -1]] for v in sk.branch_voxels])          # z, y, x (grid)
    owner = np.repeat(np.arange(len(sk.branch_voxels)), 2)
    inner = np.concatenate([d[[0, -1]] > 0 for d in depths])
    end_x = np.where(inner if inner.any() else True, ends[:, 2], np.nan)
    tips = [int(owner[np.nanargmin(end_x)]), int(owner[np.nanargmax(end_x)])]

    def up(b):
        out = [b]
        while pred[out[-1]] >= 0:
            out.append(int(pred[out[-1]]))
        return out
    a, b = up(tips[0]), up(tips[1])
    common = next(x for x in a if x in set(b))
    ia, ib = a.index(common), b.index(common)
    return a[:ia + 1] + b[:ib], common, [w[i - 1] for w, i in ((a, ia), (b, ib)) if i > 0]


def _hilum_branch(sk, depths, pred: np.ndarray) -> int:
    """The branch holding the portal bifurcation when the trunk is not in the mask.

    On the tree path between the rightmost and the leftmost portal branch ends, the bifurcation
    is where the thick part of the path (radius at least half its largest) comes closest to the
    liver surface: the hilum, where the trunk joins.
    """
    path = _tip_path(sk, depths, pred)[0]
    radius = np.concatenate([sk.radii_mm[i] for i in path])
    depth = np.concatenate([depths[i] for i in path])
    owner = np.concatenate([np.full(len(sk.radii_mm[i]), i) for i in path])
    thick = radius >= 0.5 * radius.max()
    return int(owner[np.argmin(np.where(thick, depth, np.inf))])


def _reversed(vox: np.ndarray, parent_vox: np.ndarray | None) -> bool:
    """True if a branch's points run toward its parent (they should run outward from it)."""
    if parent_vox is None or len(vox) < 2:
        return False
    d0 = np.min(np.linalg.norm(parent_vox - vox[0], axis=1))
    d1 = np.min(np.linalg.norm(parent_vox - vox[-1], axis=1))
    return d1 < d0


def _branch_map(branch_iso, branches, grid, crop, labels, box, reference) -> sitk.Image:
    """Each vessel voxel (CT grid) -> id of the nearest centerline branch of its own system."""
    out = np.zeros(tuple(reversed(reference.GetSize())), np.uint32)
    src = np.argwhere(branch_iso > 0)
    src_ids = branch_iso[tuple(src.T)]
    src_sys = np.array([branches[int(b)].system for b in src_ids])
    for system in (PORTAL, HEPATIC):
        own = src_sys == system
        if own.any() and (labels == system).any():
            near = _nearest_labels(labels == system, crop, grid, src[own], src_ids[own])
            out[box] = np.where(labels == system, near, out[box])
    return image_from_array(out, reference)


def subtree_volume_mm3(result: VesselResult) -> dict:
    """Vessel volume inside the liver of each branch's subtree."""
    mass = {}

    def visit(b):
        br = result.branches[b]
        m = br.inside_volume_mm3 + sum(visit(c) for c in br.children)
        mass[b] = m
        return m
    for root in result.roots.values():
        visit(root)
    return mass


def _name_portal(result: VesselResult, split: int | None = None, parting=()) -> None:
    """The portal bifurcation on the `split` branch (default: the portal root, read from the
    hilum), the right and left portal veins leaving it and the trunk leading to it. `parting`:
    the tree read from the trunk, the split's children where the ways to the right and the left
    liver part. The bifurcation is where the thicker of them begins: the skeleton starts the
    thinner one up to 3 mm off the junction (the synthetic patients' left portal vein: their
    right one starts within 1 mm of the true bifurcation, seeds 0, 2-4)."""
    root = result.roots.get(PORTAL)
    if root is None:
        result.warnings.append("No portal tree: the portal bifurcation is unknown.")
        return
    split = root if split is None else split
    branch = result.branches[split]
    points = np.asarray(branch.points_lps_mm)
    kid_ends = {_end_of(result, split, c) for c in branch.children}
    kids_at_both_ends = len(kid_ends) == 2 and not parting
    if parting:     # where the trunk's continuation (the thicker way) begins
        where = np.asarray(result.branches[max(parting, key=lambda c: np.median(
            result.branches[c].radii_mm))].points_lps_mm[0])
    elif kids_at_both_ends:
        # the root joins the right and left portal veins (no trunk in the mask): the trunk met
        # it where its thick part is closest to the liver surface (the hilum)
        radii = np.asarray(branch.radii_mm)
        depth = np.where(radii >= 0.5 * radii.max(), np.asarray(branch.depths_mm), np.inf)
        where = points[int(np.argmin(depth))]
    else:
        where = points[-1] if kid_ends == {1} or not kid_ends else points[0]
    result.portal_bifurcation_lps_mm = tuple(float(v) for v in where)
    # each branch leaving the bifurcation goes to the side its tree supplies (a trifurcation
    # gives two right branches); on a trunk-less root the branches at one end go together, to
    # the side where their trees lie (not where the end lies: 3D-IRCADb-01's reference liver
    # cuts the root to a 3 mm stub at the hilum, both ends at the same x)
    def tree_x(kids) -> float:
        return float(np.mean([p[0] for c in kids for s in result.subtree(c)
                              for p in result.branches[s].points_lps_mm]))
    if kids_at_both_ends:
        at = [[c for c in branch.children if _end_of(result, split, c) == e] for e in (0, 1)]
        right_end = int(tree_x(at[1]) < tree_x(at[0]))
        sides = {"right": at[right_end], "left": at[1 - right_end]}
    else:
        trunk = [split]
        while result.branches[trunk[-1]].parent is not None:
            trunk.append(result.branches[trunk[-1]].parent)
        leaving = list(branch.children)
        if parting:
            # with the branches leaving the trunk at the bifurcation's confluence (3D-IRCADb-01's
            # expert portal vein: a posterior branch 6 mm before it), of those entering the
            # liver (not a vein joining the trunk at the hilum)
            leaving += [c for t in trunk[1:] for c in result.branches[t].children
                        if c not in trunk and np.linalg.norm(np.subtract(
                            result.branches[c].points_lps_mm[0], where)) <= CONFLUENCE_MM]
            leaving = [c for c in leaving if any(max(result.branches[s].depths_mm) > 0
                                                 for s in result.subtree(c))]
        sides = {"right": [], "left": []}
        for c in leaving:
            sides["right" if tree_x([c]) < where[0] else "left"].append(c)
    result.portal_sides = sides
    names = ({split: "portal bifurcation"} if kids_at_both_ends
             else dict.fromkeys(trunk, "portal trunk"))
    for side, kids in sides.items():
        for c in kids:
            names[c] = f"{side} portal vein"
    for b, name in names.items():
        result.branches[b] = replace(result.branches[b], name=name)
    if not sides["right"] or not sides["left"]:
        result.warnings.append("The portal tree does not reach both liver halves; the portal "
                               "bifurcation is approximate.")


def _end_of(result: VesselResult, b: int, child: int) -> int:
    """Which end (0 first point, 1 last) of branch `b` its child starts from."""
    p = np.asarray(result.branches[b].points_lps_mm)
    c0 = np.asarray(result.branches[child].points_lps_mm[0])
    return int(np.linalg.norm(p[-1] - c0) < np.linalg.norm(p[0] - c0))


def _name_hepatic(result: VesselResult) -> None:
    """Right, middle and left hepatic veins: the three largest vessel trees (by volume inside the
    liver) draining into the hepatic root (IVC / confluence), ordered by LPS x (right = smallest).

    The tree is opened from the root, always at the branch whose split is most balanced (a
    common trunk of the middle and left veins splits into two large veins; a vein giving off a
    twig does not), until three substantial veins hang off the opened part. An opened branch
    that other veins join halfway along keeps its own volume as a vein: veins cut from the IVC
    by partial volume are joined to the nearest vein across the gap, which is then their parent
    but still a vein itself (not the IVC, which veins join at its end).
    """
    root = result.roots.get(HEPATIC)
    if root is None:
        return
    mass = subtree_volume_mm3(result)
    total = max(mass[root], 1e-9)
    own = {b: result.branches[b].inside_volume_mm3 for b in mass}
    frontier, alone = [root], set()     # alone: branches standing for their own volume only

    def size(f):
        return own[f] if f in alone else mass[f]
    while sum(size(f) >= 0.08 * total for f in frontier) < 3:
        open_ = [f for f in frontier if result.branches[f].children and f not in alone]
        if not open_:
            break

        def balance(f):
            kids = sorted((mass[c] for c in result.branches[f].children), reverse=True)
            return kids[1] if len(kids) > 1 else 0.0
        best = max(open_, key=balance)
        if balance(best) < 0.04 * total:
            best = max(open_, key=mass.get)      # a plain continuation: walk down it
        frontier.extend(result.branches[best].children)
        if best != root and own[best] >= 0.08 * total and _joined_midway(result, best):
            alone.add(best)
        else:
            frontier.remove(best)
    candidates = [f for f in sorted(frontier, key=size, reverse=True)[:3]
                  if size(f) >= 0.08 * total]
    if len(candidates) < 3:
        result.warnings.append("Fewer than three hepatic veins were identified; place the hepatic "
                               "vein landmarks by hand for the segments.")
    centroid_x = {b: np.mean([p[0] for s in ([b] if b in alone else result.subtree(b))
                              for p in result.branches[s].points_lps_mm]) for b in candidates}
    ordered = sorted(candidates, key=centroid_x.get)
    names = (HEPATIC_VEIN_NAMES if len(ordered) == 3
             else ("right", "left") if len(ordered) == 2 else ("right",))
    for b, name in zip(ordered, names):
        result.hepatic_veins[name] = b
        result.branches[b] = replace(result.branches[b], name=f"{name} hepatic vein")


def _joined_midway(result: VesselResult, b: int, end_mm: float = 10.0) -> bool:
    """Whether a child of branch `b` starts beside it more than `end_mm` before its end."""
    p = np.asarray(result.branches[b].points_lps_mm)
    to_end = np.r_[np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1)[::-1])[::-1], 0.0]
    for c in result.branches[b].children:
        start = np.asarray(result.branches[c].points_lps_mm[0])
        if to_end[np.argmin(np.linalg.norm(p - start, axis=1))] > end_mm:
            return True
    return False


# --------------------------------------------------------------------------------------------
# Corrections (the GUI's click tools). Each returns a new result, re-analysed.


def branch_at(result: VesselResult, point_lps_mm, *, max_distance_mm: float = 10.0,
              system: int | None = None) -> int | None:
    """The branch (of `system`, or of either) whose centerline passes nearest to a clicked
    point (None if none is within `max_distance_mm`)."""
    best, best_d = None, max_distance_mm
    p = np.asarray(point_lps_mm, float)
    for b in result.branches.values():
        if system is not None and b.system != system:
            continue
        d = float(np.min(np.linalg.norm(np.asarray(b.points_lps_mm) - p, axis=1)))
        if d <= best_d:
            best, best_d = b.id, d
    return best


def _relabel(result: VesselResult, liver: sitk.Image, point_lps_mm, value: int) -> VesselResult:
    b = branch_at(result, point_lps_mm)
    if b is None:
        raise SegmentationError("No vessel branch lies within 10 mm of the clicked point; click "
                                "on the vessel itself.")
    ids = result.subtree(b)
    labels = sitk.GetArrayFromImage(result.vessels)
    labels[np.isin(sitk.GetArrayViewFromImage(result.branch_map), ids)] = value
    return _reanalysed(result, labels, liver)


def _reanalysed(result: VesselResult, labels: np.ndarray, liver: sitk.Image) -> VesselResult:
    new = analyse_vessels(image_from_array(labels.astype(np.uint8), result.vessels), liver)
    new.threshold_hu = result.threshold_hu
    new.notes = result.notes + ["Corrected by hand."]
    return new


def remove_branch(result: VesselResult, liver: sitk.Image, point_lps_mm) -> VesselResult:
    """Remove the clicked branch and everything it feeds (a wrong branch or a leak)."""
    return _relabel(result, liver, point_lps_mm, 0)


def assign_branch(result: VesselResult, liver: sitk.Image, point_lps_mm,
                  system: int) -> VesselResult:
    """Move the clicked branch and its subtree to the portal (1) or hepatic (2) system."""
    if system not in (PORTAL, HEPATIC):
        raise ValueError("system must be 1 (portal) or 2 (hepatic veins and IVC)")
    return _relabel(result, liver, point_lps_mm, system)


def add_branch(result: VesselResult, ct: sitk.Image, liver: sitk.Image, seed_lps_mm,
               system: int, *, reach_mm: float = 25.0, smoothing_mm: float = 1.2,
               background_mm: float = 8.0) -> VesselResult:
    """Add the vessel under a click: voxels around the seed (within `reach_mm`) brighter than
    the local parenchyma by the result's own vessel threshold, connected to the seed."""
    if system not in (PORTAL, HEPATIC):
        raise ValueError("system must be 1 (portal) or 2 (hepatic veins and IVC)")
    _check_inputs(ct, liver)
    seed = np.round(lps_to_index(ct, seed_lps_mm)[0]).astype(int)
    if np.any(seed < 0) or np.any(seed >= np.array(ct.GetSize())[::-1]):
        raise SegmentationError("The clicked point lies outside the scan.")
    sp = np.array(ct.GetSpacing())[::-1]
    pad = np.ceil((reach_mm + 2 * background_mm) / sp).astype(int)
    box = tuple(slice(max(int(c) - p, 0), min(int(c) + p + 1, n))
                for c, p, n in zip(seed, pad, np.array(ct.GetSize())[::-1]))
    crop = _crop_image(ct, box)
    inside = sitk.GetArrayViewFromImage(liver)[box] > 0
    if not inside.any():
        raise SegmentationError("The clicked point is not in or near the liver.")
    _, contrast, _, vessel_contrast_hu = _local_contrast(crop, inside, smoothing_mm,
                                                         background_mm)
    low = result.threshold_hu if result.threshold_hu is not None else 0.45 * vessel_contrast_hu
    local = seed - [b.start for b in box]
    zyx = np.indices(inside.shape, dtype=np.float32)
    near = sum(((zyx[i] - local[i]) * sp[i]) ** 2 for i in range(3)) <= reach_mm ** 2
    labels = sitk.GetArrayFromImage(result.vessels)
    # only voxels no system holds yet: a correction never repaints the other system
    candidate = (contrast > 0.7 * low) & near & inside & (labels[box] == 0)
    cc, _ = ndi.label(candidate, np.ones((3, 3, 3), bool))
    # a click beside a thin vessel snaps to the vessel within 3 mm
    hits = np.argwhere(cc > 0)
    gap = np.linalg.norm((hits - local) * sp, axis=1) if len(hits) else np.array([np.inf])
    if gap.min() > 3.0:
        raise SegmentationError("No enhanced vessel under the clicked point; click on the centre "
                                "of the vessel.")
    labels[box][cc == cc[tuple(hits[np.argmin(gap)])]] = system
    return _reanalysed(result, labels, liver)
