"""The 3-D view: the case's structures as surfaces in LPS mm, built off the UI thread.

Meshes come from liverplan.meshes.mask_to_mesh (one extractor for the whole project); a structure
is meshed when it becomes visible and again when its label image changes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyvista as pv
import SimpleITK as sitk
from vtkmodules.vtkCommonCore import vtkCommand
from PySide6.QtCore import Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QToolBar, QVBoxLayout, QWidget
from pyvistaqt import QtInteractor

from liverplan.meshes import mask_to_mesh
from liverplan.progress import Steps
from liverplan.viewers.structures import BY_KEY, Structure
from liverplan.viewers.view_state import ViewState
from liverplan.viewers.workers import Task

# Camera directions in LPS: (direction from the focal point to the camera, view-up).
# Anterior: camera in front (-P), head up: the patient's right is on the screen's left.
# Laparoscopic: from anterior-inferior (umbilical port) looking cranially at the liver.
STANDARD_VIEWS = {
    "Anterior": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
    "Posterior": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "Laparoscopic": ((0.0, -1.0, -0.8), (0.0, -0.8, 1.0)),
}


def build_meshes(labels: dict[str, sitk.Image], structures: list[Structure], *, progress=None,
                 cancel=None) -> dict[str, pv.PolyData]:
    """Surface of each structure from its label image; an empty structure gets an empty mesh
    (built, nothing to show), so the view does not keep asking for it."""
    steps = Steps(progress, cancel)
    meshes = {}
    for n, s in enumerate(structures):
        steps.report(n / len(structures), f"Surface of {s.title.lower()}")
        meshes[s.key] = mask_to_mesh(labels[s.label], label=s.value, target_faces=s.faces_3d)
    steps.report(1.0, "Surfaces ready")
    return meshes


class View3D(QWidget):
    taskStarted = Signal(object)      # a Task, for the window's progress panel

    def __init__(self, state: ViewState, parent=None):
        super().__init__(parent)
        self.state = state
        self.labels: dict[str, sitk.Image] = {}
        self.meshes: dict[str, pv.PolyData] = {}
        self.actors: dict = {}
        self.extra_actors: dict = {}                # computed surfaces: cuts, remnant, ICG maps
        self._generation: dict[str, int] = {}      # label name -> change count
        self._task: Task | None = None
        self.cut_plane = None                       # the interactive cut plane (a VTK widget)
        # No multisampling: with software OpenGL (llvmpipe) it made each frame 3-4x slower.
        # No timed re-render (pyvistaqt's default is 5 a second, each a full frame on the UI
        # thread): the view renders when its content or camera changes.
        self.plotter = QtInteractor(self, multi_samples=0, auto_update=False)
        self.closed = False                         # the plotter is released: build nothing
        self.plotter.set_background("#1e1e24")
        self.plotter.add_axes(xlabel="L", ylabel="P", zlabel="S")
        toolbar = QToolBar()
        for name in STANDARD_VIEWS:
            toolbar.addAction(name, lambda n=name: self.standard_view(n))
        toolbar.addAction("Reset", self.reset_camera)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(toolbar)
        layout.addWidget(self.plotter.interactor, 1)
        self.toolbar = toolbar
        state.displayChanged.connect(self._on_display_changed)

    # --- content -------------------------------------------------------------------------------
    def set_labels(self, labels: dict[str, sitk.Image]) -> None:
        """Show these label images; surfaces of changed labels are rebuilt."""
        if self.closed:
            return
        changed = {name for name in set(labels) | set(self.labels)
                   if labels.get(name) is not self.labels.get(name)}
        self.labels = dict(labels)
        for name in changed:
            self._generation[name] = self._generation.get(name, 0) + 1
            for key in [k for k in self.meshes if BY_KEY[k].label == name]:
                self._remove(key)
        self._sync_display()
        self._update()

    def wanted(self) -> list[Structure]:
        """Visible structures whose label image exists but whose surface is not built yet."""
        return [BY_KEY[k] for k, on in self.state.visible.items()
                if on and BY_KEY[k].label in self.labels and k not in self.meshes]

    def _update(self) -> None:
        if self.closed:
            return
        if self._task is not None and self._task.running:
            return                      # _on_built starts the next round
        todo = self.wanted()
        if not todo:
            return
        generations = {s.label: self._generation.get(s.label, 0) for s in todo}
        self._task = Task("3-D surfaces", build_meshes, dict(self.labels), todo)
        self._task.finished.connect(lambda meshes: self._on_built(meshes, generations))
        self._task.done.connect(self._on_task_done)
        self.taskStarted.emit(self._task)
        self._task.start()

    def _on_built(self, meshes: dict[str, pv.PolyData], generations: dict[str, int]) -> None:
        if self.closed:                 # delivered after the window closed
            return
        first = not self.actors
        for key, mesh in meshes.items():
            label = BY_KEY[key].label
            if generations[label] != self._generation.get(label, 0) or label not in self.labels:
                continue                # the label changed while meshing: stale
            self._remove(key)
            self.meshes[key] = mesh
            if mesh.n_points:
                self.actors[key] = self.plotter.add_mesh(mesh, name=key, smooth_shading=True,
                                                         reset_camera=False)
        self._sync_display()
        if first and self.actors:
            self.standard_view("Anterior")

    def _on_task_done(self) -> None:
        self._task = None
        self._update()

    def _remove(self, key: str) -> None:
        self.meshes.pop(key, None)
        if self.actors.pop(key, None) is not None:
            self.plotter.remove_actor(key, render=False)

    def _sync_display(self) -> None:
        for key, actor in self.actors.items():
            actor.SetVisibility(bool(self.state.visible.get(key)))
            prop = actor.GetProperty()
            prop.SetColor(*self.state.colours[key])
            prop.SetOpacity(BY_KEY[key].opacity_3d)
        self.plotter.render()

    def _on_display_changed(self) -> None:
        self._sync_display()
        self._update()      # a structure just made visible may need its surface

    def show_mesh(self, key: str, mesh: pv.PolyData, **style) -> None:
        """Show (or replace) a computed surface that is not a label image, e.g. a cut surface
        or the liver coloured by expected fluorescence; `style` goes to pyvista's add_mesh."""
        if key in BY_KEY:
            raise ValueError(f"{key!r} is a structure key; computed surfaces need their own")
        self.extra_actors[key] = self.plotter.add_mesh(mesh, name=key, reset_camera=False,
                                                       **style)
        self.plotter.render()

    def remove_mesh(self, key: str) -> None:
        if self.extra_actors.pop(key, None) is not None:
            self.plotter.remove_actor(key, render=False)
            self.plotter.render()

    def add_cut_plane(self, origin, normal, bounds, on_moved, on_released) -> None:
        """An interactive cut plane inside `bounds` (LPS mm): drag its centre to move it, its
        arrow to tilt it. `on_moved(normal, origin)` is called at every step of a drag (keep it
        cheap, e.g. coalesce with a timer) and `on_released()` when the mouse is let go."""
        self.remove_cut_plane()
        widget = self.plotter.add_plane_widget(
            on_moved, normal=tuple(normal), origin=tuple(origin), bounds=tuple(bounds),
            factor=1.0, color="gold", outline_translation=False, implicit=True,
            test_callback=False, interaction_event="always")
        widget.AddObserver(vtkCommand.EndInteractionEvent, lambda *_: on_released())
        self.cut_plane = widget
        self.plotter.render()

    def remove_cut_plane(self) -> None:
        if self.cut_plane is None:
            return
        self.cut_plane.Off()
        self.cut_plane.RemoveAllObservers()
        if self.cut_plane in self.plotter.plane_widgets:
            self.plotter.plane_widgets.remove(self.cut_plane)
        self.cut_plane = None
        self.plotter.render()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    # --- camera and output ---------------------------------------------------------------------
    def standard_view(self, name: str) -> None:
        towards_camera, up = STANDARD_VIEWS[name]
        bounds = np.array(self.plotter.bounds if self.actors else (-1, 1, -1, 1, -1, 1))
        focal = (bounds[0::2] + bounds[1::2]) / 2
        position = focal + np.asarray(towards_camera) / np.linalg.norm(towards_camera)
        self.plotter.camera_position = [tuple(position), tuple(focal), up]
        self.plotter.reset_camera()
        self.plotter.render()

    def reset_camera(self) -> None:
        self.standard_view("Anterior")

    def screenshot(self, path: str | Path) -> Path:
        path = Path(path)
        self.plotter.screenshot(str(path))
        return path

    def image(self) -> QImage:
        """What the view shows, read back from its render window."""
        rgb = np.ascontiguousarray(self.plotter.screenshot(return_img=True)[..., :3])
        h, w = rgb.shape[:2]
        return QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888).copy()

    def close_plotter(self) -> None:
        """Release the plotter; nothing reaches VTK after this (the shared view state lives on)."""
        self.closed = True
        self.state.displayChanged.disconnect(self._on_display_changed)
        self.cancel()
        self.plotter.close()
