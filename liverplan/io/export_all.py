"""One export of a case and its plan: report, models, DICOM SEG, encapsulated PDF, PACS send.

The GUI and `liverplan export` call `export_case`. Each output is written atomically, in the
order that keeps the most useful files if something fails part-way (SEG, models, report), and
the PACS send comes last, so a refused send never costs the files already on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from liverplan.case import LIVER, SEGMENTS, TUMORS, Case
from liverplan.errors import ExportError, LiverPlanError, PlanningError
from liverplan.geometry import image_from_array, mask_volume_ml, voxel_volume_ml
from liverplan.io import pacs, report_figures
from liverplan.io.atomic import ensure_folder, write_dicom
from liverplan.io.deidentify import Deidentifier
from liverplan.io.export_encapsulated import encapsulate_pdf
from liverplan.io.export_models import export_models, structures_from_labels
from liverplan.io.export_pdf import ReportInput, write_report
from liverplan.io.export_seg import NO_FRAME_OF_REFERENCE, build_seg, segment_label
from liverplan.planner import icg, icg_view
from liverplan.planner.flr import PlanningContext, resected_image
from liverplan.planner.planfile import PlanFile, plan_path, save_plan
from liverplan.progress import Steps

SEG_FILE = "segmentation.dcm"
REPORT_FILE = "report.pdf"
REPORT_DICOM_FILE = "report.dcm"
MODELS_FOLDER = "models"
_SAME_VOLUME_ML = 0.05   # rounding of stored volumes; any edit of a mask changes far more


@dataclass
class ExportResult:
    folder: Path
    files: list[Path] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)          # SOP Instance UIDs stored in the PACS
    warnings: list[str] = field(default_factory=list)


def _check_plan_matches(case: Case, plan) -> None:
    """Refuse a plan computed on other masks: its figures would not describe these models."""
    liver = sitk.GetArrayViewFromImage(case.label(LIVER)) != 0
    tumors = case.label(TUMORS)
    in_liver = liver & (sitk.GetArrayViewFromImage(tumors) != 0) if tumors is not None else None
    voxel_ml = voxel_volume_ml(case.image)
    checks = (("liver", np.count_nonzero(liver) * voxel_ml, plan.result.liver_volume_ml),
              ("tumour", np.count_nonzero(in_liver) * voxel_ml if in_liver is not None else 0.0,
               plan.result.tumor_volume_ml))    # the planner counts tumour inside the liver
    for what, now, then in checks:
        if abs(now - then) > _SAME_VOLUME_ML:
            raise ExportError(f"the {what} segmentation has changed since the plan was computed "
                              f"({now:.1f} mL now, {then:.1f} mL in the plan); recompute the plan "
                              "before exporting it")


def _remnant(case: Case, resected: sitk.Image | None) -> sitk.Image | None:
    if resected is None:
        return None
    kept = (sitk.GetArrayViewFromImage(case.label(LIVER)) != 0) & \
        (sitk.GetArrayViewFromImage(resected) == 0)
    return image_from_array(kept.astype(np.uint8), case.image)


def _first_slice(case: Case) -> pydicom.Dataset | None:
    files = getattr(case.info, "files", None)
    if not files:
        return None
    try:
        return pydicom.dcmread(files[0], stop_before_pixels=True)
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        raise ExportError(f"the source CT cannot be read any more ({exc}); the exports must "
                          "reference the original series, so keep it in place",
                          path=files[0]) from exc


def _date(text: str) -> str:
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) >= 8 else (text or "")


def identification(case: Case, header: pydicom.Dataset | None,
                   deid: Deidentifier | None) -> list[tuple[str, str]]:
    """Patient and study rows of the report (pseudonymised when de-identifying)."""
    info = case.info
    get = (lambda k: str(header.get(k, "") or "")) if header is not None else (lambda k: "")
    name = get("PatientName") or getattr(info, "patient_name", "") or ""
    study_date = get("StudyDate") or getattr(info, "study_date", "") or ""
    rows = [("Patient", name.replace("^", ", ").strip(", ")),
            ("Patient ID", get("PatientID") or getattr(info, "patient_id", "") or ""),
            ("Sex", get("PatientSex") or getattr(info, "patient_sex", "") or ""),
            ("Birth date", _date(get("PatientBirthDate"))),
            ("Study date", _date(study_date)),
            ("Accession", get("AccessionNumber")),
            ("Series", getattr(info, "description", "") or get("SeriesDescription")),
            ("Series UID", getattr(info, "series_instance_uid", "") or get("SeriesInstanceUID"))]
    if deid is not None:
        rows = [("Patient", deid.pseudonym), ("Patient ID", deid.pseudonym),
                ("Study date", _date(deid.date(study_date)) + " (shifted)"),
                ("Series UID", deid.uid(rows[-1][1])),
                ("De-identified", "PS3.15 basic profile, dates shifted")]
    return [(k, v) for k, v in rows if v]


def volumetry_rows(case: Case, result: dict | None) -> list[tuple[str, float]]:
    liver = case.label(LIVER)
    rows = [("Liver", mask_volume_ml(liver))]
    if case.label(TUMORS) is not None:
        rows.append(("Tumours", mask_volume_ml(case.label(TUMORS))))
        rows.append(("Functional liver (liver minus tumours)", rows[0][1] - rows[1][1]))
    if case.label(SEGMENTS) is not None:
        rows += [(segment_label(n), mask_volume_ml(case.label(SEGMENTS), label=n)) for n in range(1, 9)]
    if result is not None:
        rows += [("Resected", result["resected_volume_ml"]), ("Remnant", result["remnant_volume_ml"]),
                 ("Future liver remnant (remnant minus tumours)", result["flr_ml"])]
    return rows


def _icg(case: Case, resected: sitk.Image | None, steps: Steps, warnings: list):
    """Surface and transection ICG maps and the simulated NIR picture (None without lesions;
    the transection's None, with a warning, when the plan leaves no cut surface)."""
    tumors = case.label(TUMORS)
    if tumors is None or not sitk.GetArrayViewFromImage(tumors).any():
        return None, None, None
    mesh, surface = icg.surface_fluorescence(case.label(LIVER), tumors,
                                             progress=steps.sub(0.0, 0.5).report, cancel=steps.cancel)
    transection = None
    if resected is not None:
        try:
            _, transection = icg.transection_fluorescence(case.label(LIVER), tumors, resected,
                                                          progress=steps.sub(0.5, 1.0).report,
                                                          cancel=steps.cancel)
        except PlanningError as exc:           # the plan removes all the liver: no cut surface
            warnings.append(f"No ICG map of the transection in the report: {exc}")
    return surface, transection, icg_view.render_nir_view(mesh, surface, window_size=(900, 700))


def export_case(case: Case, out_dir: str | Path, *, planfile: PlanFile | None = None,
                plan_json: bool = False, pdf: bool = True, meshes: bool = True,
                seg: bool = True, send: str | None = None,
                deidentify: bool | Deidentifier = False, progress=None,
                cancel=None) -> ExportResult:
    """Export `case` and its plan (`planfile`: the plan, its strategies and follow-up, which go
    into the report) to `out_dir`; optionally C-STORE to `send`.

    `plan_json`: also write the plan file (with de-identified series identifiers when
    `deidentify`).

    Raises ExportError with a clear message when an input is missing or a write or send fails;
    files completed before the failure stay intact, nothing half-written is left.
    """
    steps = Steps(progress, cancel)
    plan = planfile.plan if planfile is not None else None
    if case.label(LIVER) is None or not sitk.GetArrayViewFromImage(case.label(LIVER)).any():
        raise ExportError("there is no liver segmentation to export; segment the liver first")
    if pdf and plan is None:
        raise ExportError("the report needs a resection plan; make a plan first (or export "
                          "without --pdf)")
    if plan_json and plan is None:
        raise ExportError("the plan JSON needs a resection plan; make a plan first")
    if plan is not None:
        _check_plan_matches(case, plan)
    source_files = list(getattr(case.info, "files", None) or [])
    if (seg or send) and not source_files:
        raise ExportError("the case was not opened from a DICOM series, so a DICOM SEG and a "
                          "PACS send are not possible; open the original CT series")
    target = pacs.PacsTarget.parse(send) if send else None
    deid = (deidentify if isinstance(deidentify, Deidentifier)
            else Deidentifier() if deidentify else None)
    folder = ensure_folder(out_dir)
    out = ExportResult(folder)
    header = _first_slice(case)
    to_send: list[Path] = []

    seg_ds = None
    if seg:
        seg_ds = build_seg(case.labels, source_files, progress=steps.sub(0.0, 0.2).report,
                           cancel=cancel)
        if header is not None and "FrameOfReferenceUID" not in header:
            out.warnings.append(NO_FRAME_OF_REFERENCE)
        if deid is not None:
            deid.dataset(seg_ds)
        out.files.append(write_dicom(seg_ds, folder / SEG_FILE))
        to_send.append(out.files[-1])

    resected = (resected_image(PlanningContext.from_case(case), plan.resections)
                if plan is not None else None)
    if meshes:
        structures = structures_from_labels(case.labels, resected=resected,
                                            remnant=_remnant(case, resected))
        uid = getattr(case.info, "series_instance_uid", "") or ""
        models = export_models(structures, folder / MODELS_FOLDER,
                               source={"series_instance_uid": deid.uid(uid) if deid else uid},
                               progress=steps.sub(0.2, 0.5).report, cancel=cancel)
        out.files += models.files
        out.warnings += models.warnings

    if pdf:
        result = plan.result.to_dict()
        surface, transection, nir = _icg(case, resected, steps.sub(0.5, 0.7), out.warnings)
        steps.report(0.7, "Report pictures")
        figures = report_figures.snapshots(case.labels, resected=resected, icg_image=nir)
        slices = report_figures.axial_slices(case.image, case.labels,
                                             report_figures.key_slices(case.labels, result["lesions"]),
                                             resected=resected)
        content = ReportInput(
            identification=identification(case, header, deid), plan_name=plan.name, result=result,
            patient=plan.patient.to_dict(), volumes_ml=volumetry_rows(case, result),
            segments_method=case.segments_method or "",
            strategies=[x.to_dict() for x in planfile.strategies],
            followup=planfile.followup.to_dict() if planfile.followup is not None else None,
            surface=surface.to_dict() if surface else None,
            transection=transection.to_dict() if transection else None, figures=figures,
            slices=slices, warnings=list(case.warnings))
        steps.report(0.85, "Writing the report")
        report = write_report(content, folder / REPORT_FILE)
        out.files.append(report)
        if header is not None:
            doc = encapsulate_pdf(report, header, referenced=[seg_ds] if seg_ds is not None else ())
            if deid is not None:
                deid.dataset(doc)
                doc.BurnedInAnnotation = "NO"   # the report shows only the pseudonym
            out.files.append(write_dicom(doc, folder / REPORT_DICOM_FILE))
            to_send.append(out.files[-1])

    if plan_json:
        if deid is not None:
            planfile = replace(planfile, series=deid.series(planfile.series))
        out.files.append(plan_path(folder))
        save_plan(out.files[-1], planfile)

    if target is not None:
        steps.report(0.9, f"Sending to {target}")
        if not to_send:
            raise ExportError("nothing to send: export the SEG or the report as well")
        try:
            pacs.echo(target)
            out.sent = [s.sop_instance_uid for s in pacs.store(
                target, to_send, progress=steps.sub(0.9, 1.0).report, cancel=cancel)]
        except LiverPlanError as exc:
            raise ExportError(f"{str(exc).rstrip('.')}. The exported files are complete in "
                              f"{folder}; send them again when the PACS is reachable.") from exc
    steps.report(1.0, f"Exported to {folder}")
    return out
