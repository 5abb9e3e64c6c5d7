"""Simulated NIR overlay: the liver as a laparoscope sees it, expected ICG fluorescence in green.

Off-screen pyvista rendering (liverplan.rendering: an EGL window without a display), no
Qt. The white-light liver is drawn in a reddish-brown; vertices whose expected intensity reaches the
detection threshold are blended towards the green of clinical NIR overlay displays, more
strongly the brighter they are. Nothing below the threshold is coloured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyvista as pv
import SimpleITK as sitk
from PIL import Image, ImageDraw, ImageFont

from liverplan.errors import PlanningError
from liverplan.io.atomic import atomic_write, ensure_folder
from liverplan.planner.icg import (CAVITY_ARRAY, SURFACE_ARRAY, IcgParameters, IcgResult,
                                   LaparoscopeView, SurfaceMap, TransectionMap, mask_fraction,
                                   sub_surface, surface_fluorescence, transection_fluorescence)
from liverplan.planner.margins import LesionOutcome
from liverplan.progress import Steps
from liverplan.rendering import picture

LIVER_RGB = np.array([0.60, 0.27, 0.22])     # white-light parenchyma
NIR_RGB = np.array([0.25, 1.0, 0.35])        # overlay green
BACKGROUND_RGB = (0.03, 0.02, 0.02)
_SATURATION = 3.0    # full green at threshold + 3x the threshold contrast
_ONSET = 0.35        # a just-visible signal is already a clear tint
_FIELD_RADIUS = 0.55   # of the image width: the laparoscope's round field
_FIELD_EDGE = 0.05     # soft edge, as a fraction of that radius
_PORT_DIRECTION = np.array([0.0, -1.0, -0.6]) / np.linalg.norm([0.0, -1.0, -0.6])  # ant., caudal
SURFACE_FILE = "icg_surface.vtp"
VIEW_FILE = "icg_view.png"
TRANSECTION_FILE = "icg_transection.vtp"
CAVITY_FILE = "icg_cavity.png"


def default_view(mesh: pv.PolyData, view_angle_deg: float = 70.0) -> LaparoscopeView:
    """From the umbilical port: anterior and caudal to the liver, looking cranially and back.

    The whole liver fits in the field of view; the patient's right is on the image's left.
    """
    return _looking_at(mesh, _PORT_DIRECTION, view_angle_deg, margin=1.05)


def _looking_at(mesh: pv.PolyData, approach: np.ndarray, view_angle_deg: float,
                margin: float) -> LaparoscopeView:
    """Camera on the `approach` side of the mesh, far enough to see all of it, superior up."""
    centre = np.asarray(mesh.center)
    radius = 0.5 * float(np.linalg.norm(np.ptp(mesh.points, axis=0)))
    distance = radius / math.tan(math.radians(view_angle_deg / 2)) * margin
    up = np.array([0.0, 0.0, 1.0]) - approach * approach[2]
    if np.linalg.norm(up) < 1e-6:              # looking straight up or down: anterior up
        up = np.array([0.0, -1.0, 0.0])
    return LaparoscopeView(tuple(centre + approach * distance), tuple(centre),
                           tuple(up / np.linalg.norm(up)), view_angle_deg)


def overlay_colors(intensity: np.ndarray, threshold: float, contrast: float) -> np.ndarray:
    """Per-vertex RGB (uint8): liver colour, tinted green where the signal is visible."""
    ramp = np.clip((intensity - threshold) / (_SATURATION * contrast), 0.0, 1.0)
    alpha = np.where(intensity >= threshold, _ONSET + (1 - _ONSET) * ramp, 0.0)[:, None]
    return np.round(255 * ((1 - alpha) * LIVER_RGB + alpha * NIR_RGB)).astype(np.uint8)


def render_nir_view(mesh: pv.PolyData, surface_map: SurfaceMap,
                    view: LaparoscopeView | None = None, *,
                    window_size: tuple[int, int] = (1024, 768)) -> np.ndarray:
    """The simulated NIR overlay image (H, W, 3 uint8) of a mesh carrying SURFACE_ARRAY."""
    p = surface_map.parameters
    colors = overlay_colors(np.asarray(mesh[SURFACE_ARRAY]), surface_map.threshold,
                            p.threshold_contrast)
    visible = sum(r.visible for r in surface_map.lesions)
    caption = (f"Simulated NIR (ICG), expected not measured: {visible} of "
               f"{len(surface_map.lesions)} lesions expected visible")
    return _render([(mesh, colors)], view or default_view(mesh), caption, window_size)


_REMOVED_FRACTION = 0.1   # capsule vertices see >= ~0.2 of a resected liver voxel


def remnant_surface(liver_surface: pv.PolyData, resected: sitk.Image) -> pv.PolyData:
    """The part of the liver surface (with its point arrays) that stays in the patient.

    A capsule vertex lies about half a voxel outside the liver, so when `resected` holds only
    liver voxels (as a plan's resected region does) a removed vertex samples it at ~0.2-0.8,
    not 1: only vertices with (almost) no resected voxel around them are kept."""
    removed = mask_fraction(sitk.GetArrayViewFromImage(resected) != 0, resected,
                            liver_surface.points)
    return sub_surface(liver_surface, removed < _REMOVED_FRACTION)


def cavity_view(cut: pv.PolyData, view_angle_deg: float = 70.0) -> LaparoscopeView:
    """Into the resection cavity: from where the specimen was, obliquely from anterior and
    caudal as through an umbilical port, onto the remnant's cut face."""
    normal = np.asarray(cut.point_normals).mean(axis=0)     # specimen -> remnant
    normal /= np.linalg.norm(normal)
    port = _PORT_DIRECTION - normal * (_PORT_DIRECTION @ normal)
    approach = -normal + 0.6 * port / max(np.linalg.norm(port), 1e-9)
    approach /= np.linalg.norm(approach)
    return _looking_at(cut, approach, view_angle_deg, margin=1.1)


def render_cavity_view(remnant: pv.PolyData, cut: pv.PolyData, transection: TransectionMap,
                       view: LaparoscopeView | None = None, *,
                       window_size: tuple[int, int] = (1024, 768)) -> np.ndarray:
    """The resection cavity after the planned transection: the remnant's cut face coloured by
    the expected fluorescence (CAVITY_ARRAY), the remnant's capsule by SURFACE_ARRAY if present."""
    p = transection.parameters
    meshes = [(cut, overlay_colors(np.asarray(cut[CAVITY_ARRAY]), transection.threshold,
                                   p.threshold_contrast))]
    if remnant.n_points:
        intensity = (np.asarray(remnant[SURFACE_ARRAY]) if SURFACE_ARRAY in remnant.point_data
                     else np.full(remnant.n_points, p.background))
        meshes.append((remnant, overlay_colors(intensity, transection.threshold,
                                               p.threshold_contrast)))
    return _render(meshes, view or cavity_view(cut), cavity_caption(transection), window_size)


def cavity_caption(transection: TransectionMap) -> str:
    """Caption of the cavity picture; a glow from a lesion left in place is named as such."""
    positive = [r for r in transection.lesions if r.nir_cavity]
    left = sum(r.status == "left in place" for r in positive)
    return (f"Simulated NIR of the cavity (expected): {len(positive)} lesion(s) may fluoresce"
            + (f", {left} of them left in place" if left else ""))


def _render(meshes: list[tuple[pv.PolyData, np.ndarray]], view: LaparoscopeView, caption: str,
            window_size: tuple[int, int]) -> np.ndarray:
    """Off-screen render of coloured meshes through a laparoscope: headlight, wet specular
    surface, round field, caption inside it."""
    def draw(plotter: pv.Plotter) -> None:
        plotter.set_background(BACKGROUND_RGB)
        for mesh, colors in meshes:
            plotter.add_mesh(mesh, scalars=colors, rgb=True, copy_mesh=True, smooth_shading=True,
                             specular=0.25, specular_power=20, ambient=0.15, diffuse=0.75)
        plotter.add_light(pv.Light(light_type="headlight"))   # the scope carries its light
        plotter.camera.position = view.position_lps_mm
        plotter.camera.focal_point = view.focal_point_lps_mm
        plotter.camera.up = view.view_up_lps
        plotter.camera.view_angle = view.view_angle_deg
        plotter.camera.reset_clipping_range()
    return _caption(_scope_field(picture(window_size, draw, lighting="none")), caption)


def _scope_field(image: np.ndarray) -> np.ndarray:
    """Black outside the round field of a laparoscope (corners dark), with a soft edge."""
    h, w = image.shape[:2]
    y, x = np.ogrid[:h, :w]
    r = np.hypot(x - w / 2, y - h / 2) / (_FIELD_RADIUS * w)
    fade = np.clip((1.0 - r) / _FIELD_EDGE, 0.0, 1.0)[..., None]
    return (image * fade).astype(np.uint8)


def caption_box(size: tuple[int, int], text: str) -> tuple[ImageFont.FreeTypeFont, tuple]:
    """Font and (left, top, right, bottom) box of `text` centred at the bottom of an image of
    `size` (w, h), as large as fits (up to 1/48 of the width) with all four corners inside the
    fully visible part of the scope's field."""
    w, h = size
    visible = _FIELD_RADIUS * w * (1.0 - _FIELD_EDGE)
    for font_px in range(max(int(w / 48), 8), 5, -1):
        font = ImageFont.load_default(size=font_px)
        left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox(
            (0, 0), text, font=font)
        width, height = right - left, bottom - top
        for lift in range(font_px // 2, h // 6, max(font_px // 4, 1)):
            box = ((w - width) / 2, h - lift - height, (w + width) / 2, h - lift)
            if np.hypot(box[2] - w / 2, box[3] - h / 2) <= visible:   # the farthest corner
                return font, box
    raise PlanningError(f"A {w}x{h} picture is too small for its caption; render the NIR view "
                        "at least 400 pixels wide.")


def _caption(image: np.ndarray, text: str) -> np.ndarray:
    """`text` in white at the bottom of the scope's field, inside its visible disc."""
    picture = Image.fromarray(image)
    font, (left, top, _, _) = caption_box(picture.size, text)
    draw = ImageDraw.Draw(picture)
    x0, y0 = draw.textbbox((0, 0), text, font=font)[:2]
    draw.text((left - x0, top - y0), text, font=font, fill=(255, 255, 255))
    return np.asarray(picture)


def write_icg_outputs(folder: str | Path, mesh: pv.PolyData, surface_map: SurfaceMap,
                      view: LaparoscopeView | None = None, *,
                      transection: tuple[pv.PolyData, TransectionMap, sitk.Image] | None = None,
                      progress=None, cancel=None) -> list[Path]:
    """Write icg_surface.vtp (expected intensity per vertex) and icg_view.png atomically; with
    `transection` = (cut surface, its map, the resected mask) also icg_transection.vtp
    (specimen and cavity intensities per vertex) and icg_cavity.png. Each render takes a few
    seconds: progress is reported, and cancel checked, before each."""
    folder = ensure_folder(folder)
    steps = Steps(progress, cancel)
    share = 1.0 if transection is None else 0.5
    steps.report(0.0, "ICG: rendering the NIR view of the liver surface")
    written = [_save_mesh(mesh, folder / SURFACE_FILE),
               _save_png(render_nir_view(mesh, surface_map, view), folder / VIEW_FILE)]
    if transection is not None:
        cut, transection_map, resected = transection
        steps.report(share, "ICG: rendering the NIR view of the resection cavity")
        image = render_cavity_view(remnant_surface(mesh, resected), cut, transection_map)
        written += [_save_mesh(cut, folder / TRANSECTION_FILE),
                    _save_png(image, folder / CAVITY_FILE)]
    steps.report(1.0, "ICG: NIR views written")
    return written


def _save_mesh(mesh: pv.PolyData, path: Path) -> Path:
    with atomic_write(path) as tmp:
        mesh.save(tmp)
    return path


def _save_png(image: np.ndarray, path: Path) -> Path:
    with atomic_write(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return path


def predict_and_write(folder: str | Path, liver: sitk.Image, tumors: sitk.Image,
                      resected: sitk.Image | None = None, params: IcgParameters = IcgParameters(),
                      *, outcomes: Sequence[LesionOutcome] | None = None,
                      mesh: pv.PolyData | None = None, view: LaparoscopeView | None = None,
                      progress=None, cancel=None) -> IcgResult:
    """The whole ICG step of a plan (`liverplan plan ... --icg`): surface map, transection map
    when a resected-region mask is given (with the plan's per-lesion `outcomes`, see
    transection_fluorescence), and their files in `folder`, recorded by name relative to it
    (the plan file lies there too). `mesh` is the liver surface already shown in the 3D view."""
    steps = Steps(progress, cancel)
    painted, surface_map = surface_fluorescence(liver, tumors, params, mesh=mesh,
                                                progress=steps.sub(0.0, 0.4).report,
                                                cancel=cancel)
    transection = None
    if resected is not None:
        cut, transection_map = transection_fluorescence(
            liver, tumors, resected, params, outcomes=outcomes,
            progress=steps.sub(0.4, 0.6).report, cancel=cancel)
        transection = (cut, transection_map, resected)
    view = view or default_view(painted)
    files = write_icg_outputs(folder, painted, surface_map, view, transection=transection,
                              progress=steps.sub(0.6, 1.0).report, cancel=cancel)
    return IcgResult(surface_map, transection[1] if transection else None,
                     tuple(f.name for f in files), view)
