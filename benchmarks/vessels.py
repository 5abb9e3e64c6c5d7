"""Vessels and Couinaud segments: accuracy and speed on the synthetic patient and 3D-IRCADb-01.

    .venv/bin/python benchmarks/vessels.py [--phantom DIR | [--size small|full] [--seeds N ...]]
                                          [--skip-ircadb]

Synthetic patient (by default the full-size one, 512x512, of seeds 0-4, from the shared cache of
generated patients; every row names its size and seed): Dice of each system inside the liver
against truth/vessels.nii.gz, the portal bifurcation against truth.json, and Dice per Couinaud segment against truth/segments.nii.gz, with
the segments computed from the segmented vessels ("auto") and from the true vessels ("true
tree": the branch labelling alone). The vessel stage gets the reference liver and the reference
tumours of each case (those a vessel may be interrupted by).
3D-IRCADb-01: labels 3 (portal-like) and 4 (hepatic vein) are the reference vessels. The case has
no bifurcation landmark, so the reference point is derived from the expert's whole portal vein
(benchmarks.cases.ircadb_portal_vein: label 3 with the trunk outside the liver) with the same
definition the software uses (liverplan.volumetry.vessels.analyse_vessels: read from the trunk,
where the ways to the rightmost and leftmost portal branch ends in the liver part). There is no
segment reference: the right liver (5-8) share is a plausibility figure.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cases import DATA, ircadb_bifurcation_lps_mm  # noqa: E402
from liverplan.errors import SegmentationError  # noqa: E402
from liverplan.geometry import image_from_array, mask_volume_ml  # noqa: E402
from liverplan.io import load, phantom  # noqa: E402
from liverplan.volumetry import segments as S  # noqa: E402
from liverplan.volumetry import vessels as V  # noqa: E402


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def vessel_row(name, ct, liver, tumors, portal_ref, hepatic_ref, bifurcation_ref):
    result, seconds = timed(V.segment_vessels, ct, liver, tumors=tumors)
    got = sitk.GetArrayViewFromImage(result.vessels)
    inside = sitk.GetArrayViewFromImage(liver) > 0
    bif = result.portal_bifurcation_lps_mm
    err = (float(np.linalg.norm(np.subtract(bif, bifurcation_ref)))
           if bif is not None and bifurcation_ref is not None else float("nan"))
    row = dict(case=name, portal=dice((got == 1) & inside, portal_ref & inside),
               hepatic=dice((got == 2) & inside, hepatic_ref & inside), bif_mm=err,
               vessels_s=seconds, result=result)
    try:
        segs, seg_seconds = timed(S.couinaud_segments, liver, result, tumors=tumors)
    except SegmentationError as error:     # a figure too: the segments a user would not get
        return dict(row, right_percent=float("nan"), segments_s=float("nan"),
                    edit_s=float("nan"), method=f"none ({error})", segments=None)
    edit = dict(segs.assignments)
    if edit:
        first = next(iter(edit))
        edit[first] = 4 if edit[first] != 4 else 3
    _, edit_seconds = timed(S.couinaud_segments, liver, result, tumors=tumors, assignments=edit)
    right = S.hemiliver_volumes_ml(segs.segments)["right"] / mask_volume_ml(liver) * 100
    return dict(row, right_percent=right, segments_s=seg_seconds, edit_s=edit_seconds,
                method=segs.method, segments=segs)


def synthetic(case) -> list[str]:
    ct = load(case.dicom_dir).image
    liver = sitk.Cast(sitk.ReadImage(str(case.truth_dir / "liver.nii.gz")), sitk.sitkUInt8)
    liver.CopyInformation(ct)
    truth_v = sitk.ReadImage(str(case.truth_dir / "vessels.nii.gz"))
    truth_v.CopyInformation(ct)
    tv = sitk.GetArrayFromImage(truth_v)
    ts = sitk.GetArrayFromImage(sitk.ReadImage(str(case.truth_dir / "segments.nii.gz")))
    tumors = sitk.ReadImage(str(case.truth_dir / "tumors.nii.gz"))
    tumors.CopyInformation(ct)
    row = vessel_row(f"synthetic ({case.truth['size']}, {case.truth['seed']})", ct, liver,
                     tumors, tv == 1, tv == 2,
                     case.truth["markers"]["portal_bifurcation_lps_mm"])
    true_tree = V.analyse_vessels(sitk.Cast(truth_v, sitk.sitkUInt8), liver)
    true_segs = S.couinaud_segments(liver, true_tree, tumors=tumors)
    lines = [_format(row)]
    for label, segs in (("auto vessels", row["segments"]), ("true tree", true_segs)):
        if segs is None:
            continue
        a = sitk.GetArrayViewFromImage(segs.segments)
        per = " ".join(f"{dice(a == s, ts == s):.2f}" for s in S.SEGMENTS)
        lines.append(f"    Dice per segment 1-8 ({label}, {segs.method}): {per}")
    return lines


def ircadb() -> list[str]:
    folder = DATA / "ircadb-01"
    ct = load(folder / "PATIENT_DICOM").image
    labels = sitk.ReadImage(str(folder / "labels.nii.gz"))
    labels.CopyInformation(ct)
    ref = sitk.GetArrayFromImage(labels)
    liver = image_from_array((ref > 0).astype(np.uint8), ct)
    bifurcation = ircadb_bifurcation_lps_mm(labels)
    tumors = image_from_array((ref == 2).astype(np.uint16), ct)
    row = vessel_row("ircadb-01", ct, liver, tumors, ref == 3, ref == 4, bifurcation)
    pieces = S.segment_pieces(row["segments"].segments)
    vols = S.segment_volumes_ml(row["segments"].segments)
    return [_format(row),
            "    pieces per segment 1-8 (face-connected, in the liver's main body): "
            + " ".join(str(pieces[s]) for s in S.SEGMENTS),
            "    volume per segment 1-8 (mL): " + " ".join(f"{vols[s]:.0f}" for s in S.SEGMENTS),
            f"    reference bifurcation (the expert's portal vein): {np.round(bifurcation, 1)}"
            f", found: {np.round(row['result'].portal_bifurcation_lps_mm, 1)}"]


HEADER = (f"{'case':<22}{'Dice portal':>12}{'Dice hepatic':>13}{'bif err mm':>11}"
          f"{'right %':>9}{'vessels s':>10}{'segments s':>11}{'edit s':>8}  method")


def _format(r) -> str:
    return (f"{r['case']:<22}{r['portal']:>12.2f}{r['hepatic']:>13.2f}{r['bif_mm']:>11.1f}"
            f"{r['right_percent']:>9.1f}{r['vessels_s']:>10.1f}{r['segments_s']:>11.1f}"
            f"{r['edit_s']:>8.1f}  {r['method']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phantom", type=Path, help="an existing phantom folder")
    parser.add_argument("--size", default="full", choices=("small", "full"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                        help="the synthetic patients' anatomies (ignored with --phantom)")
    parser.add_argument("--skip-ircadb", action="store_true")
    args = parser.parse_args()
    cases = ([phantom.PhantomCase.open(args.phantom)] if args.phantom else
             [phantom.cached(seed=seed, size=args.size, followup=False) for seed in args.seeds])
    print(HEADER)
    for case in cases:
        for line in synthetic(case):
            print(line, flush=True)
    if not args.skip_ircadb:
        for line in ircadb():
            print(line, flush=True)


if __name__ == "__main__":
    main()
