"""The PDF report from plain result dicts (the plan-file form): content a surgeon relies on."""

import subprocess

import numpy as np
import pytest

from liverplan.errors import ExportError
from liverplan.io.export_pdf import DECISION_SUPPORT, ReportInput, write_report
from liverplan.io.report_figures import Figure


def pdf_pages(path):
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout
    return text.split("\f")[:-1]


def _result(**overrides):
    reason = {"rule": "sFLR >= 30% (chemotherapy)", "status": "fail",
              "detail": "sFLR (FLR / TELV) = 24.0% (FLR 380 mL)", "source": "AHPBA consensus"}
    lesion = {"lesion_id": 2, "volume_ml": 4.2, "diameter_mm": 20.0,
              "centroid_lps_mm": [-60.0, 10.0, 30.0], "segment": 7, "status": "resected",
              "margin_mm": 0.6, "r0": False}
    result = {"liver_volume_ml": 1600.0, "tumor_volume_ml": 4.2, "functional_volume_ml": 1595.8,
              "resected_volume_ml": 1220.0, "remnant_volume_ml": 380.0, "flr_ml": 380.0,
              "flr_percent": 23.8, "telv_ml": 1583.0, "sflr_percent": 24.0,
              "flr_bw_percent": 0.48, "sflr_min_percent": 30.0, "driving": "sFLR",
              "lesions": [lesion], "crossings": [], "remnant": {"detail": "segments 2, 3, 4"},
              "verdict": "not feasible", "reasons": [reason], "warnings": ["Check segment 4b."]}
    result.update(overrides)
    return result


def _strategy(key, rank, days=None):
    return {"key": key, "name": key.replace("_", " ").title(), "rank": rank,
            "summary": f"summary of {key}", "steps": ["Step A"], "days_min": days and days[0],
            "days_max": days and days[1], "rule": f"rule of {key}", "source": "a source",
            "risks": []}


def test_report_shows_verdict_thresholds_lesions_and_strategies(tmp_path):
    content = ReportInput(
        identification=[("Patient", "Doe, Jane"), ("Patient ID", "PAT-0042")],
        plan_name="Extended right hepatectomy", result=_result(),
        patient={"quality": "chemo"}, volumes_ml=[("Liver", 1600.0), ("Segment 7", 240.0)],
        segments_method="landmark planes",
        strategies=[_strategy("alpps", 2), _strategy("one_stage", 0),
                    _strategy("pve_one_stage", 1, (24, 40))],
        surface={"lesions": [{"lesion_id": 2, "depth_mm": 3.5, "visible": True}]},
        figures=[Figure("Anterior view", np.full((60, 80, 3), 200, np.uint8))])
    pages = pdf_pages(write_report(content, tmp_path / "r.pdf"))
    text = "\n".join(pages)
    assert "Verdict: NOT FEASIBLE" in text and "sFLR 24.0% (minimum 30%)" in text
    assert "1 rule(s) failed" in text and "FAIL" in text
    assert ">= 30% (chemo liver)" in text and ">= 0.5%" in text and "0.48%" in text
    assert "0.6 (R1 risk)" in text and "expected visible" in text and "3.5" in text
    assert "15.0%" in text                       # segment 7: 240 of 1600 mL
    assert "Couinaud segments: landmark planes." in text
    ranked = [text.index(f"summary of {k}") for k in ("pve_one_stage", "alpps", "one_stage")]
    assert ranked == sorted(ranked)              # first choice first, not applicable last
    assert "threshold in 24-40" in text
    assert "Check segment 4b." in text
    assert DECISION_SUPPORT[:40] in " ".join(pages[0].split())
    for page in pages:                           # every page says what it is and whose it is
        assert "decision support, not a diagnosis - patient PAT-0042" in page


def test_followup_after_pve_is_reported(tmp_path):
    followup = {"segments": [5, 6, 7, 8], "weeks": 4.0, "weeks_from": "study dates",
                "before": _result(), "after": _result(sflr_percent=33.0, flr_ml=520.0),
                "dh_points": 9.0, "kgr_percent_per_week": 2.25, "kgr_low_risk": True,
                "reasons": [{"rule": "KGR >= 2%/week", "status": "pass", "detail": "2.25%/week",
                             "source": "Shindoh 2013"}], "warnings": []}
    content = ReportInput(identification=[("Patient ID", "X")], result=_result(), followup=followup)
    text = "\n".join(pdf_pages(write_report(content, tmp_path / "r.pdf")))
    assert "Follow-up after portal vein embolization" in text
    assert "2.25" in text and ">= 2%/week: low risk" in text and "9.0" in text


def test_incomplete_results_are_refused_without_leaving_a_file(tmp_path):
    broken = _result()
    del broken["flr_ml"]
    with pytest.raises(ExportError, match="incomplete"):
        write_report(ReportInput(identification=[], result=broken), tmp_path / "r.pdf")
    assert list(tmp_path.iterdir()) == []
