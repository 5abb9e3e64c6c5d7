"""Load speed: liverplan.io.load against a bare SimpleITK ImageSeriesReader, same run, same files.

Case: ../shared/data/ircadb-01/PATIENT_DICOM (3D-IRCADb-01 patient 1, 129 slices 512x512).
Both paths are timed best-of-N after one warm-up each (the files are then in the page cache for
both), so the ratio compares the work done, not the disk.
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
from liverplan.io import load  # noqa: E402
CASES = [("ircadb-01 (129 slices, uncompressed)", ROOT.parent / "shared/data/ircadb-01/PATIENT_DICOM"),
         ("totalseg-example (20 slices, JPEG 2000)",
          ROOT.parent / "shared/data/totalseg-example/example_ct_dicom")]
REPEATS = 5


def bare_sitk(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def best_of(fn, repeats: int) -> tuple[float, object]:
    result, best = fn(), float("inf")   # warm-up
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> int:
    print(f"{'case':<42} {'liverplan s':>11} {'SimpleITK s':>11} {'ratio':>6}  same image")
    for name, folder in CASES:
        repeats = REPEATS if "129" in name else 2
        ours, volume = best_of(lambda: load(folder), repeats)
        bare, reference = best_of(lambda: bare_sitk(folder), repeats)
        same = (same_grid(volume.image, reference) and np.array_equal(
            sitk.GetArrayViewFromImage(volume.image), sitk.GetArrayViewFromImage(reference)))
        print(f"{name:<42} {ours:>11.3f} {bare:>11.3f} {ours / bare:>6.2f}  {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
