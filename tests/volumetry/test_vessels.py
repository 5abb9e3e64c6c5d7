"""Hepatic vessels: centerline graphs on drawn trees (analytic answers), the whole pipeline on the
synthetic patient and on 3D-IRCADb-01, and the correction tools."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage
import SimpleITK as sitk

from liverplan.geometry import image_from_array, index_to_lps
from liverplan.volumetry import vessels as V
from liverplan.volumetry.centerlines import Branch, skeletonize_mask

SPACING = (1.5, 1.5, 1.5)


def _reference(size=(80, 64, 60)) -> sitk.Image:
    ref = sitk.Image(list(size), sitk.sitkUInt8)
    ref.SetSpacing(SPACING)
    ref.SetOrigin((-60.0, -48.0, -45.0))
    return ref


def _tube(a: np.ndarray, p0, p1, r_vox: float, value: int) -> None:
    """Paint a straight tube between two (z, y, x) voxel points."""
    zyx = np.indices(a.shape).reshape(3, -1).T.astype(float)
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    t = np.clip((zyx - p0) @ d / (d @ d), 0, 1)
    dist = np.linalg.norm(zyx - (p0 + t[:, None] * d), axis=1)
    a.reshape(-1)[dist <= r_vox] = value


BIF_ZYX = (25, 25, 40)


def drawn_case(middle_left_trunk: bool = False, cut_from_ivc: bool = False):
    """A liver block with a portal tree (trunk from below, right and left portal veins, each
    with two branches) and three hepatic veins draining into an IVC behind the liver (with
    middle_left_trunk, the middle and left veins share a trunk that splits 27 mm in front of
    the IVC; with cut_from_ivc, the right and middle veins meet 16 mm in front of the IVC
    without reaching it, 12 mm to the right of the left vein's first third). Array x grows to
    the patient's left (LPS), so the right liver is at small x."""
    ref = _reference()
    liver = np.zeros(tuple(reversed(ref.GetSize())), np.uint8)
    liver[5:56, 8:52, 6:74] = 1
    v = np.zeros_like(liver)
    _tube(v, (0, 25, 40), BIF_ZYX, 3, 1)                    # trunk (enters from below)
    _tube(v, BIF_ZYX, (25, 25, 22), 2.5, 1)                  # right portal vein
    _tube(v, (25, 25, 22), (12, 18, 10), 2, 1)
    _tube(v, (25, 25, 22), (40, 35, 10), 2, 1)
    _tube(v, BIF_ZYX, (25, 25, 58), 2.5, 1)                  # left portal vein
    _tube(v, (25, 25, 58), (15, 14, 68), 2, 1)
    _tube(v, (25, 25, 58), (38, 20, 68), 2, 1)
    _tube(v, (0, 56, 36), (59, 56, 36), 4, 2)                # IVC, behind the liver
    if cut_from_ivc:
        _tube(v, (50, 54, 36), (36, 20, 62), 2, 2)           # left hepatic vein
        for x_end in (12, 30):                               # right, middle: a U
            _tube(v, (46.5, 45.5, 34), (36, 20, x_end), 2, 2)
    elif middle_left_trunk:
        _tube(v, (50, 54, 36), (36, 20, 12), 2, 2)           # right hepatic vein
        _tube(v, (50, 54, 36), (42, 38, 36), 2.5, 2)         # middle-left trunk
        for x_end in (28, 62):                               # middle, left hepatic veins
            _tube(v, (42, 38, 36), (36, 20, x_end), 2, 2)
    else:
        for x_end in (12, 34, 62):                           # right, middle, left hepatic veins
            _tube(v, (50, 54, 36), (36, 20, x_end), 2, 2)
    return image_from_array(v, ref), image_from_array(liver, ref), ref


def test_skeleton_of_a_tube_has_one_branch_with_its_radius():
    a = np.zeros((40, 30, 30), bool)
    zz, yy, xx = np.indices(a.shape)
    a[((yy - 15) ** 2 + (xx - 15) ** 2 <= 16) & (zz > 3) & (zz < 36)] = True
    sk = skeletonize_mask(a, np.array([1.0, 1.0, 1.0]))
    assert len(sk.branch_voxels) == 1
    assert len(sk.branch_voxels[0]) >= 25
    assert np.median(sk.radii_mm[0]) == pytest.approx(4.5, abs=0.75)   # r = 4 voxels + edge


def test_drawn_trees_bifurcation_sides_and_hepatic_veins():
    vessels, liver, ref = drawn_case()
    result = V.analyse_vessels(vessels, liver)
    expected = index_to_lps(ref, [BIF_ZYX])[0]
    assert np.linalg.norm(np.subtract(result.portal_bifurcation_lps_mm, expected)) <= 5.0
    right = np.concatenate([np.asarray(result.branches[s].points_lps_mm)
                            for b in result.portal_sides["right"] for s in result.subtree(b)])
    left = np.concatenate([np.asarray(result.branches[s].points_lps_mm)
                           for b in result.portal_sides["left"] for s in result.subtree(b)])
    # LPS: the patient's right has the smaller x
    assert right[:, 0].max() < expected[0] + 3.0 < left[:, 0].min() + 6.0
    assert set(result.hepatic_veins) == {"right", "middle", "left"}
    xs = {n: np.mean(np.asarray(result.branches[b].points_lps_mm)[:, 0])
          for n, b in result.hepatic_veins.items()}
    assert xs["right"] < xs["middle"] < xs["left"]
    # parent/child links are consistent and every branch belongs to one system tree
    for b in result.branches.values():
        for c in b.children:
            assert result.branches[c].parent == b.id
            assert result.branches[c].system == b.system
    # each voxel of the map points to a branch of its own system
    labels = sitk.GetArrayViewFromImage(vessels)
    bmap = sitk.GetArrayViewFromImage(result.branch_map)
    systems = np.array([0] + [result.branches[i].system if i in result.branches else 0
                              for i in range(1, int(bmap.max()) + 1)])
    assert np.array_equal(systems[bmap[labels > 0]], labels[labels > 0])
    # the portal tree is read from the portal vessels alone (segment_vessels judges the twigs
    # on a portal-only analysis)
    portal = V.analyse_vessels(image_from_array((np.asarray(labels) == V.PORTAL).astype(np.uint8),
                                                vessels), liver)
    assert portal.portal_bifurcation_lps_mm == result.portal_bifurcation_lps_mm
    assert portal.portal_sides == result.portal_sides
    assert {b.id: b for b in portal.branches.values() if b.system == V.PORTAL} == \
        {b.id: b for b in result.branches.values() if b.system == V.PORTAL}


def test_a_trunk_outside_the_liver_divides_where_the_ways_to_the_two_livers_part():
    """The portal trunk runs below the liver mask (3D-IRCADb-01 and the synthetic patient: the
    automatic liver leaves the hilum out) and divides there into the right and left portal
    veins, after a vein left it lower down, running to the right outside the liver, and another
    5 mm before the bifurcation, into the right liver. The tree is read from the trunk: the
    bifurcation is where the ways to the right and the left liver part, the branch leaving at
    its confluence feeds the right liver, and the trunk is named the trunk (read from the hilum,
    it was a side's first branch: "left portal vein" on 3D-IRCADb-01)."""
    shape = (100, 60, 90)                                     # z, y, x on a 1 mm grid
    ref = sitk.Image([shape[2], shape[1], shape[0]], sitk.sitkUInt8)
    liver = np.zeros(shape, np.uint8)
    liver[48:95, 10:55, 5:85] = 1
    v = np.zeros(shape, np.uint8)
    _tube(v, (10, 30, 50), (44, 30, 50), 5, 1)                # trunk, below the liver
    _tube(v, (33, 30, 50), (33, 30, 15), 2, 1)                # a vein leaving it lower down
    _tube(v, (39, 30, 50), (39, 48, 50), 2, 1)                # one at the bifurcation, into
    _tube(v, (39, 48, 50), (70, 48, 20), 2, 1)                # the right liver's back
    for x_end, twigs in ((25, (10, 15)), (75, (80, 70))):     # right, left portal veins
        _tube(v, (44, 30, 50), (60, 30, x_end), 3, 1)
        for z, x in zip((80, 75), twigs):
            _tube(v, (60, 30, x_end), (z, 20 + (x % 20), x), 2, 1)
    result = V.analyse_vessels(image_from_array(v, ref), image_from_array(liver, ref))
    expected = index_to_lps(ref, [(44, 30, 50)])[0]
    assert np.linalg.norm(np.subtract(result.portal_bifurcation_lps_mm, expected)) <= 3.0
    trunk = [b for b in result.branches.values() if b.name == "portal trunk"]
    assert trunk and all(np.asarray(b.points_lps_mm)[:, 2].max() <= 46 for b in trunk)
    assert result.branches[result.roots[V.PORTAL]].name == "portal trunk"
    for side, on_side in (("right", lambda x: x <= 52), ("left", lambda x: x >= 48)):
        points = np.concatenate([result.branches[s].points_lps_mm for b in result.portal_sides[side]
                                 for s in result.subtree(b)])
        assert points[:, 2].min() >= 38 and on_side(points[:, 0]).all(), side
    back = [b for b in result.portal_sides["right"]
            if np.asarray(result.branches[b].points_lps_mm)[:, 1].max() > 45]
    assert len(back) == 1
    assert not any("both liver halves" in w for w in result.warnings)


def test_a_short_root_gives_each_end_the_side_its_branches_supply():
    """A portal root cut to a stub at the hilum (3D-IRCADb-01's reference liver: 3 mm, both ends
    at the same x) with branches at both ends: the branches at one end go to the side their
    trees lie on. Told by the ends' own x, all went left and no branch got a segment."""
    def branch(i, points, parent=None, children=()):
        return Branch(i, V.PORTAL, tuple(points), (3.0,) * len(points), parent, children,
                      depths_mm=(1.0,) * len(points))
    branches = {0: branch(0, [(0, 0, 0), (0, 1.5, 0), (0, 3, 0)], children=(1, 2, 3)),
                1: branch(1, [(0, 0, 0), (20, -5, 0), (40, -10, 5)], 0),       # to the left
                2: branch(2, [(0, 3, 0), (-20, 5, 0), (-50, 10, -5)], 0),     # to the right
                3: branch(3, [(0, 3, 0), (-5, 10, 20), (-10, 15, 35)], 0)}    # up, on the right
    result = V.VesselResult(None, None, branches, {V.PORTAL: 0}, None, {})
    V._name_portal(result)
    assert result.portal_sides == {"right": [2, 3], "left": [1]}
    assert not result.warnings


def test_veins_cut_from_the_ivc_and_joined_halfway_along_another_are_three_veins():
    """Partial volume cut the right and middle veins from the IVC where they meet: their piece
    is joined to the left vein across the gap, halfway along it. The left vein is then their
    parent and is still a vein (it was lost as a mere trunk: seed 1, end to end)."""
    vessels, liver, _ = drawn_case(cut_from_ivc=True)
    result = V.analyse_vessels(vessels, liver)
    assert set(result.hepatic_veins) == {"right", "middle", "left"}
    xs = {n: np.mean(np.asarray(result.branches[b].points_lps_mm)[:, 0])
          for n, b in result.hepatic_veins.items()}
    assert xs["right"] < xs["middle"] < xs["left"]
    assert not result.warnings


def test_branch_round_trips_through_dict():
    b = Branch(id=3, system=1, points_lps_mm=((0.0, 1.0, 2.0), (1.0, 1.0, 2.0)),
               radii_mm=(2.0, 1.5), parent=1, children=(4, 5), name="left portal vein",
               depths_mm=(3.0, 4.0))
    assert Branch.from_dict(json.loads(json.dumps(b.to_dict()))) == b
    assert b.length_mm == pytest.approx(1.0)


def test_corrections_remove_and_reassign_a_branch():
    vessels, liver, ref = drawn_case()
    result = V.analyse_vessels(vessels, liver)
    click = index_to_lps(ref, [(36, 20, 62)])[0]           # tip of the left hepatic vein
    moved = V.assign_branch(result, liver, click, V.PORTAL)
    before = sitk.GetArrayViewFromImage(result.vessels)
    after = sitk.GetArrayViewFromImage(moved.vessels)
    changed = before != after
    assert changed.any() and np.all(after[changed] == V.PORTAL)
    removed = V.remove_branch(result, liver, click)
    gone = sitk.GetArrayViewFromImage(removed.vessels)
    assert np.all(gone[changed] == 0)
    assert (gone > 0).sum() == (before > 0).sum() - changed.sum()
    with pytest.raises(Exception, match="No vessel branch"):
        V.remove_branch(result, liver, (500.0, 500.0, 500.0))


def test_add_branch_grows_from_a_click_on_a_bright_vessel():
    vessels, liver, ref = drawn_case()
    rng = np.random.default_rng(0)
    hu = np.where(sitk.GetArrayViewFromImage(liver) > 0, 100.0, -100.0)
    hu[sitk.GetArrayViewFromImage(vessels) > 0] = 170.0
    hu += rng.normal(0, 5, hu.shape)
    ct = image_from_array(hu.astype(np.float32), ref)
    labels = sitk.GetArrayFromImage(vessels)
    lost = np.zeros_like(labels, bool)
    lost[:, :, 60:] = labels[:, :, 60:] == 1                 # a portal branch tip is missing
    labels[lost] = 0
    result = V.analyse_vessels(image_from_array(labels, ref), liver)
    result.threshold_hu = 30.0
    seed = index_to_lps(ref, [(36, 21, 66)])[0]              # on the lower lost branch
    fixed = V.add_branch(result, ct, liver, seed, V.PORTAL)
    got = sitk.GetArrayViewFromImage(fixed.vessels)
    zyx = np.indices(lost.shape)
    reach = sum(((zyx[i] - c) * 1.5) ** 2 for i, c in enumerate((36, 21, 66))) <= 25.0 ** 2
    assert (got[lost & reach] == V.PORTAL).mean() > 0.9
    painted = got != sitk.GetArrayViewFromImage(result.vessels)
    near_truth = ndimage.binary_dilation(sitk.GetArrayViewFromImage(vessels) > 0, iterations=2)
    assert np.all(near_truth[painted])                     # only the vessel and its rim


def _dice(a, b):
    return 2 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


def test_synthetic_patient_vessels(synthetic_patient):
    from liverplan.io import load
    case = synthetic_patient
    ct = load(case.dicom_dir).image
    liver = sitk.ReadImage(str(case.truth_dir / "liver.nii.gz"))
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(case.truth_dir / "vessels.nii.gz")))
    tumors = sitk.ReadImage(str(case.truth_dir / "tumors.nii.gz"))
    liver.CopyInformation(ct)
    tumors.CopyInformation(ct)
    liver = sitk.Cast(liver, sitk.sitkUInt8)
    result = V.segment_vessels(ct, liver, tumors=tumors)
    got = sitk.GetArrayViewFromImage(result.vessels)
    inside = sitk.GetArrayViewFromImage(liver) > 0
    for system in (V.PORTAL, V.HEPATIC):
        assert _dice((got == system) & inside, (truth == system) & inside) >= 0.70
    # the portal branches cut off by a tumour are followed beyond it and stay portal: 41 of
    # their 75 voxels portal, none hepatic
    pieces, _ = ndimage.label(truth == V.PORTAL, np.ones((3, 3, 3)))
    sizes = np.bincount(pieces.ravel())
    sizes[0] = 0
    beyond = (pieces > 0) & (pieces != np.argmax(sizes))
    assert np.count_nonzero(got[beyond] == V.PORTAL) >= 0.45 * np.count_nonzero(beyond)
    assert np.count_nonzero(got[beyond] == V.HEPATIC) <= 0.05 * np.count_nonzero(beyond)
    bif = case.truth["markers"]["portal_bifurcation_lps_mm"]
    assert np.linalg.norm(np.subtract(result.portal_bifurcation_lps_mm, bif)) <= 10.0
    right = [result.branches[b] for b in result.portal_sides["right"]]
    assert all(np.mean(np.asarray(b.points_lps_mm)[:, 0]) < bif[0] + 5 for b in right)
    # the segmented tree's territories: 2-8 measured 0.88-0.95; segment 1 0.78 (generator 5:
    # the caudate's thin twigs, which the truth's territory follows, hardly show at 1.5 mm)
    from liverplan.volumetry import segments as S
    segs = S.couinaud_segments(liver, result)
    assert segs.method == S.PORTAL_TERRITORIES
    seg = sitk.GetArrayViewFromImage(segs.segments)
    truth_seg = sitk.GetArrayFromImage(sitk.ReadImage(str(case.truth_dir / "segments.nii.gz")))
    for s in range(1, 9):
        assert _dice(seg == s, truth_seg == s) >= (0.75 if s == 1 else 0.85), s


