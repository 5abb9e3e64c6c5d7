import pydicom

from liverplan.io.deidentify import Deidentifier
from liverplan.io.atomic import write_dicom
from liverplan.io.export_encapsulated import encapsulate_pdf
from liverplan.io.export_seg import write_seg

from .conftest import dciodvfy_errors
from .test_export_encapsulated import make_pdf


def test_seg_and_pdf_are_deidentified_consistently(small_case, tmp_path):
    ct = pydicom.dcmread(small_case.files[0])
    seg_path = write_seg(small_case.labels, small_case.files, tmp_path / "seg.dcm")
    seg = pydicom.dcmread(seg_path)
    doc = encapsulate_pdf(make_pdf(tmp_path / "r.pdf", "Case LP-7"), ct, referenced=[seg])
    deid = Deidentifier(pseudonym="LP-7", date_shift_days=-100)
    seg_d = deid.dataset(pydicom.dcmread(seg_path))
    doc_d = deid.dataset(doc)
    for ds in (seg_d, doc_d):
        assert str(ds.PatientName) == "LP-7" and ds.PatientID == "LP-7"
        assert ds.PatientBirthDate == "" and ds.PatientIdentityRemoved == "YES"
        assert ds.StudyDate == "20250927"            # 2026-01-05 minus 100 days
        assert ds.StudyInstanceUID != ct.StudyInstanceUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    # one study, and the references still point at the (remapped) objects
    assert seg_d.StudyInstanceUID == doc_d.StudyInstanceUID == deid.uid(ct.StudyInstanceUID)
    assert doc_d.SourceInstanceSequence[0].ReferencedSOPInstanceUID == seg_d.SOPInstanceUID
    assert seg_d.FrameOfReferenceUID == deid.uid(ct.FrameOfReferenceUID)
    refs = {i.ReferencedSOPInstanceUID for s in seg_d.ReferencedSeriesSequence
            for i in s.ReferencedInstanceSequence}
    assert deid.uid(ct.SOPInstanceUID) in refs
    # well-known UIDs are kept
    assert seg_d.SOPClassUID == seg.SOPClassUID
    # nothing identifying is left in the written files; they stay valid DICOM
    for name, ds in (("seg_d.dcm", seg_d), ("doc_d.dcm", doc_d)):
        path = write_dicom(ds, tmp_path / name)
        raw = path.read_bytes()
        assert b"Doe" not in raw and b"PAT-0042" not in raw and b"20260105" not in raw
        assert ct.StudyInstanceUID.encode() not in raw
        assert dciodvfy_errors(path) == []


def test_uid_map_is_stable_and_keeps_well_known_uids():
    deid = Deidentifier()
    assert deid.uid("1.2.3.4") == deid.uid("1.2.3.4") != "1.2.3.4"
    assert deid.uid("1.2.840.10008.1.2.1") == "1.2.840.10008.1.2.1"   # transfer syntax
    assert Deidentifier().uid("1.2.3.4") != deid.uid("1.2.3.4")       # secret salt per export
