"""The real main window under Xvfb, with its own settings file and recovery folder."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QSettings, QThreadPool
import SimpleITK as sitk
from PySide6.QtGui import QImage

from liverplan.io import read_image

LOAD_TIMEOUT_MS = 120_000


@pytest.fixture
def make_window(qtbot, tmp_path):
    """Factory for main windows that never touch the user's settings or recovery copy."""
    from liverplan.viewers.main_window import MainWindow

    windows = []

    def make(recovery_dir=None, resize=True):
        settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
        window = MainWindow(settings=settings, recovery_dir=recovery_dir or tmp_path / "recovery")
        # Not qtbot.addWidget: qtbot would close it before `dirty` is reset below, and the
        # Save/Discard question would then wait for an answer.
        if resize:
            window.resize(1400, 900)
        window.show()
        qtbot.waitExposed(window)
        # Without a window manager (Xvfb) a shown window is not made active by itself, and
        # window shortcuts (Ctrl+Z...) only reach the active window, as on a desktop.
        window.activateWindow()
        qtbot.waitActive(window)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.dirty = False          # no Save/Discard question at teardown
        window.close()
        window.deleteLater()
    # Nothing of this test outlives it: its background tasks (cancelled by the close) end, and
    # their queued signals and the windows' deletion are handled here, not in the next test's
    # event loop (where late deliveries into closed windows crashed the suite now and then).
    assert QThreadPool.globalInstance().waitForDone(120_000)
    QCoreApplication.sendPostedEvents()
    QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)


@pytest.fixture
def window(make_window):
    return make_window()


def wait_task(qtbot, task, timeout=LOAD_TIMEOUT_MS):
    """Wait until a Task has delivered its outcome (finished, failed or cancelled)."""
    qtbot.waitUntil(lambda: not task.running, timeout=timeout)


def open_and_wait(qtbot, window, path, timeout=LOAD_TIMEOUT_MS):
    """Open through the same slot as the File menu; wait until the case is shown."""
    before = window.case
    window.open_path(path)
    qtbot.waitUntil(lambda: window.case is not None and window.case is not before,
                    timeout=timeout)
    return window.case


def view_pixels(widget) -> np.ndarray:
    """What a person sees in a widget, as an (h, w, 3) uint8 array."""
    return image_pixels(widget.grab().toImage())


def image_pixels(image) -> np.ndarray:
    """A QImage as an (h, w, 3) uint8 array."""
    image = image.convertToFormat(QImage.Format_RGB888)
    h, w = image.height(), image.width()
    buffer = np.frombuffer(image.constBits(), np.uint8, count=image.bytesPerLine() * h)
    return buffer.reshape(h, image.bytesPerLine())[:, :w * 3].reshape(h, w, 3).copy()


def truth(patient, name) -> sitk.Image:
    """A reference label image of the synthetic patient (liver, tumors, vessels, segments)."""
    return read_image(patient.truth_dir / f"{name}.nii.gz")


def centre_on(window, mask: sitk.Image) -> None:
    """Put the crosshair on the mask's centre of mass (the views show its middle)."""
    zyx = np.argwhere(sitk.GetArrayViewFromImage(mask)).mean(axis=0)
    window.state.set_cursor(mask.TransformContinuousIndexToPhysicalPoint(zyx[::-1].tolist()))
