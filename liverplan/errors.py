"""Errors that speak to a clinician: what is wrong, with which file, and what to do."""

from __future__ import annotations

from pathlib import Path


class LiverPlanError(Exception):
    """Base class. `path` names the file or folder the problem is about, when there is one."""

    def __init__(self, message: str, *, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class InputError(LiverPlanError):
    """The input image or file cannot be used (unreadable, wrong kind, unsafe geometry)."""


class SegmentationError(LiverPlanError):
    """A segmentation step failed or produced a result that must not be shown as valid."""


class PlanningError(LiverPlanError):
    """A plan cannot be computed from the given inputs."""


class ExportError(LiverPlanError):
    """Writing or sending an export failed; nothing half-written is left under the final name."""


class Cancelled(LiverPlanError):
    """The user cancelled a long operation; no partial result is kept."""

    def __init__(self, message: str = "Cancelled by the user."):
        super().__init__(message)
