import numpy as np
import SimpleITK as sitk

from liverplan.geometry import image_from_array
from liverplan.planner.flr import PlanningContext, evaluate, resected_mask
from liverplan.planner.remnant import RemnantCheck, check_remnant
from liverplan.planner.resection import SegmentResection, preset


def _check(ctx, segments):
    return check_remnant(ctx, resected_mask(ctx, [SegmentResection(segments)]))


def test_whole_liver_every_segment_has_inflow_and_outflow(ctx):
    rem = check_remnant(ctx, np.zeros(ctx.n, bool))
    assert rem.checked and rem.passed
    assert [s.segment for s in rem.segments] == list(range(1, 9))
    assert all(s.inflow and s.outflow and s.kept_fraction == 1.0 for s in rem.segments)
    assert rem.group == tuple(range(1, 9))


def test_right_hemihepatectomy_keeps_the_left_liver_perfused(ctx):
    rem = evaluate(ctx, [preset("right_hemihepatectomy")]).remnant
    assert rem.passed and rem.group == (1, 2, 3, 4)


def test_portal_branch_through_a_resected_segment_loses_inflow(ctx):
    """The phantom feeds segment 8 through segment 5 (portal from below) and drains segment 8
    through segment 7 (hepatic veins from behind)."""
    by_seg = {s.segment: s for s in _check(ctx, (5,)).segments}
    assert not by_seg[8].inflow and by_seg[8].outflow
    by_seg = {s.segment: s for s in _check(ctx, (7,)).segments}
    assert by_seg[8].inflow and not by_seg[8].outflow


def test_single_segment_remnant_fails(ctx):
    rem = _check(ctx, (1, 2, 3, 4, 5, 6, 7))
    assert rem.checked and not rem.passed and rem.group == ()
    rem = _check(ctx, (1, 3, 4, 5, 6, 7, 8))
    assert [s.segment for s in rem.segments] == [2] and not rem.passed


def test_non_contiguous_segments_do_not_count_together(ctx):
    """Segments 3 and 6 are both perfused but do not touch: no contiguous pair."""
    rem = _check(ctx, (1, 2, 4, 5, 7, 8))
    assert {s.segment for s in rem.segments} == {3, 6}
    assert all(s.inflow and s.outflow for s in rem.segments)
    assert not rem.passed and len(rem.group) == 1


def test_extrahepatic_trunk_is_never_resected(ctx):
    assert ctx.vessels.trunk.any() and np.all(ctx.vessels.liver[ctx.vessels.trunk] == -1)


def test_without_vessels_the_check_says_so(images):
    liver, tumors, seg, vessels = images
    no_hepatic = sitk.GetArrayFromImage(vessels)
    no_hepatic[no_hepatic == 2] = 0
    ctx = PlanningContext(liver, tumors, seg, image_from_array(no_hepatic, vessels))
    rem = check_remnant(ctx, np.zeros(ctx.n, bool))
    assert not rem.checked and "hepatic" in rem.detail


def test_round_trip(ctx):
    rem = _check(ctx, (5, 6, 7, 8))
    assert RemnantCheck.from_dict(rem.to_dict()) == rem


def test_intrahepatic_vessel_mask_uses_the_thickest_stem_as_trunk(images):
    """Without vessels outside the liver the trunk is the main stem, and it is never resected."""
    liver, tumors, seg, vessels = images
    v = sitk.GetArrayFromImage(vessels)
    v[sitk.GetArrayViewFromImage(liver) == 0] = 0
    z, y, x = np.indices(v.shape)
    # A thick portal stem (about 8 mm across) along x through the liver centre.
    v[(abs(y - 24) <= 4) & (abs(z - 18) <= 2) & (x >= 6) & (x < 58)] = 1
    ctx = PlanningContext(liver, tumors, seg, image_from_array(v, vessels))
    trunk = ctx.vessels.trunk & (ctx.vessels.system == 1)
    assert trunk.any() and np.all(ctx.vessels.liver[trunk] >= 0)
    centre = np.flatnonzero((ctx.vessels.zyx + ctx.offset_zyx == (18, 24, 32)).all(axis=1))
    assert trunk[centre].all()
    assert ctx.vessels.alive(np.ones(ctx.n, bool))[trunk].all()
