"""The plan report as a PDF (reportlab): what a surgeon takes to the tumour board and the OR.

The report only lays out results computed elsewhere (volumetry, plan, staging, ICG); it takes
them as plain dicts (the `to_dict` form stored in plan files), so a saved plan prints the same
as a live one. Every threshold is shown beside the figure it judges, with its source.
"""

from __future__ import annotations

import datetime as _dt
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (CondPageBreak, Image, KeepTogether, Paragraph,
                                SimpleDocTemplate, Spacer, Table, TableStyle)
from xml.sax.saxutils import escape

from liverplan import __version__
from liverplan import evidence as ev
from liverplan.errors import ExportError
from liverplan.io.atomic import atomic_write
from liverplan.io.report_figures import Figure

DECISION_SUPPORT = (
    "Decision support only. This report is computed from image segmentations and published "
    "thresholds; it does not replace the judgement of the surgical team. Check every structure, "
    "volume and margin against the CT images before acting on it.")
_VERDICT_COLOUR = {"feasible": colors.HexColor("#1b7f3b"), "borderline": colors.HexColor("#b36b00"),
                   "not feasible": colors.HexColor("#b00020")}
_STATUS_COLOUR = {"pass": colors.HexColor("#e3f4e8"), "warn": colors.HexColor("#fff1d6"),
                  "fail": colors.HexColor("#fbe0e4")}
_GRID = colors.HexColor("#9aa4ad")
_HEAD = colors.HexColor("#dde3e8")


@dataclass
class ReportInput:
    """Everything the report shows. Dicts follow the planner's `to_dict` forms."""
    identification: list[tuple[str, str]]            # (label, value), e.g. ("Patient ID", "123")
    plan_name: str = ""
    result: dict | None = None                       # PlanResult.to_dict()
    patient: dict | None = None                      # Patient.to_dict() (weight, height, quality)
    volumes_ml: list[tuple[str, float]] = field(default_factory=list)   # volumetry rows
    segments_method: str = ""                        # how the Couinaud segments were made
    strategies: list[dict] = field(default_factory=list)   # staging Strategy.to_dict()
    followup: dict | None = None                     # planner FollowUp.to_dict() (after PVE)
    surface: dict | None = None                      # icg SurfaceMap.to_dict()
    transection: dict | None = None                  # icg TransectionMap.to_dict()
    figures: list[Figure] = field(default_factory=list)     # 3D snapshots
    slices: list[Figure] = field(default_factory=list)      # axial slices
    warnings: list[str] = field(default_factory=list)
    created: _dt.datetime = field(default_factory=_dt.datetime.now)


def _styles():
    base = getSampleStyleSheet()
    return {
        "title": ParagraphStyle("title", parent=base["Title"], fontSize=17, spaceAfter=2),
        "h2": ParagraphStyle("h2", parent=base["Heading2"], fontSize=12.5, spaceBefore=8,
                             spaceAfter=4, textColor=colors.HexColor("#1f3b57")),
        "body": ParagraphStyle("body", parent=base["BodyText"], fontSize=9, leading=11.5),
        "small": ParagraphStyle("small", parent=base["BodyText"], fontSize=7.5, leading=9.2),
        "cell": ParagraphStyle("cell", parent=base["BodyText"], fontSize=8.3, leading=10),
        "notice": ParagraphStyle("notice", parent=base["BodyText"], fontSize=9, leading=11.5,
                                 textColor=colors.HexColor("#7a0010")),
        "verdict": ParagraphStyle("verdict", parent=base["Title"], fontSize=15, leading=18,
                                  alignment=TA_CENTER, textColor=colors.white),
        "caption": ParagraphStyle("caption", parent=base["BodyText"], fontSize=7.8, leading=9.5,
                                  alignment=TA_CENTER, textColor=colors.HexColor("#333333")),
    }


def _p(text, style) -> Paragraph:
    return Paragraph(escape(str(text)), style)


def _table(rows, widths, st, *, header=True, row_colours=None) -> Table:
    cells = [[c if isinstance(c, Paragraph) else _p(c, st["cell"]) for c in row] for row in rows]
    table = Table(cells, colWidths=widths, repeatRows=1 if header else 0)
    style = [("GRID", (0, 0), (-1, -1), 0.4, _GRID), ("VALIGN", (0, 0), (-1, -1), "TOP"),
             ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), _HEAD))
    for i, colour in (row_colours or {}).items():
        style.append(("BACKGROUND", (0, i), (-1, i), colour))
    table.setStyle(TableStyle(style))
    return table


def _num(value, fmt="{:.0f}", unit="") -> str:
    return "n/a" if value is None else fmt.format(value) + unit


