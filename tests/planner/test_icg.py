import json
import threading

import numpy as np
import pytest
import SimpleITK as sitk

from liverplan import evidence
from liverplan.errors import Cancelled, PlanningError
from liverplan.geometry import image_from_array, index_to_lps
from liverplan.planner.flr import PlanningContext, evaluate, resected_image
from liverplan.planner.icg import (CAVITY_ARRAY, SURFACE_ARRAY, IcgParameters,
                                   SurfaceMap, TransectionMap, rim_behind, signed_distance_mm,
                                   surface_fluorescence, transection_fluorescence)
from liverplan.planner.resection import PlaneCut

SPACING = (0.6, 0.9, 1.5)          # x, y, z mm: anisotropic on purpose
SIZE = (110, 56, 36)               # x, y, z voxels: 66 x 50 x 54 mm
RADIUS_MM = 5.0
SURFACE_X_MM = 6.0                 # the liver occupies x > 6 mm (a flat capsule facing -x)


def _grid(direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)) -> tuple[sitk.Image, np.ndarray]:
    ref = sitk.Image(list(SIZE), sitk.sitkUInt8)
    ref.SetSpacing(SPACING)
    ref.SetOrigin((-12.0, 30.0, -40.0))
    ref.SetDirection(direction)
    idx = np.indices(tuple(reversed(SIZE))).reshape(3, -1).T
    # coordinates in the image's own frame (mm from the origin along its axes)
    local = (idx[:, ::-1] * np.asarray(SPACING)).reshape(tuple(reversed(SIZE)) + (3,))
    return ref, local


def _flat_case(depth_mm: float, direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)):
    """Liver block with a flat capsule; one spherical lesion `depth_mm` below it."""
    ref, local = _grid(direction)
    liver = local[..., 0] > SURFACE_X_MM - SPACING[0] / 2      # capsule on a voxel face at 5.7 mm
    capsule_mm = SURFACE_X_MM - SPACING[0] / 2
    centre = np.array([capsule_mm + depth_mm + RADIUS_MM, 25.0, 27.0])
    lesion = np.linalg.norm(local - centre, axis=-1) <= RADIUS_MM
    lm = image_from_array(liver.astype(np.uint8), ref)
    tm = image_from_array(lesion.astype(np.uint16), ref)
    return lm, tm, centre


def _depth_on_grid(tm: sitk.Image) -> float:
    """Depth of the voxelised lesion: its first voxel face below the capsule."""
    a = sitk.GetArrayViewFromImage(tm)
    first_x = np.nonzero(a.any(axis=(0, 1)))[0].min()
    return (first_x - 0.5) * SPACING[0] - (SURFACE_X_MM - SPACING[0] / 2)


def _peak(depth_mm, params=IcgParameters()):
    lm, tm, _ = _flat_case(depth_mm)
    _, result = surface_fluorescence(lm, tm, params)
    return result.lesions[0], _depth_on_grid(tm)


def test_signed_distance_is_zero_on_voxel_faces_and_exact_along_anisotropic_axes():
    mask = np.zeros((9, 9, 9), bool)
    mask[4, 4, 4] = True
    spacing = (3.0, 1.0, 0.5)
    d = signed_distance_mm(mask, spacing)
    assert d[4, 4, 4] == pytest.approx(-0.25)       # half the smallest voxel size inside
    assert d[6, 4, 4] == pytest.approx(2 * 3.0 - 1.5)
    assert d[4, 7, 4] == pytest.approx(3 * 1.0 - 0.5)
    assert d[4, 4, 8] == pytest.approx(4 * 0.5 - 0.25)


def test_surface_signal_strictly_decreases_with_depth_and_is_visible_only_within_8_mm():
    params = IcgParameters()
    rows = [_peak(d) for d in (2.5, 4.5, 6.5, 9.5, 12.0)]
    peaks = [r.peak_intensity for r, _ in rows]
    assert all(a > b for a, b in zip(peaks, peaks[1:]))
    for row, depth in rows:
        assert row.depth_mm == pytest.approx(depth, abs=0.5)
        assert row.visible == (depth < params.detection_depth_mm)
        assert row.visible == (row.peak_intensity >= params.threshold)
    # beyond the detection depth the lesion adds nothing above the threshold
    assert max(r.peak_intensity for r, d in rows if d > 8) < params.threshold
    # the slab model's analytic value at the lesion depth
    row, depth = rows[2]
    expected = params.background + rim_behind(np.array(depth), params.rim_thickness_mm,
                                              params.tbr, params.mu_eff_per_mm)
    assert row.peak_intensity == pytest.approx(float(expected), rel=0.08)