def test_other_synthetic_anatomy_vessels(other_synthetic_patient):
    """Seed 1: the right and middle hepatic veins meet the IVC across a seam of parenchyma-like
    voxels (so they are cut from it) and run against L1, and its portal trunk below the liver
    is 0.46 times as wide as the IVC. Both systems were lost before (Dice 0.62 / 0.37: the veins
    were taken for a portal branch that the tumour interrupts, the trunk was not a root)."""
    from liverplan.io import load
    case = other_synthetic_patient
    ct = load(case.dicom_dir).image
    liver, tumors = (sitk.ReadImage(str(case.truth_dir / f"{n}.nii.gz"))
                     for n in ("liver", "tumors"))
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(case.truth_dir / "vessels.nii.gz")))
    liver.CopyInformation(ct)
    tumors.CopyInformation(ct)
    result = V.segment_vessels(ct, sitk.Cast(liver, sitk.sitkUInt8), tumors=tumors)
    got = sitk.GetArrayViewFromImage(result.vessels)
    inside = sitk.GetArrayViewFromImage(liver) > 0
    for system in (V.PORTAL, V.HEPATIC):      # measured 0.81 / 0.88
        assert _dice((got == system) & inside, (truth == system) & inside) >= 0.75, system
    bif = case.truth["markers"]["portal_bifurcation_lps_mm"]
    assert np.linalg.norm(np.subtract(result.portal_bifurcation_lps_mm, bif)) <= 10.0
    assert set(result.hepatic_veins) == set(V.HEPATIC_VEIN_NAMES)


