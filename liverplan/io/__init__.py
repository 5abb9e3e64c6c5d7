"""Loading and writing images and plans: DICOM, NIfTI/NRRD/MHA, the synthetic patient, exports."""

from liverplan.io.dicom_scan import ScanResult, SeriesInfo, SkippedFile, scan
from liverplan.io.images import read_image, write_image
from liverplan.io.volume import Volume, load, require_3d

__all__ = ["scan", "load", "require_3d", "SeriesInfo", "ScanResult", "SkippedFile", "Volume",
           "read_image", "write_image"]
