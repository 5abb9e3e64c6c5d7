"""Staged strategies: one-stage, PVE then one-stage, two-stage hepatectomy, ALPPS.

From a candidate plan (its lesions, its remnant and FLR) each strategy is checked for
applicability, given the expected FLR growth with a range of days until the FLR reaches its
threshold, and ranked. Every strategy carries the rule that decided it and its source; this is
decision support for the multidisciplinary team, not a decision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from liverplan import evidence as ev
from liverplan.planner.flr import PlanResult
from liverplan.planner.patient import Patient
from liverplan.planner.resection import WedgeResection


@dataclass(frozen=True)
class Strategy:
    key: str                          # one_stage | pve_one_stage | two_stage | alpps
    name: str
    rank: int                         # 1 = first choice; 0 = not applicable
    summary: str                      # why it is (not) applicable
    steps: tuple[str, ...]
    days_min: float | None            # predicted days until the FLR reaches its threshold
    days_max: float | None
    rule: str
    source: str
    risks: tuple[str, ...] = ()

    @property
    def applicable(self) -> bool:
        return self.rank > 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Strategy":
        return cls(**{**d, "steps": tuple(d["steps"]), "risks": tuple(d.get("risks", ()))})


def _days(deficit_ml: float, slow: ev.Evidence, fast: ev.Evidence) -> tuple[float, float]:
    return deficit_ml / fast.value, deficit_ml / slow.value


def _candidate(key, name, blockers, why, steps, days, rule, source, risks):
    """(blockers, Strategy) with the rank left to the ranking."""
    return blockers, Strategy(key, name, 0, why, tuple(steps), days[0], days[1], rule, source,
                              tuple(risks))


def _blockers(*pairs) -> list[str]:
    """The texts of the (condition, text) pairs whose condition holds."""
    return [text for condition, text in pairs if condition]


def rank_strategies(result: PlanResult, resections, patient: Patient) -> tuple[Strategy, ...]:
    """All four strategies, applicable ones first in order of preference."""
    thr = patient.sflr_min
    denominator = result.telv_ml if result.driving == "sFLR" else result.functional_volume_ml
    target_ml = thr.value / 100 * denominator
    deficit_ml = max(target_ml - result.flr_ml, 0.0)
    flr_ok = deficit_ml == 0
    wedges = [r for r in resections if isinstance(r, WedgeResection)]
    major = [r.label for r in resections if not isinstance(r, WedgeResection)]
    left = [les.lesion_id for les in result.lesions if les.status == "left in place"]
    cut = [les.lesion_id for les in result.lesions if les.status == "cut through"]
    n_nodules = len(result.lesions)
    close = tuple(f"Lesion {les.lesion_id}: margin {les.margin_mm:.1f} mm < "
                  f"{ev.R0_MARGIN_MM.value:g} mm (R1 risk). Source: {ev.R0_MARGIN_MM.source}"
                  for les in result.lesions if les.r0 is False)    # (None: no cut, no margin)
    plan_broken = cut or (result.remnant.checked and not result.remnant.passed)
    flr_text = (f"{result.driving} {result.driving_percent:.1f}% vs minimum {thr.value:g}% "
                f"({thr.note}); FLR {result.flr_ml:.0f} mL, target {target_ml:.0f} mL")
    rule_flr = f"{result.driving} >= {thr.value:g}% ({thr.note})"
    pve_days = _days(deficit_ml, ev.PVE_GROWTH_MIN_ML_PER_DAY, ev.PVE_GROWTH_MAX_ML_PER_DAY)
    alpps_days = _days(deficit_ml, ev.ALPPS_GROWTH_MIN_ML_PER_DAY, ev.ALPPS_GROWTH_MAX_ML_PER_DAY)
    pve_rule = (f"FLR growth {ev.PVE_GROWTH_MIN_ML_PER_DAY.value:g}-"
                f"{ev.PVE_GROWTH_MAX_ML_PER_DAY.value:g} mL/day after PVE; re-image and require "
                f"KGR >= {ev.KGR_LOW_RISK_PERCENT_PER_WEEK.value:g}%/week")
    pve_source = f"{ev.PVE_GROWTH_MIN_ML_PER_DAY.source}; {ev.KGR_LOW_RISK_PERCENT_PER_WEEK.source}"
    growth_must_be_fast = pve_days[1] > ev.PVE_WAIT_MAX_DAYS.value
    need_growth = f"needs {deficit_ml:.0f} mL more FLR"
    nodule_risk = ((f"{n_nodules} nodules (> {ev.TWO_STAGE_NODULES_HIGH_RISK.value:g}): worse "
                    f"survival after two-stage hepatectomy (HR about 4; 5-year OS 54.8% vs 11.1%). "
                    f"Source: {ev.TWO_STAGE_NODULES_HIGH_RISK.source}",)
                   if n_nodules > ev.TWO_STAGE_NODULES_HIGH_RISK.value else ())
    broken = ("the plan itself fails (" + ("cut through lesion " + ", ".join(map(str, cut))
              if cut else "remnant without two contiguous perfused and drained segments")
              + "): adjust the resection first")
    wedge_text = ", ".join(w.label for w in wedges)
    major_text = ", ".join(major) or "the planned resection"

    resection_text = f"Resection: {major_text}" + (f" with {wedge_text}" if wedges else "")
    remeasure = (f"Re-image after 3-6 weeks: FLR, DH and KGR (>= "
                 f"{ev.KGR_LOW_RISK_PERCENT_PER_WEEK.value:g}%/week)")
    left_text = ", ".join(map(str, left))
    clears_remnant = bool(wedges) or bool(left)
    dropout = (f"About {ev.TWO_STAGE_DROPOUT_PERCENT.value:g}% do not reach stage 2, mostly from "
               f"progression: re-stage before stage 2. "
               f"Source: {ev.TWO_STAGE_DROPOUT_PERCENT.source}")
    stage1 = wedge_text if wedges else f"clearance of lesions {left_text} (add wedges to the plan)"
    alpps_rule = (f"FLR growth {ev.ALPPS_GROWTH_MIN_ML_PER_DAY.value:g}-"
                  f"{ev.ALPPS_GROWTH_MAX_ML_PER_DAY.value:g} mL/day after ALPPS stage 1 (median "
                  f"hypertrophy {ev.ALPPS_MEDIAN_HYPERTROPHY_PERCENT.value:g}%); first choice only "
                  f"when PVE would need more than {ev.PVE_WAIT_MAX_DAYS.value:g} days")
    slow_pve = (f"; PVE would need longer than {ev.PVE_WAIT_MAX_DAYS.value:g} days"
                if growth_must_be_fast else "")
    candidates = [
        _candidate(
            "one_stage", "One-stage hepatectomy",
            _blockers((plan_broken, broken), (not flr_ok, f"FLR too small: {flr_text}"),
                      (left, f"lesions {left_text} left in place: add parenchyma-sparing wedges "
                             "for them to the plan")),
            f"all lesions removed and {flr_text}", (resection_text,), (0.0, 0.0), rule_flr,
            thr.source, close),
        _candidate(
            "pve_one_stage", "Portal vein embolization, then one-stage hepatectomy",
            _blockers((plan_broken, broken), (flr_ok, "FLR already sufficient"),
                      (left, f"lesions {left_text} left in place: the remnant must be cleared "
                             "(two-stage)")),
            f"{flr_text}; {need_growth}",
            ("Portal vein embolization of the side to be resected", remeasure, resection_text),
            pve_days, pve_rule, pve_source, close),
        _candidate(
            "two_stage", "Two-stage hepatectomy",
            _blockers((plan_broken, broken), (flr_ok, "FLR already sufficient"),
                      (not clears_remnant, "no lesion in the future remnant to clear first")),
            f"the future remnant holds disease; {flr_text}; {need_growth}",
            (f"Stage 1: {stage1} and portal vein embolization (or ligation) of the other side",
             "Re-image: FLR, KGR and progression", f"Stage 2: {major_text}"),
            pve_days, pve_rule, pve_source, (dropout,) + nodule_risk + close),
        _candidate(
            "alpps", "ALPPS (associating liver partition and portal vein ligation)",
            _blockers((plan_broken, broken), (flr_ok, "FLR already sufficient")),
            f"{flr_text}; {need_growth}{slow_pve}",
            ("Stage 1: parenchymal transection and portal vein ligation"
             + (f", {wedge_text}" if wedges else ""),
             f"Interstage {ev.ALPPS_INTERSTAGE_MIN_DAYS.value:g}-"
             f"{ev.ALPPS_INTERSTAGE_MAX_DAYS.value:g} days: re-image the FLR",
             f"Stage 2: complete {major_text}"),
            alpps_days, alpps_rule,
            f"{ev.ALPPS_GROWTH_MIN_ML_PER_DAY.source}; {ev.PVE_WAIT_MAX_DAYS.source}",
            nodule_risk + close),
    ]

    # Preference among the applicable: one stage; else the PVE route that suits the disease
    # (two-stage when the remnant must be cleared), ALPPS first only when growth must be fast.
    pve_first = ["two_stage", "pve_one_stage"] if clears_remnant else ["pve_one_stage", "two_stage"]
    order = ["one_stage"] + (["alpps"] + pve_first if growth_must_be_fast
                             else pve_first + ["alpps"])
    applicable = sorted((c for blockers, c in candidates if not blockers),
                        key=lambda c: order.index(c.key))
    out = [replace(c, rank=rank) for rank, c in enumerate(applicable, 1)]
    out += [replace(c, summary="Not applicable: " + "; ".join(blockers), days_min=None,
                    days_max=None) for blockers, c in candidates if blockers]
    return tuple(out)
