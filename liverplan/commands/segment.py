"""`liverplan segment PATH --out DIR [--series UID] [--liver-seed X,Y,Z]`: automatic
segmentation and volumetry (with --liver-seed the liver is grown from that point: seeded mode).

Writes on the input CT grid: liver.nii.gz (0/1), tumors.nii.gz (lesion ids 0..N),
vessels.nii.gz (1 portal venous system, 2 hepatic veins and IVC), segments.nii.gz (Couinaud
1-8) and volumetry.json (volumes in mL of the liver, segments, sectors and hemi-livers, lesion
table with segments, how the segments were made, software version, input series, parameters,
timings). All files appear together or not at all (Ctrl-C leaves nothing partial).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import SimpleITK as sitk

from liverplan import __version__
from liverplan.errors import InputError, SegmentationError
from liverplan.io import Volume, load, require_3d, write_image
from liverplan.io.atomic import check_folder, disk_error, ensure_folder
from liverplan.progress import Steps
from liverplan.terminal import ProgressBar
from liverplan.volumetry.liver import LiverResult, check_ct
from liverplan.volumetry.measure import Volumetry, measure
from liverplan.volumetry.segmenter import ClassicalSegmenter, Segmenter
from liverplan.volumetry.segments import (SegmentsResult, couinaud_segments,
                                          hemiliver_volumes_ml, lesion_segments,
                                          sector_volumes_ml, segment_volumes_ml)
from liverplan.volumetry.vessels import VesselResult, segment_vessels

OUTPUTS = ("liver.nii.gz", "tumors.nii.gz", "vessels.nii.gz", "segments.nii.gz",
           "volumetry.json")


@dataclass
class SegmentationRun:
    """Everything one run produced, stage by stage."""
    volume: Volume
    segmenter: str
    parameters: dict
    liver: LiverResult | None = None
    tumors: sitk.Image | None = None
    vessels: VesselResult | None = None
    segments: SegmentsResult | None = None
    volumetry: Volumetry | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    stage_failures: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return [*self.volume.warnings, *self.stage_failures,
                *(self.liver.warnings if self.liver else ()),
                *(self.vessels.warnings if self.vessels else ()),
                *(self.segments.warnings if self.segments else ())]


@contextmanager
def _timed(timings: dict[str, float], stage: str):
    start = time.perf_counter()
    yield
    timings[stage] = round(time.perf_counter() - start, 2)


# --- stages (one function each, in pipeline order) --------------------------------------------
def load_stage(source, series, steps: Steps, whole_liver: bool = True) -> Volume:
    volume = load(source, series=series, progress=steps.report, cancel=steps.cancel)
    if whole_liver:
        require_3d(volume)    # volumetry of a liver cut by the scan range would mislead
    modality = volume.info.modality if volume.info is not None else "CT"
    if modality != "CT":
        raise InputError(f"this series is {modality}, not CT: automatic segmentation needs a "
                         "contrast-enhanced CT. Use the seeded mode in the desktop app for "
                         "other images.", path=volume.source)
    check_ct(volume.image, path=volume.source)
    return volume


def liver_stage(run: SegmentationRun, segmenter: Segmenter, steps: Steps,
                liver_seed_lps=None) -> None:
    run.liver = segmenter.liver(run.volume.image, seed_lps=liver_seed_lps,
                                path=run.volume.source, progress=steps.report,
                                cancel=steps.cancel)


def lesion_stage(run: SegmentationRun, segmenter: Segmenter, steps: Steps) -> None:
    run.tumors = segmenter.lesions(run.volume.image, run.liver.mask, progress=steps.report,
                                   cancel=steps.cancel)


def vessel_stage(run: SegmentationRun, steps: Steps) -> None:
    # Liver and lesion volumetry stand on their own: a scan without usable vessels still gets
    # them, with the reason the vessels and segments are missing (never an empty map).
    try:
        run.vessels = segment_vessels(run.volume.image, run.liver.mask, tumors=run.tumors,
                                      progress=steps.report, cancel=steps.cancel)
    except SegmentationError as exc:
        run.stage_failures.append(f"Vessels not segmented: {exc}")


def segments_stage(run: SegmentationRun, steps: Steps) -> None:
    if run.vessels is None:
        run.stage_failures.append("Couinaud segments not computed: they need the vessels or "
                                  "landmarks placed by hand in the desktop app.")
        return
    try:
        run.segments = couinaud_segments(run.liver.mask, run.vessels, tumors=run.tumors,
                                         progress=steps.report, cancel=steps.cancel)
    except SegmentationError as exc:
        run.stage_failures.append(f"Couinaud segments not computed: {exc}")


def measure_stage(run: SegmentationRun, steps: Steps) -> None:
    steps.report(0.0, "Measuring volumes")
    segments = run.segments.segments if run.segments else None
    run.volumetry = measure(run.liver.mask, run.tumors, segments)


def segment_case(source, *, series: str | None = None, segmenter: Segmenter | None = None,
                 whole_liver: bool = True, liver_seed_lps=None, progress=None,
                 cancel=None) -> SegmentationRun:
    """The whole headless pipeline: load, liver, lesions, vessels, segments, volumetry.

    whole_liver=False accepts scans too short to hold a whole liver (viewing, benchmarks on
    partial references); the command always requires the whole liver. liver_seed_lps: a point
    inside the liver (LPS mm) to grow it from (seeded mode) instead of finding it."""
    segmenter = segmenter or ClassicalSegmenter()
    steps = Steps(progress, cancel)
    timings: dict[str, float] = {}
    with _timed(timings, "load"):
        volume = load_stage(source, series, steps.sub(0.0, 0.15), whole_liver)
    parameters = segmenter.parameters()
    if liver_seed_lps is not None:
        parameters["liver_seed_lps_mm"] = [float(v) for v in liver_seed_lps]
    run = SegmentationRun(volume, segmenter.name, parameters, timings_s=timings)
    with _timed(timings, "liver"):
        liver_stage(run, segmenter, steps.sub(0.15, 0.5), liver_seed_lps)
    with _timed(timings, "lesions"):
        lesion_stage(run, segmenter, steps.sub(0.5, 0.65))
    with _timed(timings, "vessels"):
        vessel_stage(run, steps.sub(0.65, 0.85))
    with _timed(timings, "segments"):
        segments_stage(run, steps.sub(0.85, 0.9))
    with _timed(timings, "measure"):
        measure_stage(run, steps.sub(0.9, 0.97))
    return run


def report(run: SegmentationRun) -> dict:
    """The volumetry.json document."""
    info = run.volume.info
    doc = {
        "software": {"name": "liverplan", "version": __version__, "segmenter": run.segmenter},
        "input": {"source": str(run.volume.source),
                  "series_instance_uid": info.series_instance_uid if info else None,
                  "series_key": info.key if info else None},
        "volumetry": run.volumetry.to_dict(),
        "vessels": run.vessels.to_dict() if run.vessels else None,
        "segments": run.segments.to_dict() if run.segments else None,
        "intensity_model": run.liver.model.to_dict(),
        "parameters": run.parameters,
        "timings_s": run.timings_s,
        "warnings": run.warnings,
    }
    if run.segments:
        segments = run.segments.segments
        doc["segment_volume_ml"] = {str(k): v for k, v in segment_volumes_ml(segments).items()}
        doc["sector_volume_ml"] = sector_volumes_ml(segments)
        doc["hemiliver_volume_ml"] = hemiliver_volumes_ml(segments)
        doc["lesion_segments"] = {str(k): {str(s): f for s, f in v.items()}
                                  for k, v in lesion_segments(run.tumors, segments).items()}
    return doc


def write_outputs(run: SegmentationRun, out_dir: Path) -> list[Path]:
    """Write the outputs; each goes to a temporary file first and all are renamed only
    once every one is complete, so an interruption leaves no partial output."""
    out_dir = ensure_folder(out_dir)
    images = {"liver.nii.gz": (run.liver.mask, sitk.sitkUInt8),
              "tumors.nii.gz": (run.tumors, sitk.sitkUInt16)}
    if run.vessels:
        images["vessels.nii.gz"] = (run.vessels.vessels, sitk.sitkUInt8)
    if run.segments:
        images["segments.nii.gz"] = (run.segments.segments, sitk.sitkUInt8)
    names = [*images, "volumetry.json"]
    finals = [out_dir / name for name in names]
    temps = [out_dir / f".{name.split('.')[0]}.{os.getpid()}.partial.{name.split('.', 1)[1]}"
             for name in names]             # keep ".nii.gz": the writer picks the format by it
    try:
        for (image, pixel), tmp in zip(images.values(), temps):
            write_image(sitk.Cast(image, pixel), tmp)
        try:
            temps[-1].write_text(json.dumps(report(run), indent=2, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise disk_error(exc, finals[-1]) from exc
        for tmp, final in zip(temps, finals):
            os.replace(tmp, final)
        # a previous run's vessels or segments must not sit beside masks they were not made from
        for name in set(OUTPUTS) - set(names):
            (out_dir / name).unlink(missing_ok=True)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    return finals


# --- command line ------------------------------------------------------------------------------
def add_parser(subparsers) -> None:
    sub = subparsers.add_parser("segment", help="segment the liver, lesions, vessels and "
                                                "Couinaud segments; write masks and volumetry",
                                description=__doc__)
    sub.add_argument("path", type=Path, help="DICOM folder or file, or NIfTI/NRRD/MHA CT image")
    sub.add_argument("--out", type=Path, required=True, help="output folder")
    sub.add_argument("--series", help="SeriesInstanceUID (or key from `liverplan info`) when "
                                      "the folder holds several series")
    sub.add_argument("--liver-seed", type=_lps_point, metavar="X,Y,Z",
                     help="a point inside the liver (LPS mm, as the desktop app's readout shows; "
                          "write --liver-seed=-60,10,120 when X is negative): grow the liver "
                          "from it (seeded mode) when the automatic liver fails")
    sub.set_defaults(func=run)


def _lps_point(text: str) -> tuple[float, float, float]:
    try:
        point = tuple(float(v) for v in text.split(","))
    except ValueError:
        point = ()
    if len(point) != 3:
        raise argparse.ArgumentTypeError(f"{text!r} is not a point X,Y,Z in mm (e.g. -60,10,120)")
    return point


def run(args) -> int:
    check_folder(args.out)             # before minutes of work, not after
    bar = ProgressBar(sys.stderr)
    result = segment_case(args.path, series=args.series, liver_seed_lps=args.liver_seed,
                          progress=bar)
    with _timed(result.timings_s, "write"):
        paths = write_outputs(result, args.out)
    bar(1.0, "Done")
    v = result.volumetry
    print(f"Liver {v.total_liver_ml:.0f} mL, tumours {v.tumor_ml:.1f} mL in {len(v.lesions)} "
          f"lesion(s), functional liver {v.functional_liver_ml:.0f} mL")
    for lesion in v.lesions:
        print(f"  lesion {lesion.id}: {lesion.volume_ml:.2f} mL, {lesion.diameter_mm:.0f} mm, "
              f"{lesion.depth_mm:.0f} mm deep, segment {lesion.segment}")
    if result.segments:
        hemi = hemiliver_volumes_ml(result.segments.segments)
        print(f"Couinaud segments ({result.segments.description}): "
              + ", ".join(f"{k} {val:.0f} mL" for k, val in hemi.items()))
    for w in result.warnings:
        print(f"warning: {w}")
    print("Wrote " + ", ".join(str(p) for p in paths))
    return 0
