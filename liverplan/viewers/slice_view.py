"""One slice view (axial, coronal or sagittal) drawn with QPainter on a QImage per slice.

Mouse: left click/drag sets the crosshair (all views follow), right drag changes window/level,
middle drag or Shift+left drag pans, wheel scrolls slices (Ctrl+wheel zooms). Keys: PageUp/Down
and Up/Down scroll. In measure mode two left clicks measure an in-plane distance in mm.

Editing tools (set by the Review step with `set_tool`): the left button then edits instead of
moving the crosshair, and the view only reports LPS points; the panel decides what they do.
CLICK tools report the press, STROKE tools (brush, eraser) the whole stroke on release, with the
brush drawn to scale, DRAG tools (landmarks) the press, every move and the release.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from liverplan.viewers.reslice import AXIAL, CORONAL, SAGITTAL
from liverplan.viewers.view_state import ViewState

PLANE_COLOURS = {AXIAL: QColor(255, 80, 80), CORONAL: QColor(80, 220, 80),
                 SAGITTAL: QColor(90, 140, 255)}
_MIN_ZOOM, _MAX_ZOOM = 0.5, 16.0
CLICK, STROKE, DRAG = "click", "stroke", "drag"     # kinds of editing tool
_PICK_PX = 12            # a press this close to a marker picks it (widget pixels)


@dataclass(frozen=True)
class Marker:
    """A named point drawn in every view (e.g. a segment landmark)."""
    key: str
    text: str
    point_lps: tuple
    rgb: tuple[int, int, int]
    selected: bool = False


class SliceView(QWidget):
    hovered = Signal(object, object)      # LPS point (np.ndarray) or None, voxel value or None
    measured = Signal(float)              # distance in mm
    toolPressed = Signal(object, str)     # LPS point, plane: left press with a CLICK/DRAG tool
    toolDragged = Signal(object, str)     # LPS point, plane: moved with a DRAG tool held
    toolReleased = Signal(object, str)    # LPS point, plane: DRAG tool released
    stroked = Signal(object, str)         # (N, 3) LPS points of a STROKE, plane
    markerPicked = Signal(str)            # key of the marker under a DRAG tool's press

    def __init__(self, plane: str, state: ViewState, parent=None):
        super().__init__(parent)
        self.plane, self.state = plane, state
        self.zoom, self.pan = 1.0, QPointF(0.0, 0.0)
        self.measure_mode = False
        self.measure_points: list[np.ndarray] = []     # LPS points of the current measurement
        self._measure_slice: int | None = None
        self._drag: tuple | None = None
        self._cache: tuple | None = None                # (key, QImage, buffer)
        self.tool: str | None = None                    # CLICK, STROKE, DRAG or None
        self.brush_radius_mm = 5.0
        self.markers: list[Marker] = []
        self._stroke: list[np.ndarray] = []             # LPS points of the stroke being drawn
        self._hover: QPointF | None = None
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setAttribute(Qt.WA_OpaquePaintEvent)
        state.imageChanged.connect(self._on_image)
        state.cursorChanged.connect(self.update)
        state.displayChanged.connect(self.update)

    # --- geometry ------------------------------------------------------------------------------
    def slice_index(self) -> int:
        vol = self.state.volume
        _, _, s = vol.lps_to_display(self.plane, self.state.cursor_lps)
        return int(np.clip(np.rint(s), 0, vol.n_slices(self.plane) - 1))

    def _transform(self) -> tuple[float, float, float]:
        """(pixels per mm, x and y of the image's top-left corner in widget pixels)."""
        vol = self.state.volume
        rows, cols = vol.slice_shape(self.plane)
        dx, dy = vol.pixel_spacing(self.plane)
        scale = min(self.width() / (cols * dx), self.height() / (rows * dy)) * self.zoom
        ox = (self.width() - cols * dx * scale) / 2 + self.pan.x()
        oy = (self.height() - rows * dy * scale) / 2 + self.pan.y()
        return scale, ox, oy

    def display_to_widget(self, x: float, y: float) -> QPointF:
        """Display pixel coordinates (centres at integers) to widget pixels."""
        dx, dy = self.state.volume.pixel_spacing(self.plane)
        scale, ox, oy = self._transform()
        return QPointF(ox + (x + 0.5) * dx * scale, oy + (y + 0.5) * dy * scale)

    def widget_to_display(self, pos: QPointF) -> tuple[float, float]:
        dx, dy = self.state.volume.pixel_spacing(self.plane)
        scale, ox, oy = self._transform()
        return (pos.x() - ox) / (dx * scale) - 0.5, (pos.y() - oy) / (dy * scale) - 0.5

    def widget_to_lps(self, pos: QPointF) -> np.ndarray:
        x, y = self.widget_to_display(pos)
        return self.state.volume.display_to_lps(self.plane, x, y, self.slice_index())

    def lps_to_widget(self, point_lps) -> QPointF:
        x, y, _ = self.state.volume.lps_to_display(self.plane, point_lps)
        return self.display_to_widget(x, y)

    # --- actions -------------------------------------------------------------------------------
    def set_slice(self, index: int) -> None:
        """Move the cursor to another slice of this view, keeping its in-plane position."""
        vol = self.state.volume
        if vol is None:
            return
        x, y, _ = vol.lps_to_display(self.plane, self.state.cursor_lps)
        index = int(np.clip(index, 0, vol.n_slices(self.plane) - 1))
        self.state.set_cursor(vol.display_to_lps(self.plane, x, y, index))

    def step(self, delta: int) -> None:
        if self.state.volume is not None:
            self.set_slice(self.slice_index() + delta)

    def click(self, pos: QPointF) -> None:
        """What a left click does: set the crosshair, or add a measurement point."""
        if self.state.volume is None:
            return
        point = self.widget_to_lps(pos)
        if self.measure_mode:
            if len(self.measure_points) >= 2 or self._measure_slice != self.slice_index():
                self.measure_points = []
            self._measure_slice = self.slice_index()
            self.measure_points.append(point)
            if len(self.measure_points) == 2:
                self.measured.emit(self.distance_mm())
            self.update()
        else:
            self.state.set_cursor(self._inside(point))

    def set_tool(self, kind: str | None, radius_mm: float | None = None) -> None:
        """Turn an editing tool on (CLICK, STROKE, DRAG) or off (None)."""
        self.tool = kind
        if radius_mm is not None:
            self.brush_radius_mm = float(radius_mm)
        self._stroke = []
        self.setCursor(Qt.CrossCursor) if kind else self.unsetCursor()
        self.update()

    def set_markers(self, markers: list[Marker]) -> None:
        self.markers = list(markers)
        self.update()

    def marker_at(self, pos: QPointF) -> str | None:
        """The marker drawn nearest to a widget position, within a few pixels."""
        best, best_d = None, float(_PICK_PX)
        for marker in self.markers:
            d = self.lps_to_widget(marker.point_lps) - pos
            if (d.x() ** 2 + d.y() ** 2) ** 0.5 <= best_d:
                best, best_d = marker.key, (d.x() ** 2 + d.y() ** 2) ** 0.5
        return best

    def _on_slice(self, point_lps) -> bool:
        """True if a point lies within this view's current slice (half a voxel either side)."""
        _, _, s = self.state.volume.lps_to_display(self.plane, point_lps)
        return abs(s - self.slice_index()) <= 0.5

    def _tool_press(self, pos: QPointF) -> None:
        point = self.widget_to_lps(pos)
        if self.tool == STROKE:
            self._stroke = [point]
            self._drag = ("stroke",)
            self.update()
            return
        if self.state.volume.voxel_of(point) is None:
            return                                      # a click beside the image
        if self.tool == DRAG:
            picked = self.marker_at(pos)
            if picked is not None:
                self.markerPicked.emit(picked)
            self._drag = ("tool",)
        self.toolPressed.emit(point, self.plane)

    def distance_mm(self) -> float:
        p, q = self.measure_points
        return float(np.linalg.norm(q - p))

    def reset_view(self) -> None:
        self.zoom, self.pan = 1.0, QPointF(0.0, 0.0)
        self.update()

    def _inside(self, point) -> np.ndarray:
        """The centre of the voxel nearest to an LPS point, inside the volume: the crosshair
        then marks exactly one voxel, the same in every view."""
        vol = self.state.volume
        ijk = np.clip(np.rint(vol.lps_to_index(point)), 0, np.asarray(vol.size) - 1)
        return vol.index_to_lps(ijk)

    def _on_image(self) -> None:
        self.measure_points, self._cache = [], None
        self.reset_view()

    # --- events --------------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:
        pos = event.position()
        self.setFocus()
        if self.state.volume is None:
            return
        if event.button() == Qt.MiddleButton or (event.button() == Qt.LeftButton
                                                  and event.modifiers() & Qt.ShiftModifier):
            self._drag = ("pan", pos, QPointF(self.pan))
        elif event.button() == Qt.LeftButton and self.tool:
            self._tool_press(pos)
        elif event.button() == Qt.LeftButton:
            self.click(pos)
            self._drag = None if self.measure_mode else ("cursor",)
        elif event.button() == Qt.RightButton:
            self._drag = ("window", pos, self.state.window)

    def mouseMoveEvent(self, event) -> None:
        pos = event.position()
        if self.state.volume is None:
            return
        if self._drag:
            kind = self._drag[0]
            if kind == "cursor":
                self.state.set_cursor(self._inside(self.widget_to_lps(pos)))
            elif kind == "pan":
                self.pan = self._drag[2] + (pos - self._drag[1])
                self.update()
            elif kind == "window":
                (width, level), d = self._drag[2], pos - self._drag[1]
                self.state.set_window(width + 2.0 * d.x(), level - d.y())
            elif kind == "stroke":
                self._stroke.append(self.widget_to_lps(pos))
            elif kind == "tool":
                self.toolDragged.emit(self.widget_to_lps(pos), self.plane)
        if self.tool == STROKE:
            self._hover = QPointF(pos)
            self.update()                               # the brush outline follows the mouse
        point = self.widget_to_lps(pos)
        self.hovered.emit(point, self.state.volume.value_at(point))

    def mouseReleaseEvent(self, event) -> None:
        kind = self._drag[0] if self._drag else None
        self._drag = None
        if kind == "stroke" and self._stroke:
            points, self._stroke = np.array(self._stroke), []
            self.update()
            self.stroked.emit(points, self.plane)
        elif kind == "tool":
            self.toolReleased.emit(self.widget_to_lps(event.position()), self.plane)

    def leaveEvent(self, event) -> None:
        self._hover = None
        self.update()
        self.hovered.emit(None, None)

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120.0
        if self.state.volume is None or not steps:
            return
        if event.modifiers() & Qt.ControlModifier:
            self._zoom_at(event.position(), 1.15 ** steps)
        else:
            self.step(1 if steps > 0 else -1)

    def _zoom_at(self, pos: QPointF, factor: float) -> None:
        x, y = self.widget_to_display(pos)
        self.zoom = float(np.clip(self.zoom * factor, _MIN_ZOOM, _MAX_ZOOM))
        self.pan += pos - self.display_to_widget(x, y)   # keep the point under the mouse fixed
        self.update()

    def keyPressEvent(self, event) -> None:
        key = event.key()
        if key in (Qt.Key_PageUp, Qt.Key_Up):
            self.step(1)
        elif key in (Qt.Key_PageDown, Qt.Key_Down):
            self.step(-1)
        else:
            super().keyPressEvent(event)

    # --- painting ------------------------------------------------------------------------------
    def slice_image(self) -> QImage:
        """The current slice rendered (grey window and overlays) at one pixel per voxel."""
        index = self.slice_index()
        key = (index, self.state.version, id(self.state.volume))
        if self._cache is None or self._cache[0] != key:
            pixels = self.state.render(self.plane, index)
            h, w = pixels.shape[:2]
            image = QImage(pixels.data, w, h, pixels.strides[0], QImage.Format_RGB32)
            self._cache = (key, image, pixels)   # the buffer must outlive the QImage
        return self._cache[1]

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), Qt.black)
        vol = self.state.volume
        if vol is None:
            painter.setPen(QColor(150, 150, 150))
            painter.drawText(self.rect(), Qt.AlignCenter, "Open a DICOM folder or an image file\n"
                             "(File menu, toolbar, or drop it here)")
            return
        rows, cols = vol.slice_shape(self.plane)
        dx, dy = vol.pixel_spacing(self.plane)
        scale, ox, oy = self._transform()
        painter.setRenderHint(QPainter.SmoothPixmapTransform, True)
        painter.drawImage(QRectF(ox, oy, cols * dx * scale, rows * dy * scale), self.slice_image())
        self._paint_crosshair(painter)
        self._paint_measurement(painter)
        self._paint_markers(painter)
        self._paint_brush(painter)
        self._paint_labels(painter)
        painter.end()

    def _paint_crosshair(self, painter: QPainter) -> None:
        c = self.lps_to_widget(self.state.cursor_lps)
        colour = QColor(255, 220, 60, 170)
        painter.setPen(QPen(colour, 1))
        gap = 8
        painter.drawLine(QPointF(0, c.y()), QPointF(c.x() - gap, c.y()))
        painter.drawLine(QPointF(c.x() + gap, c.y()), QPointF(self.width(), c.y()))
        painter.drawLine(QPointF(c.x(), 0), QPointF(c.x(), c.y() - gap))
        painter.drawLine(QPointF(c.x(), c.y() + gap), QPointF(c.x(), self.height()))

    def _paint_measurement(self, painter: QPainter) -> None:
        if not self.measure_points or self._measure_slice != self.slice_index():
            return
        painter.setRenderHint(QPainter.Antialiasing, True)
        painter.setPen(QPen(QColor(60, 230, 255), 2))
        points = [self.lps_to_widget(p) for p in self.measure_points]
        for p in points:
            painter.drawEllipse(p, 3, 3)
        if len(points) == 2:
            painter.drawLine(points[0], points[1])
            painter.drawText(points[1] + QPointF(6, -6), f"{self.distance_mm():.1f} mm")

    def _paint_markers(self, painter: QPainter) -> None:
        """Markers on this slice are filled discs; the others are drawn hollow where they
        project, so the user sees where to scroll to."""
        if not self.markers:
            return
        painter.setRenderHint(QPainter.Antialiasing, True)
        for marker in self.markers:
            c = self.lps_to_widget(marker.point_lps)
            colour = QColor(*marker.rgb)
            painter.setPen(QPen(QColor(255, 255, 255) if marker.selected else colour,
                                3 if marker.selected else 2))
            painter.setBrush(QBrush(colour) if self._on_slice(marker.point_lps) else Qt.NoBrush)
            painter.drawEllipse(c, 6, 6)
            painter.setPen(colour)
            painter.drawText(c + QPointF(9, -6), marker.text)
        painter.setBrush(Qt.NoBrush)

    def _paint_brush(self, painter: QPainter) -> None:
        """The stroke being drawn (the area it will paint) and the brush outline at the mouse."""
        if self.tool != STROKE:
            return
        painter.setRenderHint(QPainter.Antialiasing, True)
        diameter_px = 2.0 * self.brush_radius_mm * self._transform()[0]
        if self._stroke:
            path = QPainterPath(self.lps_to_widget(self._stroke[0]))
            for point in self._stroke[1:]:
                path.lineTo(self.lps_to_widget(point))
            pen = QPen(QColor(60, 230, 255, 90), diameter_px, Qt.SolidLine, Qt.RoundCap,
                       Qt.RoundJoin)
            painter.strokePath(path, pen)
            if len(self._stroke) == 1:           # a single dab: strokePath draws no zero line
                painter.setPen(Qt.NoPen)
                painter.setBrush(QColor(60, 230, 255, 90))
                painter.drawEllipse(path.currentPosition(), diameter_px / 2, diameter_px / 2)
                painter.setBrush(Qt.NoBrush)
        if self._hover is not None:
            painter.setPen(QPen(QColor(60, 230, 255), 1.5))
            painter.drawEllipse(self._hover, diameter_px / 2, diameter_px / 2)

    def _paint_labels(self, painter: QPainter) -> None:
        vol = self.state.volume
        labels = vol.screen_labels(self.plane)
        painter.setPen(QColor(255, 255, 255))
        font = QFont(painter.font())
        font.setPointSize(12)
        font.setBold(True)
        painter.setFont(font)
        r, m = self.rect(), 6
        painter.drawText(r.adjusted(m, 0, 0, 0), Qt.AlignLeft | Qt.AlignVCenter, labels.left)
        painter.drawText(r.adjusted(0, 0, -m, 0), Qt.AlignRight | Qt.AlignVCenter, labels.right)
        painter.drawText(r.adjusted(0, m, 0, 0), Qt.AlignHCenter | Qt.AlignTop, labels.top)
        painter.drawText(r.adjusted(0, 0, 0, -m), Qt.AlignHCenter | Qt.AlignBottom, labels.bottom)
        font.setPointSize(9)
        font.setBold(False)
        painter.setFont(font)
        painter.setPen(PLANE_COLOURS[self.plane])
        painter.drawText(r.adjusted(m, m, 0, 0), Qt.AlignLeft | Qt.AlignTop,
                         f"{self.plane.capitalize()} {self.slice_index() + 1}/"
                         f"{vol.n_slices(self.plane)}")
        painter.setPen(QColor(200, 200, 200))
        width, level = self.state.window
        painter.drawText(r.adjusted(m, 0, 0, -m), Qt.AlignLeft | Qt.AlignBottom,
                         f"W {width:.0f}  L {level:.0f}")
