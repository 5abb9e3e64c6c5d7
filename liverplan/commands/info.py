"""`liverplan info PATH [--json]`: the image series found in a folder, file or image."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from liverplan.io import load
from liverplan.io.images import image_suffix
from liverplan.io.volume import scan_source
from liverplan.terminal import ProgressBar

_COLUMNS = ("key", "modality", "date", "description", "images", "matrix", "spacing mm", "phase",
            "patient")


def add_parser(subparsers) -> None:
    sub = subparsers.add_parser("info", help="list the image series in a DICOM folder or file",
                                description=__doc__)
    sub.add_argument("path", type=Path, help="DICOM folder (searched recursively), DICOM file, "
                                             "or NIfTI/NRRD/MHA image")
    sub.add_argument("--json", action="store_true", help="print a machine-readable JSON document")
    sub.set_defaults(func=run)


def run(args) -> int:
    progress = None if args.json else ProgressBar(sys.stderr)   # the stream of this call
    if image_suffix(args.path) is not None:
        return _image_file(args.path, args.json)
    found, file = scan_source(args.path, progress=progress)   # one file: its series, as opened
    result = found if file is None else found.of_file(file)
    if args.json:
        print(json.dumps({"path": str(args.path), **result.to_dict()}, indent=2,
                         ensure_ascii=False))
        return 0
    rows = [_row(s) for s in result.series]
    print(_table(_COLUMNS, rows))
    for s in result.series:
        for w in s.warnings:
            print(f"warning: {s.key}: {w}")
    for w in result.warnings:
        print(f"warning: {w}")
    if result.skipped:
        print(f"\nSkipped {len(result.skipped)} file(s):")
        for k in result.skipped:
            print(f"  {k.path}: {k.reason}")
    return 0


def _row(s) -> tuple[str, ...]:
    slice_mm = f"{s.slice_spacing_mm:.2f}" if s.slice_spacing_mm else "-"
    spacing = f"{s.pixel_spacing_mm[1]:.2f}x{s.pixel_spacing_mm[0]:.2f}x{slice_mm}"
    patient = " ".join(p for p in (s.patient_name, f"({s.patient_id})" if s.patient_id else "")
                       if p)
    return (s.key, s.modality, s.study_date, s.description, str(s.n_images),
            f"{s.columns}x{s.rows}", spacing, s.phase_hint or "-", patient)


def _table(header, rows) -> str:
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
             for r in (header, *rows)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _image_file(path: Path, as_json: bool) -> int:
    image = load(path).image
    doc = {"path": str(path), "size": list(image.GetSize()), "spacing_mm": list(image.GetSpacing()),
           "origin_mm": list(image.GetOrigin()), "direction": list(image.GetDirection()),
           "pixel_type": image.GetPixelIDTypeAsString()}
    if as_json:
        print(json.dumps(doc, indent=2))
    else:
        for k, v in doc.items():
            print(f"{k:<11} {v}")
    return 0
