"""What every view shows: the image, the label overlays, the cursor and the grey window.

One ViewState is shared by the three slice views and the 3-D view, so a click in one view moves
the crosshair in all of them and a colour change shows everywhere.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from PySide6.QtCore import QObject, Signal

from liverplan.viewers.reslice import DisplayVolume, blend_labels, window_to_uint8
from liverplan.viewers.structures import BY_KEY, LAYER_ORDER, STRUCTURES, Colour, label_lut
from liverplan.volumetry.liver import looks_like_ct

# Grey-window presets (display settings, not clinical thresholds): (width, level) in HU.
WINDOW_ABDOMEN = (400.0, 50.0)
WINDOW_LIVER = (150.0, 90.0)
WINDOW_PRESETS = {"Abdomen": WINDOW_ABDOMEN, "Liver": WINDOW_LIVER}
DEFAULT_OPACITY = 0.4


def signal_window(image: sitk.Image) -> tuple[float, float]:
    """(width, level) spanning an image's own intensities (1st to 99th percentile), for images
    not in HU (MR), which a CT window shows all white or all black."""
    low, high = np.percentile(sitk.GetArrayViewFromImage(image)[::2, ::4, ::4], [1, 99])
    return max(float(high - low), 1.0), float(high + low) / 2.0


class ViewState(QObject):
    imageChanged = Signal()
    cursorChanged = Signal()
    displayChanged = Signal()     # window, overlays, colours, visibility
    structuresChanged = Signal()  # the set of label images changed

    def __init__(self, parent=None):
        super().__init__(parent)
        self.volume: DisplayVolume | None = None
        self.labels: dict[str, DisplayVolume] = {}
        self.cursor_lps = np.zeros(3)
        self.window = WINDOW_ABDOMEN
        self._signal_window = False   # the window was fitted to an image not in HU
        self.opacity = DEFAULT_OPACITY
        self.outline = False
        self.overlays_on = True
        self.visible = {s.key: s.visible for s in STRUCTURES}
        self.colours: dict[str, Colour] = {s.key: s.colour for s in STRUCTURES}
        self.version = 0          # bumped whenever the rendered pixels may change
        self._luts: dict[str, np.ndarray] = {}
        self._max_values: dict[str, int] = {}

    # --- content -------------------------------------------------------------------------------
    def set_image(self, image: sitk.Image | None) -> None:
        self.volume = DisplayVolume(image) if image is not None else None
        self.labels.clear()
        self._luts.clear()
        if self.volume is not None:
            self.cursor_lps = self.volume.center_lps()
            # an image not in HU gets a window fitted to it; the next CT the CT window again
            # (a CT keeps the window the user chose)
            if not looks_like_ct(image):
                self.window, self._signal_window = signal_window(image), True
            elif self._signal_window:
                self.window, self._signal_window = WINDOW_ABDOMEN, False
        self._bump()
        self.imageChanged.emit()
        self.structuresChanged.emit()

    def set_label(self, name: str, image: sitk.Image | None) -> None:
        if image is None:
            self.labels.pop(name, None)
        else:
            self.labels[name] = DisplayVolume(image)
            self._max_values[name] = int(np.max(self.labels[name].array)) if image.GetNumberOfPixels() else 0
        self._luts.pop(name, None)
        self._bump()
        self.structuresChanged.emit()

    # --- cursor and display settings -----------------------------------------------------------
    def set_cursor(self, point_lps) -> None:
        self.cursor_lps = np.asarray(point_lps, dtype=float)
        self.cursorChanged.emit()

    def set_window(self, width: float, level: float) -> None:
        self.window = (max(float(width), 1.0), float(level))
        self._bump()

    def set_opacity(self, opacity: float) -> None:
        self.opacity = min(max(float(opacity), 0.0), 1.0)
        self._bump()

    def set_outline(self, outline: bool) -> None:
        self.outline = bool(outline)
        self._bump()

    def set_overlays_on(self, on: bool) -> None:
        self.overlays_on = bool(on)
        self._bump()

    def set_visible(self, key: str, visible: bool) -> None:
        self.visible[key] = bool(visible)
        self._luts.pop(BY_KEY[key].label, None)
        self._bump()

    def set_colour(self, key: str, colour: Colour) -> None:
        self.colours[key] = tuple(float(c) for c in colour)
        self._luts.pop(BY_KEY[key].label, None)
        self._bump()

    def _bump(self) -> None:
        self.version += 1
        self.displayChanged.emit()

    # --- pixels --------------------------------------------------------------------------------
    def render(self, plane: str, index: int) -> np.ndarray:
        """The display slice as (h, w) uint32 0xFFRRGGBB (Qt's RGB32): the grey window with the
        visible label overlays blended on top."""
        grey = window_to_uint8(self.volume.slice(plane, index), *self.window)
        layers = [name for name in LAYER_ORDER if name in self.labels] if self.overlays_on else []
        luts = [(name, self._lut(name)) for name in layers]
        luts = [(name, lut) for name, lut in luts if lut[:, 3].any()]
        if not luts:
            return grey.astype(np.uint32) * np.uint32(0x010101) | np.uint32(0xFF000000)
        rgb = np.repeat(grey[:, :, None].astype(np.float32), 3, axis=2)
        for name, lut in luts:
            blend_labels(rgb, self.labels[name].slice(plane, index), lut, self.opacity, self.outline)
        channels = rgb.astype(np.uint32)
        return (channels[..., 0] << 16) | (channels[..., 1] << 8) | channels[..., 2] | \
            np.uint32(0xFF000000)

    def _lut(self, name: str) -> np.ndarray:
        if name not in self._luts:
            self._luts[name] = label_lut(name, self._max_values.get(name, 0), self.visible,
                                         self.colours)
        return self._luts[name]