def test_caudate_branch_running_against_the_ivc_stays_portal():
    """Seed 2: the caudate's portal branch runs up against the IVC at 0.65 of the liver's height,
    below every hepatic vein's junction (0.75-0.88). It joined the hepatic veins while the IVC was
    kept clear only below 0.6: 53 of its segment's 293 portal voxels hepatic, segment 1 Dice 0.54
    (measured now 7 hepatic, Dice 0.77)."""
    from liverplan.io import load, phantom
    from liverplan.volumetry import segments as S
    case = phantom.cached(seed=2, followup=False)
    ct = load(case.dicom_dir).image
    liver, tumors, truth, truth_seg = (sitk.ReadImage(str(case.truth_dir / f"{n}.nii.gz"))
                                       for n in ("liver", "tumors", "vessels", "segments"))
    liver = sitk.Cast(liver > 0, sitk.sitkUInt8)
    liver.CopyInformation(ct)
    tumors.CopyInformation(ct)
    result = V.segment_vessels(ct, liver, tumors=tumors)
    got = sitk.GetArrayViewFromImage(result.vessels)
    caudate = (sitk.GetArrayViewFromImage(truth) == V.PORTAL) & (
        sitk.GetArrayViewFromImage(truth_seg) == 1)
    assert np.count_nonzero(got[caudate] == V.HEPATIC) <= 0.05 * np.count_nonzero(caudate)
    segs = S.couinaud_segments(liver, result, tumors=tumors)
    assert _dice(sitk.GetArrayViewFromImage(segs.segments) == 1,
                 sitk.GetArrayViewFromImage(truth_seg) == 1) >= 0.70


