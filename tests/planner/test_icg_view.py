import json
import shutil
import threading

import numpy as np
import pytest
import pyvista as pv
import SimpleITK as sitk
from PIL import Image

from liverplan.errors import Cancelled
from liverplan.geometry import image_from_array
from liverplan.planner.icg import (CAVITY_ARRAY, SURFACE_ARRAY, IcgResult, LaparoscopeView,
                                   cut_surface, surface_fluorescence, transection_fluorescence)
from liverplan.planner.icg_view import (_FIELD_EDGE, _FIELD_RADIUS, LIVER_RGB, caption_box,
                                        cavity_caption, default_view, overlay_colors,
                                        predict_and_write, remnant_surface, render_cavity_view,
                                        render_nir_view, write_icg_outputs)
from tests.planner.test_icg import SPACING, _flat_case, _plane_cut


@pytest.fixture(scope="module")
def right_lobe_lesion():
    """An ellipsoidal 'liver' with one superficial anterior lesion on the patient's right
    (LPS: x < 0) and one deep lesion; direction matrix flipped to catch axis mistakes."""
    ref = sitk.Image([120, 90, 50], sitk.sitkUInt8)
    ref.SetSpacing((1.2, 1.2, 2.0))
    ref.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    ref.SetOrigin((72.0, 54.0, -50.0))
    z, y, x = np.indices((50, 90, 120)).astype(float)
    X, Y, Z = 72.0 - 1.2 * x, 54.0 - 1.2 * y, -50.0 + 2.0 * z
    liver = (X / 60) ** 2 + (Y / 40) ** 2 + (Z / 40) ** 2 <= 1
    tumors = np.zeros(liver.shape, np.uint16)
    tumors[((X + 30) ** 2 + (Y + 22) ** 2 + Z ** 2) <= 36] = 1       # right, anterior, ~5 mm deep
    tumors[(X ** 2 + Y ** 2 + Z ** 2) <= 64] = 2                     # central, deep
    lm = image_from_array(liver.astype(np.uint8), ref)
    tm = image_from_array(tumors, ref)
    return surface_fluorescence(lm, tm)


def test_overlay_is_liver_coloured_below_threshold_and_greener_above():
    colors = overlay_colors(np.array([1.0, 1.5, 1.6, 3.0, 10.0]), threshold=1.52, contrast=0.52)
    assert np.array_equal(colors[0], np.round(255 * LIVER_RGB).astype(np.uint8))
    assert np.array_equal(colors[1], colors[0])                 # below threshold: no tint
    green = colors[:, 1].astype(int) - colors[:, 0]
    assert green[2] > green[1] and green[3] > green[2] and green[4] >= green[3]


def test_default_view_puts_the_patients_right_on_the_image_left(right_lobe_lesion):
    mesh, surface_map = right_lobe_lesion
    assert [r.visible for r in surface_map.lesions] == [True, False]
    arrays = list(mesh.point_data)
    image = render_nir_view(mesh, surface_map, window_size=(400, 300))
    assert image.shape == (300, 400, 3)
    assert list(mesh.point_data) == arrays       # the shown mesh is not altered by the picture
    r, g, b = (image[..., i].astype(int) for i in range(3))
    green = (g > r + 40) & (g > b + 40)
    liver = (r > g + 20) & (r > 60)
    assert green.sum() > 50 and liver.sum() > 10 * green.sum()
    cols = np.nonzero(green)[1]
    assert cols.mean() < 200                     # patient's right lobe on the image left
    assert image[0, 0].max() < 10                # dark corners of the laparoscope field


def test_view_round_trips_and_is_configurable(right_lobe_lesion):
    mesh, surface_map = right_lobe_lesion
    view = default_view(mesh)
    assert view.view_angle_deg == 70.0
    again = LaparoscopeView.from_dict(json.loads(json.dumps(view.to_dict())))
    assert again == view
    # from behind (posterior) the anterior lesion's glow is hidden
    behind = LaparoscopeView(tuple(np.array(mesh.center) + [0, 150, 0]), tuple(mesh.center))
    image = render_nir_view(mesh, surface_map, behind, window_size=(400, 300))
    r, g, b = (image[..., i].astype(int) for i in range(3))
    assert ((g > r + 40) & (g > b + 40)).sum() == 0