def _image(picture: np.ndarray, width_mm: float) -> Image:
    buf = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(picture[..., :3])).save(buf, format="PNG")
    buf.seek(0)
    h, w = picture.shape[:2]
    return Image(buf, width=width_mm * mm, height=width_mm * mm * h / w)


def _figure_grid(figures: list[Figure], st, *, columns: int, width_mm: float) -> list:
    cell_w = width_mm / columns
    cells = [[_image(f.image, cell_w - 4), _p(f.caption, st["caption"])] for f in figures]
    rows = [cells[i:i + columns] + [""] * (columns - len(cells[i:i + columns]))
            for i in range(0, len(cells), columns)]
    out = []
    for row in rows:
        t = Table([row], colWidths=[cell_w * mm] * columns)
        t.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                               ("ALIGN", (0, 0), (-1, -1), "CENTER")]))
        out.append(KeepTogether([t, Spacer(1, 3 * mm)]))
    return out


def _verdict_block(result: dict, st) -> Table:
    verdict = result["verdict"]
    driving = result["driving"]
    value = result["sflr_percent"] if driving == "sFLR" else result["flr_percent"]
    statuses = [r["status"] for r in result.get("reasons", [])]
    text = (f"Verdict: {verdict.upper()} — {driving} {value:.1f}% "
            f"(minimum {result['sflr_min_percent']:g}%)<br/><font size=10>"
            f"{statuses.count('fail')} rule(s) failed, {statuses.count('warn')} warning(s): "
            "see the rules below</font>")
    t = Table([[Paragraph(text, st["verdict"])]], colWidths=[180 * mm])
    t.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), _VERDICT_COLOUR.get(verdict, colors.grey)),
                           ("TOPPADDING", (0, 0), (-1, -1), 5), ("BOTTOMPADDING", (0, 0), (-1, -1), 6)]))
    return t


def _flr_rows(result: dict, patient: dict | None) -> list[list[str]]:
    bw_min = ev.FLR_BW_MIN_PERCENT.value
    thr = result["sflr_min_percent"]
    quality = (patient or {}).get("quality", "")
    rows = [["Measure", "Value", "Threshold", "Drives the verdict"],
            ["Future liver remnant (FLR)", _num(result["flr_ml"], unit=" mL"), "", ""],
            ["FLR % of functional liver volume (liver minus tumours)",
             _num(result["flr_percent"], "{:.1f}", "%"), f">= {thr:g}%",
             "yes" if result["driving"] != "sFLR" else "no"],
            ["Standardized FLR (FLR / TELV)", _num(result["sflr_percent"], "{:.1f}", "%"),
             f">= {thr:g}%" + (f" ({quality} liver)" if quality else ""),
             "yes" if result["driving"] == "sFLR" else "no"],
            ["Total estimated liver volume (TELV)", _num(result["telv_ml"], unit=" mL"), "", ""],
            ["FLR / body weight", _num(result["flr_bw_percent"], "{:.2f}", "%"),
             f">= {bw_min:g}%", "checked"]]
    return rows


def _lesion_rows(result: dict, surface: dict | None, transection: dict | None) -> list[list[str]]:
    depth = {d["lesion_id"]: d for d in (surface or {}).get("lesions", [])}
    cut = {d["lesion_id"]: d for d in (transection or {}).get("lesions", [])}
    r0 = ev.R0_MARGIN_MM.value
    rows = [["Lesion", "Seg.", "Size (mm)", "Depth (mm)", "Outcome", f"Margin (mm; R0 >= {r0:g})",
             "ICG on liver surface", "ICG at transection"]]
    for les in result.get("lesions", []):
        i = les["lesion_id"]
        s, c = depth.get(i), cut.get(i)
        margin = les.get("margin_mm")
        margin_text = "n/a" if margin is None else (
            f"{margin:.1f} ({'R0' if les.get('r0') else 'R1 risk'})")
        surface_text = "n/a" if s is None else ("expected visible" if s["visible"]
                                                else "not expected")
        if c is None:
            cut_text = "n/a"
        else:
            cut_text = (f"specimen {'NIR+' if c['nir_specimen'] else 'NIR-'}, "
                        f"cavity {'NIR+' if c['nir_cavity'] else 'NIR-'}")
            if c.get("flag"):
                cut_text += f" ({c['flag']})"
        rows.append([str(i), str(les.get("segment") or "?"), _num(les["diameter_mm"]),
                     "n/a" if s is None else f"{s['depth_mm']:.1f}", les["status"], margin_text,
                     surface_text, cut_text])
    return rows


def _lines(parts, style) -> Paragraph:
    return Paragraph("<br/>".join(escape(str(x)) for x in parts if x), style)