@pytest.mark.realdata
def test_ircadb_vessels(ircadb, ircadb_reference_vessels):
    _, labels = ircadb
    _, _, result = ircadb_reference_vessels
    ref = sitk.GetArrayFromImage(labels)
    got = sitk.GetArrayViewFromImage(result.vessels)
    inside = ref > 0
    # measured with the reference lesions: portal 0.67, hepatic 0.61 (target 0.70 each, not
    # met yet); without them portal 0.64 / hepatic 0.59 while a portal branch running up toward
    # the dome was taken for a vein draining into the IVC, 0.62 / 0.58 while the portal trunk
    # was cut from the tree
    assert _dice((got > 0) & inside, (ref == 3) | (ref == 4)) >= 0.62
    assert _dice((got == V.PORTAL) & inside, ref == 3) >= 0.64
    assert _dice((got == V.HEPATIC) & inside, ref == 4) >= 0.57
    # the bifurcation against the same definition read from the expert's portal vein with its
    # trunk (the IVC found in the CT keeps the portal root at the hilum; it was 71 mm off
    # without it)
    from benchmarks.cases import ircadb_bifurcation_lps_mm
    assert np.linalg.norm(np.subtract(result.portal_bifurcation_lps_mm,
                                      ircadb_bifurcation_lps_mm(labels))) <= 10.0


