import numpy as np
import pytest
import SimpleITK as sitk

from liverplan.errors import PlanningError
from liverplan.geometry import image_from_array, mask_volume_ml
from liverplan.planner.flr import PlanningContext, resected_mask
from liverplan.planner.resection import (PRESETS, PlaneCut, SegmentResection, SurfaceCut,
                                         WedgeResection, preset, resection_from_dict)
from tests.planner import resection_phantom as ph


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_remove_exactly_their_segments(ctx, images, name):
    seg = sitk.GetArrayViewFromImage(images[2])
    resected = resected_mask(ctx, [preset(name)])
    expected = np.isin(seg, PRESETS[name]).sum()
    assert resected.sum() == expected
    assert set(np.unique(ctx.segment[resected])) == set(PRESETS[name])
    assert not np.isin(ctx.segment[~resected], PRESETS[name]).any()


def test_named_presets_match_anatomy():
    assert PRESETS["right_hemihepatectomy"] == (5, 6, 7, 8)
    assert PRESETS["left_hemihepatectomy"] == (2, 3, 4)
    assert PRESETS["extended_right_hepatectomy"] == (4, 5, 6, 7, 8)
    assert PRESETS["left_lateral_sectionectomy"] == (2, 3)
    assert preset("Right hemihepatectomy").segments == (5, 6, 7, 8)
    with pytest.raises(PlanningError, match="unknown resection"):
        preset("whipple")


def test_unlabelled_liver_voxels_get_the_nearest_segment(images):
    liver, tumors, seg, vessels = images
    holes = sitk.GetArrayFromImage(seg)
    holes[10:14, 10:14, 10:14] = 0          # inside segment 5
    ctx = PlanningContext(liver, tumors, image_from_array(holes, seg), vessels)
    assert any("nearest segment" in w for w in ctx.warnings)
    everything = [SegmentResection((1, 2, 3, 4)), preset("right_hemihepatectomy")]
    assert resected_mask(ctx, everything).all()
    assert resected_mask(ctx, [SegmentResection((5,))]).sum() == np.count_nonzero(
        sitk.GetArrayViewFromImage(seg) == 5)


def _partition_exact(ctx, resections, liver):
    resected = resected_mask(ctx, resections)
    kept = ~resected
    assert resected.sum() + kept.sum() == ctx.n == np.count_nonzero(sitk.GetArrayViewFromImage(liver))
    assert (resected.sum() + kept.sum()) * ctx.voxel_ml == pytest.approx(mask_volume_ml(liver))
    return resected


def test_combined_resections_partition_the_liver_exactly(ctx, images):
    ref = images[0]
    plane = PlaneCut(ph.lps(ref, (20, 24, 30.3)), ph.lps_direction(ref, (0.2, 0.1, -1)))
    surface = SurfaceCut.from_plane(ph.lps(ref, (20, 24, 45)), ph.lps_direction(ref, (0, 0, 1)))
    resections = [plane, WedgeResection(2, 5.0), surface]
    resected = _partition_exact(ctx, resections, ref)
    union = np.zeros(ctx.n, bool)
    for r in resections:
        union |= r.resected(ctx)
    assert np.array_equal(resected, union)


def test_plane_side_is_explicit(ctx, images):
    ref = images[0]
    normal = ph.lps_direction(ref, (0, 0, -1))       # towards index x = 0
    point = ph.lps(ref, (0, 0, 20.5))
    along = PlaneCut(point, normal).resected(ctx)
    against = PlaneCut(point, normal, side="against_normal").resected(ctx)
    assert np.array_equal(along, ~against)
    assert np.all(ctx.zyx[along][:, 2] <= 20) and np.all(ctx.zyx[~along][:, 2] >= 21)


def test_flat_surface_equals_plane_and_bump_moves_the_cut(ctx, images):
    ref = images[0]
    point, normal = ph.lps(ref, (20, 24, 30.5)), ph.lps_direction(ref, (0, 0, 1))
    flat = SurfaceCut.from_plane(point, normal, n=5)
    assert np.array_equal(flat.resected(ctx), PlaneCut(point, normal).resected(ctx))
    heights = np.zeros((5, 5))
    heights[2, 2] = 10.0                      # push the centre of the surface 10 mm along n
    bumped = SurfaceCut(flat.origin_mm, flat.u_axis, flat.v_axis, flat.u_mm, flat.v_mm,
                        tuple(map(tuple, heights)))
    assert bumped.height_mm(0.0, 0.0) == pytest.approx(10.0)
    assert bumped.resected(ctx).sum() < flat.resected(ctx).sum()
    # Beyond the control grid the edge height continues (here 0: the plane).
    assert bumped.height_mm(1e4, 1e4) == pytest.approx(0.0, abs=1e-9)


def test_wedge_is_lesion_plus_margin(ctx):
    wedge = WedgeResection(2, 5.0).resected(ctx)
    lesion = ctx.lesions[2]
    assert wedge[lesion.liver_index].all()
    d = np.linalg.norm(ctx.mm[wedge][:, None, :] - lesion.boundary_mm[None], axis=2).min(axis=1)
    # Distances run from the lesion surface, half a voxel beyond its outer voxel centres.
    assert 5.0 < d.max() <= 5.0 + 0.5 * max(ph.SPACING_XYZ) + 1e-4
    with pytest.raises(PlanningError, match="no lesion 9"):
        WedgeResection(9).resected(ctx)


def test_bad_definitions_are_refused():
    with pytest.raises(PlanningError, match="1-8"):
        SegmentResection((0, 9))
    with pytest.raises(PlanningError, match="non-zero"):
        PlaneCut((0, 0, 0), (0, 0, 0))
    with pytest.raises(PlanningError, match="side"):
        PlaneCut((0, 0, 0), (0, 0, 1), side="left")
    with pytest.raises(PlanningError, match="kind"):
        resection_from_dict({"kind": "laser"})


def test_definitions_round_trip():
    surface = SurfaceCut.from_plane((1, 2, 3), (0, 1, 1), n=3)
    for r in (preset("right_hemihepatectomy"), SegmentResection((2, 3)), WedgeResection(3, 7.5),
              PlaneCut((1, 2, 3), (0, 0, 2), "against_normal"), surface):
        assert resection_from_dict(r.to_dict()) == r
