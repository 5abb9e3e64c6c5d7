"""Where the app keeps its preferences, recent cases and crash-recovery copy.

Tests pass their own QSettings and recovery folder so they never touch the user's.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths

ORGANIZATION = "LiverPlan"
APPLICATION = "LiverPlan"
MAX_RECENT = 10
AUTOSAVE_INTERVAL_MS = 3 * 60 * 1000   # periodic autosave of the open case
AUTOSAVE_DELAY_MS = 2000               # after a change, wait this long for more changes


def default_settings() -> QSettings:
    return QSettings(QSettings.IniFormat, QSettings.UserScope, ORGANIZATION, APPLICATION)


def default_recovery_dir() -> Path:
    base = QStandardPaths.writableLocation(QStandardPaths.AppLocalDataLocation) or \
        str(Path.home() / ".local" / "share" / APPLICATION)
    return Path(base) / "recovery"


def recent(settings: QSettings) -> list[str]:
    value = settings.value("recent", [])
    items = [value] if isinstance(value, str) else list(value or [])
    return [p for p in items if p]


def add_recent(settings: QSettings, path: str | Path) -> list[str]:
    path = str(Path(path).resolve())
    items = [path] + [p for p in recent(settings) if p != path]
    settings.setValue("recent", items[:MAX_RECENT])
    return items[:MAX_RECENT]


def pid_alive(pid: int) -> bool:
    """True if a process with this id runs (the owner of a recovery copy still works on it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
