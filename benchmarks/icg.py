"""ICG map speed: expected fluorescence on a liver surface and on a transection.

Usage: python benchmarks/icg.py [--phantom DIR] [--out DIR]
Case: ../shared/data/ircadb-01 (3D-IRCADb-01 patient 1, 512x512x129, 0.57x0.57x1.6 mm; liver =
labels 1-4, lesions = connected components of label 2), and with --phantom the synthetic
patient's truth masks (truth/liver.nii.gz, truth/tumors.nii.gz). The transection is a sagittal
plane through the liver's centroid, the patient's right side resected (a right-hemiliver-like
cut). Meshing (shared with the 3D view) is timed apart from the ICG maps; the map is also timed
on the surface decimated to about 200k vertices. Target (issue 6): <= 1 s for a 200k-vertex
surface. With --out the files of each case (icg_surface.vtp, icg_view.png, icg_transection.vtp,
icg_cavity.png) are written there.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # run from a checkout even when the package is not installed

from liverplan.geometry import image_from_array, index_to_lps  # noqa: E402
from liverplan.meshes import mask_to_mesh  # noqa: E402
from liverplan.planner.icg import (cut_surface, surface_fluorescence,  # noqa: E402
                                   transection_fluorescence)
from liverplan.planner.icg_view import write_icg_outputs  # noqa: E402

IRCADB = ROOT.parent / "shared/data/ircadb-01/labels.nii.gz"
TARGET_VERTICES = 200_000


def ircadb_masks() -> tuple[sitk.Image, sitk.Image]:
    labels = sitk.ReadImage(str(IRCADB))
    liver = sitk.Cast(labels > 0, sitk.sitkUInt8)
    tumors = sitk.Cast(sitk.ConnectedComponent(labels == 2), sitk.sitkUInt16)
    return liver, tumors


def phantom_masks(root: Path) -> tuple[sitk.Image, sitk.Image]:
    return (sitk.ReadImage(str(root / "truth/liver.nii.gz")),
            sitk.ReadImage(str(root / "truth/tumors.nii.gz")))


def right_side_resected(liver: sitk.Image) -> sitk.Image:
    """Everything on the patient's right of a sagittal plane through the liver's centroid."""
    a = sitk.GetArrayViewFromImage(liver)
    idx = np.argwhere(a)
    centre_x = index_to_lps(liver, idx.mean(axis=0))[0, 0]
    # LPS x is affine in the (i, j, k) index: sum three broadcast 1-D ramps (no full grid)
    d = np.array(liver.GetDirection()).reshape(3, 3)
    ramps = [(d[0, axis] * liver.GetSpacing()[axis] * np.arange(n, dtype=np.float32))
             for axis, n in enumerate(liver.GetSize())]
    x = liver.GetOrigin()[0] + ramps[2][:, None, None] + ramps[1][None, :, None] + ramps[0]
    return image_from_array((x < centre_x).astype(np.uint8), liver)   # LPS: x grows to the left


def timed(fn):
    """(wall s, CPU s, result). The machine is shared: CPU time is what an idle machine's wall
    time would be for this single-threaded work; both are printed."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return (time.perf_counter() - t0, time.process_time() - c0), result


def bench(name: str, liver: sitk.Image, tumors: sitk.Image, out: Path | None) -> None:
    (t_mesh, _), mesh = timed(lambda: mask_to_mesh(liver))
    meshes = [("liver surface", mesh)]
    if mesh.n_points > TARGET_VERTICES * 1.1:
        small = mesh.decimate(1.0 - TARGET_VERTICES / mesh.n_points).compute_normals(
            auto_orient_normals=True, split_vertices=False)
        meshes.append(("liver surface, decimated", small))
    resected = right_side_resected(liver)
    (t_cut, _), cut = timed(lambda: cut_surface(liver, resected))
    n_lesions = len(np.unique(sitk.GetArrayViewFromImage(tumors))) - 1
    print(f"\n{name}: {n_lesions} lesions; meshing the liver {t_mesh:.2f} s, "
          f"the cut surface {t_cut:.2f} s (shared with the 3D view, not part of the map)")
    print(f"{'surface':<28} {'vertices':>9} {'wall s':>7} {'CPU s':>6}  result")
    maps = []
    for label, m in meshes:
        seconds, result = timed(lambda: surface_fluorescence(liver, tumors, mesh=m))
        maps.append(result)
        visible = sum(r.visible for r in result[1].lesions)
        print(f"{label:<28} {m.n_points:>9} {seconds[0]:>7.2f} {seconds[1]:>6.2f}  "
              f"{visible} of {n_lesions} visible")
    seconds, (painted_cut, transection) = timed(
        lambda: transection_fluorescence(liver, tumors, resected, mesh=cut))
    positive = sum(r.nir_positive for r in transection.lesions)
    print(f"{'transection (both sides)':<28} {cut.n_points:>9} {seconds[0]:>7.2f} "
          f"{seconds[1]:>6.2f}  {positive} of {n_lesions} NIR+")
    if out is not None:
        painted, surface_map = maps[0]
        write_icg_outputs(out / name.split()[0], painted, surface_map,
                          transection=(painted_cut, transection, resected))


def main() -> int:
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phantom", type=Path, help="a generated synthetic patient folder")
    parser.add_argument("--out", type=Path, help="write icg_surface.vtp / icg_view.png here")
    args = parser.parse_args()
    bench("ircadb-01 (real CT, 512x512x129)", *ircadb_masks(), args.out)
    if args.phantom:
        bench(f"phantom ({args.phantom.name})", *phantom_masks(args.phantom), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
