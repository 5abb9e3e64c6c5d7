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

# --- Resection planning: patient, FLR, growth and staging (liverplan.planner, issue 5) --------
TELV_VAUTHEY_INTERCEPT_ML = Evidence(
    -794.41, "mL", "Vauthey et al., Surgery 2000;127:512-9 (TELV = -794.41 + 1267.28 x BSA)")
TELV_VAUTHEY_SLOPE_ML_PER_M2 = Evidence(1267.28, "mL/m2", TELV_VAUTHEY_INTERCEPT_ML.source)
TELV_URATA_SLOPE_ML_PER_M2 = Evidence(
    706.2, "mL/m2", "Urata et al., Hepatology 1995;21:1317-21 (standard liver volume = "
    "706.2 x BSA + 2.4)")
TELV_URATA_INTERCEPT_ML = Evidence(2.4, "mL", TELV_URATA_SLOPE_ML_PER_M2.source)
FLR_BW_MIN_PERCENT = Evidence(
    0.5, "% of body weight (mL per 100 g)",
    "Truant et al., J Am Coll Surg 2007;204:22-33 (remnant liver volume to body weight "
    "ratio >= 0.5%)")
KGR_LOW_RISK_PERCENT_PER_WEEK = Evidence(
    2.0, "%/week",
    "Shindoh et al., J Am Coll Surg 2013;216:201-9 (kinetic growth rate after PVE >= 2%/week: "
    "low risk of post-hepatectomy liver failure)")
_GROWTH_SUMMARY = ("LiverPlan issue 5 evidence summary (PVE/TSH and ALPPS series, e.g. "
                   "Schnitzbauer et al., Ann Surg 2012;255:405-14); check the primary paper "
                   "before quoting")
PVE_GROWTH_MIN_ML_PER_DAY = Evidence(3.0, "mL/day", _GROWTH_SUMMARY,
                                     "FLR growth after PVE / two-stage hepatectomy, low end")
PVE_GROWTH_MAX_ML_PER_DAY = Evidence(5.0, "mL/day", _GROWTH_SUMMARY,
                                     "FLR growth after PVE / two-stage hepatectomy, high end")
ALPPS_GROWTH_MIN_ML_PER_DAY = Evidence(22.0, "mL/day", _GROWTH_SUMMARY,
                                       "FLR growth after ALPPS stage 1, low end")
ALPPS_GROWTH_MAX_ML_PER_DAY = Evidence(35.0, "mL/day", _GROWTH_SUMMARY,
                                       "FLR growth after ALPPS stage 1, high end")
ALPPS_MEDIAN_HYPERTROPHY_PERCENT = Evidence(160.0, "%", _GROWTH_SUMMARY,
                                            "median FLR hypertrophy after ALPPS stage 1")
ALPPS_INTERSTAGE_MIN_DAYS = Evidence(7.0, "days", _GROWTH_SUMMARY, "ALPPS interstage, shortest")
ALPPS_INTERSTAGE_MAX_DAYS = Evidence(14.0, "days", _GROWTH_SUMMARY, "ALPPS interstage, longest")
PVE_WAIT_MAX_DAYS = Evidence(
    42.0, "days",
    "LiverPlan convention (no single published cut-off): the FLR is usually re-imaged 3-6 weeks "
    "after PVE (as in Shindoh et al., J Am Coll Surg 2013;216:201-9); when PVE would need longer "
    "to reach the threshold, growth must be faster and ALPPS is ranked first. Set locally.")
TWO_STAGE_NODULES_HIGH_RISK = Evidence(
    10.0, "nodules",
    "Japanese nationwide cohort of two-stage hepatectomy (53 patients): > 10 liver nodules "
    "predicted worse survival, HR about 4; 5-year OS 54.8% vs 11.1% (as summarised in "
    "LiverPlan issue 5)")
TWO_STAGE_DROPOUT_PERCENT = Evidence(
    33.0, "%",
    "About one third of patients do not reach stage 2 of a two-stage hepatectomy, mostly from "
    "disease progression: 25-35% in the literature and 38.1% in their series (Vigano et al., "
    "Eur J Surg Oncol 2016;42:1385-93); 18% in Passot et al., J Am Coll Surg 2016;223:99-108 "
    "(109 patients) and 22% in Tsai et al., HPB 2010;12:262-9 (45 patients)")
REMNANT_SEGMENT_MIN_FRACTION = Evidence(
    0.5, "fraction of the segment",
    "LiverPlan convention (no published threshold): a Couinaud segment counts as part of the "
    "remnant when at least half of its parenchyma is kept")

# --- Image input (liverplan.io) ---------------------------------------------------------------
MAX_INTERPOLATED_GAP_MM = Evidence(
    10.0, "mm",
    "LiverPlan convention (no published cut-off): CT liver volumetry is done on reconstructions "
    "with slice intervals of up to 5-10 mm; a hole in a series is filled by linear interpolation "
    "only up to this size, larger holes refuse the series")
