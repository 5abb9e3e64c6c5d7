"""Header (raw-byte tag parsing) agrees with pydicom; pixel-data checks find truncation."""

from __future__ import annotations

import pydicom
import pytest

from liverplan.io.dicom_header import Header, pixel_data_at_end, pixels_complete
from tests.io.dicom_cases import ramp_volume, write

@pytest.mark.parametrize("implicit", [False, True])
def test_raw_values_match_pydicom(tmp_path, implicit):
    path = write(ramp_volume(), tmp_path)[2]
    if implicit:
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        ds.save_as(path, implicit_vr=True, little_endian=True)
    h = Header(pydicom.dcmread(path, stop_before_pixels=True))
    ds = pydicom.dcmread(path)
    for keyword in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing"):
        assert h.numbers(keyword) == pytest.approx([float(v) for v in ds[keyword].value])
    assert h.numbers("RescaleIntercept") == (-1024.0,)
    assert h.text("SeriesInstanceUID") == ds.SeriesInstanceUID
    assert h.text("PhotometricInterpretation") == "MONOCHROME2"
    assert h.text("InstanceNumber") == "3"
    assert (h.ushort("Rows", 0), h.ushort("Columns", 0)) == (ds.Rows, ds.Columns)
    assert h.ushort("NumberOfFrames", 1) == 1 and h.text("EchoNumbers") == ""
    nbytes = ds.Rows * ds.Columns * 2
    assert pixel_data_at_end(str(path), nbytes) and pixels_complete(str(path), nbytes)


def test_truncated_and_trailing_elements(tmp_path):
    path = write(ramp_volume(), tmp_path)[0]
    nbytes = 12 * 10 * 2
    ds = pydicom.dcmread(path)
    ds.add_new(0xFFFCFFFC, "OB", b"\0\0")     # trailing padding after the pixel data
    ds.save_as(path)
    assert not pixel_data_at_end(str(path), nbytes)   # not at the end any more ...
    assert pixels_complete(str(path), nbytes)          # ... but whole
    path.write_bytes(path.read_bytes()[:-30])
    assert not pixels_complete(str(path), nbytes)
