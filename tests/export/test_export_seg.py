import highdicom as hd
import numpy as np
import pydicom
import pytest

from liverplan.case import LIVER, SEGMENTS, TUMORS, VESSELS
from liverplan.errors import ExportError
from liverplan.io.export_seg import write_seg

from .conftest import dciodvfy_errors


@pytest.fixture(scope="module")
def seg_file(small_case, tmp_path_factory):
    return write_seg(small_case.labels, small_case.files,
                     tmp_path_factory.mktemp("seg") / "seg.dcm")


def test_seg_passes_dciodvfy(seg_file):
    assert dciodvfy_errors(seg_file) == []


def test_seg_references_the_source_series_in_the_same_study(small_case, seg_file):
    seg = pydicom.dcmread(seg_file)
    ct = pydicom.dcmread(small_case.files[0])
    assert seg.StudyInstanceUID == ct.StudyInstanceUID
    assert seg.FrameOfReferenceUID == ct.FrameOfReferenceUID
    assert seg.PatientID == "PAT-0042" and str(seg.PatientName) == "Doe^Jane"
    referenced = {item.SeriesInstanceUID for item in seg.ReferencedSeriesSequence}
    assert referenced == {ct.SeriesInstanceUID}


def test_seg_codes_use_snomed(seg_file):
    seg = pydicom.dcmread(seg_file)
    by_label = {s.SegmentLabel: s.SegmentedPropertyTypeCodeSequence[0] for s in seg.SegmentSequence}
    assert (by_label["Liver"].CodingSchemeDesignator, by_label["Liver"].CodeValue) == ("SCT", "10200004")
    assert by_label["Portal vein"].CodeValue == "32764006"
    assert by_label["Hepatic veins and IVC"].CodeValue == "8993003"
    assert by_label["Lesion 1"].CodeValue == "108369006"
    assert by_label["Segment 2"].CodeValue == "277956007"
    assert len(by_label) == 1 + 2 + 2 + 8


def test_seg_frames_map_back_onto_the_source_slices(small_case, seg_file):
    """Each segment, read back by position (not by order), equals the input mask."""
    seg = hd.seg.segread(seg_file)
    ct_by_uid = {pydicom.dcmread(f).SOPInstanceUID: k for k, f in enumerate(small_case.files)}
    ds = pydicom.dcmread(seg_file)
    labels = small_case.labels
    expected = {"Liver": pydicom_view(labels[LIVER]) != 0,
                "Lesion 2": pydicom_view(labels[TUMORS]) == 2,
                "Portal vein": pydicom_view(labels[VESSELS]) == 1,
                "Segment 7": pydicom_view(labels[SEGMENTS]) == 7}
    for s in ds.SegmentSequence:
        if s.SegmentLabel not in expected:
            continue
        got = np.zeros_like(expected[s.SegmentLabel])
        for uid, k in ct_by_uid.items():
            frame = seg.get_pixels_by_source_instance(
                source_sop_instance_uids=[uid], segment_numbers=[s.SegmentNumber],
                assert_missing_frames_are_empty=True)
            got[k] = frame[0, :, :, 0]
        assert np.array_equal(got, expected[s.SegmentLabel]), s.SegmentLabel


def pydicom_view(image):
    import SimpleITK as sitk
    return sitk.GetArrayFromImage(image)


def test_seg_refuses_masks_that_are_not_on_the_source_series(small_case, tmp_path):
    import SimpleITK as sitk
    shifted = {k: sitk.Image(v) for k, v in small_case.labels.items()}
    for image in shifted.values():
        image.SetOrigin(np.asarray(image.GetOrigin()) + (0, 0, 2.0))
    out = tmp_path / "seg.dcm"
    with pytest.raises(ExportError, match="does not lie on the source series"):
        write_seg(shifted, small_case.files, out)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_seg_without_a_segmentation_is_refused(small_case, tmp_path):
    with pytest.raises(ExportError, match="no segmentation"):
        write_seg({}, small_case.files, tmp_path / "seg.dcm")
