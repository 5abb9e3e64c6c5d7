"""scan: finding, grouping and describing series; every bad input is listed, nothing good lost."""

from __future__ import annotations

import os
import shutil
import threading

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (ComprehensiveSRStorage, EncapsulatedPDFStorage, ExplicitVRLittleEndian,
                         RTStructureSetStorage, SegmentationStorage, generate_uid)

from liverplan.errors import Cancelled, InputError
from liverplan.io import load, scan
from liverplan.io.dicom_scan import phase_hint
from tests.io.dicom_cases import edit, non_image, ramp_volume, write

NON_IMAGES = [(ComprehensiveSRStorage, "SR", "Comprehensive SR Storage"),
              (SegmentationStorage, "SEG", "Segmentation Storage"),
              (RTStructureSetStorage, "RTSTRUCT", "RT Structure Set Storage"),
              (EncapsulatedPDFStorage, "DOC", "Encapsulated PDF Storage")]


def test_finds_files_of_any_name_recursively_in_slice_order(tmp_path):
    files = write(ramp_volume(), tmp_path / "a" / "b")
    # scanner-style names that sort opposite to the slice order
    for f in files:
        f.rename(f.with_name(f"Z{100 - int(f.name[3:])}"))
    result = scan(tmp_path)
    (s,) = result.series
    assert s.n_images == 8 and (s.rows, s.columns) == (10, 12)
    assert s.pixel_spacing_mm == pytest.approx((0.7, 0.8))
    assert s.slice_spacing_mm == pytest.approx(2.5)
    z = [pydicom.dcmread(f).ImagePositionPatient[2] for f in s.files]
    assert z == sorted(z)
    assert result.skipped == [] and s.warnings == ()


def test_series_level_fields(tmp_path):
    write(ramp_volume(), tmp_path, patient_name="Doe^Jane", patient_id="P17", patient_sex="F",
          weight_kg=71.5, height_cm=168, series_description="Abdomen PV 1.5",
          study_date="20240102", extra_tags={"ContrastBolusAgent": "Iomeprol"})
    (s,) = scan(tmp_path).series
    assert (s.patient_name, s.patient_id, s.patient_sex) == ("Doe, Jane", "P17", "F")
    assert (s.study_date, s.modality, s.description) == ("20240102", "CT", "Abdomen PV 1.5")
    assert s.weight_kg == pytest.approx(71.5) and s.height_cm == pytest.approx(168.0)
    assert s.phase_hint == "portal venous"
    assert s.key == s.series_instance_uid


@pytest.mark.parametrize("description, agent, expected", [
    ("Arterial phase 1.0", "", "arterial"), ("late arterial", "", "arterial"),
    ("ABD PV", "", "portal venous"), ("Portal venous", "x", "portal venous"),
    ("venous 3mm", "", "portal venous"), ("Delayed", "", "delayed"),
    ("Abdomen nativ", "", "non-contrast"), ("Abdomen 1.5", "APPLIED", "contrast (phase not named)"),
    ("Abdomen 1.5", "", None), ("Preview", "", None)])
def test_phase_hint(description, agent, expected):
    assert phase_hint(description, agent) == expected


@pytest.mark.parametrize("charset, name", [("ISO_IR 100", "Müller^Jürgen"),
                                           ("ISO_IR 192", "Šimić^Zoë")])
def test_non_ascii_patient_names(tmp_path, charset, name):
    files = write(ramp_volume(), tmp_path)
    edit(files, SpecificCharacterSet=charset, PatientName=name)
    raw = open(files[0], "rb").read()
    assert name.encode("latin-1" if charset == "ISO_IR 100" else "utf-8") in raw
    (s,) = scan(tmp_path).series
    family, given = name.split("^")
    assert s.patient_name == f"{family}, {given}"


def test_empty_folder_and_non_dicom_folder(tmp_path):
    with pytest.raises(InputError, match="no DICOM image series found .the folder is empty") as e:
        scan(tmp_path)
    assert e.value.path == tmp_path
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="found only: not DICOM"):
        scan(tmp_path)


def test_missing_path():
    with pytest.raises(InputError, match="does not exist"):
        scan("/nonexistent/liverplan/folder")


def test_only_non_image_objects_are_listed_by_kind(tmp_path):
    for i, (sop, modality, _) in enumerate(NON_IMAGES):
        non_image(tmp_path / f"obj{i}", sop, modality)
    with pytest.raises(InputError) as e:
        scan(tmp_path)
    for _, _, kind in NON_IMAGES:
        assert kind in str(e.value)


def test_non_image_unreadable_and_truncated_files_beside_a_good_series(tmp_path):
    good = write(ramp_volume(size=(12, 10, 9)), tmp_path / "ct")
    for i, (sop, modality, _) in enumerate(NON_IMAGES):
        non_image(tmp_path / f"obj{i}", sop, modality)
    truncated = tmp_path / "ct" / "IMG0005"
    truncated.write_bytes(truncated.read_bytes()[:-100])
    (tmp_path / "broken").write_bytes(good[0].read_bytes()[:700])   # cut inside the header
    (tmp_path / "readme.txt").write_text("not an image")

    result = scan(tmp_path)
    (s,) = result.series
    assert s.n_images == len(good) - 1 and str(truncated) not in s.files
    kinds = {k.path.split("/")[-1]: k.kind for k in result.skipped}
    assert kinds["IMG0005"] == "truncated"
    assert kinds["broken"] == "unreadable"
    assert kinds["readme.txt"] == "not DICOM"
    assert sorted(kinds[f"obj{i}"] for i in range(4)) == sorted(k for _, _, k in NON_IMAGES)
    # the hole left by the truncated slice is reported with its position and size
    assert any("gap of 5.00 mm" in w and "between slices at -92.50 and -87.50 mm" in w
               for w in s.warnings)


