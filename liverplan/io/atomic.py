"""Safe file writes: a temporary file in the same folder, then os.replace onto the final name.

A reader never sees a half-written file under the final name, and a failed write (full disk,
file-size limit, unwritable folder, cancel) leaves whatever was there before untouched.
"""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterator

import pydicom

from liverplan.errors import ExportError


NOT_WRITABLE = "the folder is not writable; choose a folder you may write to"
FILE_IN_PATH = "part of the path is a file, not a folder; choose another folder"


def disk_error(exc: OSError, path: str | Path) -> ExportError:
    """An ExportError for a failed write that says what to do about it."""
    code = _errno(exc)
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        advice = "the disk is full (or the file is larger than allowed); free space or choose " \
                 "another folder, then export again"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = NOT_WRITABLE
    elif code in (errno.ENOTDIR, errno.EEXIST):         # (EEXIST: a file has the folder's name)
        advice = FILE_IN_PATH
    else:
        advice = f"{exc.strerror or exc}; check that the folder exists and is writable"
    return ExportError(f"could not write the file: {advice}. Nothing half-written was kept.",
                       path=path)


def _errno(exc: BaseException | None) -> int | None:
    """The errno of an OSError or of the OSError it wraps (pydicom re-raises without errno)."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc.errno
        exc = exc.__cause__ or exc.__context__
    return None


@contextmanager
def atomic_write(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path` atomically.

    On any error the temporary file is removed and `path` keeps its previous content (or stays
    absent). OSErrors become ExportError with advice for the user. `suffix`: the temporary
    file's, by default the path's last one (".nii.gz" for ITK's NIfTI writer).

    >>> with atomic_write(out / "liver.stl") as tmp:
    ...     mesh.save(tmp)
    """
    path = Path(path)
    # Hidden, unique per process, and with the final suffix: writers pick the format by it.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix or path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise disk_error(exc, path) from exc
    finally:
        with suppress(OSError):       # (no folder to remove it from: the error above says why)
            tmp.unlink(missing_ok=True)


def ensure_folder(folder: str | Path) -> Path:
    """Create `folder` if needed and check that it is writable; ExportError if not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise disk_error(exc, folder) from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(NOT_WRITABLE, path=folder)
    return folder


def check_folder(folder: str | Path) -> Path:
    """ExportError now if `folder` could not be created or written, without creating it (a
    command checks where it will write before its work, and a refused run leaves nothing)."""
    folder = Path(folder)
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise ExportError(FILE_IN_PATH, path=folder)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ExportError(NOT_WRITABLE, path=folder)
    return folder


def write_dicom(ds: pydicom.Dataset, path: str | Path) -> Path:
    """Write a DICOM dataset (with file meta) atomically; return the path."""
    path = Path(path)
    with atomic_write(path) as tmp:
        pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
    return path
