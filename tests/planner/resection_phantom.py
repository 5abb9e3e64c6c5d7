"""An analytic liver phantom for the planner tests: a box liver on an anisotropic, rotated grid,
eight box segments, spherical lesions and tube vessels fed from outside the liver.

Geometry is defined in continuous (z, y, x) index space; distances are scaled by the spacing, so
they are physical mm whatever the direction matrix.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from liverplan.geometry import image_from_array, index_to_lps

SHAPE = (32, 48, 64)                 # z, y, x
SPACING_XYZ = (1.25, 1.0, 2.0)
SPACING_ZYX = np.array(SPACING_XYZ[::-1])
LIVER_BOX = ((6, 30), (4, 44), (4, 60))  # z, y, x index ranges (half-open)
Z_SPLIT, Y_SPLIT = 18, 24
X_RIGHT, X_LEFT = 28, 40             # x < 28 right liver, 28..40 segment 4, >= 40 left lateral
# A rotation about z by 90 degrees: index x runs along LPS +y, index y along LPS -x.
DIRECTION = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)


def reference(direction=DIRECTION) -> sitk.Image:
    img = sitk.Image(SHAPE[::-1], sitk.sitkUInt8)
    img.SetSpacing(SPACING_XYZ)
    img.SetOrigin((-40.0, 15.0, -120.0))
    img.SetDirection(direction)
    return img


def grid_zyx() -> np.ndarray:
    return np.indices(SHAPE).astype(float)


def segment_map() -> np.ndarray:
    z, y, x = np.indices(SHAPE)
    seg = np.zeros(SHAPE, np.uint8)
    (z0, z1), (y0, y1), (x0, x1) = LIVER_BOX
    liver = (z >= z0) & (z < z1) & (y >= y0) & (y < y1) & (x >= x0) & (x < x1)
    sup, post = z >= Z_SPLIT, y >= Y_SPLIT
    right, left = x < X_RIGHT, x >= X_LEFT
    seg[liver & right & ~post & ~sup] = 5
    seg[liver & right & ~post & sup] = 8
    seg[liver & right & post & ~sup] = 6
    seg[liver & right & post & sup] = 7
    seg[liver & ~right & ~left] = 4
    seg[liver & ~right & ~left & (y >= 36)] = 1
    seg[liver & left & ~sup] = 3
    seg[liver & left & sup] = 2
    return seg


def ball(center_zyx, radius_mm) -> np.ndarray:
    d = (grid_zyx() - np.reshape(center_zyx, (3, 1, 1, 1))) * SPACING_ZYX.reshape(3, 1, 1, 1)
    return np.sqrt((d ** 2).sum(axis=0)) <= radius_mm


def tube(a_zyx, b_zyx, radius_mm) -> np.ndarray:
    p = (grid_zyx() * SPACING_ZYX.reshape(3, 1, 1, 1)).reshape(3, -1).T
    a, b = np.asarray(a_zyx) * SPACING_ZYX, np.asarray(b_zyx) * SPACING_ZYX
    t = np.clip((p - a) @ (b - a) / max((b - a) @ (b - a), 1e-9), 0, 1)
    d = np.linalg.norm(p - (a + t[:, None] * (b - a)), axis=1)
    return (d <= radius_mm).reshape(SHAPE)


SEGMENT_CENTRES = {5: (12, 14, 16), 8: (24, 14, 16), 6: (12, 34, 16), 7: (24, 34, 16),
                   4: (18, 20, 34), 1: (18, 40, 34), 3: (12, 24, 50), 2: (24, 24, 50)}
VESSEL_RADIUS_MM = 1.6
HEPATIC_SHIFT_X = 4


def vessel_map() -> np.ndarray:
    """Portal trunk below the liver with a vertical branch up into each segment (superior
    segments are reached through the inferior one beneath); IVC behind the liver with a branch
    forward into each segment (anterior segments drained through the posterior one)."""
    v = np.zeros(SHAPE, np.uint8)
    hepatic = tube((1, 46, 32), (31, 46, 32), 3.0)
    for s, (z, y, x) in SEGMENT_CENTRES.items():
        xh = x + HEPATIC_SHIFT_X   # beside the portal branch, so the two never touch
        hepatic |= tube((z, 46, 32), (z, 46, xh), VESSEL_RADIUS_MM) | tube((z, 46, xh), (z, y, xh), VESSEL_RADIUS_MM)
    portal = tube((2, 24, 2), (2, 24, 62), 3.0)
    for s, (z, y, x) in SEGMENT_CENTRES.items():
        portal |= tube((2, 24, x), (2, y, x), VESSEL_RADIUS_MM) | tube((2, y, x), (z, y, x), VESSEL_RADIUS_MM)
    v[hepatic] = 2
    v[portal & ~hepatic] = 1
    return v


LESIONS = {1: ((12, 30, 10), 5.0), 2: ((12, 16, 52), 4.0)}   # id: (centre zyx, radius mm)


def images(direction=DIRECTION, lesions=LESIONS):
    """liver, tumors, segments, vessels SimpleITK images on one grid."""
    ref = reference(direction)
    seg = segment_map()
    liver = (seg > 0).astype(np.uint8)
    tumors = np.zeros(SHAPE, np.uint16)
    for i, (c, r) in lesions.items():
        tumors[ball(c, r) & (liver > 0)] = i
    vessels = vessel_map()
    # Tumours are not vessels; the liver mask includes intrahepatic vessels and tumours.
    vessels[tumors > 0] = 0
    return (image_from_array(liver, ref), image_from_array(tumors, ref),
            image_from_array(seg, ref), image_from_array(vessels, ref))


def lps(ref: sitk.Image, zyx) -> np.ndarray:
    return index_to_lps(ref, np.asarray(zyx, float))[0]


def lps_direction(ref: sitk.Image, zyx_vector) -> np.ndarray:
    """An index-space direction (z, y, x) as a unit LPS vector."""
    d = np.array(ref.GetDirection()).reshape(3, 3)
    v = d @ (np.asarray(zyx_vector, float)[::-1] * np.asarray(ref.GetSpacing()))
    return v / np.linalg.norm(v)


def lps_to_zyx(ref: sitk.Image, point_mm) -> np.ndarray:
    from liverplan.geometry import lps_to_index
    return lps_to_index(ref, point_mm)[0]
