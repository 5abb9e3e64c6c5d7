import numpy as np
import pytest

from liverplan.planner.flr import evaluate, resected_image
from liverplan.planner.margins import outcomes_for_masks
from liverplan.planner.resection import PlaneCut, SegmentResection, WedgeResection
from tests.planner import resection_phantom as ph

HALF_DIAGONAL_MM = 0.5 * np.linalg.norm(ph.SPACING_XYZ)


@pytest.mark.parametrize("distance_mm", [6.0, 8.5, 12.0])
@pytest.mark.parametrize("direction_zyx", [(0, 0, 1), (0, 1, 0), (1, 0, 0), (0.5, 0.3, 1.0)])
def test_plane_margin_matches_analytic_sphere(ctx, images, distance_mm, direction_zyx):
    """Sphere radius r, plane at distance d from its centre: margin d - r."""
    ref = images[0]
    centre_zyx, radius = ph.LESIONS[1]
    u = ph.lps_direction(ref, direction_zyx)             # from the lesion towards the remnant
    point = ph.lps(ref, centre_zyx) + distance_mm * u
    r = evaluate(ctx, [PlaneCut(point, -u)])              # the lesion's side is removed
    les = r.lesion(1)
    assert les.status == "resected"
    assert les.margin_mm == pytest.approx(distance_mm - radius, abs=HALF_DIAGONAL_MM)
    assert les.r0 == (les.margin_mm >= 1.0)


def test_margin_below_one_mm_is_not_r0(ctx, images):
    ref = images[0]
    centre_zyx, radius = ph.LESIONS[1]
    u = ph.lps_direction(ref, (0, 0, 1))
    r = evaluate(ctx, [PlaneCut(ph.lps(ref, centre_zyx) + (radius + 0.4) * u, -u)])
    assert r.lesion(1).margin_mm < 1.0 and r.lesion(1).r0 is False
    assert any(x.rule.startswith("Margin") and x.status == "warn" for x in r.reasons)


@pytest.mark.parametrize("margin_mm", [3.0, 5.0, 10.0])
def test_wedge_margin_is_the_requested_margin(ctx, margin_mm):
    les = evaluate(ctx, [WedgeResection(2, margin_mm)]).lesion(2)
    assert les.status == "resected"
    assert les.margin_mm == pytest.approx(margin_mm, abs=HALF_DIAGONAL_MM)


def test_lesion_left_in_place_has_no_margin(ctx):
    les = evaluate(ctx, [SegmentResection((2, 3))]).lesion(1)
    assert les.status == "left in place" and les.margin_mm is None and les.r0 is None


def test_outcomes_for_a_resected_mask_are_the_plans(ctx, images):
    """Callers with only masks (the ICG map, the export) get the plan's own margins."""
    ref = images[0]
    centre_zyx, radius = ph.LESIONS[1]
    u = ph.lps_direction(ref, (0, 1, 0))
    resections = [PlaneCut(ph.lps(ref, centre_zyx) + (radius + 0.9) * u, -u), WedgeResection(2, 5.0)]
    planned = evaluate(ctx, resections).lesions
    again = outcomes_for_masks(images[0], images[1], resected_image(ctx, resections))
    assert [(o.lesion_id, o.status, o.margin_mm, o.r0) for o in again] == [
        (o.lesion_id, o.status, o.margin_mm, o.r0) for o in planned]
    assert [o.status for o in planned] == ["resected", "resected"]
    assert planned[0].margin_mm < 1.0 <= planned[1].margin_mm


def test_crossed_vessels_are_found_with_their_diameter(ctx, images):
    """Removing segments 5 and 8 cuts the hepatic branches that drain them through 6 and 7;
    the portal branches of 5 and 8 enter from outside the liver and are not on the cut."""
    r = evaluate(ctx, [SegmentResection((5, 8))])
    hepatic = [c for c in r.crossings if c.system == "hepatic"]
    assert len(hepatic) == 2 and not any(c.system == "portal" for c in r.crossings)
    for c in hepatic:
        assert c.diameter_mm == pytest.approx(2 * ph.VESSEL_RADIUS_MM, abs=max(ph.SPACING_XYZ))
    # Both crossings lie on the anterior/posterior boundary (index y = 23.5).
    ys = [ph.lps_to_zyx(images[0], c.position_lps_mm)[1] for c in hepatic]
    assert ys == pytest.approx([23.5, 23.5], abs=0.6)
