"""Start the desktop app: `python main.py [DICOM folder, image file or saved case]`."""

from __future__ import annotations

import sys
import traceback

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from liverplan.viewers import settings as app_settings
from liverplan.viewers.main_window import MainWindow


def _excepthook(window: MainWindow):
    """An unexpected error in a UI slot becomes a dialog and a log entry, not a dead window."""
    def hook(kind, value, tb):
        details = "".join(traceback.format_exception(kind, value, tb))
        sys.stderr.write(details)
        window.show_error(f"Unexpected error: {kind.__name__}: {value}", details)
    return hook


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    app = QApplication.instance() or QApplication([sys.argv[0], *[a for a in argv
                                                                   if a.startswith("-")]])
    app.setOrganizationName(app_settings.ORGANIZATION)
    app.setApplicationName(app_settings.APPLICATION)
    window = MainWindow()
    sys.excepthook = _excepthook(window)
    window.show()
    paths = [a for a in argv if not a.startswith("-")]
    if paths:
        QTimer.singleShot(0, lambda: window.open_path(paths[0]))
    else:
        QTimer.singleShot(0, window.offer_recovery)
    return app.exec()