def test_outputs_are_written_and_read_back(right_lobe_lesion, tmp_path, output_dir):
    mesh, surface_map = right_lobe_lesion
    vtp, png = write_icg_outputs(tmp_path / "plan", mesh, surface_map)
    assert vtp.name == "icg_surface.vtp" and png.name == "icg_view.png"
    back = pv.read(vtp)
    assert np.allclose(back[SURFACE_ARRAY], mesh[SURFACE_ARRAY])
    assert np.allclose(back.points, mesh.points)
    assert Image.open(png).size == (1024, 768)
    assert not [p for p in (tmp_path / "plan").iterdir() if p.name.startswith(".")]  # no temp left
    Image.open(png).save(output_dir / "icg_view_synthetic.png")



def _plane_cut_masks(margin_mm: float):
    """Liver block, lesion 14 mm deep, resected slab ending `margin_mm` beyond it."""
    lm, tm, _ = _flat_case(14.0)
    a = sitk.GetArrayViewFromImage(tm)
    last_x = np.nonzero(a.any(axis=(0, 1)))[0].max()
    resected = np.zeros(a.shape, np.uint8)
    resected[:, :, : last_x + 1 + int(round(margin_mm / SPACING[0]))] = 1
    return lm, tm, image_from_array(resected, tm)


@pytest.mark.parametrize("margin_mm, glows", [(0.6, True), (12.0, False)])
def test_cavity_view_shows_the_rim_left_behind_by_a_close_cut(margin_mm, glows):
    lm, tm, resected = _plane_cut_masks(margin_mm)
    cut, transection = transection_fluorescence(lm, tm, resected)
    assert transection.lesions[0].nir_cavity == glows
    image = render_cavity_view(pv.PolyData(), cut, transection, window_size=(400, 300))
    r, g, b = (image[..., i].astype(int) for i in range(3))
    assert ((r > 60) | (g > 60)).sum() > 20000            # the cut face fills the view
    assert (((g > r + 40) & (g > b + 40)).sum() > 50) == glows


def test_cavity_caption_names_a_glow_from_a_lesion_left_in_place():
    lm, tm, resected, outcomes = _plane_cut(1.5, lesion_side=False)
    _, left = transection_fluorescence(lm, tm, resected, outcomes=outcomes)
    assert cavity_caption(left).endswith("1 lesion(s) may fluoresce, 1 of them left in place")
    _, close = transection_fluorescence(lm, tm, _plane_cut_masks(0.6)[2])
    assert cavity_caption(close).endswith("1 lesion(s) may fluoresce")


def test_transection_outputs_are_written(tmp_path, output_dir):
    lm, tm, resected = _plane_cut_masks(0.6)
    mesh, surface_map = surface_fluorescence(lm, tm)
    cut, transection = transection_fluorescence(lm, tm, resected)
    remnant = remnant_surface(mesh, resected)
    assert 0 < remnant.n_points < mesh.n_points
    # the specimen's capsule (x = 5.7 mm from the origin) is gone: the remnant starts at the cut
    assert remnant.points[:, 0].min() >= cut.points[:, 0].min() - 0.5
    paths = write_icg_outputs(tmp_path, mesh, surface_map, transection=(cut, transection, resected))
    assert [p.name for p in paths] == ["icg_surface.vtp", "icg_view.png", "icg_transection.vtp",
                                       "icg_cavity.png"]
    back = pv.read(paths[2])
    assert np.allclose(back[CAVITY_ARRAY], cut[CAVITY_ARRAY])
    Image.open(paths[3]).save(output_dir / "icg_cavity_synthetic.png")


