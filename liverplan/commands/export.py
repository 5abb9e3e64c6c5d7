"""`liverplan export SOURCE --out DIR [--pdf] [--meshes] [--seg] [--send AE@HOST:PORT] [--deidentify]`

SOURCE is one of
- a plan file (*.liverplan.json from `liverplan plan`): give the CT with --ct; the masks are read
  from --masks, default the plan file's folder (where `liverplan plan` found them);
- a saved case folder (NAME.liverplan);
- a CT (DICOM folder or file) with --masks DIR (liver/tumors/vessels/segments .nii.gz).
A plan (the plan file, or --plan with the other sources) is needed for the PDF report and the
resection models; it must have been made on the same series. Without any of --pdf/--meshes/--seg,
everything the inputs allow is exported.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from liverplan.case import LABEL_NAMES, Case
from liverplan.errors import ExportError, InputError
from liverplan.terminal import ProgressBar


def add_parser(subparsers) -> None:
    sub = subparsers.add_parser("export", help="write the report, 3D models and DICOM SEG; "
                                "optionally send them to a PACS", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.add_argument("source", type=Path,
                     help="plan file (*.liverplan.json), saved case folder, or CT")
    sub.add_argument("--ct", type=Path, help="the CT the plan was made on (with a plan file)")
    sub.add_argument("--masks", type=Path, help="folder with liver/tumors/vessels/segments.nii.gz")
    sub.add_argument("--plan", type=Path, help="plan file, when SOURCE is a case folder or a CT")
    sub.add_argument("--out", type=Path, required=True, help="export folder")
    sub.add_argument("--pdf", action="store_true", help="PDF report (+ DICOM encapsulated PDF)")
    sub.add_argument("--meshes", action="store_true", help="STL/PLY per structure and scene.glb")
    sub.add_argument("--seg", action="store_true", help="DICOM SEG referencing the CT series")
    sub.add_argument("--send", metavar="AE@HOST:PORT", help="C-STORE the SEG and the report")
    sub.add_argument("--deidentify", action="store_true",
                     help="DICOM PS3.15 basic profile, for exports that leave the hospital")
    sub.add_argument("--pseudonym", default="ANONYMOUS", help="name and ID used with --deidentify")
    sub.set_defaults(func=run)


def load_case(source: Path, masks: Path | None, progress=None) -> Case:
    """A Case from a saved case folder, or from a DICOM series plus a folder of masks."""
    from liverplan.io import load, read_image
    from liverplan.io.casefile import is_case, open_case

    if is_case(source):
        if masks is not None:
            raise InputError("a saved case already holds its masks; leave out --masks", path=source)
        return open_case(source, progress=progress)[0]
    if masks is None:
        raise ExportError("there is no segmentation to export: give a saved case folder, or "
                          "--masks with the label images of this series", path=source)
    volume = load(source, progress=progress)
    case = Case(image=volume.image, info=volume.info, warnings=list(volume.warnings))
    found = {name: masks / f"{name}.nii.gz" for name in LABEL_NAMES
             if (masks / f"{name}.nii.gz").is_file()}
    if not found:
        raise ExportError("no label images (liver.nii.gz, tumors.nii.gz, vessels.nii.gz, "
                          "segments.nii.gz) in this folder", path=masks)
    for name, path in found.items():
        try:
            case.set_label(name, read_image(path))
        except ValueError as exc:
            raise InputError(f"{exc}; the masks must be made on this CT series", path=path) from exc
    return case


def check_same_series(case: Case, planfile, path: Path) -> None:
    """Refuse to print a plan over another scan (another patient, or another phase)."""
    planned = planfile.series.get("series_instance_uid")
    loaded = getattr(case.info, "series_instance_uid", None)
    if planned and loaded and planned != loaded:
        raise InputError(f"this plan was made on series {planned}, not on the CT given "
                         f"({loaded}); export it with the CT it was planned on", path=path)


def run(args) -> int:
    from liverplan.io.deidentify import Deidentifier
    from liverplan.io.export_all import export_case
    from liverplan.planner.planfile import SUFFIX, load_plan

    bar = ProgressBar(sys.stderr)
    plan_path = args.plan
    if args.source.name.endswith(SUFFIX):
        if args.ct is None:
            raise InputError("give the CT the plan was made on with --ct (the plan file names "
                             "its series but not where it is stored)", path=args.source)
        plan_path = args.source
        case = load_case(args.ct, args.masks or args.source.parent, progress=bar)
    else:
        case = load_case(args.source, args.masks, progress=bar)
    planfile = load_plan(plan_path) if plan_path else None
    if planfile is not None:
        check_same_series(case, planfile, plan_path)
    chosen = args.pdf or args.meshes or args.seg
    result = export_case(
        case, args.out, planfile=planfile, pdf=args.pdf if chosen else planfile is not None,
        meshes=args.meshes or not chosen, seg=args.seg or not chosen, send=args.send,
        deidentify=Deidentifier(pseudonym=args.pseudonym) if args.deidentify else False,
        progress=bar)
    print(f"Exported {len(result.files)} file(s) to {result.folder}:")
    for path in result.files:
        print(f"  {path.relative_to(result.folder)}")
    if result.sent:
        print(f"Sent {len(result.sent)} object(s) to {args.send}.")
    for w in result.warnings:
        print(f"warning: {w}")
    return 0
