"""The plan report as a DICOM Encapsulated PDF in the study of the source CT.

The PACS files it beside the CT and the SEG: same patient, same study, its own series.
Built with pydicom (highdicom has no encapsulated-document class); the patient and study
modules are copied from a source slice so the archive does not split the study.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Sequence

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import EncapsulatedPDFStorage, ExplicitVRLittleEndian, generate_uid

from liverplan import __version__
from liverplan.errors import ExportError

_PATIENT_STUDY = ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate",
                  "PatientSex", "OtherPatientIDsSequence", "StudyInstanceUID", "StudyDate",
                  "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
                  "StudyDescription")
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
          "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")


def encapsulate_pdf(pdf_path: str | Path, source: Dataset, *, title: str = "Liver surgery plan",
                    referenced: Sequence[Dataset] = (), series_number: int = 901,
                    when: _dt.datetime | None = None) -> Dataset:
    """An Encapsulated PDF dataset for `pdf_path` in the patient/study of `source` (a CT slice).

    `referenced` are the instances the report was made from (e.g. the SEG), listed in the
    Source Instance Sequence.
    """
    pdf = Path(pdf_path).read_bytes()
    if not pdf.startswith(b"%PDF"):
        raise ExportError("this is not a PDF file; write the plan report first", path=pdf_path)
    when = when or _dt.datetime.now()
    ds = Dataset()
    ds.SpecificCharacterSet = source.get("SpecificCharacterSet", "ISO_IR 192")
    for keyword in _PATIENT_STUDY:
        if keyword in source:
            setattr(ds, keyword, source.data_element(keyword).value)
    for keyword in _TYPE2:
        if keyword not in ds:
            setattr(ds, keyword, "")
    ds.SOPClassUID = EncapsulatedPDFStorage
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = series_number
    ds.SeriesDescription = title
    ds.Manufacturer = "LiverPlan"
    ds.ManufacturerModelName = "LiverPlan"
    ds.SoftwareVersions = __version__
    ds.ConversionType = "WSD"                    # workstation-generated document
    ds.InstanceNumber = 1
    ds.ContentDate = when.strftime("%Y%m%d")
    ds.ContentTime = when.strftime("%H%M%S")
    ds.AcquisitionDateTime = when.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"                # the report names the patient
    ds.DocumentTitle = title
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    if referenced:
        items = []
        for ref in referenced:
            item = Dataset()
            item.ReferencedSOPClassUID = ref.SOPClassUID
            item.ReferencedSOPInstanceUID = ref.SOPInstanceUID
            items.append(item)
        ds.SourceInstanceSequence = items
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.EncapsulatedDocument = pdf + b"\0" * (len(pdf) % 2)   # OB values have even length
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = EncapsulatedPDFStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def extract_pdf(ds: Dataset) -> bytes:
    """The PDF bytes of an Encapsulated PDF dataset (without the even-length padding)."""
    return bytes(ds.EncapsulatedDocument[:int(ds.EncapsulatedDocumentLength)])
