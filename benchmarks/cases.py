"""Cases the benchmarks (and the tests on real CT) share: the full-size synthetic patient (cached),
the real CT folder and 3D-IRCADb-01's portal vein reference."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def full_phantom(seed: int = 0) -> Path:
    """The full-size (512x512x~130) synthetic patient of `seed` (its anatomy and lesion
    placement), generated once into the test cache and regenerated when the generator changes."""
    from liverplan.io import phantom
    return phantom.cached(seed=seed, size="full", followup=False).root


def ircadb_portal_vein(shape) -> "np.ndarray":
    """3D-IRCADb-01's whole portal vein as the expert drew it (z, y, x bool, the CT's voxels):
    bit 4 of its bit-coded labelled volume `labels_raw.vti`, which holds the same voxels as
    labels.nii.gz (label 3 is this bit inside the liver) and, outside the liver, the trunk and
    the splenic and superior mesenteric veins."""
    import numpy as np
    import pyvista as pv
    raw = pv.read(DATA / "ircadb-01" / "labels_raw.vti")
    bits = np.asarray(raw.point_data[raw.array_names[0]]).reshape(tuple(reversed(raw.dimensions)))
    if bits.shape != tuple(shape):
        raise ValueError(f"labels_raw.vti holds {bits.shape} voxels, the CT {tuple(shape)}")
    return (bits & 16) > 0


def ircadb_bifurcation_lps_mm(labels) -> tuple:
    """3D-IRCADb-01 has no bifurcation landmark: the point the software's own definition
    (liverplan.volumetry.vessels.analyse_vessels) gives on its reference: the expert's whole
    portal vein with its trunk (`ircadb_portal_vein`; read from the trunk, where the ways to
    the right and the left liver part) and label 4 (hepatic veins), in its liver (labels 1-4).
    `labels`: the label image on the CT grid. (Label 3 alone, the portal vein inside the
    liver, has no trunk: read from the hilum it gave a point 24 mm to the right, where the
    right portal vein divides into its sectors.)"""
    import numpy as np
    import SimpleITK as sitk
    from liverplan.geometry import image_from_array
    from liverplan.volumetry.vessels import analyse_vessels
    ref = sitk.GetArrayFromImage(labels)
    vessels = np.where(ircadb_portal_vein(ref.shape), 1, np.where(ref == 4, 2, 0)).astype(np.uint8)
    return analyse_vessels(image_from_array(vessels, labels),
                           image_from_array((ref > 0).astype(np.uint8), labels)
                           ).portal_bifurcation_lps_mm
