"""Follow-up after PVE (or stage 1): how much did the future remnant grow, and is stage 2 safe?

The remnant is defined by the same Couinaud segment set on both scans (each scan with its own
liver and segment masks), so no registration is needed. Degree of hypertrophy
DH = ratio after - ratio before (percentage points of the ratio that drives the verdict, sFLR
when weight and height are known) and kinetic growth rate KGR = DH / weeks since PVE.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from liverplan import evidence as ev
from liverplan.errors import PlanningError
from liverplan.planner.flr import PlanningContext, PlanResult, Reason, evaluate
from liverplan.planner.patient import Patient
from liverplan.planner.resection import SegmentResection


@dataclass(frozen=True)
class FollowUp:
    segments: tuple[int, ...]            # resected segments defining the remnant on both scans
    weeks: float
    weeks_from: str                      # "study dates" or "given"
    before: PlanResult
    after: PlanResult
    dh_points: float                     # degree of hypertrophy, percentage points
    kgr_percent_per_week: float
    kgr_low_risk: bool
    stage2_feasible: bool
    reasons: tuple[Reason, ...]
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["before"], d["after"] = self.before.to_dict(), self.after.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FollowUp":
        return cls(**{**d, "segments": tuple(d["segments"]),
                      "before": PlanResult.from_dict(d["before"]),
                      "after": PlanResult.from_dict(d["after"]),
                      "reasons": tuple(Reason(**r) for r in d["reasons"]),
                      "warnings": tuple(d.get("warnings", ()))})


def study_date(info) -> dt.date | None:
    """The StudyDate of a SeriesInfo (DICOM "YYYYMMDD" or ISO "YYYY-MM-DD"), if any."""
    value = getattr(info, "study_date", None)
    if not value:
        return None
    if isinstance(value, dt.date):
        return value
    text = str(value).strip().replace("-", "")
    try:
        return dt.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return None


def _weeks(ctx_before, ctx_after, weeks: float | None, warnings: list[str]) -> tuple[float, str]:
    d0, d1 = study_date(ctx_before.info), study_date(ctx_after.info)
    from_dates = (d1 - d0).days / 7 if d0 and d1 else None
    if weeks is not None:
        if from_dates is not None and abs(from_dates - weeks) > 0.5:
            warnings.append(f"The study dates are {from_dates:.1f} weeks apart but {weeks:g} weeks "
                            "since PVE were given; the given value is used.")
        return float(weeks), "given"
    if from_dates is None:
        raise PlanningError("the weeks since PVE are unknown (no study dates on both scans); "
                            "enter them")
    if from_dates <= 0:
        raise PlanningError(f"the follow-up scan ({d1}) is not later than the baseline ({d0}); "
                            "check which scan is which")
    return from_dates, "study dates"


def follow_up(ctx_before: PlanningContext, ctx_after: PlanningContext, resections,
              patient: Patient, *, weeks: float | None = None) -> FollowUp:
    """Recompute the FLR on the follow-up scan for the same segment set and report DH and KGR."""
    segments = tuple(sorted({s for r in resections if isinstance(r, SegmentResection)
                             for s in r.segments}))
    if not segments:
        raise PlanningError("the follow-up needs an anatomical (segment) resection to define the "
                            "same remnant on both scans")
    warnings = [f"{r.label} is not carried to the follow-up scan (it is not defined by segments)"
                for r in resections if not isinstance(r, SegmentResection)]
    n_weeks, weeks_from = _weeks(ctx_before, ctx_after, weeks, warnings)
    stage2 = [SegmentResection(segments, "stage 2")]
    before = evaluate(ctx_before, stage2, patient)
    after = evaluate(ctx_after, stage2, patient)
    dh = after.driving_percent - before.driving_percent
    kgr = dh / n_weeks
    kgr_min = ev.KGR_LOW_RISK_PERCENT_PER_WEEK
    low_risk = kgr >= kgr_min.value
    reasons = (
        Reason(f"KGR >= {kgr_min.value:g}%/week", "pass" if low_risk else "warn",
               f"DH {dh:+.1f} points ({after.driving} {before.driving_percent:.1f}% -> "
               f"{after.driving_percent:.1f}%) over {n_weeks:.1f} weeks ({weeks_from}): "
               f"KGR {kgr:.2f}%/week", kgr_min.source),
    ) + tuple(r for r in after.reasons if r.status != "pass")
    feasible = not any(r.status == "fail" for r in after.reasons)
    return FollowUp(segments, n_weeks, weeks_from, before, after, dh, kgr, low_risk, feasible,
                    reasons, tuple(warnings))
