"""Planning speed: time to recompute a plan after moving a cut, on a 512x512x130 grid.

Usage: python benchmarks/planning.py [--phantom DIR | --ircadb DIR]
By default an analytic liver (ellipsoid, eight plane-bounded segments, tube vessels fed from
outside the liver, spherical lesions) is built on the synthetic patient's "full" grid
(512x512x130, 0.75x0.75x1.6 mm). --phantom uses a synthetic patient's truth masks (generate one
with liverplan.io.phantom.generate(DIR, size="full")); --ircadb the real 3D-IRCADb-01 case
(../shared/data/ircadb-01: reference liver, lesions and vessels, no Couinaud map, so the preset
row is skipped). Prints a table; the target is <= 200 ms per recompute (issue 5).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # run from a checkout even when the package is not installed

from liverplan.geometry import image_from_array, index_to_lps  # noqa: E402
from liverplan.planner.flr import PlanningContext, evaluate  # noqa: E402
from liverplan.planner.patient import Patient  # noqa: E402
from liverplan.planner.resection import PlaneCut, SurfaceCut, WedgeResection, preset  # noqa: E402

SIZE_XYZ, SPACING_XYZ = (512, 512, 130), (0.75, 0.75, 1.6)


def _mark_tube(mask, a_zyx, b_zyx, radius_mm):
    """Mark the voxels within radius_mm of the segment a-b (computed inside its bounding box)."""
    sp = np.array(SPACING_XYZ[::-1])
    a, b = np.asarray(a_zyx, float), np.asarray(b_zyx, float)
    reach = np.ceil(radius_mm / sp).astype(int) + 1
    lo = np.maximum(np.floor(np.minimum(a, b)).astype(int) - reach, 0)
    hi = np.minimum(np.ceil(np.maximum(a, b)).astype(int) + reach + 1, mask.shape)
    p = np.stack(np.meshgrid(*[np.arange(l, h) for l, h in zip(lo, hi)], indexing="ij"), -1) * sp
    ab = (b - a) * sp
    t = np.clip((p - a * sp) @ ab / max(ab @ ab, 1e-9), 0, 1)
    d = np.linalg.norm(p - (a * sp + t[..., None] * ab), axis=-1)
    mask[tuple(slice(l, h) for l, h in zip(lo, hi))] |= d <= radius_mm


def analytic_case():
    ref = sitk.Image(SIZE_XYZ, sitk.sitkUInt8)
    ref.SetSpacing(SPACING_XYZ)
    ref.SetOrigin(tuple(-(np.array(SIZE_XYZ) - 1) / 2 * SPACING_XYZ))
    shape = SIZE_XYZ[::-1]
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    c = np.array([65, 256, 200])
    mm = [(z - c[0]) * 1.6, (y - c[1]) * 0.75, (x - c[2]) * 0.75]
    liver = (mm[0] / 70) ** 2 + (mm[1] / 80) ** 2 + (mm[2] / 105) ** 2 <= 1
    seg = np.zeros(shape, np.uint8)
    right, left = mm[2] < 0, mm[2] >= 35
    sup, post = mm[0] >= 0, mm[1] >= 0
    for s, sel in ((5, right & ~post & ~sup), (8, right & ~post & sup), (6, right & post & ~sup),
                   (7, right & post & sup), (4, ~right & ~left), (3, left & ~sup),
                   (2, left & sup)):
        seg[liver & sel] = s
    seg[liver & ~right & ~left & (mm[1] > 50)] = 1
    vessels = np.zeros(shape, np.uint8)
    portal, hepatic = np.zeros(shape, bool), np.zeros(shape, bool)
    centres = {5: (45, 200, 110), 8: (90, 200, 110), 6: (45, 310, 110), 7: (90, 310, 110),
               4: (65, 210, 220), 1: (65, 320, 220), 3: (45, 256, 300), 2: (90, 256, 300)}
    _mark_tube(portal, (2, 256, 60), (2, 256, 340), 7.0)
    _mark_tube(hepatic, (2, 380, 200), (128, 380, 200), 10.0)
    for s, (cz, cy, cx) in centres.items():
        for a, b in (((2, 256, cx), (2, cy, cx)), ((2, cy, cx), (cz, cy, cx))):
            _mark_tube(portal, a, b, 4.0)
        for a, b in (((cz, 380, 200), (cz, 380, cx + 12)), ((cz, 380, cx + 12), (cz, cy, cx + 12))):
            _mark_tube(hepatic, a, b, 4.0)
    vessels[portal] = 1
    vessels[hepatic] = 2
    tumors = np.zeros(shape, np.uint16)
    for i, (cz, cy, cx, r_mm) in enumerate([(40, 230, 120, 15), (80, 300, 90, 25),
                                            (60, 220, 260, 10), (85, 250, 320, 12),
                                            (50, 300, 150, 8), (70, 180, 170, 20)], start=1):
        d = ((z - cz) * 1.6) ** 2 + ((y - cy) * 0.75) ** 2 + ((x - cx) * 0.75) ** 2
        tumors[(d <= r_mm ** 2) & liver] = i
    vessels[tumors > 0] = 0
    return [image_from_array(a, ref) for a in (liver.astype(np.uint8), tumors, seg, vessels)]


def phantom_case(root: Path):
    from liverplan.io import read_image
    return [read_image(root / "truth" / f"{n}.nii.gz")
            for n in ("liver", "tumors", "segments", "vessels")]


def ircadb_case(root: Path):
    """3D-IRCADb-01: labels 1 parenchyma, 2 lesions, 3 portal-like, 4 hepatic-like vessels."""
    from scipy import ndimage

    from liverplan.io import load, read_image
    ct = load(root / "PATIENT_DICOM").image
    labels = sitk.GetArrayFromImage(read_image(root / "labels.nii.gz"))
    tumors = ndimage.label(labels == 2)[0].astype(np.uint16)
    vessels = np.select([labels == 3, labels == 4], [1, 2], 0).astype(np.uint8)
    liver = (labels > 0).astype(np.uint8)
    return [image_from_array(a, ct) for a in (liver, tumors)] + [None] + \
        [image_from_array(vessels, ct)]


def _time(fn, repeat):
    """Median and worst wall-clock ms, and median CPU ms (robust when the machine is shared)."""
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return statistics.median(wall), max(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = ap.add_mutually_exclusive_group()
    source.add_argument("--phantom", type=Path, help="synthetic patient folder (size full)")
    source.add_argument("--ircadb", type=Path, help="the 3D-IRCADb-01 folder")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    t = time.perf_counter()
    if args.phantom:
        images, source = phantom_case(args.phantom), f"synthetic patient {args.phantom}"
    elif args.ircadb:
        images, source = ircadb_case(args.ircadb), f"3D-IRCADb-01 {args.ircadb}"
    else:
        images, source = analytic_case(), "analytic liver"
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    ctx = PlanningContext(*images)
    ctx_s = time.perf_counter() - t
    ref = images[0]
    patient = Patient(78, 176)
    liver_zyx = np.argwhere(sitk.GetArrayViewFromImage(ref))
    centre = index_to_lps(ref, liver_zyx.mean(axis=0))[0]
    normal = np.array([-1.0, 0.15, 0.1])
    # A drag moves the cut a few mm per frame: a triangle wave of 2 mm steps over +-10 mm.
    steps_mm = np.r_[np.arange(-10, 10, 2.0), np.arange(10, -10, -2.0)]
    offsets = iter(np.tile(steps_mm, 100))
    jumps = iter(np.tile([-20.0, 20.0], 100))

    def jumped_plane():
        evaluate(ctx, [PlaneCut(centre + next(jumps) * np.array([1, 0, 0]), normal)], patient)

    def moved_plane():
        evaluate(ctx, [PlaneCut(centre + next(offsets) * np.array([1, 0, 0]), normal)], patient)

    def moved_plane_with_wedge():
        evaluate(ctx, [PlaneCut(centre + next(offsets) * np.array([1, 0, 0]), normal),
                       WedgeResection(4, 10.0)], patient)

    surface = SurfaceCut.from_plane(centre, normal, n=5)

    def moved_surface():
        h = np.zeros((5, 5))
        h[2, 2] = 2 * next(offsets)      # the centre control point dragged 4 mm per frame
        evaluate(ctx, [SurfaceCut(surface.origin_mm, surface.u_axis, surface.v_axis,
                                  surface.u_mm, surface.v_mm, tuple(map(tuple, h)))], patient)

    rows = [("right hemihepatectomy (preset)",
             _time(lambda: evaluate(ctx, [preset("right_hemihepatectomy")], patient), args.repeat))
            ] if ctx.segment.any() else []
    rows += [("plane cut moved 2 mm", _time(moved_plane, args.repeat)),
             ("plane cut jumped 40 mm", _time(jumped_plane, args.repeat)),
             ("plane cut moved 2 mm + wedge lesion 4", _time(moved_plane_with_wedge, args.repeat)),
             ("5x5 surface, control point moved 4 mm", _time(moved_surface, args.repeat))]
    size = ref.GetSize()
    print(f"case: {source}, {size[0]}x{size[1]}x{size[2]} voxels, spacing "
          f"{'x'.join(f'{s:g}' for s in ref.GetSpacing())} mm; liver {ctx.n * ctx.voxel_ml:.0f} mL "
          f"({ctx.n} voxels), {len(ctx.lesions)} lesions, {len(ctx.vessels)} vessel voxels")
    print(f"case built in {build_s:.1f} s; planning context (once per case) {ctx_s:.2f} s")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'recompute after':<40} {'wall median':>11} {'wall max':>9} {'CPU median':>11}"
          "  (ms; target <= 200)")
    for name, (median, worst, cpu) in rows:
        print(f"{name:<40} {median:>11.0f} {worst:>9.0f} {cpu:>11.0f}  "
              f"{'ok' if median <= 200 else 'over target'}")


if __name__ == "__main__":
    main()