def _strategy_rows(strategies: list[dict], st) -> list[list]:
    """Staging strategies (planner Strategy.to_dict()), first choice first, then the others."""
    rows = [["Rank", "Strategy and steps", "Assessment", "Rule and evidence"]]
    ordered = sorted(strategies, key=lambda s: (s["rank"] <= 0, s["rank"]))
    for s in ordered:
        days = ""
        if s.get("days_min") is not None and s.get("days_max") is not None:
            days = (f"FLR expected to reach its threshold in {s['days_min']:.0f}-"
                    f"{s['days_max']:.0f} days")
        rows.append([str(s["rank"]) if s["rank"] > 0 else "not applicable",
                     _lines([s["name"]] + [f"- {x}" for x in s.get("steps", ())], st["cell"]),
                     _lines([s.get("summary", ""), days] + [f"Risk: {r}" for r in s.get("risks", ())],
                            st["cell"]),
                     _lines([s.get("rule", ""), s.get("source", "")], st["small"])])
    return rows


def _followup(f: dict, st) -> list:
    before, after = f["before"], f["after"]
    kgr_min = ev.KGR_LOW_RISK_PERCENT_PER_WEEK.value
    rows = [["Measure", "Before", "After", ""],
            ["FLR (mL)", _num(before["flr_ml"]), _num(after["flr_ml"]), ""],
            [f"{before['driving']} (%)", _num(before["sflr_percent"] if before["driving"] == "sFLR"
                                             else before["flr_percent"], "{:.1f}"),
             _num(after["sflr_percent"] if after["driving"] == "sFLR" else after["flr_percent"],
                  "{:.1f}"), f"minimum {after['sflr_min_percent']:g}%"],
            ["Degree of hypertrophy (points)", "", f"{f['dh_points']:.1f}",
             f"over {f['weeks']:.1f} weeks ({f['weeks_from']})"],
            ["Kinetic growth rate (%/week)", "", f"{f['kgr_percent_per_week']:.2f}",
             f">= {kgr_min:g}%/week: " + ("low risk" if f["kgr_low_risk"] else "NOT reached")]]
    reasons = [["Rule", "Result", "Figures", "Source"]]
    reasons += [[r["rule"], r["status"].upper(), r["detail"], r.get("source", "")]
                for r in f.get("reasons", [])]
    colours = {i + 1: _STATUS_COLOUR.get(r["status"], colors.white)
               for i, r in enumerate(f.get("reasons", []))}
    return [_table(rows, [62 * mm, 28 * mm, 28 * mm, 62 * mm], st), Spacer(1, 2 * mm),
            _table(reasons, [52 * mm, 14 * mm, 56 * mm, 58 * mm], st, row_colours=colours)]


