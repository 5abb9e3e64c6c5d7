"""Desktop-app speed: time to first image, slice-scroll frame time, 3-D frame time.

Run under a display (xvfb-run -a .venv/bin/python benchmarks/ui.py [DICOM folder] [liver mask]).
Without arguments it uses the full-size synthetic patient (`liverplan demo --out /tmp/full
--size full`) if present, else 3D-IRCADb-01 from ../shared/data (512x512x129). Prints a table.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PySide6.QtCore import QSettings
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from liverplan.case import LIVER
from liverplan.geometry import image_from_array
from liverplan.io import read_image
from liverplan.meshes import mask_to_mesh
from liverplan.viewers.main_window import MainWindow
from liverplan.viewers.reslice import AXIAL, PLANES
from liverplan.viewers.view3d import MESH_TARGET_FACES

ROOT = Path(__file__).resolve().parents[1]
FULL_DEMO = Path("/tmp/full")
IRCADB = ROOT.parent / "shared" / "data" / "ircadb-01"
FRAMES = 40


def default_case() -> tuple[Path, Path, str]:
    if (FULL_DEMO / "dicom").is_dir():
        return FULL_DEMO / "dicom", FULL_DEMO / "truth" / "liver.nii.gz", "synthetic patient, full"
    return IRCADB / "PATIENT_DICOM", IRCADB / "labels.nii.gz", "3D-IRCADb-01 (real CT)"


def wait(app: QApplication, condition, timeout_s: float = 300.0) -> None:
    end = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > end:
            raise TimeoutError("the window did not finish in time")
        app.processEvents()
        time.sleep(0.001)


def frame_ms(action, frames: int = FRAMES) -> tuple[float, float]:
    """Median and worst time of `action()` in ms."""
    times = []
    for _ in range(frames):
        t = time.perf_counter()
        action()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), max(times)


def main(argv: list[str]) -> int:
    dicom, mask_path, name = (Path(argv[0]), Path(argv[1]), argv[0]) if len(argv) >= 2 \
        else default_case()
    app = QApplication.instance() or QApplication([])
    tmp = Path(tempfile.mkdtemp(prefix="liverplan-ui-bench-"))
    window = MainWindow(settings=QSettings(str(tmp / "s.ini"), QSettings.IniFormat),
                        recovery_dir=tmp / "recovery")
    window.resize(1600, 1000)
    window.show()
    wait(app, window.isVisible)
    rows = []

    t = time.perf_counter()
    window.open_path(dicom)
    wait(app, lambda: window.case is not None)
    window.views[AXIAL].repaint()
    first_image_s = time.perf_counter() - t
    size = "x".join(map(str, window.case.image.GetSize()))
    rows.append(("time to first image (scan + load + first paint)", f"{first_image_s * 1000:.0f}",
                 "ms"))

    def scroll(view, on_screen: bool, direction=[1]):
        """One slice step and the view's paint: into an image (the app's own work per frame) or
        on screen (adds the copy to the X server, which here is Xvfb on a shared machine)."""
        index = view.slice_index()
        if not 0 < index + direction[0] < view.state.volume.n_slices(view.plane) - 1:
            direction[0] = -direction[0]
        view.step(direction[0])
        if on_screen:
            view.repaint()
        else:
            view.render(QImage(view.size(), QImage.Format_RGB32))

    def scroll_rows(label: str, planes) -> None:
        for plane in planes:
            for on_screen in (False, True):
                med, worst = frame_ms(lambda v=window.views[plane]: scroll(v, on_screen))
                where = "on screen" if on_screen else "paint"
                rows.append((f"{plane} scroll frame, {label}, {where} (median / worst)",
                             f"{med:.1f} / {worst:.1f}", "ms"))

    scroll_rows("grey only", [AXIAL])

    mask = read_image(mask_path)
    liver = image_from_array((sitk.GetArrayViewFromImage(mask) > 0).astype(np.uint8),
                             window.case.image)
    t = time.perf_counter()
    mesh = mask_to_mesh(liver, target_faces=MESH_TARGET_FACES)
    mesh_s = time.perf_counter() - t
    window.case.set_label(LIVER, liver)
    wait(app, lambda: "liver" in window.view3d.actors)   # steady state: surface built
    scroll_rows("liver overlay", PLANES)

    plotter = window.view3d.plotter
    window.view3d.standard_view("Anterior")

    def rotate():
        plotter.camera.azimuth += 3
        plotter.render()

    med, worst = frame_ms(rotate)
    rows.append((f"3-D frame, liver surface ({mesh.n_cells} faces), rotating (median / worst)",
                 f"{med:.1f} / {worst:.1f}", "ms"))
    rows.append(("liver surface extraction (off the UI thread)", f"{mesh_s * 1000:.0f}", "ms"))

    window.dirty = False
    window.close()
    print(f"UI benchmark: {name}, {size} voxels, window 1600x1000, "
          f"{QApplication.platformName()} platform, VTK software rendering, load average "
          f"{open('/proc/loadavg').read().split()[0]} on {os.cpu_count()} cores")
    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  {'value':>13}  unit")
    for label, value, unit in rows:
        print(f"{label.ljust(width)}  {value:>13}  {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