def test_depth_beyond_the_reach_of_the_distance_map_is_measured_between_meshes():
    steep = IcgParameters(mu_eff_per_mm=2.0)           # the map then reaches only ~9.5 mm
    assert steep.reach_mm(1) < 11.0 < IcgParameters().reach_mm(1)
    row, depth = _peak(11.5, steep)
    assert row.depth_mm == pytest.approx(depth, abs=0.5) and not row.visible
    _, far, _ = _cut_case(12.0, mu_eff_per_mm=2.0)
    assert far.margin_mm == pytest.approx(12.0, abs=0.5)


def test_threshold_is_the_standard_rim_at_the_detection_depth():
    p = IcgParameters()
    at_limit = p.background + rim_behind(np.array(p.detection_depth_mm),
                                         evidence.ICG_RIM_THICKNESS_MM.value,
                                         evidence.ICG_TBR.value, p.mu_eff_per_mm)
    assert p.threshold == pytest.approx(float(at_limit))
    # a brighter/thicker rim is not recalibrated away: the camera's limit stays fixed
    assert IcgParameters(tbr=14).threshold == pytest.approx(p.threshold)
    assert IcgParameters(rim_thickness_mm=4).threshold == pytest.approx(p.threshold)


def test_rim_thickness_and_tbr_move_visibility_in_the_expected_direction():
    default, depth = _peak(9.0)
    assert not default.visible
    thick, _ = _peak(9.0, IcgParameters(rim_thickness_mm=4.0))
    bright, _ = _peak(9.0, IcgParameters(tbr=14.0))
    assert thick.visible and thick.peak_intensity > default.peak_intensity
    assert bright.visible and bright.peak_intensity > default.peak_intensity
    shallow, _ = _peak(6.0)
    dim, _ = _peak(6.0, IcgParameters(tbr=2.0))
    thin, _ = _peak(6.0, IcgParameters(rim_thickness_mm=0.5))
    assert shallow.visible and not dim.visible and not thin.visible


def test_whole_lesion_pattern_is_brighter_than_a_rim_at_the_same_depth():
    lm, tm, _ = _flat_case(9.5)
    _, rim = surface_fluorescence(lm, tm, IcgParameters())
    _, whole = surface_fluorescence(lm, tm, IcgParameters().with_pattern(1, "whole"))
    assert whole.lesions[0].pattern == "whole"
    assert whole.lesions[0].peak_intensity > rim.lesions[0].peak_intensity


@pytest.mark.parametrize("direction", [(1, 0, 0, 0, 1, 0, 0, 0, 1), (-1, 0, 0, 0, -1, 0, 0, 0, 1),
                                       (0, 1, 0, -1, 0, 0, 0, 0, 1)])
def test_the_bright_spot_lies_over_the_lesion_in_patient_space(direction):
    lm, tm, centre_local = _flat_case(3.0, direction)
    mesh, result = surface_fluorescence(lm, tm)
    values = mesh[SURFACE_ARRAY]
    assert values.min() == pytest.approx(IcgParameters().background, abs=1e-6)
    centre = index_to_lps(tm, (centre_local / np.asarray(SPACING))[::-1])[0]
    lit = mesh.points[values >= result.threshold]
    # the lit patch is on the capsule right above the lesion, whatever the direction matrix
    assert np.linalg.norm(lit.mean(axis=0) - centre) < RADIUS_MM + 3.0 + 3.0
    assert np.linalg.norm(mesh.points[np.argmax(values)] - centre) < RADIUS_MM + 3.0 + 4.0


