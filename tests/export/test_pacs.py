import pydicom
import pytest

from liverplan.errors import ExportError
from liverplan.io import pacs
from liverplan.io.atomic import write_dicom
from liverplan.io.export_encapsulated import encapsulate_pdf
from liverplan.io.export_seg import write_seg

from .conftest import _free_port
from .test_export_encapsulated import make_pdf

pytestmark = pytest.mark.pacs


@pytest.fixture(scope="module")
def exported(small_case, tmp_path_factory):
    out = tmp_path_factory.mktemp("pacs_export")
    seg = write_seg(small_case.labels, small_case.files, out / "seg.dcm")
    doc = write_dicom(encapsulate_pdf(make_pdf(out / "r.pdf"), pydicom.dcmread(small_case.files[0]),
                                      referenced=[pydicom.dcmread(seg)]), out / "report.dcm")
    return seg, doc


def test_echo(orthanc):
    pacs.echo(orthanc.target)


def test_store_seg_and_pdf_and_query_them_back(orthanc, exported, small_case):
    seg, doc = exported
    stored = pacs.store(orthanc.target, [seg, doc])
    assert [s.status for s in stored] == [0, 0]
    uids = {s.sop_instance_uid for s in stored}
    assert uids == {pydicom.dcmread(seg).SOPInstanceUID, pydicom.dcmread(doc).SOPInstanceUID}
    by_uid = {}
    for oid in orthanc.rest("/instances"):
        by_uid[orthanc.rest(f"/instances/{oid}/simplified-tags")["SOPInstanceUID"]] = oid
    assert uids <= set(by_uid)
    seg_ds, doc_ds = pydicom.dcmread(seg), pydicom.dcmread(doc)
    seg_tags = orthanc.rest(f"/instances/{by_uid[seg_ds.SOPInstanceUID]}/simplified-tags")
    ct = pydicom.dcmread(small_case.files[0])
    assert seg_tags["StudyInstanceUID"] == ct.StudyInstanceUID
    assert seg_tags["PatientID"] == ct.PatientID
    assert int(seg_tags["NumberOfFrames"]) == int(seg_ds.NumberOfFrames)
    doc_tags = orthanc.rest(f"/instances/{by_uid[doc_ds.SOPInstanceUID]}/simplified-tags")
    assert doc_tags["Modality"] == "DOC"
    assert doc_tags["StudyInstanceUID"] == ct.StudyInstanceUID
    assert doc_tags["MIMETypeOfEncapsulatedDocument"] == "application/pdf"
    # the SEG and the CT's study are one study in the archive
    study = orthanc.rest(f"/instances/{by_uid[seg_ds.SOPInstanceUID]}/study")
    assert study["MainDicomTags"]["StudyInstanceUID"] == ct.StudyInstanceUID


def test_refused_association_says_so(orthanc, exported):
    with pytest.raises(ExportError, match="refused the connection"):
        pacs.echo(f"WRONGAET@127.0.0.1:{orthanc.port}")
    with pytest.raises(ExportError, match="refused the connection"):
        pacs.store(f"WRONGAET@127.0.0.1:{orthanc.port}", list(exported))


def test_unreachable_pacs_says_so(exported):
    with pytest.raises(ExportError, match="could not reach the PACS"):
        pacs.store(f"NOBODY@127.0.0.1:{_free_port()}", list(exported), timeout_s=3)


def test_rejected_store_names_what_was_already_stored(orthanc, exported, tmp_path):
    seg, _ = exported
    bad = pydicom.dcmread(seg)
    del bad.SeriesInstanceUID          # a broken object: Orthanc answers 0xA700 (out of resources)
    bad.SOPInstanceUID = bad.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    bad_path = write_dicom(bad, tmp_path / "bad.dcm")
    with pytest.raises(ExportError, match=r"rejected this object with status 0x[0-9A-F]{4}.*"
                                          r"Already stored: seg.dcm") as info:
        pacs.store(orthanc.target, [seg, bad_path])
    assert info.value.path == bad_path
    stored = {orthanc.rest(f"/instances/{oid}/simplified-tags")["SOPInstanceUID"]
              for oid in orthanc.rest("/instances")}
    assert bad.SOPInstanceUID not in stored


def test_bad_address_is_explained():
    with pytest.raises(ExportError, match="AE@HOST:PORT"):
        pacs.PacsTarget.parse("orthanc:4242")
    assert pacs.PacsTarget.parse("PACS@10.0.0.5:104") == pacs.PacsTarget("PACS", "10.0.0.5", 104)
