"""Desktop-app speed: time to first image, slice-scroll frame time, 3-D frame time, and the Plan
step's live update (inputs changed -> FLR, sFLR, margins and verdict shown; target <= 200 ms).

Run under a display: xvfb-run -a .venv/bin/python benchmarks/ui.py [--ircadb]
The default case is the full-size synthetic patient (512x512x130, generated once into the test
cache) with its liver, lesions and vessels; --ircadb uses 3D-IRCADb-01 (512x512x129, real CT)
with its reference liver. Prints a table.
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
from vtkmodules.vtkCommonCore import vtkCommand
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from liverplan.case import LIVER, SEGMENTS, TUMORS, VESSELS
from liverplan.geometry import image_from_array
from liverplan.io import read_image
from liverplan.meshes import mask_to_mesh
from liverplan.viewers.main_window import MainWindow
from liverplan.viewers.reslice import AXIAL, PLANES
from liverplan.viewers.structures import BY_KEY

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.cases import DATA, full_phantom  # noqa: E402

FRAMES = 40


def the_case(ircadb: bool) -> tuple[Path, dict[str, Path], str]:
    """(DICOM folder, label name -> reference mask file, case name)."""
    if ircadb:
        d = DATA / "ircadb-01"
        return d / "PATIENT_DICOM", {LIVER: d / "labels.nii.gz"}, "3D-IRCADb-01 (real CT)"
    truth = full_phantom() / "truth"
    return truth.parent / "dicom", {name: truth / f"{name}.nii.gz" for name in
                                    (LIVER, TUMORS, VESSELS, SEGMENTS)}, \
        "synthetic patient, full size"


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


def plan_rows(app: QApplication, window: MainWindow) -> list[tuple[str, str, str]]:
    """The Plan step's update after each change of its inputs, as the panel measures it (from
    the change to the figures shown): named resections in turn, then steps of a plane drag."""
    panel = window.steps.show_step("plan")
    t = time.perf_counter()
    wait(app, lambda: panel.ctx is not None)
    rows = [("plan: context of the masks (once per mask version, off the UI thread)",
             f"{(time.perf_counter() - t) * 1000:.0f}", "ms")]

    inside: list[float] = []          # of which evaluating the plan and filling the panel

    def shown_ms(change) -> float:
        """From the change to the new figures painted on screen; the window is idle before
        it (the previous figures painted), as when a person looks at them before the next."""
        app.processEvents()
        start = time.perf_counter()
        change()
        wait(app, lambda: not panel._update_soon.isActive())
        app.processEvents()                                 # paints the new figures
        inside.append(panel.last_update_ms)
        return (time.perf_counter() - start) * 1000

    def row(what: str, times: list[float]) -> tuple[str, str, str]:
        evaluated = statistics.median(inside[-len(times):])
        return (f"plan: {what} -> figures on screen ({len(times)} changes, median / worst; "
                f"median {evaluated:.0f} ms in evaluate + fill)",
                f"{statistics.median(times):.0f} / {max(times):.0f}", "ms")

    if panel.preset.isEnabled():
        keys = [panel.preset.itemData(i) for i in range(1, panel.preset.count())]
        times = [shown_ms(lambda k=k: panel.preset.setCurrentIndex(panel.preset.findData(k)))
                 for k in keys * 3]
        rows.append(row("named resection chosen", times))
        panel.preset.setCurrentIndex(0)
        for check in panel.segment_checks.values():
            check.setChecked(False)
    panel.use_plane.setChecked(True)
    wait(app, lambda: panel.plane is not None and not panel._update_soon.isActive())
    widget = window.view3d.cut_plane
    origin, normal = (np.asarray(v, float) for v in panel.plane)

    def drag(step: int) -> None:
        widget.SetOrigin(*(origin + (2.0 * (step % 10), 0.0, 0.0)))
        widget.InvokeEvent(vtkCommand.InteractionEvent)      # what VTK sends during a drag

    times = [shown_ms(lambda i=i: drag(i)) for i in range(20)]
    rows.append(row("cut plane dragged 2 mm", times))
    return rows


def main(argv: list[str]) -> int:
    dicom, masks, name = the_case("--ircadb" in argv)
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

    arrays = {name: sitk.GetArrayFromImage(read_image(path)) for name, path in masks.items()}
    arrays[LIVER] = arrays[LIVER] > 0
    labels = {name: image_from_array(a.astype(np.uint16 if name == TUMORS else np.uint8),
                                     window.case.image) for name, a in arrays.items()}
    t = time.perf_counter()
    mask_to_mesh(labels[LIVER], target_faces=BY_KEY["liver"].faces_3d)
    mesh_s = time.perf_counter() - t
    for label, image in labels.items():
        window.case.set_label(label, image)
    scene = {"liver", "lesions", "portal", "hepatic"} if VESSELS in labels else {"liver"}
    wait(app, lambda: scene <= set(window.view3d.actors))   # steady state: surfaces built
    scroll_rows("with overlays", PLANES)

    plotter = window.view3d.plotter
    window.view3d.standard_view("Anterior")

    def rotate():
        plotter.camera.azimuth += 3
        plotter.render()

    med, worst = frame_ms(rotate)
    faces = sum(m.n_cells for m in window.view3d.meshes.values())
    rows.append((f"3-D frame, {', '.join(sorted(scene))} ({faces} faces), rotating "
                 "(median / worst)",
                 f"{med:.1f} / {worst:.1f}", "ms"))
    rows.append(("liver surface extraction (off the UI thread)", f"{mesh_s * 1000:.0f}", "ms"))
    rows += plan_rows(app, window)

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
