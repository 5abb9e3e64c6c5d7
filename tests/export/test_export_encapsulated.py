import pydicom
import pytest
from reportlab.pdfgen import canvas

from liverplan.errors import ExportError
from liverplan.io.atomic import write_dicom
from liverplan.io.export_encapsulated import encapsulate_pdf, extract_pdf

from .conftest import dciodvfy_errors


def make_pdf(path, text="Plan report"):
    c = canvas.Canvas(str(path))
    c.drawString(72, 720, text)
    c.save()
    return path


def test_encapsulated_pdf_is_in_the_source_study_and_passes_dciodvfy(small_case, tmp_path):
    pdf = make_pdf(tmp_path / "report.pdf")
    ct = pydicom.dcmread(small_case.files[0])
    out = write_dicom(encapsulate_pdf(pdf, ct, referenced=[ct]), tmp_path / "report.dcm")
    assert dciodvfy_errors(out) == []
    ds = pydicom.dcmread(out)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1"
    assert ds.StudyInstanceUID == ct.StudyInstanceUID
    assert ds.SeriesInstanceUID != ct.SeriesInstanceUID
    assert (ds.PatientID, str(ds.PatientName), ds.PatientSex) == ("PAT-0042", "Doe^Jane", "F")
    assert extract_pdf(ds) == pdf.read_bytes()
    assert ds.SourceInstanceSequence[0].ReferencedSOPInstanceUID == ct.SOPInstanceUID


def test_a_file_that_is_not_a_pdf_is_refused(small_case, tmp_path):
    bad = tmp_path / "report.pdf"
    bad.write_text("not a pdf")
    with pytest.raises(ExportError, match="not a PDF"):
        encapsulate_pdf(bad, pydicom.dcmread(small_case.files[0]))
