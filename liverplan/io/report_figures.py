"""Pictures for the plan report: 3D snapshots (off-screen pyvista) and axial CT slices with outlines.

Every picture is labelled with the patient's sides, so a reader can never mistake left for right:
3D views say which side of the image is the patient's right, axial slices are shown in the
radiological convention (patient's right on the image's left, anterior at the top) after
reorienting the image to LPS with SimpleITK, never by flipping arrays by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pyvista as pv
import SimpleITK as sitk
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from liverplan.case import LIVER, TUMORS, VESSELS
from liverplan.io.export_seg import STRUCTURE_RGB
from liverplan.meshes import mask_to_mesh
from liverplan.rendering import picture

WINDOW_HU = (-160.0, 240.0)     # abdominal soft-tissue window
_FACES = 20_000                 # per structure: plenty for a report picture


@dataclass(frozen=True)
class Figure:
    caption: str
    image: np.ndarray            # (H, W, 3) uint8


def _meshes(labels: Mapping[str, sitk.Image], resected: sitk.Image | None):
    """(mesh, rgb, opacity) of the structures drawn in the 3D snapshots."""
    out = {}
    liver = labels.get(LIVER)
    if liver is not None:
        out["liver"] = mask_to_mesh(liver, target_faces=_FACES)
    if labels.get(TUMORS) is not None:
        out["lesion"] = mask_to_mesh(labels[TUMORS], target_faces=_FACES)
    if labels.get(VESSELS) is not None:
        out["portal"] = mask_to_mesh(labels[VESSELS], label=1, target_faces=_FACES)
        out["hepatic"] = mask_to_mesh(labels[VESSELS], label=2, target_faces=_FACES)
    if resected is not None and liver is not None:
        live = sitk.GetArrayViewFromImage(liver) != 0
        cut = sitk.GetArrayViewFromImage(resected) != 0
        for name, part in (("remnant", live & ~cut), ("resected", live & cut)):
            image = sitk.GetImageFromArray(part.astype(np.uint8))
            image.CopyInformation(liver)
            out[name] = mask_to_mesh(image, target_faces=_FACES)
    return {k: m for k, m in out.items() if m.n_points}


def _render(parts, *, view: str, title: str, size=(900, 700)) -> np.ndarray:
    """One view of `parts` [(mesh, rgb, opacity)], camera from `view` ('anterior'/'posterior')."""
    def draw(plotter: pv.Plotter) -> None:
        plotter.set_background("white")
        for mesh, rgb, opacity in parts:
            plotter.add_mesh(mesh, color=[c / 255 for c in rgb], opacity=opacity,
                             smooth_shading=True, specular=0.2)
        # LPS: anterior is -y, superior +z. From the front the patient's right is on image left.
        plotter.camera_position = [(0, -1, 0) if view == "anterior" else (0, 1, 0), (0, 0, 0),
                                   (0, 0, 1)]
        plotter.reset_camera()
        plotter.camera.zoom(1.25)
        right, left = ("R", "L") if view == "anterior" else ("L", "R")
        plotter.add_text(right, position="left_edge", font_size=16, color="black")
        plotter.add_text(left, position="right_edge", font_size=16, color="black")
        plotter.add_text(title, position="upper_edge", font_size=11, color="black")
    return picture(size, draw)


def snapshots(labels: Mapping[str, sitk.Image], *, resected: sitk.Image | None = None,
              icg_image: np.ndarray | None = None) -> list[Figure]:
    """Anterior and posterior views of the liver and its structures, the resection, the ICG view."""
    meshes = _meshes(labels, resected)
    if not meshes:
        return []
    anatomy = [(meshes[k], STRUCTURE_RGB[k], 0.3 if k == "liver" else 1.0)
               for k in ("liver", "lesion", "portal", "hepatic") if k in meshes]
    figures = [Figure("Anterior view: liver (translucent), lesions (yellow), portal vein "
                      "(purple), hepatic veins and IVC (blue)",
                      _render(anatomy, view="anterior", title="Anterior view")),
               Figure("Posterior view", _render(anatomy, view="posterior", title="Posterior view"))]
    if "remnant" in meshes:
        parts = [(meshes[k], STRUCTURE_RGB[k], 0.55) for k in ("remnant", "resected")]
        parts += [(meshes[k], STRUCTURE_RGB[k], 1.0)
                  for k in ("lesion", "portal", "hepatic") if k in meshes]
        figures.append(Figure("Planned resection: remnant (green), resected part (red)",
                              _render(parts, view="anterior", title="Resection, anterior view")))
    if icg_image is not None:
        figures.append(Figure("Expected ICG fluorescence (simulated NIR view, not a measurement)",
                              np.asarray(icg_image)[..., :3]))
    return figures


def _outline(mask2d: np.ndarray) -> np.ndarray:
    return mask2d & ~ndimage.binary_erosion(mask2d)


def axial_slices(image: sitk.Image, labels: Mapping[str, sitk.Image],
                 slices: list[tuple[str, tuple[float, float, float]]],
                 *, resected: sitk.Image | None = None, width_px: int = 420) -> list[Figure]:
    """Axial CT slices through the given LPS points (mm), with outlines; radiological convention."""
    lps = sitk.DICOMOrient(image, "LPS")        # rows anterior->posterior, columns right->left
    oriented = {k: sitk.DICOMOrient(v, "LPS") for k, v in labels.items() if v is not None}
    if resected is not None:
        oriented["resected"] = sitk.DICOMOrient(resected, "LPS")
    ct = sitk.GetArrayViewFromImage(lps)
    sx, sy = lps.GetSpacing()[:2]
    rows, cols = _crop(oriented.get(LIVER), ct.shape[1:], margin_px=(round(25 / sy), round(25 / sx)))
    font = ImageFont.load_default(size=18)
    figures = []
    for caption, point in slices:
        k = int(round(lps.TransformPhysicalPointToContinuousIndex(tuple(map(float, point)))[2]))
        k = min(max(k, 0), ct.shape[0] - 1)
        lo, hi = WINDOW_HU
        gray = (np.clip((ct[k] - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
        rgb = np.repeat(gray[..., None], 3, axis=2)
        layers = []
        if LIVER in oriented:
            layers.append((sitk.GetArrayViewFromImage(oriented[LIVER])[k] != 0,
                           STRUCTURE_RGB["liver"]))
        if "resected" in oriented and LIVER in oriented:
            cut = sitk.GetArrayViewFromImage(oriented["resected"])[k] != 0
            layers.append((layers[0][0] & cut, STRUCTURE_RGB["resected"]))
        if VESSELS in oriented:
            v = sitk.GetArrayViewFromImage(oriented[VESSELS])[k]
            layers += [(v == 1, STRUCTURE_RGB["portal"]), (v == 2, STRUCTURE_RGB["hepatic"])]
        if TUMORS in oriented:
            layers.append((sitk.GetArrayViewFromImage(oriented[TUMORS])[k] != 0,
                           STRUCTURE_RGB["lesion"]))
        for mask, colour in layers:
            rgb[_outline(mask)] = colour
        rgb = rgb[rows, cols]
        h, w = rgb.shape[:2]
        scale = width_px / (w * sx)
        picture = Image.fromarray(rgb).resize((width_px, max(1, round(h * sy * scale))),
                                              Image.NEAREST)
        draw = ImageDraw.Draw(picture)
        pw, ph = picture.size
        for text, xy in (("R", (5, ph // 2 - 9)), ("L", (pw - 16, ph // 2 - 9)),
                         ("A", (pw // 2 - 6, 3)), ("P", (pw // 2 - 6, ph - 22))):
            draw.text(xy, text, fill=(255, 255, 0), font=font)
        figures.append(Figure(f"{caption} (axial, z = {point[2]:.1f} mm)", np.asarray(picture)))
    return figures


def _crop(liver: sitk.Image | None, shape: tuple[int, int], *, margin_px) -> tuple[slice, slice]:
    """In-plane rows and columns around the liver (over all slices), so the slices show detail."""
    if liver is None or not sitk.GetArrayViewFromImage(liver).any():
        return slice(None), slice(None)
    rows, cols = np.nonzero(sitk.GetArrayViewFromImage(liver).any(axis=0))
    return (slice(max(rows.min() - margin_px[0], 0), min(rows.max() + margin_px[0] + 1, shape[0])),
            slice(max(cols.min() - margin_px[1], 0), min(cols.max() + margin_px[1] + 1, shape[1])))


def key_slices(labels: Mapping[str, sitk.Image], lesions: list[dict], *, limit: int = 6
               ) -> list[tuple[str, tuple[float, float, float]]]:
    """Where to cut the axial slices: through each lesion centroid, else the liver's widest slice."""
    out = [(f"Lesion {d['lesion_id']}", tuple(d["centroid_lps_mm"])) for d in lesions[:limit]]
    liver = labels.get(LIVER)
    if not out and liver is not None:
        area = np.count_nonzero(sitk.GetArrayViewFromImage(liver), axis=(1, 2))
        out.append(("Largest liver section",
                    liver.TransformIndexToPhysicalPoint((0, 0, int(np.argmax(area))))))
    return out
