"""Plan files (*.liverplan.json): versioned JSON of a plan's inputs and results.

Inputs: the series the plan was made on (UIDs), patient parameters, resection definitions
(including cut planes and deformable surfaces), landmarks. Results: the evaluated plan, ranked
strategies, a follow-up and the expected ICG fluorescence when there are ones (both optional
keys: files without them load, and older readers ignore them, so the schema stays version 1). Written atomically; a damaged file, or one from
another schema version, is refused with a message naming the file.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from liverplan import __version__
from liverplan.errors import PlanningError
from liverplan.io.atomic import atomic_write
from liverplan.planner.flr import Plan
from liverplan.planner.followup import FollowUp
from liverplan.planner.icg import IcgResult
from liverplan.planner.staging import Strategy

SCHEMA_VERSION = 1
SUFFIX = ".liverplan.json"
FORMAT = "liverplan-plan"
_SERIES_KEYS = ("series_instance_uid", "study_instance_uid", "frame_of_reference_uid",
                "study_date", "description", "patient_id")


def series_inputs(info) -> dict:
    """What identifies the CT series a plan was made on (from a SeriesInfo; empty if none)."""
    return {k: getattr(info, k) for k in _SERIES_KEYS if getattr(info, k, None)} if info else {}


@dataclass(frozen=True)
class PlanFile:
    plan: Plan
    series: dict = field(default_factory=dict)
    landmarks: dict = field(default_factory=dict)          # name -> (x, y, z) LPS mm
    strategies: tuple[Strategy, ...] = ()
    followup: FollowUp | None = None
    icg: IcgResult | None = None
    software_version: str = __version__
    saved_at: str = ""                                     # ISO 8601 UTC, set on save

    def to_dict(self) -> dict:
        return {
            "format": FORMAT, "schema_version": SCHEMA_VERSION,
            "software_version": self.software_version, "saved_at": self.saved_at,
            "inputs": {"series": self.series, "patient": self.plan.patient.to_dict(),
                       "resections": [r.to_dict() for r in self.plan.resections],
                       "landmarks": {k: list(v) for k, v in self.landmarks.items()},
                       "name": self.plan.name, "notes": list(self.plan.notes)},
            "results": {"plan": self.plan.result.to_dict(),
                        "strategies": [s.to_dict() for s in self.strategies],
                        "followup": self.followup.to_dict() if self.followup else None,
                        "icg": self.icg.to_dict() if self.icg else None},
        }

    @classmethod
    def from_dict(cls, d: dict) -> "PlanFile":
        inputs, results = d["inputs"], d["results"]
        plan = Plan.from_dict({"resections": inputs["resections"], "patient": inputs["patient"],
                               "result": results["plan"], "name": inputs.get("name", ""),
                               "notes": inputs.get("notes", ())})
        return cls(plan, dict(inputs.get("series", {})),
                   {k: tuple(v) for k, v in inputs.get("landmarks", {}).items()},
                   tuple(Strategy.from_dict(s) for s in results.get("strategies", ())),
                   FollowUp.from_dict(results["followup"]) if results.get("followup") else None,
                   IcgResult.from_dict(results["icg"]) if results.get("icg") else None,
                   d.get("software_version", ""), d.get("saved_at", ""))


def plan_path(folder: str | Path, name: str = "plan") -> Path:
    return Path(folder) / f"{name}{SUFFIX}"


def save_plan(path: str | Path, planfile: PlanFile) -> PlanFile:
    """Write atomically; returns the PlanFile with its save time stamp."""
    stamped = replace(planfile, software_version=__version__,
                      saved_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    text = json.dumps(stamped.to_dict(), indent=1, allow_nan=False)
    with atomic_write(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return stamped


def load_plan(path: str | Path) -> PlanFile:
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanningError("plan file not found", path=path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlanningError(f"the plan file is damaged and cannot be read ({exc}); open an "
                            "autosaved or earlier copy, or plan again", path=path) from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise PlanningError("this is not a LiverPlan plan file", path=path)
    version = d.get("schema_version")
    if version != SCHEMA_VERSION:
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        raise PlanningError(
            f"the plan file has schema version {version}; this LiverPlan {__version__} reads "
            f"version {SCHEMA_VERSION}. " + ("It was saved by a newer LiverPlan: update LiverPlan."
                                             if newer else "Re-create the plan from its images."),
            path=path)
    try:
        return PlanFile.from_dict(d)
    except (KeyError, TypeError, ValueError, AttributeError, PlanningError) as exc:
        raise PlanningError(f"the plan file is incomplete or damaged ({exc}); open an earlier "
                            "copy or plan again", path=path) from None
