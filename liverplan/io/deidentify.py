"""De-identification of exported DICOM objects: DICOM PS3.15 Annex E basic profile.

Used for exports that leave the hospital. One `Deidentifier` per export so that everything it
touches agrees: UIDs are remapped consistently (the SEG still references its CT series, the PDF
its study), dates move by the same offset (Retain Longitudinal Temporal Information with
Modified Dates option: intervals between dates survive), and the patient gets one pseudonym.
"""

from __future__ import annotations

import datetime as _dt
import secrets
from dataclasses import dataclass, field

import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import UID_dictionary, generate_uid

# Attributes of PS3.15 Table E.1-1 that our exports can carry, by basic-profile action.
# Z: keep the attribute, empty (type 2); X: remove; D: dummy value (type 1 in some IODs).
_EMPTY = ("PatientBirthDate", "ReferringPhysicianName", "AccessionNumber", "StudyID",
          "ContentCreatorName", "PatientSex", "ContentDescription")
_DUMMY = {"DeviceSerialNumber": "0"}
_REMOVE = (
    "PatientBirthTime", "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames",
    "PatientBirthName", "PatientMotherBirthName", "PatientAddress", "PatientTelephoneNumbers",
    "PatientAge", "PatientWeight", "PatientSize", "MilitaryRank", "BranchOfService",
    "EthnicGroup", "Occupation", "AdditionalPatientHistory", "PatientComments",
    "MedicalRecordLocator", "PatientReligiousPreference", "InsurancePlanIdentification",
    "IssuerOfPatientID", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers", "PhysiciansOfRecord", "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy", "OperatorsName", "RequestingPhysician",
    "ScheduledPerformingPhysicianName", "StationName",
    "RequestAttributesSequence", "RequestedProcedureID", "PerformedProcedureStepID",
    "StudyComments", "ImageComments", "AdmittingDiagnosesDescription", "AdmissionID",
    "CurrentPatientLocation", "PatientInstitutionResidence", "ResponsibleOrganization",
    "ResponsiblePerson", "CountryOfResidence", "RegionOfResidence", "PatientState",
    "ReferencedPatientSequence", "ReferencedStudySequence", "ProtocolName",
    "PerformedProcedureStepDescription", "AcquisitionComments", "DerivationDescription",
    "StudyDescription", "SeriesDescription")


@dataclass
class Deidentifier:
    """Remaps one patient's identity consistently across several objects of one export.

    `pseudonym` replaces the patient name and ID; `date_shift_days` moves every date (negative:
    earlier); the UID salt is secret and random, so remapped UIDs cannot be traced back.
    """
    pseudonym: str = "ANONYMOUS"
    date_shift_days: int = field(default_factory=lambda: -secrets.randbelow(3650) - 365)
    _salt: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    _uids: dict[str, str] = field(default_factory=dict, repr=False)

    def uid(self, original: str) -> str:
        """The new UID for `original` (well-known DICOM UIDs such as SOP classes are kept).

        Idempotent: a UID this de-identifier produced maps to itself, so an object that
        references an already de-identified one keeps pointing at it.
        """
        if not original or original in UID_dictionary or original in self._uids.values():
            return original
        if original not in self._uids:
            self._uids[original] = generate_uid(prefix=None, entropy_srcs=[self._salt, original])
        return self._uids[original]

    def date(self, value: str) -> str:
        """A DA (YYYYMMDD) or the date part of a DT, shifted; empty stays empty."""
        if not value:
            return value
        day = _dt.datetime.strptime(value[:8], "%Y%m%d").date()
        return (day + _dt.timedelta(days=self.date_shift_days)).strftime("%Y%m%d") + value[8:]

    def series(self, series: dict) -> dict:
        """A plan file's series identifiers as the de-identified SEG and report carry them."""
        out = {k: self.uid(v) for k, v in series.items() if k.endswith("_uid")}
        if series.get("study_date"):
            out["study_date"] = self.date(series["study_date"])
        if series.get("patient_id"):
            out["patient_id"] = self.pseudonym
        return out                         # the description goes, as SeriesDescription does

    def dataset(self, ds: Dataset) -> Dataset:
        """De-identify `ds` in place (including its file meta) and return it."""
        ds.remove_private_tags()
        self._walk(ds)
        if "PatientName" in ds:
            ds.PatientName = self.pseudonym
        if "PatientID" in ds:
            ds.PatientID = self.pseudonym
        for keyword in _EMPTY:
            if keyword in ds:
                setattr(ds, keyword, "")
        for keyword, dummy in _DUMMY.items():
            if keyword in ds:
                setattr(ds, keyword, dummy)
        meta = getattr(ds, "file_meta", None)
        if meta is not None and "MediaStorageSOPInstanceUID" in meta:
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientIdentityRemoved = "YES"
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
        ds.DeidentificationMethod = "PS3.15 basic profile, dates shifted (LiverPlan)"  # LO: 64 chars
        ds.DeidentificationMethodCodeSequence = [
            _code_item(codes.DCM.BasicApplicationConfidentialityProfile),
            _code_item(codes.DCM.RetainLongitudinalTemporalInformationModifiedDatesOption)]
        return ds

    def _walk(self, ds: Dataset) -> None:
        for keyword in _REMOVE:
            if keyword in ds:
                delattr(ds, keyword)
        for elem in list(ds):
            if elem.VR == "SQ":
                for item in elem.value:
                    self._walk(item)
            elif elem.VR == "UI" and elem.value:
                elem.value = ([self.uid(v) for v in elem.value] if elem.VM > 1
                              else self.uid(elem.value))
            elif elem.VR in ("DA", "DT") and elem.value:
                elem.value = ([self.date(str(v)) for v in elem.value] if elem.VM > 1
                              else self.date(str(elem.value)))

    def file(self, path) -> Dataset:
        """Read a DICOM file and return its de-identified dataset (the file is not changed)."""
        return self.dataset(pydicom.dcmread(path))


def _code_item(code) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = (
        code.value, code.scheme_designator, code.meaning)
    return item