PLANNING_MIN_EXTENT_MM = Evidence(
    100.0, "mm",
    "The adult liver spans about 10-17 cm cranio-caudally (Kratzer et al., J Ultrasound Med "
    "2003;22:1155-61, 2080 subjects); a scan shorter than this along its slice axis cannot hold "
    "a whole liver, so volumetry and planning refuse it")

# --- ICG fluorescence (liverplan.planner.icg) ---------------------------------------------------
_MIMIC = ("MIMIC trial, Achterberg et al., JAMA Netw Open 2024;7:e246548 (201 patients, 316 "
          "colorectal liver metastases; ICG fluorescence on the transection plane vs a "
          "tumour-positive margin < 1 mm)")
MIMIC_SENSITIVITY_PERCENT = Evidence(60.0, "%", _MIMIC)
MIMIC_SPECIFICITY_PERCENT = Evidence(90.0, "%", _MIMIC)
MIMIC_PPV_PERCENT = Evidence(54.0, "%", _MIMIC, "positive predictive value")
MIMIC_NPV_PERCENT = Evidence(92.0, "%", _MIMIC, "negative predictive value")
MIMIC_AUROC = Evidence(0.751, "", _MIMIC, "area under the ROC curve")
MIMIC_R0_BEFORE_PERCENT = Evidence(87.4, "%", _MIMIC, "R0 rate before re-resection")
MIMIC_R0_AFTER_PERCENT = Evidence(
    92.4, "%", _MIMIC, "R0 rate after re-resecting fluorescent tissue in the cavity")
ICG_TBR = Evidence(
    7.0, "ratio",
    "van der Vorst et al., Near-infrared fluorescence-guided resection of colorectal liver "
    "metastases, Cancer 2013;119:3411-8 (doi:10.1002/cncr.28203; 40 patients, 71 metastases): "
    "median tumour(rim)-to-liver ratio 7.0, range 1.9-18.7. (Issue 6 cites it as Ann Surg "
    "2013;257:720-5; the abstract found is the Cancer paper.)",
    "default tumour-to-background ratio of the fluorescent rim")
ICG_DETECTION_DEPTH_MM = Evidence(
    8.0, "mm",
    "Detection depth of ICG NIR imaging of liver tumours, commonly quoted as about 8 mm and "
    "attributed to Ishizawa et al., Cancer 2009;115:2491-504 (figure from LiverPlan issue 6, "
    "not checked against the full text); consistent with van der Vorst et al., Cancer "
    "2013;119:3411-8 (all NIR-detected metastases < 6.2 mm beneath the capsule) and Lim et al., "
    "Singapore Med J 2021;62:182-9 (84% of ICG-positive lesions < 1 cm deep; half of the "
    "lesions >= 1 cm deep not detected)",
    "a standard rim around a lesion at this depth is just visible")
ICG_RIM_THICKNESS_MM = Evidence(
    2.0, "mm",
    "ASSUMPTION, no published value found: the rim is ICG retained in the hepatocytes compressed "
    "by the tumour (van der Vorst et al., Cancer 2013;119:3411-8) but its thickness was not "
    "measured. Adjustable 0.5-5 mm.")
ICG_MU_EFF_PER_MM = Evidence(
    0.3, "1/mm",
    "ASSUMPTION: effective attenuation of NIR light in liver parenchyma, of the order of "
    "0.2-0.5 /mm (penetration depth of a few mm); shapes how fast the expected signal fades "
    "with depth, while the detection limit itself is calibrated to ICG_DETECTION_DEPTH_MM")

# --- Liver and lesion segmentation (liverplan.volumetry) ---------------------------------------
LIVER_ENHANCED_MIN_HU = Evidence(
    80.0, "HU",
    "Unenhanced liver parenchyma measures about 50-65 HU (Kodama et al., AJR 2007;188:1307-12); "
    "portal venous contrast raises it by about 50 HU or more at standard doses (Heiken et al., "
    "Radiology 1995;195:353-7)",
    "a liver mode below this suggests an unenhanced or arterial-only series: lesions may be "
    "missed, so the result carries a warning")
LIVER_VOLUME_MIN_ML = Evidence(
    500.0, "mL",
    "Adult standard liver volumes lie about 900-2500 mL (Heinemann et al., Liver Transpl "
    "1999;5:366-8; Urata et al., Hepatology 1995;21:1317-21); generous bounds around that range",
    "a whole-liver segmentation smaller than this is refused as failed")
LIVER_VOLUME_MAX_ML = Evidence(
    4500.0, "mL",
    "Adult standard liver volumes lie about 900-2500 mL (Heinemann et al., Liver Transpl "
    "1999;5:366-8); tumour-laden livers can be larger, hence the generous bound",
    "a liver segmentation larger than this is refused as a leak into neighbouring organs")
LESION_MIN_DIAMETER_MM = Evidence(
    5.0, "mm",
    "LiverPlan issue 3: automatic detection reports focal lesions from 5 mm; CT detection of "
    "colorectal liver metastases under 10 mm is limited (Niekel et al., Radiology "
    "2010;257:674-84)",
    "smaller hypodense spots are not reported as lesions")
