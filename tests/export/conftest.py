"""Export fixtures: a small CT series with known masks, and a real Orthanc on loopback."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from liverplan.case import LIVER, SEGMENTS, TUMORS, VESSELS
from liverplan.geometry import image_from_array, index_to_lps
from liverplan.io.dicom_write import write_series

ROOT = Path(__file__).resolve().parents[2]
ORTHANC = Path("/usr/sbin/Orthanc")
ORTHANC_AET = "ORTHANCTEST"
OUR_AET = "LIVERPLAN"


@dataclass
class SmallCase:
    dicom_dir: Path
    files: list[Path]
    image: sitk.Image
    labels: dict[str, sitk.Image]


def _ball(ref, centre_mm, radius_mm):
    size = tuple(reversed(ref.GetSize()))
    pts = index_to_lps(ref, np.indices(size).reshape(3, -1).T)
    return (np.linalg.norm(pts - centre_mm, axis=1) <= radius_mm).reshape(size)


@pytest.fixture(scope="session")
def small_case(tmp_path_factory) -> SmallCase:
    """A 48x40x20 CT with a liver ball cut into 8 'segments', two lesions and two vessels.

    Oblique in-plane direction and anisotropic spacing, so any axis or orientation mix-up shows.
    """
    ref = sitk.Image([48, 40, 20], sitk.sitkInt16)
    ref.SetSpacing((2.0, 2.5, 4.0))
    ref.SetOrigin((-40.0, -30.0, -20.0))
    c, s = np.cos(0.2), np.sin(0.2)
    ref.SetDirection((c, -s, 0, s, c, 0, 0, 0, 1))
    centre = np.asarray(ref.TransformContinuousIndexToPhysicalPoint((24, 20, 10)))
    liver = _ball(ref, centre, 36.0)
    tumors = np.zeros(liver.shape, np.uint16)
    tumors[_ball(ref, centre + [12, 0, 8], 7.0)] = 1
    tumors[_ball(ref, centre + [-14, 6, -10], 5.0)] = 2
    pts = index_to_lps(ref, np.indices(liver.shape).reshape(3, -1).T).reshape(*liver.shape, 3)
    d = pts - centre
    vessels = np.zeros(liver.shape, np.uint8)
    vessels[(np.hypot(d[..., 0], d[..., 1] + 10) < 4) & liver] = 1
    vessels[(np.hypot(d[..., 0] - 15, d[..., 2]) < 3) & liver] = 2
    octant = 1 + (d[..., 0] > 0) + 2 * (d[..., 1] > 0) + 4 * (d[..., 2] > 0)
    segments = np.where(liver, octant, 0).astype(np.uint8)
    hu = np.where(liver, 60, -100).astype(np.int16)
    hu[tumors > 0] = 20
    image = image_from_array(hu, ref)
    dicom_dir = tmp_path_factory.mktemp("small_ct")
    files = write_series(image, dicom_dir, patient_name="Doe^Jane", patient_id="PAT-0042",
                         patient_sex="F", weight_kg=70, height_cm=168, study_date="20260105",
                         series_description="CT portal venous")
    labels = {LIVER: image_from_array(liver.astype(np.uint8), ref),
              TUMORS: image_from_array(tumors, ref),
              VESSELS: image_from_array(vessels, ref),
              SEGMENTS: image_from_array(segments, ref)}
    return SmallCase(dicom_dir, files, image, labels)


def dciodvfy_errors(path: Path) -> list[str]:
    """The 'Error' lines dciodvfy (dicom3tools) reports for a DICOM file."""
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Orthanc:
    aet: str
    port: int
    http: str

    @property
    def target(self) -> str:
        return f"{self.aet}@127.0.0.1:{self.port}"

    def rest(self, path: str):
        with urllib.request.urlopen(self.http + path, timeout=5) as r:
            return json.loads(r.read())


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    """A real Orthanc on loopback, configured here, stopped at the end of the session."""
    assert ORTHANC.exists(), "Orthanc is not installed (Debian package 'orthanc')"
    root = tmp_path_factory.mktemp("orthanc")
    dicom_port, http_port = _free_port(), _free_port()
    config = {"Name": "LiverPlanTest", "StorageDirectory": str(root / "db"),
              "IndexDirectory": str(root / "db"), "DicomAet": ORTHANC_AET,
              "DicomPort": dicom_port, "HttpPort": http_port, "RemoteAccessAllowed": False,
              "AuthenticationEnabled": False, "DicomCheckCalledAet": True, "Plugins": [],
              "DicomModalities": {}}
    (root / "orthanc.json").write_text(json.dumps(config))
    log = open(root / "orthanc.log", "w")
    proc = subprocess.Popen([str(ORTHANC), str(root / "orthanc.json")], stdout=log,
                            stderr=subprocess.STDOUT)
    server = Orthanc(ORTHANC_AET, dicom_port, f"http://127.0.0.1:{http_port}")
    try:
        deadline = time.monotonic() + 30
        while True:   # readiness: poll the REST API, bounded
            assert proc.poll() is None, (root / "orthanc.log").read_text()
            try:
                server.rest("/system")
                break
            except OSError:
                assert time.monotonic() < deadline, "Orthanc did not start within 30 s"
                time.sleep(0.05)
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def small_loaded_case(small_case):
    """The small case as the app holds it: loaded through liverplan.io, with its masks."""
    from liverplan.case import Case
    from liverplan.io import load

    volume = load(small_case.dicom_dir)
    case = Case(image=volume.image, info=volume.info)
    for name, mask in small_case.labels.items():
        case.set_label(name, mask)
    case.segments_method = "landmark planes"      # how its segments were made, as the app records
    return case


@pytest.fixture(scope="session")
def small_plan(small_loaded_case):
    """A real plan from the planner: remove the four 'segments' on the patient's left (+x)."""
    from liverplan.planner.flr import Plan, PlanningContext, evaluate
    from liverplan.planner.patient import Patient
    from liverplan.planner.resection import SegmentResection

    resections = (SegmentResection((2, 4, 6, 8), "left half"),)
    patient = Patient(weight_kg=70, height_cm=168, sex="F")
    result = evaluate(PlanningContext.from_case(small_loaded_case), resections, patient)
    return Plan(resections, patient, result, name="Left half")