def _cut_case(margin_mm: float, **kw):
    """Flat-capsule liver with a deep lesion; the resected region is the slab in front of a cut
    plane `margin_mm` beyond the lesion's far side (a voxel face)."""
    lm, tm, _ = _flat_case(14.0)
    a = sitk.GetArrayViewFromImage(tm)
    last_x = np.nonzero(a.any(axis=(0, 1)))[0].max()
    cut_face = last_x + 0.5 + margin_mm / SPACING[0]       # in voxel units, on a face
    resected = np.zeros(a.shape, np.uint8)
    resected[:, :, : int(round(cut_face + 0.5))] = 1
    mesh, result = transection_fluorescence(lm, tm, image_from_array(resected, tm),
                                            IcgParameters(**kw))
    return mesh, result.lesions[0], result


def test_cut_at_half_a_millimetre_is_nir_positive_and_at_12_mm_negative():
    mesh, close, result = _cut_case(0.6)
    assert close.status == "resected"
    assert close.margin_mm == pytest.approx(0.6, abs=0.4)
    assert close.nir_specimen and close.nir_cavity and close.nir_positive
    assert close.flag == ""                               # NIR+ and R1: agree
    assert mesh[CAVITY_ARRAY].max() >= result.threshold    # rim tissue left in the cavity
    _, far, _ = _cut_case(12.0)
    assert far.margin_mm == pytest.approx(12.0, abs=0.5)
    assert not far.nir_positive and far.flag == ""


def test_flags_where_nir_and_margin_disagree():
    _, row, _ = _cut_case(3.0)
    assert row.nir_specimen and not row.nir_cavity        # rim 2 mm: nothing left in the cavity
    assert "likely be a false positive" in row.flag
    _, row, _ = _cut_case(0.6, tbr=2.0, rim_thickness_mm=0.5)
    assert row.margin_mm < evidence.R0_MARGIN_MM.value
    assert not row.nir_positive and "NIR- expected" in row.flag


def test_a_cut_through_the_lesion_has_zero_margin_and_lights_both_sides():
    lm, tm, centre = _flat_case(14.0)
    a = sitk.GetArrayViewFromImage(tm)
    resected = np.zeros(a.shape, np.uint8)
    resected[:, :, : int(round((centre[0]) / SPACING[0]))] = 1
    _, result = transection_fluorescence(lm, tm, image_from_array(resected, tm))
    row = result.lesions[0]
    assert row.margin_mm == 0.0 and row.nir_specimen and row.nir_cavity


def _plane_cut(margin_mm: float, lesion_side: bool):
    """Flat-capsule liver, lesion 14 mm deep, cut by the plane normal to x at `margin_mm` from
    the sphere: on its deep side removing the lesion with the capsule side (`lesion_side`), or
    on its capsule side removing only the parenchyma in front of it."""
    lm, tm, centre_local = _flat_case(14.0)
    centre = index_to_lps(tm, (centre_local / np.asarray(SPACING))[::-1])[0]
    x = np.array([1.0, 0.0, 0.0])                       # from the capsule into the liver
    sign = 1.0 if lesion_side else -1.0
    cut = PlaneCut(tuple(centre + sign * (RADIUS_MM + margin_mm) * x), tuple(-x))
    ctx = PlanningContext(lm, tm)
    return lm, tm, resected_image(ctx, [cut]), evaluate(ctx, [cut]).lesions


@pytest.mark.parametrize("margin_mm", [0.7, 1.3, 4.0])
def test_transection_margin_is_the_planners_margin_on_a_sphere_cut_by_a_plane(margin_mm):
    lm, tm, resected, outcomes = _plane_cut(margin_mm, lesion_side=True)
    planner = outcomes[0]
    assert planner.status == "resected"
    # voxelised plane (half a voxel along x) and sphere: within 0.5 mm of the analytic margin
    assert planner.margin_mm == pytest.approx(margin_mm, abs=0.5)
    _, given = transection_fluorescence(lm, tm, resected, outcomes=outcomes)
    _, measured = transection_fluorescence(lm, tm, resected)     # the same planner measure
    for row in (given.lesions[0], measured.lesions[0]):
        assert row.status == "resected"
        assert row.margin_mm == round(planner.margin_mm, 2)
        # the flags follow the planner's R0/R1 call, never contradict it
        assert ("false positive" in row.flag) == (planner.r0 and row.nir_positive)
        assert ("NIR- expected" in row.flag) == (not planner.r0 and not row.nir_positive)


