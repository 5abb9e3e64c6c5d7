"""NIfTI, NRRD and MetaImage files, read and written through SimpleITK.

SimpleITK (ITK) converts each format's own convention into LPS on reading and back on writing
(NIfTI's RAS qform/sform included), so images keep the one geometry of the project. nibabel is
not used: it would hand back RAS arrays whose axes and direction we would have to convert by
hand, which is exactly the kind of flip the design forbids.
"""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from liverplan.errors import ExportError, InputError
from liverplan.io.atomic import atomic_write

SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
WRITE_SUFFIXES = (".nii.gz", ".nrrd", ".mha")


def image_suffix(path: str | Path) -> str | None:
    """The image-file suffix of `path` ('.nii.gz', '.nrrd', ...) or None."""
    name = Path(path).name.lower()
    return next((s for s in SUFFIXES if name.endswith(s)), None)


def read_image(path: str | Path) -> sitk.Image:
    """An image file as a SimpleITK image in LPS mm."""
    path = Path(path)
    if image_suffix(path) is None:
        raise InputError(f"not an image file this program reads (expected one of "
                         f"{', '.join(SUFFIXES)})", path=path)
    if not path.is_file():
        raise InputError("this file does not exist; check the path", path=path)
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"cannot read the image ({str(exc).strip().splitlines()[-1]}); the file "
                         "may be damaged or incomplete", path=path) from exc


def write_image(image: sitk.Image, path: str | Path) -> Path:
    """Write atomically (a half-written file never appears under `path`); compressed."""
    path = Path(path)
    suffix = next((s for s in WRITE_SUFFIXES if path.name.lower().endswith(s)), None)
    if suffix is None:
        raise ValueError(f"write_image writes {', '.join(WRITE_SUFFIXES)}, not {path.name}")
    with atomic_write(path, suffix) as tmp:
        try:
            sitk.WriteImage(image, str(tmp), useCompression=True)
        except RuntimeError as exc:
            raise ExportError(f"could not write the image ({str(exc).strip().splitlines()[-1]})",
                              path=path) from exc
    return path
