import datetime as dt
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

from liverplan.errors import PlanningError
from liverplan.geometry import image_from_array
from liverplan.planner.flr import PlanningContext
from liverplan.planner.followup import FollowUp, follow_up, study_date
from liverplan.planner.patient import Patient
from liverplan.planner.resection import PlaneCut, preset
from tests.planner import resection_phantom as ph


def _context(case, info=None):
    return PlanningContext(*(case.mask(n) for n in ("liver", "tumors", "segments", "vessels")),
                           info=info)


@pytest.fixture(scope="module")
def two_time_points(synthetic_patient):
    fu = synthetic_patient.followup
    info0 = SimpleNamespace(study_date=synthetic_patient.truth["study_date"])
    info1 = SimpleNamespace(study_date=fu.truth["study_date"])
    return synthetic_patient, _context(synthetic_patient, info0), _context(fu, info1)


def test_kgr_on_the_synthetic_patient_after_right_pve(two_time_points):
    base, ctx0, ctx1 = two_time_points
    truth = base.truth
    patient = Patient(truth["weight_kg"], truth["height_cm"])
    fu = follow_up(ctx0, ctx1, [preset("right_hemihepatectomy")], patient)
    weeks = base.followup.truth["weeks_after_pve"]
    assert fu.weeks_from == "study dates" and fu.weeks == pytest.approx(weeks, abs=1 / 7)

    # Independent arithmetic on the truth masks: FLR = segments 1-4 minus tumour, / TELV.
    def sflr(case):
        seg = sitk.GetArrayFromImage(case.mask("segments"))
        tum = sitk.GetArrayFromImage(case.mask("tumors"))
        liver = sitk.GetArrayFromImage(case.mask("liver")) > 0
        vml = np.prod(case.mask("liver").GetSpacing()) / 1000
        return 100 * np.count_nonzero(liver & np.isin(seg, (1, 2, 3, 4)) & (tum == 0)) * vml / patient.telv_ml

    before, after = sflr(base), sflr(base.followup)
    assert fu.before.sflr_percent == pytest.approx(before, abs=0.3)   # unlabelled liver voxels
    assert fu.after.sflr_percent == pytest.approx(after, abs=0.3)
    assert fu.dh_points == pytest.approx(fu.after.sflr_percent - fu.before.sflr_percent)
    assert fu.dh_points > 0
    assert fu.kgr_percent_per_week == pytest.approx(fu.dh_points / fu.weeks)
    assert fu.kgr_low_risk == (fu.kgr_percent_per_week >= 2.0)
    assert fu.reasons[0].rule == "KGR >= 2%/week" and "Shindoh" in fu.reasons[0].source
    # feasible: enough remnant, with inflow and outflow, and no tumour on the cut surface (on
    # this patient lesion 1 of segment 7 touches the caudate, which the remnant keeps)
    cut = any(les.status == "cut through" for les in fu.after.lesions)
    assert cut
    assert fu.stage2_feasible == (fu.after.sflr_percent >= 20 and fu.after.remnant.passed
                                  and not cut)
    assert FollowUp.from_dict(fu.to_dict()) == fu


def _ctx_with_date(date):
    return SimpleNamespace(info=SimpleNamespace(study_date=date))


def test_weeks_given_or_from_dates(two_time_points):
    _, ctx0, ctx1 = two_time_points
    fu = follow_up(ctx0, ctx1, [preset("right_hemihepatectomy"), PlaneCut((0, 0, 0), (1, 0, 0))],
                   Patient(78, 176), weeks=6.0)
    assert fu.weeks == 6.0 and fu.weeks_from == "given"
    assert any("study dates are" in w for w in fu.warnings)
    assert any("plane cut is not carried" in w for w in fu.warnings)


def test_study_date_formats():
    assert study_date(SimpleNamespace(study_date="20260302")) == dt.date(2026, 3, 2)
    assert study_date(SimpleNamespace(study_date="2026-03-30")) == dt.date(2026, 3, 30)
    assert study_date(SimpleNamespace(study_date="")) is None and study_date(None) is None


def test_missing_weeks_or_segments_are_refused():
    ctx = PlanningContext(*ph.images())
    with pytest.raises(PlanningError, match="weeks since PVE are unknown"):
        follow_up(ctx, ctx, [preset("right_hemihepatectomy")], Patient())
    with pytest.raises(PlanningError, match="segment"):
        follow_up(ctx, ctx, [PlaneCut((0, 0, 0), (1, 0, 0))], Patient(), weeks=3)


@pytest.mark.parametrize("kgr, low_risk", [(2.0, True), (1.99, False)])
def test_kgr_threshold_at_its_boundary(kgr, low_risk):
    """Analytic liver before; after, part of segment 5 has become segment 4 (the remnant grew).
    Choosing the weeks so that DH / weeks is exactly `kgr` tests the inclusive 2 %/week rule."""
    liver, tumors, seg, vessels = ph.images()
    grown = sitk.GetArrayFromImage(seg)
    grown[:, :, 24:28][grown[:, :, 24:28] == 5] = 4
    before = PlanningContext(liver, tumors, seg, vessels)
    after = PlanningContext(liver, tumors, image_from_array(grown, seg), vessels)
    patient = Patient(20, 100)
    dh = follow_up(before, after, [preset("right_hemihepatectomy")], patient, weeks=1).dh_points
    assert dh > 0
    fu = follow_up(before, after, [preset("right_hemihepatectomy")], patient, weeks=dh / kgr)
    assert fu.kgr_percent_per_week == pytest.approx(kgr)
    assert fu.kgr_low_risk == low_risk
    assert fu.reasons[0].status == ("pass" if low_risk else "warn")
