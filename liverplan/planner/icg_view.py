"""Simulated NIR overlay: the liver as a laparoscope sees it, expected ICG fluorescence in green.

Off-screen pyvista rendering (VTK falls back to an EGL window without a display), no Qt. The
white-light liver is drawn in a reddish-brown; vertices whose expected intensity reaches the
detection threshold are blended towards the green of clinical NIR overlay displays, more
strongly the brighter they are. Nothing below the threshold is coloured.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyvista as pv
from PIL import Image

from liverplan.io.atomic import atomic_write, ensure_folder
from liverplan.planner.icg import SURFACE_ARRAY, SurfaceMap

LIVER_RGB = np.array([0.60, 0.27, 0.22])     # white-light parenchyma
NIR_RGB = np.array([0.25, 1.0, 0.35])        # overlay green
BACKGROUND_RGB = (0.03, 0.02, 0.02)
_SATURATION = 3.0    # full green at threshold + 3x the threshold contrast
_ONSET = 0.35        # a just-visible signal is already a clear tint
SURFACE_FILE = "icg_surface.vtp"
VIEW_FILE = "icg_view.png"


@dataclass(frozen=True)
class LaparoscopeView:
    """A laparoscope pose in patient space (LPS mm)."""

    position_lps_mm: tuple[float, float, float]
    focal_point_lps_mm: tuple[float, float, float]
    view_up_lps: tuple[float, float, float] = (0.0, 0.0, 1.0)   # superior up
    view_angle_deg: float = 70.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LaparoscopeView":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def default_view(mesh: pv.PolyData, view_angle_deg: float = 70.0) -> LaparoscopeView:
    """From the umbilical port: anterior and caudal to the liver, looking cranially and back.

    The whole liver fits in the field of view; the patient's right is on the image's left.
    """
    centre = np.asarray(mesh.center)
    radius = 0.5 * float(np.linalg.norm(np.ptp(mesh.points, axis=0)))
    approach = np.array([0.0, -1.0, -0.6])               # anterior (-P) and caudal (-S)
    approach /= np.linalg.norm(approach)
    distance = radius / math.tan(math.radians(view_angle_deg / 2)) * 1.05
    up = np.array([0.0, 0.0, 1.0]) - approach * approach[2]    # superior, square to the view
    return LaparoscopeView(tuple(centre + approach * distance), tuple(centre),
                           tuple(up / np.linalg.norm(up)), view_angle_deg)


def overlay_colors(intensity: np.ndarray, threshold: float, contrast: float) -> np.ndarray:
    """Per-vertex RGB (uint8): liver colour, tinted green where the signal is visible."""
    ramp = np.clip((intensity - threshold) / (_SATURATION * contrast), 0.0, 1.0)
    alpha = np.where(intensity >= threshold, _ONSET + (1 - _ONSET) * ramp, 0.0)[:, None]
    return np.round(255 * ((1 - alpha) * LIVER_RGB + alpha * NIR_RGB)).astype(np.uint8)


def render_nir_view(mesh: pv.PolyData, surface_map: SurfaceMap, view: LaparoscopeView | None = None,
                    *, window_size: tuple[int, int] = (1024, 768)) -> np.ndarray:
    """The simulated NIR overlay image (H, W, 3 uint8) of a mesh carrying SURFACE_ARRAY."""
    view = view or default_view(mesh)
    params = surface_map.parameters
    colors = overlay_colors(np.asarray(mesh[SURFACE_ARRAY]), surface_map.threshold,
                            params.threshold_contrast)
    plotter = pv.Plotter(off_screen=True, window_size=list(window_size), lighting="none")
    try:
        plotter.set_background(BACKGROUND_RGB)
        plotter.add_mesh(mesh, scalars=colors, rgb=True, smooth_shading=True, specular=0.35,
                         specular_power=20, ambient=0.15, diffuse=0.85)
        plotter.add_light(pv.Light(light_type="headlight"))   # the scope carries its light
        plotter.camera.position = view.position_lps_mm
        plotter.camera.focal_point = view.focal_point_lps_mm
        plotter.camera.up = view.view_up_lps
        plotter.camera.view_angle = view.view_angle_deg
        plotter.camera.reset_clipping_range()
        visible = sum(r.visible for r in surface_map.lesions)
        plotter.add_text(f"Simulated NIR (ICG), expected not measured: {visible} of "
                         f"{len(surface_map.lesions)} lesions expected visible",
                         position="lower_edge", font_size=9, color="white")
        image = plotter.screenshot(return_img=True)
    finally:
        plotter.close()
    return _scope_field(np.asarray(image)[..., :3])


def _scope_field(image: np.ndarray) -> np.ndarray:
    """Black outside the round field of a laparoscope (corners dark), with a soft edge."""
    h, w = image.shape[:2]
    y, x = np.ogrid[:h, :w]
    r = np.hypot(x - w / 2, y - h / 2) / (0.55 * w)
    fade = np.clip((1.0 - r) / 0.05, 0.0, 1.0)[..., None]
    return (image * fade).astype(np.uint8)


def write_icg_outputs(folder: str | Path, mesh: pv.PolyData, surface_map: SurfaceMap,
                      view: LaparoscopeView | None = None) -> tuple[Path, Path]:
    """Write icg_surface.vtp (expected intensity per vertex) and icg_view.png, atomically."""
    folder = ensure_folder(folder)
    surface, picture = folder / SURFACE_FILE, folder / VIEW_FILE
    with atomic_write(surface) as tmp:
        mesh.save(tmp)
    image = render_nir_view(mesh, surface_map, view)
    with atomic_write(picture) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return surface, picture
