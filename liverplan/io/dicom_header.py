"""Fast access to DICOM headers read by the scan, and checks that native pixel data is whole."""

from __future__ import annotations

import os

import pydicom
from pydicom.multival import MultiValue

_PIXEL_TAG = b"\xe0\x7f\x10\x00"   # (7FE0,0010) little endian


class Header:
    """The per-file values the grouping needs, parsed from the raw bytes.

    pydicom's full value conversion (validation, DSfloat objects) costs as much as reading the
    file; these tags are ASCII strings (DS, IS, UI, CS) or unsigned shorts, so parsing them
    directly halves the scan time. Anything unusual (big endian, converted values) goes through
    pydicom.
    """

    def __init__(self, ds):
        self.ds = ds
        self.little = ds.original_encoding[1] is not False

    def text(self, keyword: str) -> str:
        elem = self.ds.get_item(keyword)
        if elem is None or elem.value is None:
            return ""
        if isinstance(elem.value, bytes):
            return elem.value.decode("latin-1").strip("\x00 ")
        value = self.ds[keyword].value
        return "\\".join(str(v) for v in value) if isinstance(value, MultiValue) else str(value)

    def numbers(self, keyword: str) -> tuple[float, ...]:
        text = self.text(keyword)
        return tuple(float(v) for v in text.split("\\")) if text else ()

    def ushort(self, keyword: str, default: int) -> int:
        elem = self.ds.get_item(keyword)
        if elem is None or not elem.value:
            return default
        if isinstance(elem.value, bytes) and self.little:
            return int.from_bytes(elem.value[:2], "little")
        return int(self.ds[keyword].value)


def pixel_data_at_end(path: str, nbytes: int) -> bool:
    """True if the file ends with a complete native PixelData element of `nbytes` bytes.

    Checked on the 12 bytes before it: explicit VR (tag, OW/OB, 2 reserved, length) or
    implicit VR (4 more bytes, then tag and length).
    """
    size = os.path.getsize(path)
    if size < nbytes + 12:
        return False
    with open(path, "rb") as fh:
        fh.seek(size - nbytes - 12)
        head = fh.read(12)
    length = nbytes.to_bytes(4, "little")
    return ((head[:4] == _PIXEL_TAG and head[4:6] in (b"OW", b"OB") and head[8:] == length)
            or (head[4:8] == _PIXEL_TAG and head[8:] == length))


def pixels_complete(path: str, nbytes: int) -> bool:
    """Native pixel data present in full (a full parse only for files that do not end with it)."""
    if pixel_data_at_end(path, nbytes):
        return True
    try:
        elem = pydicom.dcmread(path, defer_size=1024).get_item(0x7FE00010)
    except Exception:   # damaged past the header: as good as truncated
        return False
    return elem is not None and elem.value_tell + elem.length <= os.path.getsize(path)