def _ivc_case():
    """A liver block with the IVC (r 8 mm) against its back over its whole height and the aorta
    (r 8 mm) 25 mm further back, on a 2 mm grid (z, y, x)."""
    shape = (60, 80, 80)
    inside = np.zeros(shape, bool)
    inside[5:55, 10:50, 10:70] = True
    zz, yy, xx = np.indices(shape)
    ivc = ((yy - 54) ** 2 + (xx - 30) ** 2 <= 16) & (zz < 58)
    aorta = ((yy - 66) ** 2 + (xx - 50) ** 2 <= 16)
    return inside, ivc, aorta


def test_ivc_is_the_blood_column_against_the_liver_not_the_aorta():
    inside, ivc, aorta = _ivc_case()
    found = V._ivc(ivc | aorta, inside, np.array([2.0, 2.0, 2.0]))
    z = np.nonzero(inside.any(axis=(1, 2)))[0]
    # followed over the liver's whole height, never into the aorta, nothing above the liver
    assert np.array_equal(found[z[0]:z[-1] + 1], ivc[z[0]:z[-1] + 1])
    assert not (found & aorta).any() and not found[z[-1] + 1:].any()
    # a liver mask that wraps the IVC's upper part (as a segmented liver often does): the IVC
    # is followed through it
    wrapped = inside.copy()
    wrapped[40:55, 45:62, 20:40] = True
    found = V._ivc(ivc | aorta, wrapped, np.array([2.0, 2.0, 2.0]))
    assert np.array_equal(found[z[0]:z[-1] + 1], ivc[z[0]:z[-1] + 1])
    # a thin vessel against it outside the liver (a caudate branch the liver mask left out)
    # is not part of it
    branch = np.zeros_like(ivc)
    branch[15:35, 54, 34:45] = True
    found = V._ivc(ivc | aorta | branch, inside, np.array([2.0, 2.0, 2.0]))
    assert np.array_equal(found[z[0]:z[-1] + 1], ivc[z[0]:z[-1] + 1])
    # without a column against the liver there is no IVC
    assert not V._ivc(aorta, inside, np.array([2.0, 2.0, 2.0])).any()


def test_blood_leaves_out_the_rim_of_bone():
    smooth = np.zeros((3, 40, 40), np.float32)
    smooth[:, 10:20, 10:20] = 700.0                          # bone
    smooth[:, 9, 10:20] = 180.0                              # its partial-volume rim
    smooth[:, 30:34, 30:34] = 180.0                          # a vessel
    blood = V._blood(smooth, 150.0, 400.0, np.array([1.0, 1.0, 1.0]))
    assert blood[:, 30:34, 30:34].all()
    assert not blood[:, 9].any() and not blood[:, 10:20, 10:20].any()


def test_portal_trunk_is_kept_through_its_thinner_veins_outside_the_liver():
    """The portal trunk below the liver (r 5 mm) splits into its right and left veins (r 3 mm,
    most of them outside the liver) next to a thicker IVC (r 8 mm): those veins are kept as part
    of the trunk, not dropped like the other vessels outside the liver (they were dropped when
    they had to be as thick as the IVC, cutting the trunk from the intrahepatic tree)."""
    shape = (80, 90, 90)                                      # z, y, x on a 1 mm grid
    liver = np.zeros(shape, bool)
    liver[30:75, 10:60, 10:80] = True
    ivc = np.zeros(shape, np.uint8)
    _tube(ivc, (-5, 70, 45), (85, 70, 45), 8, 1)             # IVC behind the liver
    v = ivc.copy()
    _tube(v, (0, 30, 50), (20, 30, 50), 5, 1)                # portal trunk below the liver
    _tube(v, (20, 30, 50), (34, 30, 30), 3, 1)               # right and left portal veins
    _tube(v, (20, 30, 50), (34, 30, 70), 3, 1)
    for x_end in (20, 45, 70):                                # hepatic veins into the IVC
        _tube(v, (66, 62, 45), (56, 20, x_end), 2.5, 1)
    sk = skeletonize_mask(v > 0, np.ones(3))
    grid = sitk.Image([shape[2], shape[1], shape[0]], sitk.sitkUInt8)    # LPS = (x, y, z)
    roots, sources, dropped = V._find_roots(sk, liver, ivc > 0, grid, None, None, [])
    trunk_z = np.mean(sk.branch_voxels[roots[V.PORTAL]][:, 0])
    assert trunk_z < 30 and np.mean(sk.branch_voxels[roots[V.HEPATIC]][:, 1]) > 60
    veins = [i for i, p in enumerate(sk.branch_voxels)
             if np.any((p[:, 0] > 22) & (p[:, 0] < 29) & (np.abs(p[:, 1] - 30) <= 3))]
    assert len(veins) == 2 and not set(veins) & set(dropped)
    assert set(veins) <= set(sources[V.PORTAL])


