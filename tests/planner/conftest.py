"""Fixtures shared by the planner tests: the analytic resection phantom and its context."""

import pytest

from liverplan.planner.flr import PlanningContext
from tests.planner import resection_phantom as ph


@pytest.fixture(scope="module")
def images():
    return ph.images()


@pytest.fixture(scope="module")
def ctx(images):
    return PlanningContext(*images)
