import dataclasses

import pytest

from liverplan import evidence as ev
from liverplan.planner.flr import PlanningContext, evaluate, PlanResult
from liverplan.planner.margins import LesionOutcome
from liverplan.planner.patient import Patient
from liverplan.planner.remnant import RemnantCheck
from liverplan.planner.resection import SegmentResection, WedgeResection, preset
from liverplan.planner.staging import Strategy, rank_strategies
from tests.planner import resection_phantom as ph

PATIENT = Patient(70, 170)          # TELV = -794.41 + 1267.28 * sqrt(170 * 70 / 3600)


def _lesion(i, status="resected"):
    return LesionOutcome(i, 2.0, 15.0, (0.0, 0.0, 0.0), 6, status,
                         None if status == "left in place" else 10.0,
                         None if status == "left in place" else True)


def _result(sflr_percent, lesions=(_lesion(1),), remnant_ok=True):
    telv = PATIENT.telv_ml
    flr = sflr_percent / 100 * telv
    return PlanResult(
        liver_volume_ml=1600, tumor_volume_ml=20, functional_volume_ml=1580,
        resected_volume_ml=1600 - flr, remnant_volume_ml=flr, flr_ml=flr,
        flr_percent=100 * flr / 1580, telv_ml=telv, sflr_percent=sflr_percent,
        flr_bw_percent=flr / 700, sflr_min_percent=20.0, driving="sFLR", lesions=tuple(lesions),
        crossings=(), remnant=RemnantCheck(True, remnant_ok, (), (2, 3) if remnant_ok else (), ""),
        verdict="", reasons=())


def _ranked(strategies):
    return [s.key for s in strategies if s.applicable]


def test_enough_flr_ranks_one_stage_first_and_alone():
    s = rank_strategies(_result(30.0), [preset("right_hemihepatectomy")], PATIENT)
    assert _ranked(s) == ["one_stage"]
    assert s[0].rank == 1 and "consensus" in s[0].source and s[0].rule.startswith("sFLR >= 20%")
    assert all("FLR already sufficient" in x.summary for x in s[1:])


def test_small_flr_ranks_pve_first_with_predicted_days():
    r = _result(17.0)
    s = rank_strategies(r, [preset("right_hemihepatectomy")], PATIENT)
    assert _ranked(s) == ["pve_one_stage", "alpps"]
    pve = s[0]
    deficit = 0.20 * PATIENT.telv_ml - r.flr_ml
    assert pve.days_min == pytest.approx(deficit / ev.PVE_GROWTH_MAX_ML_PER_DAY.value)
    assert pve.days_max == pytest.approx(deficit / ev.PVE_GROWTH_MIN_ML_PER_DAY.value)
    assert pve.days_max <= ev.PVE_WAIT_MAX_DAYS.value
    alpps = s[1]
    assert alpps.days_min == pytest.approx(deficit / 35) and alpps.days_max == pytest.approx(deficit / 22)
    assert "3-5 mL/day" in pve.rule and "22-35 mL/day" in alpps.rule


def test_very_small_flr_needs_fast_growth_and_ranks_alpps_first():
    s = rank_strategies(_result(8.0), [preset("extended_right_hepatectomy")], PATIENT)
    assert _ranked(s) == ["alpps", "pve_one_stage"]
    assert s[1].days_max > ev.PVE_WAIT_MAX_DAYS.value


def test_disease_in_the_remnant_ranks_two_stage_first():
    resections = [preset("right_hemihepatectomy"), WedgeResection(2, 10.0)]
    s = rank_strategies(_result(17.0, (_lesion(1), _lesion(2))), resections, PATIENT)
    assert _ranked(s) == ["two_stage", "pve_one_stage", "alpps"]
    two = s[0]
    assert "wedge lesion 2" in two.steps[0] and "right hemihepatectomy" in two.steps[2]
    assert any("re-stage before stage 2" in r for r in two.risks)
    assert not any("HR about 4" in r for r in two.risks)


def test_lesion_left_in_the_remnant_without_wedge_only_allows_two_stage_or_alpps():
    lesions = (_lesion(1), _lesion(2, "left in place"))
    s = rank_strategies(_result(17.0, lesions), [preset("right_hemihepatectomy")], PATIENT)
    assert _ranked(s) == ["two_stage", "alpps"]
    assert "add wedges" in s[0].steps[0]


@pytest.mark.parametrize("n, flagged", [(10, False), (11, True)])
def test_more_than_ten_nodules_flagged(n, flagged):
    lesions = tuple(_lesion(i) for i in range(1, n + 1))
    s = rank_strategies(_result(17.0, lesions), [preset("right_hemihepatectomy"),
                                                 WedgeResection(2, 10.0)], PATIENT)
    two = next(x for x in s if x.key == "two_stage")
    assert any("HR about 4" in r for r in two.risks) == flagged


def test_close_margin_is_a_risk_of_every_strategy():
    close = dataclasses.replace(_lesion(1), margin_mm=0.5, r0=False)
    s = rank_strategies(_result(30.0, (close,)), [preset("right_hemihepatectomy")], PATIENT)
    assert s[0].key == "one_stage" and any("R1 risk" in r for r in s[0].risks)


def test_a_failing_plan_makes_every_strategy_inapplicable():
    s = rank_strategies(_result(30.0, remnant_ok=False), [preset("right_hemihepatectomy")], PATIENT)
    assert _ranked(s) == [] and all("adjust the resection" in x.summary for x in s)


def test_on_the_analytic_phantom(images=None):
    ctx = PlanningContext(*ph.images())
    patient = Patient(20, 100)                   # TELV 150 mL against a 134 mL phantom liver
    resections = [preset("extended_right_hepatectomy"), WedgeResection(2, 5.0)]
    result = evaluate(ctx, resections, patient)
    s = rank_strategies(result, resections, patient)
    assert result.sflr_percent > 20 and _ranked(s) == ["one_stage"]


def test_resecting_the_whole_liver_is_not_feasible_and_ranks_no_strategy():
    """No remnant, so no cut surface and no margins: `liverplan plan --segments 1,...,8`
    crashed while listing close margins."""
    ctx = PlanningContext(*ph.images())
    everything = [SegmentResection(tuple(range(1, 9)))]
    result = evaluate(ctx, everything, PATIENT)
    assert result.flr_ml == 0 and result.verdict == "not feasible"
    assert all(les.margin_mm is None for les in result.lesions if les.status == "resected")
    s = rank_strategies(result, everything, PATIENT)
    assert _ranked(s) == [] and all("adjust the resection" in x.summary for x in s)


def test_round_trip():
    s = rank_strategies(_result(17.0), [preset("right_hemihepatectomy")], PATIENT)
    assert tuple(Strategy.from_dict(x.to_dict()) for x in s) == s
