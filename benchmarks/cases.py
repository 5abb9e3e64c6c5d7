"""Cases the benchmarks share: the full-size synthetic patient (cached) and the real CT folder."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def full_phantom(seed: int = 0) -> Path:
    """The full-size (512x512x~130) synthetic patient of `seed` (its anatomy and lesion
    placement), generated once into the test cache and regenerated when the generator changes."""
    from liverplan.io import phantom
    return phantom.cached(seed=seed, size="full", followup=False).root


def ircadb_bifurcation_lps_mm(labels) -> tuple:
    """3D-IRCADb-01 has no bifurcation landmark: the point the software's own definition
    (liverplan.volumetry.vessels.analyse_vessels) gives on its reference, label 3 (portal-like)
    and 4 (hepatic veins) in its liver (labels 1-4). `labels`: the label image on the CT grid."""
    import numpy as np
    import SimpleITK as sitk
    from liverplan.geometry import image_from_array
    from liverplan.volumetry.vessels import analyse_vessels
    ref = sitk.GetArrayFromImage(labels)
    vessels = np.where(ref == 3, 1, np.where(ref == 4, 2, 0)).astype(np.uint8)
    return analyse_vessels(image_from_array(vessels, labels),
                           image_from_array((ref > 0).astype(np.uint8), labels)
                           ).portal_bifurcation_lps_mm