def _hilum(ivc_radius: float, liver_back: int = 60):
    """On a 1 mm grid (z, y, x): a liver block, the IVC behind it, and the portal trunk entering
    the hilum from below with its right and left portal veins. (liver, IVC, vessels)"""
    shape = (80, 90, 90)
    liver = np.zeros(shape, bool)
    liver[30:75, 10:liver_back, 10:80] = True
    ivc = np.zeros(shape, np.uint8)
    _tube(ivc, (-5, 72, 45), (85, 72, 45), ivc_radius, 1)
    v = ivc.copy()
    _tube(v, (0, 30, 50), (40, 30, 50), 4.5, 1)               # trunk into the hilum
    _tube(v, (40, 30, 50), (45, 30, 25), 3, 1)                # right and left portal veins
    _tube(v, (40, 30, 50), (45, 30, 75), 3, 1)
    return liver, ivc, v


def _grid(v: np.ndarray) -> sitk.Image:
    return sitk.Image([v.shape[2], v.shape[1], v.shape[0]], sitk.sitkUInt8)    # LPS = (x, y, z)


def test_portal_trunk_half_as_wide_as_the_ivc_is_the_portal_root():
    """A portal vein of 9 mm against an IVC of 20 mm (both normal) roots the portal tree: the
    trunk was once required to be 0.6 times as wide as the IVC and was found only as a last
    resort, with a warning (in the synthetic patient of seed 1, not at all)."""
    liver, ivc, v = _hilum(ivc_radius=10)
    sk = skeletonize_mask(v > 0, np.ones(3))
    warnings = []
    roots, _, _ = V._find_roots(sk, liver, ivc > 0, _grid(v), None, None, warnings)
    assert np.mean(sk.branch_voxels[roots[V.PORTAL]][:, 0]) < 30
    assert not warnings         # found as the trunk, not as the last resort


def test_thin_branch_entering_the_liver_from_the_trunk_outside_it_is_kept():
    """A thin branch that leaves the portal trunk below the liver mask and divides as it enters
    the liver (the caudate's, off the left portal vein in the hilar plate) links the trunk to
    the intrahepatic tree and is kept; a thin vein leaving the trunk away from the liver is
    still dropped (dropped, the caudate's link left its part in the liver joined across a gap
    to whatever lay nearest: the synthetic patients of seeds 0 and 1 lost segment 1's branch)."""
    liver, ivc, v = _hilum(ivc_radius=8)
    _tube(v, (20, 30, 50), (27, 42, 58), 1.5, 1)              # the link, below the liver
    _tube(v, (27, 42, 58), (55, 50, 60), 1.5, 1)              # dividing as it enters it
    _tube(v, (27, 42, 58), (50, 38, 72), 1.5, 1)
    _tube(v, (12, 30, 50), (4, 30, 80), 1.5, 1)               # a vein away from the liver
    sk = skeletonize_mask(v > 0, np.ones(3))
    roots, sources, dropped = V._find_roots(sk, liver, ivc > 0, _grid(v), None, None, [])

    def branches_at(zyx):
        return {i for i, p in enumerate(sk.branch_voxels)
                if np.min(np.linalg.norm(p - np.asarray(zyx), axis=1)) <= 1.5}
    link, away = branches_at((24, 36, 54)), branches_at((8, 30, 65))
    assert link and away and not link & away
    assert not link & set(dropped) and away <= set(dropped)


def test_a_weak_branch_is_seeded_from_its_trunk_outside_the_liver():
    """Inside the liver, a faint branch (above the low threshold only) touching a vessel just
    outside the liver and running 10 mm deep is kept; a faint layer along the liver's edge
    against that vessel (partial volume) and a faint piece not touching it are not."""
    inside = np.zeros((40, 40, 40), bool)
    inside[10:, :, :] = True
    mask = np.zeros_like(inside)
    mask[5:10, 18:22, 5:35] = True                            # a vessel under the liver
    weak = np.zeros_like(inside)
    weak[10:20, 19:21, 8:10] = True                           # branch 10 mm into the liver
    weak[10:12, 19:21, 20:30] = True                          # edge layer, 2 mm deep
    weak[15:30, 30:32, 30:32] = True                          # deep, touching nothing
    got = V._seeded_from_outside(mask, weak, inside, np.ones(3))
    assert got[10:20, 19:21, 8:10].all() and got[mask].all()
    assert not got[10:12, 19:21, 20:30].any() and not got[15:30, 30:32, 30:32].any()