def test_transection_refuses_outcomes_from_another_plan():
    lm, tm, resected, _ = _plane_cut(4.0, lesion_side=True)
    with pytest.raises(PlanningError, match="no result for lesion 1"):
        transection_fluorescence(lm, tm, resected, outcomes=())


@pytest.mark.parametrize("gap_mm, seen", [(1.5, True), (12.0, False)])
def test_a_lesion_left_in_place_is_stated_not_flagged_as_a_false_positive(gap_mm, seen):
    lm, tm, resected, outcomes = _plane_cut(gap_mm, lesion_side=False)
    assert outcomes[0].status == "left in place" and outcomes[0].margin_mm is None
    _, result = transection_fluorescence(lm, tm, resected, outcomes=outcomes)
    row = result.lesions[0]
    assert row.status == "left in place" and row.margin_mm is None
    assert row.nir_cavity == seen
    # a cut 1.5 mm from the lesion goes through its 2 mm rim: the specimen face glows as well
    assert row.nir_specimen == seen
    assert ("the specimen's face glows too" in row.flag) == seen
    assert ("not a positive margin" in row.flag) == seen
    assert row.flag.startswith("Left in place in the remnant (not resected)")
    assert ("fluoresce through the remnant's cut face" in row.flag) == seen
    assert ("too deep" in row.flag) == (not seen)
    assert "false positive" not in row.flag and " mm" not in row.flag   # no margin figure
    text = "\n".join(result.lines())
    assert "lesion 1 (left in place): NIR" in text and "margin" not in text.split("\n")[1]


def test_summaries_name_each_lesion_and_show_the_mimic_figures():
    lm, tm, _ = _flat_case(4.0)
    _, surface = surface_fluorescence(lm, tm)
    text = "\n".join(surface.lines())
    assert "1 of 1 lesions expected visible" in text and "rim 2 mm (assumed)" in text
    _, _, transection = _cut_case(3.0)
    text = "\n".join(transection.lines())
    assert "margin 3.0 mm, NIR+ expected on the specimen face" in text
    assert "false positive" in text and "PPV 54%" in text and "92.4%" in text


def test_progress_reaches_the_end_and_cancel_stops_the_work():
    lm, tm, _ = _flat_case(4.0)
    seen = []
    surface_fluorescence(lm, tm, progress=lambda f, m: seen.append(f))
    assert seen == sorted(seen) and seen[-1] == 1.0
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        surface_fluorescence(lm, tm, cancel=stop)


def test_parameters_and_results_round_trip_through_json():
    p = IcgParameters(rim_thickness_mm=3.0, tbr=9.0).with_pattern(2, "whole")
    assert IcgParameters.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert p.pattern(2) == "whole" and p.pattern(1) == "rim"
    lm, tm, _ = _flat_case(4.0)
    _, surface = surface_fluorescence(lm, tm, p)
    assert SurfaceMap.from_dict(json.loads(json.dumps(surface.to_dict()))) == surface
    _, _, transection = _cut_case(0.6)
    again = TransectionMap.from_dict(json.loads(json.dumps(transection.to_dict())))
    assert again == transection
    # a table written before the planner's status was kept (a `resected` bool) still loads
    older = transection.to_dict()
    for row in older["lesions"]:
        row["resected"] = row.pop("status") == "resected"
    assert TransectionMap.from_dict(older).lesions[0].status == "resected"
    assert any("sensitivity 60%" in line and "NPV 92%" in line for line in again.evidence)


@pytest.mark.parametrize("bad", [dict(rim_thickness_mm=0.2), dict(rim_thickness_mm=6),
                                 dict(tbr=1.0), dict(mu_eff_per_mm=0), dict(detection_depth_mm=1),
                                 dict(lesion_patterns=((1, "spots"),))])
def test_out_of_range_parameters_are_refused(bad):
    with pytest.raises(PlanningError):
        IcgParameters(**bad)


def test_a_float_lesion_image_gives_the_same_map():
    lm, tm, _ = _flat_case(4.0)
    _, ints = surface_fluorescence(lm, tm)
    _, floats = surface_fluorescence(lm, sitk.Cast(tm, sitk.sitkFloat32))
    assert floats == ints


