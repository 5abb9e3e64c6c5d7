"""Load speed: liverplan.io.load against a bare SimpleITK ImageSeriesReader, same run, same files.

Cases: ../shared/data/ircadb-01/PATIENT_DICOM (3D-IRCADb-01 patient 1, 129 uncompressed slices
512x512) and totalseg-example/example_ct_dicom (20 JPEG 2000 lossless slices). The two loaders
run alternately after one warm-up each (files in the page cache for both) and the best time of
each is kept, so the ratio compares the work done, not the disk or a burst of load from
other processes. "scan s" is the header scan alone, part of "liverplan s".
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # run from a checkout even when the package is not installed

from liverplan.geometry import same_grid  # noqa: E402
from liverplan.io import load, scan  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CASES = [("ircadb-01 (129 slices, uncompressed)", DATA / "ircadb-01" / "PATIENT_DICOM", 7),
         ("totalseg-example (20 slices, JPEG 2000)",
          DATA / "totalseg-example" / "example_ct_dicom", 3)]


def bare_sitk(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    print(f"{'case':<40} {'scan s':>7} {'liverplan s':>11} {'SimpleITK s':>11} {'ratio':>6}  "
          "same image")
    for name, folder, repeats in CASES:
        volume, reference = load(folder), bare_sitk(folder)   # warm-up, and the images compared
        ours = bare = scanned = float("inf")
        for _ in range(repeats):
            ours = min(ours, seconds(lambda: load(folder)))
            bare = min(bare, seconds(lambda: bare_sitk(folder)))
            scanned = min(scanned, seconds(lambda: scan(folder)))
        same = (same_grid(volume.image, reference) and np.array_equal(
            sitk.GetArrayViewFromImage(volume.image), sitk.GetArrayViewFromImage(reference)))
        print(f"{name:<40} {scanned:>7.3f} {ours:>11.3f} {bare:>11.3f} {ours / bare:>6.2f}  {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