def _check_draining(liver, ivc, v, portal_along, vein_along) -> None:
    """On vessels `v` (1 mm grid): the branches lying along `portal_along` (two z, y, x points)
    do not root the hepatic front; those along `vein_along`, a vein cut from the IVC, do."""
    sk = skeletonize_mask(v > 0, np.ones(3))
    _, sources, _ = V._find_roots(sk, liver, ivc > 0, _grid(v), None, None, [])

    def along(p0, p1):
        p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
        d = p1 - p0
        return {i for i, p in enumerate(sk.branch_voxels) if len(p) >= 3 and np.all(
            np.linalg.norm(p - (p0 + np.clip((p - p0) @ d / (d @ d), 0, 1)[:, None] * d),
                           axis=1) <= 2.5)}
    portal, vein = along(*portal_along), along(*vein_along)
    assert portal and vein
    assert not portal & set(sources[V.HEPATIC])
    assert vein <= set(sources[V.HEPATIC])


def test_thin_branch_beside_the_ivc_is_no_vein_draining_into_it():
    """In the confluence region a vein that partial volume cut from the IVC still roots the
    hepatic front (it drains there); a thin branch ending as near the IVC is not: it is as
    often the caudate's portal branch, which runs up beside the IVC from the left portal vein
    (the synthetic patient of seed 4: its end was taken for a draining vein, and the branch and
    the caudate's territory went to the hepatic veins)."""
    liver, ivc, v = _hilum(ivc_radius=8, liver_back=66)
    _tube(v, (43, 30, 62), (74, 56, 60), 1.5, 1)              # caudate branch, up to the IVC
    _tube(v, (72, 20, 15), (72, 60, 36), 3, 1)                # a vein cut 4 mm from the IVC
    _check_draining(liver, ivc, v, ((43, 30, 62), (74, 56, 60)), ((72, 20, 15), (72, 60, 36)))


def test_branch_leaving_a_thicker_vessel_toward_the_ivc_is_no_vein_draining_into_it():
    """A 2.5 mm branch that leaves a 4.5 mm portal branch and runs up toward the IVC, ending
    19 mm from its axis in the confluence region, is that branch's distal branch, not a vein
    draining into the IVC (3D-IRCADb-01: a 40 mm portal branch running up toward the dome was
    taken for one, and the hepatic front took it: portal Dice 0.64 -> 0.67 without). A vein
    cut from the IVC whose far end gathers thinner tributaries still drains into it."""
    liver, ivc, v = _hilum(ivc_radius=6, liver_back=66)
    _tube(v, (45, 30, 25), (70, 35, 12), 4.5, 1)              # a thick right portal branch
    _tube(v, (57.5, 32.5, 18.5), (74, 55, 38), 2.5, 1)        # its branch up toward the IVC
    _tube(v, (72, 62, 42), (72, 40, 62), 3, 1)                # a vein cut 4 mm from the IVC,
    for end in ((66, 20, 70), (74, 25, 76)):                  # with two thinner tributaries
        _tube(v, (72, 40, 62), end, 2, 1)
    _check_draining(liver, ivc, v, ((60, 36, 22), (74, 55, 38)), ((72, 62, 42), (72, 36, 66)))


def test_a_stub_between_two_divisions_is_no_vein_draining_into_the_ivc():
    """Where the left portal vein divides twice 3 mm apart in the confluence region, the
    skeleton's piece between the divisions is as thick as the vein and ends within reach of
    the IVC, but it is no vein draining into it (3D-IRCADb-01 smoothed at 1.0 mm: such a 2 mm
    piece rooted the hepatic front, which took the whole left portal vein). A vein cut from the
    IVC still does."""
    liver, ivc, v = _hilum(ivc_radius=8, liver_back=66)
    _tube(v, (45, 30, 75), (62, 36, 62), 3, 1)               # the left portal vein goes on up
    _tube(v, (62, 36, 62), (64.5, 37, 60), 3, 1)             # 3 mm between two divisions
    _tube(v, (62, 36, 62), (72, 22, 72), 2, 1)
    _tube(v, (64.5, 37, 60), (74, 30, 50), 2, 1)
    _tube(v, (64.5, 37, 60), (72, 48, 68), 2, 1)
    _tube(v, (72, 20, 15), (72, 60, 36), 3, 1)               # a vein cut 4 mm from the IVC
    sk = skeletonize_mask(v > 0, np.ones(3))
    _, sources, _ = V._find_roots(sk, liver, ivc > 0, _grid(v), None, None, [])
    in_ivc = {i for i, p in enumerate(sk.branch_voxels) if np.mean(ivc[tuple(p.T)] > 0) >= 0.5}
    veins = [sk.branch_voxels[i] for i in set(sources[V.HEPATIC]) - in_ivc]
    assert len(veins) == 1 and np.all(veins[0][:, 0] == 72)       # the cut vein alone


