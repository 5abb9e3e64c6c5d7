"""analyse: slice order, regular step, gaps, duplicates and gantry tilt from positions alone."""

from __future__ import annotations

import numpy as np
import pytest

from liverplan.io.slice_geometry import analyse, direction_from_orientation

AXIAL = (1, 0, 0, 0, 1, 0)


def _positions(z, shear_y=0.0):
    return [(10.0, -5.0 + shear_y * (v - z[0]), v) for v in z]


def test_sorted_along_the_normal_with_the_median_step():
    geo = analyse(AXIAL, _positions([5.0, 0.0, 2.5, 7.5]), (0.8, 0.8))
    assert list(geo.order) == [1, 2, 0, 3]
    assert geo.step_mm == pytest.approx(2.5) and geo.regular
    np.testing.assert_allclose(geo.origin_mm, (10, -5, 0))


def test_normal_of_a_coronal_orientation():
    d = direction_from_orientation((1, 0, 0, 0, 0, -1))
    np.testing.assert_allclose(d[:, 2], (0, 1, 0))   # row x column = +y (posterior)


def test_gap_and_short_step_are_reported():
    geo = analyse(AXIAL, _positions([0, 2, 4, 8, 10, 11, 13]), (1, 1))
    assert geo.step_mm == pytest.approx(2.0)
    assert [(g.after_mm, g.size_mm) for g in geo.gaps] == [(4.0, 4.0), (10.0, 1.0)]
    assert "gap of 4.00 mm (regular step 2.00 mm) between slices at 4.00 and 8.00 mm" \
        in geo.gaps[0].describe()
    assert geo.gaps[1].describe().startswith("short step of 1.00 mm")


def test_rounding_noise_is_not_a_gap():
    geo = analyse(AXIAL, _positions([0, 1.6000001, 3.2, 4.7999999, 6.4]), (0.57, 0.57))
    assert geo.regular


def test_duplicates_are_counted():
    assert analyse(AXIAL, _positions([0, 2, 2, 4]), (1, 1)).duplicates == 1


def test_tilt_angle_and_shear():
    step, tilt = 2.0, np.radians(20)
    geo = analyse(AXIAL, _positions(np.arange(6) * step, shear_y=np.tan(tilt)), (0.7, 0.7))
    assert geo.tilt_deg == pytest.approx(20.0, abs=1e-6) and geo.collinear
    np.testing.assert_allclose(geo.shear_mm, (0, step * np.tan(tilt), 0), atol=1e-9)


def test_positions_off_a_line_are_not_collinear():
    pos = _positions([0, 2, 4, 6])
    pos[2] = (14.0, -5.0, 4.0)
    assert not analyse(AXIAL, pos, (0.7, 0.7)).collinear