def test_remnant_surface_is_the_same_for_a_resected_region_of_liver_voxels_only():
    lm, tm, resected = _plane_cut_masks(0.6)
    mesh, _ = surface_fluorescence(lm, tm)
    liver_only = image_from_array(sitk.GetArrayViewFromImage(resected)
                                  * sitk.GetArrayViewFromImage(lm), lm)
    slab, inside = remnant_surface(mesh, resected), remnant_surface(mesh, liver_only)
    cut_x = cut_surface(lm, resected).points[:, 0].min()
    for remnant in (slab, inside):       # nothing of the specimen's capsule is left
        assert remnant.n_points and remnant.points[:, 0].min() >= cut_x - 0.5
    assert abs(inside.n_points - slab.n_points) < 0.02 * slab.n_points


def test_predict_and_write_is_the_whole_icg_step_of_a_plan(tmp_path):
    lm, tm, resected = _plane_cut_masks(0.6)
    seen = []
    folder = tmp_path / "plan"
    result = predict_and_write(folder, lm, tm, resected,
                               progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # each render is announced, and the bar moves between them (no long stall at one value)
    renders = [f for f, m in seen if m.startswith("ICG: rendering")]
    assert len(renders) == 2 and renders[0] < renders[1] < 1.0
    # names relative to the plan's folder: the record survives moving the folder
    assert result.files == ("icg_surface.vtp", "icg_view.png", "icg_transection.vtp",
                            "icg_cavity.png")
    moved = shutil.move(folder, tmp_path / "moved")
    again = IcgResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result
    assert all(p.is_file() for p in again.paths(moved))
    assert result.transection.lesions[0].nir_cavity
    assert result.view.view_angle_deg == 70.0                # the pose of icg_view.png is kept
    text = "\n".join(result.lines())
    assert "ICG on the liver surface" in text and "ICG on the transection" in text
    without_cut = predict_and_write(tmp_path / "surface-only", lm, tm)
    assert without_cut.transection is None and len(without_cut.files) == 2


def test_cancel_is_honoured_between_the_renders(tmp_path):
    lm, tm, resected = _plane_cut_masks(0.6)
    mesh, surface_map = surface_fluorescence(lm, tm)
    cut, transection = transection_fluorescence(lm, tm, resected)
    stop = threading.Event()

    def progress(fraction, message):
        if message.startswith("ICG: rendering the NIR view of the liver"):
            stop.set()                      # the user presses Cancel during the first render

    with pytest.raises(Cancelled):
        write_icg_outputs(tmp_path, mesh, surface_map, transection=(cut, transection, resected),
                          progress=progress, cancel=stop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["icg_surface.vtp", "icg_view.png"]


@pytest.mark.parametrize("size", [(1024, 768), (900, 700), (640, 480), (400, 300)])
def test_caption_lies_inside_the_visible_scope_field(size):
    text = "Simulated NIR (ICG), expected not measured: 12 of 12 lesions expected visible"
    font, (left, top, right, bottom) = caption_box(size, text)
    w, h = size
    visible = _FIELD_RADIUS * w * (1 - _FIELD_EDGE)
    for x, y in ((left, top), (right, top), (left, bottom), (right, bottom)):
        assert np.hypot(x - w / 2, y - h / 2) <= visible
    assert bottom > 0.85 * h and font.size >= 6          # at the bottom, readable


def test_rendered_caption_is_not_cut_by_the_scope_edge():
    # an empty scene: every bright pixel is caption text, all of it in the fully visible disc
    mesh = pv.Sphere(radius=1.0, center=(0, 0, 1e4))     # far outside the field of view
    lm, tm, _ = _flat_case(4.0)
    _, surface_map = surface_fluorescence(lm, tm)
    mesh.point_data[SURFACE_ARRAY] = np.ones(mesh.n_points)
    image = render_nir_view(mesh, surface_map, LaparoscopeView((0, 0, 0), (0, 0, -1), (0, 1, 0)),
                            window_size=(640, 480))
    y, x = np.nonzero(image.max(axis=2) > 128)
    assert len(x) > 200                                  # the caption is drawn
    r = np.hypot(x - 320, y - 240) / (_FIELD_RADIUS * 640)
    assert r.max() <= 1 - _FIELD_EDGE
    assert y.min() > 0.8 * 480
