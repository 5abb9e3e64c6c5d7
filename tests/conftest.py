"""Shared fixtures: the real cases in ../shared/data and the synthetic patient (built once)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
OUTPUT = ROOT / "test-output"   # screenshots and files a person may want to look at


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (read-only real CT cases). Missing data is an error, not a skip."""
    assert SHARED_DATA.is_dir(), f"real test data not found at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT


@pytest.fixture(scope="session")
def synthetic_patient():
    """The synthetic patient (baseline and post-PVE follow-up) with exact ground truth."""
    from liverplan.io import phantom
    return phantom.cached(seed=0)


@pytest.fixture(scope="session")
def other_synthetic_patient():
    """Another anatomy (seed 1: liver shape, vessel course, lesion places), baseline only."""
    from liverplan.io import phantom
    return phantom.cached(seed=1, followup=False)


@pytest.fixture(scope="session")
def ircadb(shared_data):
    """3D-IRCADb-01: (CT, its label image on the CT's grid), loaded once."""
    import SimpleITK as sitk
    from liverplan.io import load
    ct = load(shared_data / "ircadb-01" / "PATIENT_DICOM").image
    labels = sitk.ReadImage(str(shared_data / "ircadb-01" / "labels.nii.gz"))
    labels.CopyInformation(ct)
    return ct, labels


@pytest.fixture(scope="session")
def ircadb_reference_vessels(ircadb):
    """The vessel stage on 3D-IRCADb-01's reference liver and lesions (labels 1-4, 2), run once
    for the tests that check it: (liver, lesions, VesselResult)."""
    import numpy as np
    import SimpleITK as sitk
    from liverplan.geometry import image_from_array
    from liverplan.volumetry.vessels import segment_vessels
    ct, labels = ircadb
    ref = sitk.GetArrayViewFromImage(labels)
    liver = image_from_array((ref > 0).astype(np.uint8), ct)
    tumors = image_from_array((ref == 2).astype(np.uint16), ct)
    return liver, tumors, segment_vessels(ct, liver, tumors=tumors)


@pytest.fixture(scope="session")
def ircadb_automatic_liver(ircadb):
    """The automatic liver of 3D-IRCADb-01 (a LiverResult), run once."""
    from liverplan.volumetry.liver import segment_liver
    return segment_liver(ircadb[0])
