"""Shared fixtures: the real cases in ../shared/data and the synthetic patient (built once)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
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


def _phantom(**kwargs):
    """Generate the synthetic patient once; reuse it across runs while the generator is unchanged."""
    from liverplan.io import phantom

    here = Path(phantom.__file__).parent
    source = b"".join((here / name).read_bytes() for name in ("phantom.py", "dicom_write.py"))
    key = hashlib.sha1(source + repr(sorted(kwargs.items())).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("LIVERPLAN_TEST_CACHE", Path.home() / ".cache" / "liverplan-tests"))
    root = cache / f"phantom-{key}"
    if not root.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".building-"))
        phantom.generate(tmp, **kwargs)
        try:
            os.replace(tmp, root)   # atomic: a half-built phantom is never reused
        except OSError:             # another test session finished the same phantom first
            shutil.rmtree(tmp)
    return phantom.PhantomCase.open(root)


@pytest.fixture(scope="session")
def synthetic_patient():
    """The synthetic patient (baseline and post-PVE follow-up) with exact ground truth."""
    return _phantom(seed=0)


@pytest.fixture(scope="session")
def other_synthetic_patient():
    """Another anatomy (seed 1: liver shape, vessel course, lesion places), baseline only."""
    return _phantom(seed=1, followup=False)