def test_caudate_tip_beyond_the_layer_cut_around_the_ivc_stays_portal():
    """The layer kept clear around the IVC below the veins' junctions cuts a caudate portal
    branch that runs against the IVC for a stretch; its tip beyond is connected to neither root.
    Such a piece used to go to the system whose trunk is nearest (the IVC), so the tip and the
    caudate's territory were hepatic (the synthetic patient of seed 3: segment 1 Dice 0.66);
    it continues through the cut the vessel it was cut from."""
    from liverplan.progress import Steps
    liver, ivc, v = _hilum(ivc_radius=8, liver_back=66)
    path = [(45, 30, 62), (52, 58, 56), (56, 63, 53), (60, 63, 53), (66, 52, 62)]
    for a, b in zip(path[:-1], path[1:]):
        _tube(v, a, b, 1.5, 1)
    mask, lumen = v > 0, ivc > 0
    wall, clear = V._ivc_wall_and_clearance(lumen, mask, liver, np.ones(3))
    cut = clear & liver
    tip = np.zeros_like(mask)
    _tube(tip, path[-2], path[-1], 1.5, 1)
    tip &= mask & ~cut
    pieces, _ = ndimage.label(mask & ~cut)
    assert pieces[tuple(np.argwhere(tip)[0])] != pieces[30, 30, 50]    # the cut severs the tip
    grid = image_from_array(v, _grid(v))
    labels = V._separate(mask, grid, liver, lumen, wall, cut, np.zeros(v.shape, np.uint16), 1.0,
                         None, None, [], Steps(None, None))
    assert np.all(labels[tip] == V.PORTAL)
    assert np.all(labels[lumen] == V.HEPATIC)


def test_branch_beyond_a_tumour_continues_the_vessel_pointing_at_it():
    """A tumour interrupts a portal branch; a thicker hepatic vein ends against the same tumour
    from the side. The piece beyond the tumour continues the branch that points at it, not the
    thickest one (the synthetic patient of seed 1: the far part of its segment-7 branch beyond
    L1 went to the hepatic veins, and its territory to the caudate's)."""
    from liverplan.progress import Steps
    liver, ivc, v = _hilum(ivc_radius=8, liver_back=66)
    centre, r = np.array([60, 30, 25]), 5
    _tube(v, (45, 30, 25), (53, 30, 25), 1.5, 1)              # the branch, up to the tumour
    _tube(v, (66, 30, 25), (73, 30, 25), 1.5, 1)              # its far part
    _tube(v, (72, 68, 45), (60, 38, 28), 3.5, 2)              # a vein from the IVC
    tumour = np.linalg.norm(np.indices(v.shape).reshape(3, -1).T - centre, axis=1) <= r
    tumour = tumour.reshape(v.shape)
    mask = (v > 0) & ~tumour
    far = np.zeros_like(mask)
    _tube(far, (66, 30, 25), (73, 30, 25), 1.5, 1)
    pieces, _ = ndimage.label(mask)
    assert pieces[70, 30, 25] != pieces[30, 30, 50]          # cut off by the tumour
    grid = image_from_array(v, _grid(v))
    none = np.zeros(v.shape, bool)
    labels = V._separate(mask, grid, liver, ivc > 0, none, none, tumour.astype(np.uint16), 1.0,
                         None, None, [], Steps(None, None))
    assert np.all(labels[far & mask] == V.PORTAL)
    assert np.all(labels[(v == 2) & ~tumour & liver] == V.HEPATIC)


def test_thin_portal_twigs_are_found_at_lighter_smoothing_and_kept_off_the_hepatic_veins():
    """A portal branch (r 4 mm) and a hepatic vein (r 3 mm) in parenchyma (110 HU, noise 12 HU,
    0.7 mm blur, 0.75 mm voxels). A portal twig of radius 1.2 mm (180 HU) stays below the low
    contrast at the main smoothing (1.2 mm) and is found along its course at 0.8 mm; a vessel
    (r 1.6 mm) running from the hepatic vein to the portal branch is not taken (it would join
    the two systems)."""
    shape, sp = (40, 80, 80), 0.75
    labels = np.zeros(shape, np.uint8)
    _tube(labels, (20, 20, 5), (20, 20, 75), 4 / sp, V.PORTAL)
    _tube(labels, (20, 60, 5), (20, 60, 75), 3 / sp, V.HEPATIC)
    twigs = np.zeros(shape, np.uint8)
    _tube(twigs, (20, 24, 40), (20, 45, 40), 1.2 / sp, 1)          # off the portal branch
    _tube(twigs, (20, 56, 60), (20, 24, 60), 1.6 / sp, 2)          # hepatic vein to branch
    hu = np.full(shape, 110.0)
    hu[labels == V.PORTAL] = hu[twigs > 0] = 180.0
    hu[labels == V.HEPATIC] = 160.0
    noise = ndimage.gaussian_filter(np.random.default_rng(0).normal(size=shape), 0.7 / sp)
    hu = ndimage.gaussian_filter(hu, 0.7 / sp) + noise * (12.0 / noise.std())
    crop = sitk.GetImageFromArray(hu.astype(np.float32))
    crop.SetSpacing((sp, sp, sp))
    inside = np.ones(shape, bool)

    def found(smoothing_mm):
        return V._portal_twigs(crop, labels, inside, smoothing_mm, 8.0, 0.45, 1.1)
    portal_axis = found(0.8)[20, 26:45, 40]                 # the twig's axis beyond the branch
    assert np.mean(portal_axis) >= 0.8
    assert not (found(0.8) & ndimage.binary_dilation(labels == V.HEPATIC, iterations=3)).any()
    assert np.mean(found(1.2)[20, 26:45, 40]) < 0.3
