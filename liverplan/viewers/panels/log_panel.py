"""The log: loader warnings, skipped files, errors and finished steps, kept for the session."""

from __future__ import annotations

import datetime as _dt

from PySide6.QtGui import QColor, QTextCharFormat
from PySide6.QtWidgets import QPlainTextEdit

LEVEL_COLOURS = {"info": "#d0d0d0", "warning": "#f0c040", "error": "#ff6060"}


class LogPanel(QPlainTextEdit):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(5000)
        self.setStyleSheet("QPlainTextEdit { background: #202024; font-family: monospace; }")
        self.entries: list[tuple[str, str]] = []   # (level, message), for tests and export

    def log(self, level: str, message: str) -> None:
        self.entries.append((level, message))
        fmt = QTextCharFormat()
        fmt.setForeground(QColor(LEVEL_COLOURS.get(level, LEVEL_COLOURS["info"])))
        stamp = _dt.datetime.now().strftime("%H:%M:%S")
        cursor = self.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        cursor.insertText(f"{stamp} {level.upper():7} {message}\n", fmt)
        self.ensureCursorVisible()