def test_masks_on_different_grids_are_refused():
    lm, tm, _ = _flat_case(4.0)
    other = sitk.Image(tm)
    other.SetSpacing((1.0, 1.0, 1.0))
    with pytest.raises(PlanningError, match="same image grid"):
        surface_fluorescence(lm, other)


def test_synthetic_patient_superficial_lesions_visible_deep_ones_not(synthetic_patient):
    liver, tumors = synthetic_patient.mask("liver"), synthetic_patient.mask("tumors")
    _, result = surface_fluorescence(liver, tumors)
    rows = {r.lesion_id: r for r in result.lesions}
    lesions = {int(x["id"]): x for x in synthetic_patient.truth["lesions"]}
    assert set(rows) == set(lesions)
    detection = IcgParameters().detection_depth_mm
    superficial = [i for i, x in lesions.items() if x["depth_mm"] < detection - 2]
    deep = [i for i, x in lesions.items() if x["depth_mm"] > detection + 2]
    assert superficial and deep
    assert all(rows[i].visible for i in superficial)
    assert not any(rows[i].visible for i in deep)
    # truth.json measures between voxel centres, we measure between the surfaces (voxel faces):
    # ours is shorter by up to one voxel
    voxel_mm = max(liver.GetSpacing())
    for i, x in lesions.items():
        assert -0.3 <= x["depth_mm"] - rows[i].depth_mm <= voxel_mm + 0.3


def test_a_pocket_left_out_of_the_liver_mask_is_no_capsule(synthetic_patient):
    """The automatic liver of the full-size synthetic patient (seed 0) left two voxels out in
    the core of its 27 mm deep lesion: the surface map took their walls for capsule and showed
    it visible at 0.25 mm, and the lesion table read a depth of 0 mm."""
    from liverplan.volumetry.measure import measure
    liver, tumors = synthetic_patient.mask("liver"), synthetic_patient.mask("tumors")
    deepest = max(synthetic_patient.truth["lesions"], key=lambda x: x["depth_mm"])
    holed_liver, holed_tumors = sitk.GetArrayFromImage(liver), sitk.GetArrayFromImage(tumors)
    core = tuple(np.argwhere(holed_tumors == deepest["id"]).mean(axis=0).round().astype(int))
    pocket = (slice(core[0], core[0] + 1), slice(core[1], core[1] + 1), slice(core[2], core[2] + 2))
    holed_liver[pocket] = 0
    holed_tumors[pocket] = 0
    holed = image_from_array(holed_liver, liver), image_from_array(holed_tumors, tumors)

    def row(result):
        return next(r for r in result.lesions if r.lesion_id == deepest["id"])
    intact, pierced = row(surface_fluorescence(liver, tumors)[1]), \
        row(surface_fluorescence(*holed)[1])
    assert not pierced.visible
    assert pierced.depth_mm == pytest.approx(intact.depth_mm, abs=0.01)
    depths = [{x.id: x.depth_mm for x in measure(*masks).lesions}[deepest["id"]]
              for masks in ((liver, tumors), holed)]
    assert depths[1] == pytest.approx(depths[0]) and depths[0] > 20.0


@pytest.mark.realdata
def test_real_case_lesions_at_the_capsule_glow_and_deep_ones_do_not(shared_data):
    labels = sitk.ReadImage(str(shared_data / "ircadb-01" / "labels.nii.gz"))
    liver = sitk.Cast(labels > 0, sitk.sitkUInt8)
    tumors = sitk.Cast(sitk.ConnectedComponent(labels == 2), sitk.sitkUInt16)
    mesh, result = surface_fluorescence(liver, tumors)
    assert len(result.lesions) == 8
    assert mesh[SURFACE_ARRAY].min() >= result.parameters.background - 1e-6
    for row in result.lesions:
        if row.depth_mm < 6.0:
            assert row.visible, row
        if row.depth_mm > 10.0:
            assert not row.visible, row
    assert any(r.depth_mm > 10.0 for r in result.lesions)
    assert any(r.depth_mm < 1.0 for r in result.lesions)
