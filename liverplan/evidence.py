"""Every clinical threshold and rate the software uses, with its source beside it.

Code never writes a clinical number inline: it imports the named constant here, and the UI and
the report show `constant.source` with the rule that fired. Add new constants in the section of
the capability that needs them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Evidence:
    value: float
    unit: str
    source: str
    note: str = ""

    def __float__(self) -> float:
        return float(self.value)


# --- Resection margin -------------------------------------------------------------------------
R0_MARGIN_MM = Evidence(
    1.0, "mm",
    "MIMIC trial, Achterberg et al., JAMA Netw Open 2024;7:e246548 (R1 = tumour-positive margin "
    "< 1 mm)")

# --- Future liver remnant ---------------------------------------------------------------------
_FLR_CONSENSUS = ("AHPBA/SSO/SSAT consensus on resectability of colorectal liver metastases, "
                  "Charnsangavej et al., Ann Surg Oncol 2006;13:1261-8; Abdalla et al., "
                  "same issue")
SFLR_MIN_NORMAL_PERCENT = Evidence(20.0, "%", _FLR_CONSENSUS, "normal liver")
SFLR_MIN_CHEMO_PERCENT = Evidence(30.0, "%", _FLR_CONSENSUS,
                                  "extensive chemotherapy / chemotherapy-associated liver injury")
SFLR_MIN_CIRRHOSIS_PERCENT = Evidence(40.0, "%", _FLR_CONSENSUS, "fibrosis or cirrhosis")
