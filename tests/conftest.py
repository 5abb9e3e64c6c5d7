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
