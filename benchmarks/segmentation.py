"""Liver, lesion, vessel and segment segmentation against every reference we have; prints a table.

    python benchmarks/segmentation.py [--cases ircadb-01 totalseg-example synthetic-full ...]

Each case runs the headless pipeline (`liverplan.commands.segment.segment_case`, the same as
`liverplan segment`) in its own process, so "peak MB" is that process's peak resident memory
(resource.getrusage ru_maxrss: loading, segmentation and measurement together) and "CPU s" its
user+system time, which other work on the machine does not inflate.
Lesion recall counts reference lesions >= 10 mm (maximal 3D diameter) touched by a detected
lesion; per-lesion Dice is over those, with each one's maximal diameter and depth below the
capsule beside the reference's (both measured by liverplan.volumetry.measure); a false positive
is a detected lesion touching no reference lesion of any size. Vessels: Dice of each system
inside the reference liver (3D-IRCADb labels 3 and 4; the synthetic truth), end to end on the pipeline's own liver, and the portal
bifurcation's distance from the reference (the synthetic truth's marker; on 3D-IRCADb-01, which
has none, the point the software's definition gives on the expert's portal vein, with its trunk,
and liver: see benchmarks.cases); Couinaud segments: the right liver's share (5-8) and, for the synthetic
patient, Dice per segment. The vessel stage alone on the reference liver (recompute time) is
benchmarks/vessels.py.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from liverplan.geometry import image_from_array, same_grid, voxel_volume_ml  # noqa: E402
from liverplan.volumetry.measure import measure_lesions  # noqa: E402
from benchmarks.cases import DATA, full_phantom, ircadb_bifurcation_lps_mm  # noqa: E402

# the synthetic patient of seed 0 (the demo's anatomy) and of four other seeds: other liver
# shapes, vessel trees and lesion positions, so a figure is not tuned to one anatomy
SYNTHETIC = {"synthetic-full": 0, **{f"synthetic-full-s{seed}": seed for seed in range(1, 5)}}
CASES = ("ircadb-01", "totalseg-example", *SYNTHETIC)
MIN_LESION_MM = 10.0


def references(case: str):
    """(source for segment_case, reference liver path or None, reference lesions
    (path, 'components' | 'instances') or None, reference kind)."""
    if case == "ircadb-01":
        d = DATA / "ircadb-01"
        return d / "PATIENT_DICOM", (d / "labels.nii.gz", "1-4"), (d / "labels.nii.gz", 2), \
            "manual (3D-IRCADb)"
    if case == "totalseg-example":
        d = DATA / "totalseg-example"
        return d / "example_ct_dicom", (d / "example_seg_dicom.nii.gz", 5), None, \
            "model reference, not manual (TotalSegmentator); partial scan"
    if case in SYNTHETIC:
        root = full_phantom(SYNTHETIC[case])
        return root / "dicom", (root / "truth" / "liver.nii.gz", "any"), \
            (root / "truth" / "tumors.nii.gz", "instances"), "exact (synthetic truth)"
    raise ValueError(case)


def vessel_references(case: str):
    """(reference vessel file, its value for the portal system, for the hepatic veins,
    reference Couinaud segment file or None), or None when the case has none."""
    if case == "ircadb-01":       # labels 3 (portal-like) and 4 (hepatic veins), intrahepatic
        return DATA / "ircadb-01" / "labels.nii.gz", 3, 4, None
    if case in SYNTHETIC:
        truth = full_phantom(SYNTHETIC[case]) / "truth"
        return truth / "vessels.nii.gz", 1, 2, truth / "segments.nii.gz"
    return None


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


def _vessel_scores(run, case: str, image: sitk.Image, ref_liver: np.ndarray) -> dict:
    """Dice of each vessel system inside the reference liver, the right liver's share and
    the Dice of each Couinaud segment where the case has a reference (end to end: on the
    pipeline's own liver and vessels)."""
    from liverplan.volumetry.segments import SEGMENTS, hemiliver_volumes_ml
    refs = vessel_references(case)
    out = {}
    if run.vessels is not None and refs is not None:
        got, ref = sitk.GetArrayFromImage(run.vessels.vessels), _on_grid(refs[0], image)
        out["vessel_dice"] = [round(_dice((got == k) & ref_liver, (ref == v) & ref_liver), 3)
                              for k, v in ((1, refs[1]), (2, refs[2]))]
        found, reference = run.vessels.portal_bifurcation_lps_mm, _bifurcation(case, ref, image)
        if found is not None:
            out["bifurcation_error_mm"] = float(np.linalg.norm(np.subtract(found, reference)))
    if run.segments is not None:
        right_ml = hemiliver_volumes_ml(run.segments.segments)["right"]
        out["right_liver_percent"] = 100 * right_ml / run.volumetry.total_liver_ml
        out["segment_method"] = run.segments.method
        if refs is not None and refs[3] is not None:
            got, ref = sitk.GetArrayFromImage(run.segments.segments), _on_grid(refs[3], image)
            out["segment_dice"] = [round(_dice(got == n, ref == n), 3) for n in SEGMENTS]
    return out


def _bifurcation(case: str, ref: np.ndarray, image: sitk.Image) -> tuple:
    """The reference portal bifurcation (LPS mm): the synthetic truth's marker; on 3D-IRCADb-01
    the point the software's definition gives on its reference vessels and liver (`ref`: its
    label array, already on `image`'s grid)."""
    if case in SYNTHETIC:
        truth = json.loads((full_phantom(SYNTHETIC[case]) / "truth.json").read_text())
        return tuple(truth["markers"]["portal_bifurcation_lps_mm"])
    return ircadb_bifurcation_lps_mm(image_from_array(ref, image))


def _on_grid(path: Path, image: sitk.Image) -> np.ndarray:
    """A label file as an array on `image`'s grid (resampled in LPS, nearest label, when it
    stores the same voxels in another axis order, as TotalSegmentator's NIfTI does)."""
    labels = sitk.ReadImage(str(path))
    if not same_grid(labels, image):
        labels = sitk.Resample(labels, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return sitk.GetArrayFromImage(labels)


def _mask(path: Path, rule, image: sitk.Image) -> np.ndarray:
    a = _on_grid(path, image)
    if rule == "1-4":
        return (a >= 1) & (a <= 4)
    if rule == "any":
        return a > 0
    return a == rule


def _reference_lesions(path: Path, rule, image: sitk.Image) -> np.ndarray:
    a = _on_grid(path, image)
    if rule == "instances":
        return a.astype(np.int32)
    labels, _ = ndi.label(a == rule, structure=np.ones((3, 3, 3)))
    return labels


def run_case(case: str) -> dict:
    from liverplan.commands.segment import segment_case
    from liverplan.errors import LiverPlanError
    source, liver_ref, lesion_ref, kind = references(case)
    start = time.perf_counter()
    try:
        run = segment_case(source, whole_liver=case != "totalseg-example")   # 20 slices only
    except LiverPlanError as exc:
        return {"case": case, "reference": kind, "error": str(exc),
                "seconds": time.perf_counter() - start,
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    seconds = time.perf_counter() - start
    image = run.volume.image
    liver = sitk.GetArrayFromImage(run.liver.mask) > 0
    ref = _mask(*liver_ref, image)
    row = {"case": case, "reference": kind, "seconds": seconds, "timings_s": run.timings_s,
           "warnings": run.warnings,
           "dice": 2 * np.count_nonzero(liver & ref) / (np.count_nonzero(liver) + np.count_nonzero(ref)),
           "volume_ml": run.volumetry.total_liver_ml,
           "ref_volume_ml": np.count_nonzero(ref) * voxel_volume_ml(image)}
    row["volume_error_percent"] = 100 * (row["volume_ml"] - row["ref_volume_ml"]) / row["ref_volume_ml"]
    found = sitk.GetArrayFromImage(run.tumors)
    row["lesions_found"] = int(len(np.unique(found)) - 1)
    if lesion_ref is not None:
        truth_json = Path(lesion_ref[0]).parent.parent / "truth.json"
        diameters = ({x["id"]: x["max_diameter_mm"] for x in json.loads(truth_json.read_text())["lesions"]}
                     if lesion_ref[1] == "instances" else None)
        row.update(_lesion_scores(found, _reference_lesions(*lesion_ref, image), image, ref,
                                  diameters, run.volumetry.lesions))
    row.update(_vessel_scores(run, case, image, ref))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    row["cpu_seconds"] = usage.ru_utime + usage.ru_stime   # load-independent, all threads
    row["edit_s"] = _edit_timings(image, run.liver.mask)
    row["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def _edit_timings(image: sitk.Image, liver: sitk.Image) -> dict[str, float]:
    """Seconds per hand correction on this grid (the GUI's MaskEditor), at the liver centre."""
    from liverplan.geometry import index_to_lps
    from liverplan.volumetry.edit import MaskEditor, Stroke
    editor = MaskEditor(image, liver)
    centre = index_to_lps(image, np.argwhere(sitk.GetArrayViewFromImage(liver) > 0).mean(axis=0))[0]
    stroke = [centre + [dx, 0.0, 0.0] for dx in np.linspace(-20, 20, 9)]
    actions = {
        "brush axial r10": lambda: editor.paint(Stroke(stroke, 10.0, "axial"), 1),
        "eraser coronal r10": lambda: editor.paint(Stroke(stroke, 10.0, "coronal"), 0),
        "include seed r15": lambda: editor.include_seed(centre, radius_mm=15.0),
        "exclude seed r15": lambda: editor.exclude_seed(centre, radius_mm=15.0),
        "undo": editor.undo,
        "redo": editor.redo,
    }
    timings = {}
    for name, action in actions.items():
        start = time.perf_counter()
        action()
        timings[name] = round(time.perf_counter() - start, 3)
    return timings


def _lesion_scores(found: np.ndarray, truth: np.ndarray, image: sitk.Image,
                   ref_liver: np.ndarray, diameters_mm: dict[int, float] | None,
                   found_table) -> dict:
    """`diameters_mm`: the reference's own lesion diameters when it has them (the synthetic
    truth); otherwise they are measured on the reference mask. Each found lesion's diameter and
    depth (`found_table`, the run's lesion table) is set beside the reference's, both measured
    by measure_lesions (the reference on its own masks)."""
    reference = {t.id: t for t in measure_lesions(ref_liver | (truth > 0),
                                                  image_from_array(truth.astype(np.uint16), image))}
    if diameters_mm is None:
        diameters_mm = {k: t.diameter_mm for k, t in reference.items()}
    found_by_id = {t.id: t for t in found_table}
    big = [k for k, d in diameters_mm.items() if d >= MIN_LESION_MM]
    dices, missed, sizes = [], [], []
    for k in big:
        ref = truth == k
        ids, counts = np.unique(found[ref], return_counts=True)
        counts, ids = counts[ids > 0], ids[ids > 0]
        if ids.size == 0:
            missed.append(k)
            continue
        pred = np.isin(found, ids)
        dices.append(2 * np.count_nonzero(pred & ref) / (np.count_nonzero(pred) + np.count_nonzero(ref)))
        main = found_by_id[int(ids[np.argmax(counts)])]
        sizes.append(f"{main.diameter_mm:.0f}/{reference[k].diameter_mm:.0f} "
                     f"{main.depth_mm:.1f}/{reference[k].depth_mm:.1f}")
    false_pos = [int(i) for i in np.unique(found) if i > 0 and not np.any(truth[found == i])]
    return {"lesions_ref_10mm": len(big), "lesions_found_10mm": len(big) - len(missed),
            "missed_ids": missed, "lesion_dice": [round(d, 3) for d in dices],
            "lesion_sizes": sizes,
            "false_positives": len(false_pos)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--one", choices=CASES, help=argparse.SUPPRESS)   # child process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_case(args.one), default=float))
        return 0
    rows = []
    for case in args.cases:
        out = subprocess.run([sys.executable, __file__, "--one", case], capture_output=True,
                             text=True, cwd=ROOT)
        if out.returncode != 0:
            print(f"{case}: benchmark process failed:\n{out.stderr[-2000:]}", file=sys.stderr)
            return 1
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(_table(rows))
    return 0


def _table(rows: list[dict]) -> str:
    header = ("case", "reference", "Dice", "vol err %", "lesion recall >=10mm",
              "per-lesion Dice", "FP", "Dice portal/hepatic", "bif err mm", "right liver %",
              "seconds",
              "CPU s", "peak MB")
    lines = []
    for r in rows:
        if "error" in r:
            lines.append((r["case"], r["reference"], "refused", "-", "-", "-", "-", "-", "-", "-",
                          f"{r['seconds']:.1f}", "-", f"{r['peak_mb']:.0f}"))
            continue
        recall = (f"{r['lesions_found_10mm']}/{r['lesions_ref_10mm']}"
                  if "lesions_ref_10mm" in r else "-")
        lines.append((r["case"], r["reference"], f"{r['dice']:.3f}",
                      f"{r['volume_error_percent']:+.1f}", recall,
                      " ".join(f"{d:.2f}" for d in r.get("lesion_dice", [])) or "-",
                      str(r.get("false_positives", "-")),
                      "/".join(f"{d:.2f}" for d in r.get("vessel_dice", [])) or "-",
                      f"{r['bifurcation_error_mm']:.1f}" if "bifurcation_error_mm" in r else "-",
                      f"{r['right_liver_percent']:.1f}" if "right_liver_percent" in r else "-",
                      f"{r['seconds']:.1f}",
                      f"{r['cpu_seconds']:.1f}", f"{r['peak_mb']:.0f}"))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    out = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in (header, *lines)]
    notes = [f"{r['case']}: {r['error']}" for r in rows if "error" in r]
    notes += [f"{r['case']}: segments by {r.get('segment_method', '-')}; Dice per segment 1-8 "
              f"{r.get('segment_dice', '-')}; lesions >= 10 mm, diameter and depth mm (found/"
              f"reference) {r.get('lesion_sizes', '-')}; stage seconds {r['timings_s']}; hand-edit seconds "
              f"{r['edit_s']}; warnings {r['warnings']}" for r in rows if "error" not in r]
    legend = ["", "seconds = wall time of segment_case (load to volumetry) on a shared 2-core machine;",
              "CPU s = user+system time of the case's process (all threads, includes the edit timings);",
              "peak MB = ru_maxrss of the case's own process"]
    return "\n".join(out + legend + notes)


if __name__ == "__main__":
    sys.exit(main())
