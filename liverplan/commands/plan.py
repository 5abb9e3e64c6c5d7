"""`liverplan plan PATH --resection NAME | --segments 5,6,7,8 [--wedge LESION:MARGIN ...]
[--weight KG --height CM --quality normal|chemo|cirrhosis] [--masks DIR]
[--icg [--icg-rim-mm MM --icg-tbr RATIO --icg-depth-mm MM]] --out DIR`

Plans a resection on the CT at PATH with the masks written by `liverplan segment` (liver.nii.gz,
tumors.nii.gz, segments.nii.gz, vessels.nii.gz in --masks, default the --out folder), writes
DIR/plan.liverplan.json and prints the volumes, FLR ratios with their thresholds and the rule
that fired, per-lesion margins, the verdict with its reasons and the ranked strategies.

With --icg it also predicts the ICG fluorescence a NIR laparoscope is expected to show (needs
tumors.nii.gz): icg_surface.vtp and icg_view.png for the liver surface, icg_transection.vtp and
icg_cavity.png for the planned cut, the per-lesion table in the plan file, and the MIMIC trial's
accuracy figures beside the prediction.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from liverplan.case import LABEL_NAMES, LIVER, TUMORS, Case
from liverplan.errors import InputError, PlanningError
from liverplan.geometry import same_grid
from liverplan.io import load, read_image
from liverplan.io.atomic import ensure_folder
from liverplan.planner.flr import Plan, PlanningContext, plan, resected_image
from liverplan.planner.icg import IcgParameters, IcgResult
from liverplan.planner.icg_view import predict_and_write
from liverplan.planner.patient import QUALITY_SFLR_MIN, Patient
from liverplan.planner.planfile import PlanFile, plan_path, save_plan, series_inputs
from liverplan.planner.resection import (DEFAULT_WEDGE_MARGIN_MM, PRESETS, SegmentResection,
                                         WedgeResection, preset)
from liverplan.planner.staging import Strategy, rank_strategies
from liverplan.progress import Steps
from liverplan.terminal import ProgressBar


def add_parser(subparsers) -> None:
    sub = subparsers.add_parser("plan", help="plan a resection: FLR, margins, verdict, strategies",
                                description=__doc__)
    sub.add_argument("path", type=Path, help="the CT: DICOM folder or file, or NIfTI/NRRD/MHA")
    what = sub.add_mutually_exclusive_group()
    what.add_argument("--resection", choices=sorted(PRESETS), help="named anatomical resection")
    what.add_argument("--segments", type=_segments,
                      help="Couinaud segments to resect, e.g. 5,6,7,8")
    sub.add_argument("--wedge", action="append", type=_wedge, default=[], metavar="LESION[:MARGIN]",
                     help=f"wedge resection around a lesion id with a margin in mm (default "
                          f"{DEFAULT_WEDGE_MARGIN_MM:g}); repeat for several lesions")
    sub.add_argument("--weight", type=float, help="body weight in kg (default: DICOM tag)")
    sub.add_argument("--height", type=float, help="height in cm (default: DICOM tag)")
    sub.add_argument("--quality", choices=sorted(QUALITY_SFLR_MIN), default="normal",
                     help="liver quality: minimum sFLR 20/30/40%% (default normal)")
    sub.add_argument("--masks", type=Path, help="folder with the masks (default: --out)")
    sub.add_argument("--series", help="SeriesInstanceUID when the folder holds several series")
    sub.add_argument("--out", type=Path, required=True, help="output folder for the plan file")
    icg = sub.add_argument_group("expected ICG fluorescence (NIR laparoscopy)")
    icg.add_argument("--icg", action="store_true",
                     help="predict the ICG fluorescence on the liver surface and the transection")
    defaults = IcgParameters()
    icg.add_argument("--icg-rim-mm", type=float, default=defaults.rim_thickness_mm,
                     help="thickness of the fluorescent rim around a lesion in mm (an assumption; "
                          "default %(default)g)")
    icg.add_argument("--icg-tbr", type=float, default=defaults.tbr,
                     help="tumour-to-background ratio of the rim (default %(default)g)")
    icg.add_argument("--icg-depth-mm", type=float, default=defaults.detection_depth_mm,
                     help="depth in mm at which a standard rim is just visible (default "
                          "%(default)g)")
    sub.set_defaults(func=run)


def _segments(text: str) -> SegmentResection:
    try:
        return SegmentResection(tuple(int(s) for s in text.replace(" ", "").split(",") if s))
    except (ValueError, PlanningError):
        raise argparse.ArgumentTypeError(f"segments must be numbers 1-8 separated by commas, "
                                         f"not {text!r}") from None


def _wedge(text: str) -> WedgeResection:
    lesion, _, margin = text.partition(":")
    try:
        return WedgeResection(int(lesion), float(margin) if margin else DEFAULT_WEDGE_MARGIN_MM)
    except (ValueError, PlanningError):
        raise argparse.ArgumentTypeError(f"a wedge is LESION or LESION:MARGIN_MM (e.g. 3:10), "
                                         f"not {text!r}") from None


def load_case(path: Path, masks: Path, *, series=None, progress=None, cancel=None) -> Case:
    """The CT and whichever masks the folder holds (the liver mask is required)."""
    steps = Steps(progress, cancel)
    volume = load(path, series=series, progress=steps.sub(0.0, 0.8).report, cancel=cancel)
    case = Case(volume.image, volume.info, warnings=list(volume.warnings))
    for k, name in enumerate(LABEL_NAMES):
        steps.report(0.8 + 0.05 * k, f"Reading {name} mask")
        file = masks / f"{name}.nii.gz"
        if not file.is_file():
            if name == LIVER:
                raise InputError("no liver mask here; run `liverplan segment` first or give "
                                 "--masks", path=file)
            continue
        mask = read_image(file)
        if not same_grid(mask, volume.image):
            raise InputError("this mask is not on the CT's grid (size, origin, spacing or "
                             "direction differ); it belongs to another series", path=file)
        case.set_label(name, mask)
    return case


def run(args) -> int:
    resections = [r for r in (args.segments,) if r is not None]
    if args.resection:
        resections.append(preset(args.resection))
    resections += args.wedge
    if not resections:
        raise InputError("nothing to plan: give --resection, --segments or --wedge")
    params = (IcgParameters(rim_thickness_mm=args.icg_rim_mm, tbr=args.icg_tbr,
                            detection_depth_mm=args.icg_depth_mm) if args.icg else None)
    end = 0.6 if args.icg else 0.95     # of the progress bar, for loading and planning
    bar = ProgressBar(sys.stderr)
    steps = Steps(bar)
    case = load_case(args.path, args.masks or args.out, series=args.series,
                     progress=steps.sub(0.0, end * 0.5).report)
    if args.icg and case.label(TUMORS) is None:
        raise InputError("the ICG prediction needs the lesion mask tumors.nii.gz; run "
                         "`liverplan segment` first or give --masks",
                         path=(args.masks or args.out) / f"{TUMORS}.nii.gz")
    patient = Patient.from_series(case.info, weight_kg=args.weight, height_cm=args.height,
                                  quality=args.quality)
    ctx = PlanningContext.from_case(case, progress=steps.sub(end * 0.5, end).report)
    planned = plan(ctx, resections, patient, notes=case.warnings)
    strategies = rank_strategies(planned.result, resections, patient)
    ensure_folder(args.out)
    icg = None
    if params is not None:
        icg = predict_and_write(args.out, case.label(LIVER), case.label(TUMORS),
                                resected_image(ctx, resections), params,
                                outcomes=planned.result.lesions,
                                progress=steps.sub(end, 0.98).report)
    path = plan_path(args.out)
    save_plan(path, PlanFile(planned, series_inputs(case.info), strategies=strategies, icg=icg))
    bar(1.0, "Done")
    print("\n".join(summary(planned, strategies, icg, folder=args.out)))
    print(f"Wrote {path}")
    return 0


def summary(planned: Plan, strategies: tuple[Strategy, ...], icg: IcgResult | None = None,
            *, folder: Path = Path(".")) -> list[str]:
    """A readable account of the plan: every figure with its threshold, rule and source."""
    r, p = planned.result, planned.patient
    size = (f"{p.weight_kg:g} kg, {p.height_cm:g} cm, BSA {p.bsa_m2:.2f} m2 ({p.bsa_formula}), "
            f"TELV {r.telv_ml:.0f} mL ({p.telv_formula})" if p.has_size
            else "weight/height unknown")
    lines = [f"Plan: {planned.name}",
             f"Patient: {size}; liver quality {p.quality} -> minimum sFLR {r.sflr_min_percent:g}%",
             f"Liver {r.liver_volume_ml:.0f} mL (tumours {r.tumor_volume_ml:.1f} mL, functional "
             f"{r.functional_volume_ml:.0f} mL); resected {r.resected_volume_ml:.0f} mL, remnant "
             f"{r.remnant_volume_ml:.0f} mL",
             f"FLR {r.flr_ml:.0f} mL = {r.flr_percent:.1f}% of the functional liver volume"]
    if r.sflr_percent is not None:
        lines.append(f"sFLR = FLR / TELV = {r.sflr_percent:.1f}%")
    if r.flr_bw_percent is not None:
        lines.append(f"FLR/BW = {r.flr_bw_percent:.2f}%")
    lines.append(f"The verdict uses {r.driving} ({r.driving_percent:.1f}%).")
    lines.append("Lesions:")
    for les in r.lesions:
        margin = "" if les.margin_mm is None else (
            f", margin {les.margin_mm:.1f} mm ({'R0' if les.r0 else 'R1 risk'})")
        lines.append(f"  {les.lesion_id}: segment {les.segment or '?'}, {les.diameter_mm:.0f} mm, "
                     f"{les.status}{margin}")
    if r.crossings:
        lines.append("Vessels crossed by the cut:")
        for c in r.crossings:
            where = ", ".join(f"{v:.0f}" for v in c.position_lps_mm)
            lines.append(f"  {c.system} {c.diameter_mm:.1f} mm at ({where}) LPS mm")
    lines.append(f"Remnant: {r.remnant.detail}")
    lines.append(f"VERDICT: {r.verdict.upper()}")
    for reason in r.reasons:
        lines.append(f"  [{reason.status}] {reason.rule}: {reason.detail}"
                     + (f"  (source: {reason.source})" if reason.source else ""))
    lines.append("Strategies:")
    for s in strategies:
        head = f"  {s.rank}. {s.name}" if s.applicable else f"  -  {s.name}"
        days = (f"; FLR threshold reached in {s.days_min:.0f}-{s.days_max:.0f} days"
                if s.applicable and s.days_max else "")
        lines.append(f"{head}: {s.summary}{days}")
        if s.applicable:
            lines += [f"       {step}" for step in s.steps]
            lines.append(f"       rule: {s.rule} (source: {s.source})")
            lines += [f"       risk: {risk}" for risk in s.risks]
    if icg is not None:
        lines += icg_lines(icg, folder)
    lines += [f"warning: {w}" for w in (*r.warnings, *planned.notes)]
    return lines


def icg_lines(icg: IcgResult, folder: Path = Path(".")) -> list[str]:
    """The ICG prediction: every model parameter, the per-lesion tables with the MIMIC figures,
    and the files written (in `folder`, the plan's)."""
    p = icg.surface.parameters
    patterns = ", ".join(f"lesion {i} {pattern}" for i, pattern in p.lesion_patterns)
    return ["Expected ICG fluorescence (a model prediction, not a measurement):",
            f"  parameters: rim {p.rim_thickness_mm:g} mm (assumed), TBR {p.tbr:g}, background "
            f"{p.background:g}, effective attenuation {p.mu_eff_per_mm:g}/mm, detection depth "
            f"{p.detection_depth_mm:g} mm (threshold intensity {p.threshold:.3g}); pattern "
            f"{patterns or 'rim for every lesion'}",
            *icg.lines(), *(f"  wrote {f}" for f in icg.paths(folder))]
