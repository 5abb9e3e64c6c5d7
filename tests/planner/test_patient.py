import math

import pytest

from liverplan import evidence as ev
from liverplan.errors import InputError
from liverplan.planner.patient import Patient, bsa_dubois_m2, bsa_mosteller_m2


def test_bsa_formulas_analytic():
    assert bsa_mosteller_m2(81, 180) == pytest.approx(2.01246, abs=1e-5)   # sqrt(180*81/3600)
    assert bsa_dubois_m2(70, 175) == pytest.approx(0.007184 * 70 ** 0.425 * 175 ** 0.725)
    assert Patient(81, 180, bsa_formula="dubois").bsa_m2 == pytest.approx(bsa_dubois_m2(81, 180))


def test_telv_vauthey_and_urata():
    p = Patient(81, 180)
    bsa = math.sqrt(180 * 81 / 3600)
    assert p.telv_ml == pytest.approx(-794.41 + 1267.28 * bsa)
    assert Patient(81, 180, telv_formula="urata").telv_ml == pytest.approx(706.2 * bsa + 2.4)
    assert "Vauthey" in p.telv_source
    assert Patient(81).telv_ml is None and Patient(height_cm=180).bsa_m2 is None


@pytest.mark.parametrize("quality, percent", [("normal", 20), ("chemo", 30), ("cirrhosis", 40)])
def test_quality_thresholds(quality, percent):
    assert Patient(quality=quality).sflr_min.value == percent
    assert "consensus" in Patient(quality=quality).sflr_min.source


def test_evidence_constants_for_ratios():
    assert ev.FLR_BW_MIN_PERCENT.value == 0.5
    assert ev.KGR_LOW_RISK_PERCENT_PER_WEEK.value == 2.0


def test_from_series_prefers_given_values():
    class Info:
        weight_kg, height_cm, patient_sex = 80.0, 170.0, "F"
    p = Patient.from_series(Info(), weight_kg=75.0, height_cm=None)
    assert (p.weight_kg, p.height_cm, p.sex) == (75.0, 170.0, "F")


def test_rejects_implausible_and_unknown_values():
    with pytest.raises(InputError, match="kg"):
        Patient(weight_kg=180_000)
    with pytest.raises(InputError, match="cm"):
        Patient(height_cm=1.8)
    with pytest.raises(InputError, match="quality"):
        Patient(quality="fatty")


def test_round_trip():
    p = Patient(72.5, 168, "M", "chemo", "dubois", "urata")
    assert Patient.from_dict(p.to_dict()) == p
