"""`liverplan demo --out DIR [--seed N] [--size small|full]`: write the synthetic patient.

DIR receives dicom/ (the CT series to open), truth/ and truth.json (the exact answers), and
followup/ (the same patient after right portal vein embolization). The folder is built beside
DIR and moved into place at the end, so an interrupted run never leaves half a patient.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from liverplan.errors import InputError
from liverplan.io import phantom
from liverplan.terminal import ProgressBar


def add_parser(subparsers) -> None:
    sub = subparsers.add_parser("demo", help="write the synthetic demo patient (DICOM + truth)",
                                description=__doc__)
    sub.add_argument("--out", type=Path, required=True, help="folder to create (replaced if it "
                                                             "holds an earlier demo patient)")
    sub.add_argument("--seed", type=int, default=0, help="patient variant (default 0)")
    sub.add_argument("--size", choices=sorted(phantom.SIZES), default="small",
                     help="small: 256x256 at 1.5 mm, 2.5 mm slices; full: 512x512 at 0.75 mm, "
                          "1.6 mm slices")
    sub.add_argument("--no-followup", action="store_true",
                     help="skip the post-embolization follow-up scan")
    sub.set_defaults(func=run)


def run(args) -> int:
    out = args.out.resolve()
    if out.exists() and any(out.iterdir()) and not (out / "truth.json").is_file():
        raise InputError("this folder already holds other files; choose an empty or new folder",
                         path=out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.building-{os.getpid()}")
    try:
        case = phantom.generate(tmp, seed=args.seed, size=args.size,
                                followup=not args.no_followup, progress=ProgressBar(sys.stderr))
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    case = phantom.PhantomCase.open(out)
    truth = case.truth
    print(f"Synthetic patient (seed {args.seed}, {args.size}) in {out}")
    print(f"  CT series:   {case.dicom_dir}")
    lesions = ", ".join(f"{les['diameter_mm']:.0f} mm in S{les['segment']}"
                        for les in truth["lesions"])
    print(f"  liver {truth['liver_volume_ml']:.0f} mL, {len(truth['lesions'])} metastases "
          f"({lesions})")
    if case.followup is not None:
        h = case.followup.truth["hypertrophy"]
        print(f"  follow-up {case.followup.truth['weeks_after_pve']:g} weeks after right PVE: "
              f"{case.followup.dicom_dir} (segments 2-4 {h['baseline_volume_ml']:.0f} -> "
              f"{h['followup_volume_ml']:.0f} mL, {h['growth_percent']:+.1f}%)")
    return 0