def test_dicomdir_is_skipped_and_its_images_found(tmp_path):
    write(ramp_volume(), tmp_path / "IMAGES")
    ds = Dataset()
    ds.DirectoryRecordSequence = []
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    pydicom.dcmwrite(tmp_path / "DICOMDIR", ds, enforce_file_format=True)
    result = scan(tmp_path)
    assert result.series[0].n_images == 8
    assert [k.kind for k in result.skipped] == ["DICOMDIR"]
    assert load(tmp_path / "DICOMDIR").image.GetSize() == (12, 10, 8)


def test_two_series_in_one_folder_are_listed(tmp_path):
    write(ramp_volume(), tmp_path / "s1", series_description="arterial")
    write(ramp_volume(size=(12, 10, 5)), tmp_path / "s2", series_description="portal")
    result = scan(tmp_path)
    assert sorted(s.description for s in result.series) == ["arterial", "portal"]
    assert len({s.key for s in result.series}) == 2


def test_uid_mixing_matrix_sizes_is_split(tmp_path):
    uid = generate_uid()
    write(ramp_volume(), tmp_path / "a", series_uid=uid)
    write(ramp_volume(size=(6, 6, 4), origin=(0, 0, 200)), tmp_path / "b", series_uid=uid)
    result = scan(tmp_path)
    assert sorted(s.key for s in result.series) == [f"{uid}:part-1", f"{uid}:part-2"]
    assert sorted(s.n_images for s in result.series) == [4, 8]
    assert any("mixes 2 orientations or matrix sizes" in w for w in result.warnings)


@pytest.mark.parametrize("tag, label", [("EchoNumbers", "echo"),
                                        ("TemporalPositionIdentifier", "phase"),
                                        ("TriggerTime", "trigger"),
                                        ("AcquisitionNumber", "acq")])
def test_acquisitions_at_the_same_positions_are_split(tmp_path, tag, label):
    uid = generate_uid()
    for n in (1, 2):
        files = write(ramp_volume(), tmp_path / str(n), series_uid=uid, modality="MR")
        edit(files, **{tag: str(n)})
    result = scan(tmp_path)
    assert sorted(s.key for s in result.series) == [f"{uid}:{label}-1", f"{uid}:{label}-2"]
    assert all(s.n_images == 8 and not s.warnings for s in result.series)
    assert load(tmp_path, series=f"{uid}:{label}-2").image.GetSize() == (12, 10, 8)
    with pytest.raises(InputError, match="was split into 2 stacks; choose one by key"):
        load(tmp_path, series=uid)


def test_different_acquisition_numbers_without_overlap_stay_one_series(tmp_path):
    files = write(ramp_volume(), tmp_path)
    for i, f in enumerate(files):
        edit([f], AcquisitionNumber=i + 1)   # sequential scanning: one number per slice
    (s,) = scan(tmp_path).series
    assert s.n_images == 8 and s.warnings == ()


def test_copies_of_the_same_file_are_counted_once(tmp_path):
    files = write(ramp_volume(), tmp_path / "a")
    shutil.copy(files[3], tmp_path / "copy_of_slice_4")
    result = scan(tmp_path)
    assert result.series[0].n_images == 8
    assert any("second copy" in w for w in result.warnings)


def test_no_series_uid_is_grouped_with_a_warning(tmp_path):
    files = write(ramp_volume(), tmp_path)
    edit(files, SeriesInstanceUID="")
    result = scan(tmp_path)
    (s,) = result.series
    assert s.key.startswith("no-uid-") and s.n_images == 8
    assert any(s.key in w for w in result.warnings)


def test_implausible_patient_size_is_ignored_with_a_warning(tmp_path):
    files = write(ramp_volume(), tmp_path)
    edit(files, PatientSize="172", PatientWeight="0")
    (s,) = scan(tmp_path).series
    assert s.height_cm is None and s.weight_kg is None
    assert any("PatientSize 172" in w for w in s.warnings)


def test_cancel(tmp_path):
    write(ramp_volume(), tmp_path)
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        scan(tmp_path, cancel=stop)


def test_series_info_round_trips_through_a_dict(tmp_path):
    write(ramp_volume(), tmp_path)
    (s,) = scan(tmp_path).series
    assert type(s).from_dict(s.to_dict()) == s


@pytest.mark.realdata
def test_real_cases(shared_data):
    (s,) = scan(shared_data / "ircadb-01" / "PATIENT_DICOM").series
    assert (s.n_images, s.rows, s.columns) == (129, 512, 512)
    assert s.slice_spacing_mm == pytest.approx(1.6, abs=1e-4)
    assert s.files[0].endswith("image_0")
    result = scan(shared_data / "totalseg-example")
    (s,) = result.series
    assert s.n_images == 20 and s.weight_kg == 79 and s.phase_hint.startswith("contrast")
    assert {k.kind for k in result.skipped} == {"not DICOM"}


def test_unreadable_subfolder_is_listed(tmp_path):
    write(ramp_volume(), tmp_path / "good")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        result = scan(tmp_path)
    finally:
        locked.chmod(0o700)
    assert result.series[0].n_images == 8
    if os.geteuid() != 0:   # root reads any folder
        assert [(k.path, k.kind) for k in result.skipped] == [(str(locked), "unreadable")]
