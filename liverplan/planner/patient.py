"""The patient parameters the FLR thresholds depend on: size (BSA, TELV) and liver quality."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from liverplan import evidence as ev
from liverplan.errors import InputError

# Liver quality -> minimum standardized FLR (AHPBA/SSO/SSAT consensus).
QUALITY_SFLR_MIN = {
    "normal": ev.SFLR_MIN_NORMAL_PERCENT,
    "chemo": ev.SFLR_MIN_CHEMO_PERCENT,
    "cirrhosis": ev.SFLR_MIN_CIRRHOSIS_PERCENT,
}


def bsa_mosteller_m2(weight_kg: float, height_cm: float) -> float:
    """Mosteller, N Engl J Med 1987;317:1098: sqrt(height x weight / 3600)."""
    return math.sqrt(height_cm * weight_kg / 3600.0)


def bsa_dubois_m2(weight_kg: float, height_cm: float) -> float:
    """DuBois & DuBois, Arch Intern Med 1916;17:863: 0.007184 x W^0.425 x H^0.725."""
    return 0.007184 * weight_kg ** 0.425 * height_cm ** 0.725


BSA_FORMULAS = {"mosteller": bsa_mosteller_m2, "dubois": bsa_dubois_m2}
TELV_FORMULAS = {
    "vauthey": (ev.TELV_VAUTHEY_INTERCEPT_ML, ev.TELV_VAUTHEY_SLOPE_ML_PER_M2),
    "urata": (ev.TELV_URATA_INTERCEPT_ML, ev.TELV_URATA_SLOPE_ML_PER_M2),
}
# Plausibility limits for typed-in or DICOM values (catch unit mix-ups such as pounds or metres).
_WEIGHT_RANGE_KG = (20.0, 300.0)
_HEIGHT_RANGE_CM = (100.0, 230.0)


@dataclass(frozen=True)
class Patient:
    weight_kg: float | None = None
    height_cm: float | None = None
    sex: str | None = None                 # "M" / "F" / "O" as in DICOM PatientSex
    quality: str = "normal"                # normal | chemo | cirrhosis
    bsa_formula: str = "mosteller"
    telv_formula: str = "vauthey"

    def __post_init__(self):
        if self.quality not in QUALITY_SFLR_MIN:
            raise InputError(f"liver quality {self.quality!r} is not one of "
                             f"{', '.join(QUALITY_SFLR_MIN)}")
        if self.bsa_formula not in BSA_FORMULAS:
            raise InputError(f"BSA formula {self.bsa_formula!r} is not one of "
                             f"{', '.join(BSA_FORMULAS)}")
        if self.telv_formula not in TELV_FORMULAS:
            raise InputError(f"TELV formula {self.telv_formula!r} is not one of "
                             f"{', '.join(TELV_FORMULAS)}")
        for name, value, (lo, hi), unit in (("weight", self.weight_kg, _WEIGHT_RANGE_KG, "kg"),
                                            ("height", self.height_cm, _HEIGHT_RANGE_CM, "cm")):
            if value is not None and not lo <= value <= hi:
                raise InputError(f"{name} {value:g} {unit} is outside {lo:g}-{hi:g} {unit}; "
                                 f"enter the {name} in {unit}")

    @classmethod
    def from_series(cls, info, **given) -> "Patient":
        """Weight, height and sex from the DICOM tags (a SeriesInfo); values in `given` that are
        not None take precedence (the user typed them)."""
        tags = {"weight_kg": getattr(info, "weight_kg", None),
                "height_cm": getattr(info, "height_cm", None),
                "sex": getattr(info, "patient_sex", None) or None}
        tags.update({k: v for k, v in given.items() if v is not None})
        return cls(**tags)

    @property
    def has_size(self) -> bool:
        return self.weight_kg is not None and self.height_cm is not None

    @property
    def bsa_m2(self) -> float | None:
        if not self.has_size:
            return None
        return BSA_FORMULAS[self.bsa_formula](self.weight_kg, self.height_cm)

    @property
    def telv_ml(self) -> float | None:
        """Total estimated liver volume from the BSA (the sFLR denominator)."""
        if self.bsa_m2 is None:
            return None
        intercept, slope = TELV_FORMULAS[self.telv_formula]
        return float(intercept) + float(slope) * self.bsa_m2

    @property
    def telv_source(self) -> str:
        return TELV_FORMULAS[self.telv_formula][1].source

    @property
    def sflr_min(self) -> ev.Evidence:
        """Minimum standardized FLR (%) for this liver quality."""
        return QUALITY_SFLR_MIN[self.quality]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Patient":
        return cls(**{k: d.get(k) for k in ("weight_kg", "height_cm", "sex")},
                   quality=d.get("quality", "normal"),
                   bsa_formula=d.get("bsa_formula", "mosteller"),
                   telv_formula=d.get("telv_formula", "vauthey"))