def build_story(content: ReportInput) -> list:
    st = _styles()
    story = [_p("Liver surgery plan", st["title"])]
    notice = Table([[_p(DECISION_SUPPORT, st["notice"])]], colWidths=[180 * mm])
    notice.setStyle(TableStyle([("BOX", (0, 0), (-1, -1), 1.2, colors.HexColor("#b00020")),
                                ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#fff5f6"))]))
    story += [notice, Spacer(1, 3 * mm)]

    ident = list(content.identification)
    if content.plan_name:
        ident.append(("Plan", content.plan_name))
    ident += [("Report created", content.created.strftime("%Y-%m-%d %H:%M")),
              ("Software", f"LiverPlan {__version__}")]
    half = (len(ident) + 1) // 2
    left, right = ident[:half], ident[half:] + [("", "")] * (2 * half - len(ident))
    story += [_p("Patient and study", st["h2"]),
              _table([[a, b, c, d] for (a, b), (c, d) in zip(left, right)],
                     [30 * mm, 60 * mm, 30 * mm, 60 * mm], st, header=False)]

    result = content.result
    if result is not None:
        story += [Spacer(1, 3 * mm), _verdict_block(result, st), _p("Future liver remnant", st["h2"]),
                  _table(_flr_rows(result, content.patient), [78 * mm, 30 * mm, 42 * mm, 30 * mm], st),
                  _p("Rules behind the verdict", st["h2"])]
        reasons = result.get("reasons", [])
        rows = [["Rule", "Result", "Figures", "Source"]]
        rows += [[r["rule"], r["status"].upper(), r["detail"], r.get("source", "")] for r in reasons]
        colours = {i + 1: _STATUS_COLOUR.get(r["status"], colors.white) for i, r in enumerate(reasons)}
        story.append(_table(rows, [52 * mm, 14 * mm, 56 * mm, 58 * mm], st, row_colours=colours))
    else:
        story.append(_p("No resection plan: this report shows the segmentation only.", st["body"]))

    if content.volumes_ml:
        total = next((v for k, v in content.volumes_ml if k == "Liver"), None)
        rows = [["Structure", "Volume (mL)", "% of liver"]]
        rows += [[name, f"{v:.1f}", f"{100 * v / total:.1f}%" if total else ""]
                 for name, v in content.volumes_ml]
        story += [CondPageBreak(60 * mm), _p("Volumetry", st["h2"]),
                  _table(rows, [70 * mm, 35 * mm, 35 * mm], st)]
        if content.segments_method:
            story.append(_p(f"Couinaud segments: {content.segments_method}.", st["small"]))

    if result is not None and result.get("lesions"):
        story += [CondPageBreak(50 * mm), _p("Lesions", st["h2"]),
                  _table(_lesion_rows(result, content.surface, content.transection),
                         [13 * mm, 15 * mm, 15 * mm, 16 * mm, 22 * mm, 27 * mm, 30 * mm, 42 * mm], st),
                  _p("Size: diameter of the sphere of equal volume. Depth: lesion surface to liver "
                     "capsule. ICG: expected near-infrared fluorescence about 24 h after 10 mg ICG "
                     "(a model, not a measurement).", st["small"])]
        for line in (content.transection or {}).get("evidence", []):
            story.append(_p(line, st["small"]))
    if result is not None and result.get("crossings"):
        rows = [["Vessel system", "Diameter (mm)", "Position LPS (mm)"]]
        rows += [[c["system"], f"{c['diameter_mm']:.1f}",
                  ", ".join(f"{v:.0f}" for v in c["position_lps_mm"])] for c in result["crossings"]]
        story += [CondPageBreak(40 * mm), _p("Vessels crossed by the cut", st["h2"]),
                  _table(rows, [40 * mm, 30 * mm, 60 * mm], st)]
    if result is not None and result.get("remnant"):
        story += [_p("Remnant: " + str(result["remnant"].get("detail", "")), st["body"])]

    if content.strategies:
        story += [CondPageBreak(60 * mm), _p("Strategy (ranked)", st["h2"]),
                  _table(_strategy_rows(content.strategies, st),
                         [18 * mm, 47 * mm, 65 * mm, 50 * mm], st)]
    elif result is not None:
        story += [_p("Strategy", st["h2"]),
                  _p("No staged strategy was evaluated for this plan.", st["body"])]

    if content.followup:
        story += [CondPageBreak(50 * mm), _p("Follow-up after portal vein embolization", st["h2"])]
        story += _followup(content.followup, st)

    warnings = list(content.warnings) + list((result or {}).get("warnings", []))
    if warnings:
        story += [_p("Warnings", st["h2"])] + [_p("• " + w, st["body"]) for w in warnings]

    if content.figures:
        story += [CondPageBreak(150 * mm), _p("3D views", st["h2"])]
        story += _figure_grid(content.figures, st, columns=2, width_mm=180)
    if content.slices:
        story += [CondPageBreak(90 * mm), _p("Key axial slices", st["h2"]),
                  _p("Radiological convention: the patient's right (R) is on the left of each "
                     "image, anterior (A) at the top. Outlines: liver brown, resected part red, "
                     "lesions yellow, portal vein purple, hepatic veins blue.", st["small"])]
        story += _figure_grid(content.slices, st, columns=3, width_mm=180)
    return story


def write_report(content: ReportInput, out_path: str | Path) -> Path:
    """Write the PDF report atomically; return its path."""
    out_path = Path(out_path)
    footer_id = next((v for k, v in content.identification if k == "Patient ID"), "")

    def footer(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 7.5)
        canvas.setFillColor(colors.HexColor("#555555"))
        canvas.drawString(15 * mm, 9 * mm, f"LiverPlan {__version__} - decision support, not a "
                                           f"diagnosis - patient {footer_id}")
        canvas.drawRightString(A4[0] - 15 * mm, 9 * mm, f"page {doc.page}")
        canvas.restoreState()

    with atomic_write(out_path) as tmp:
        doc = SimpleDocTemplate(str(tmp), pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm,
                                topMargin=14 * mm, bottomMargin=16 * mm,
                                title=f"Liver surgery plan {content.plan_name}".strip(),
                                author="LiverPlan", subject="Decision support report")
        try:
            doc.build(build_story(content), onFirstPage=footer, onLaterPages=footer)
        except (KeyError, TypeError, ValueError) as exc:
            raise ExportError(f"the plan results are incomplete for the report ({exc}); "
                              "recompute the plan and export again") from exc
    return out_path
