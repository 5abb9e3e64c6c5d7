import json
import struct

import numpy as np
import pytest
import pyvista as pv
import SimpleITK as sitk

from liverplan.errors import ExportError
from liverplan.geometry import image_from_array, index_to_lps
from liverplan.io.export_models import (LPS_TO_GLTF, Structure, export_models,
                                        structures_from_labels)


def _sphere(radius_mm=15.0):
    ref = sitk.Image([50, 44, 30], sitk.sitkUInt8)
    ref.SetSpacing((0.9, 0.9, 1.6))
    ref.SetOrigin((30.0, -60.0, 100.0))
    c, s = np.cos(0.4), np.sin(0.4)
    ref.SetDirection((c, 0, s, 0, 1, 0, -s, 0, c))   # oblique: must follow the direction matrix
    centre = np.asarray(ref.TransformContinuousIndexToPhysicalPoint((25, 22, 15)))
    shape = tuple(reversed(ref.GetSize()))
    pts = index_to_lps(ref, np.indices(shape).reshape(3, -1).T)
    d = pts - centre
    inside = (np.linalg.norm(d, axis=1) <= radius_mm).reshape(shape)
    left = inside & (d[:, 0] > 0).reshape(shape)        # +x is the patient's left in LPS
    return (image_from_array(inside.astype(np.uint8), ref), centre,
            image_from_array((inside & ~left).astype(np.uint8), ref),
            image_from_array(left.astype(np.uint8), ref))


def _read_glb(path):
    data = path.read_bytes()
    magic, version, total = struct.unpack("<III", data[:12])
    assert (magic, version, total) == (0x46546C67, 2, len(data))
    n_json, kind = struct.unpack("<II", data[12:20])
    assert kind == 0x4E4F534A and n_json % 4 == 0
    gltf = json.loads(data[20:20 + n_json])
    n_bin, kind = struct.unpack("<II", data[20 + n_json:28 + n_json])
    assert kind == 0x004E4942 and n_bin == gltf["buffers"][0]["byteLength"]
    return gltf, data[28 + n_json:]


def test_a_sphere_exports_with_its_lps_centroid_and_volume(tmp_path):
    sphere, centre, _, _ = _sphere(15.0)
    result = export_models([Structure("Liver", sphere, (200, 120, 90))], tmp_path)
    stl = pv.read(tmp_path / "liver.stl")
    assert stl.n_open_edges == 0
    assert np.allclose(stl.center, centre, atol=0.5)
    true_ml = 4 / 3 * np.pi * 15.0**3 / 1000
    assert abs(stl.volume / 1000 - true_ml) / true_ml < 0.04
    assert b"LPS mm" in (tmp_path / "liver.stl").read_bytes()[:80]
    ply = pv.read(tmp_path / "liver.ply")
    assert np.allclose(ply.center, centre, atol=0.5)
    sidecar = json.loads((tmp_path / "models.json").read_text())
    assert sidecar["units"] == "mm" and "LPS" in sidecar["coordinates"]
    assert sidecar["structures"][0]["closed"] is True
    assert abs(sidecar["structures"][0]["volume_ml"] - true_ml) / true_ml < 0.04
    assert {p.name for p in result.files} == {"liver.stl", "liver.ply", "scene.glb",
                                              "models.json", "README.txt"}


def test_glb_holds_lps_mm_vertices_and_a_root_node_to_gltf_metres(tmp_path):
    sphere, centre, _, _ = _sphere(15.0)
    export_models([Structure("Liver", sphere, (200, 120, 90), opacity=0.4)], tmp_path)
    gltf, blob = _read_glb(tmp_path / "scene.glb")
    acc = gltf["accessors"][gltf["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]
    view = gltf["bufferViews"][acc["bufferView"]]
    pts = np.frombuffer(blob, "<f4", acc["count"] * 3, view["byteOffset"]).reshape(-1, 3)
    assert np.allclose((pts.min(0) + pts.max(0)) / 2, centre, atol=0.6)
    assert np.allclose(acc["min"], pts.min(0)) and np.allclose(acc["max"], pts.max(0))
    m = np.array(gltf["nodes"][0]["matrix"]).reshape(4, 4).T   # glTF is column-major
    superior = m @ [0, 0, 1000, 1]        # 1 m superior in LPS -> +Y (up) in glTF
    anterior = m @ [0, -1000, 0, 1]       # 1 m anterior -> +Z (towards the viewer)
    assert np.allclose(superior[:3], [0, 1, 0]) and np.allclose(anterior[:3], [0, 0, 1])
    assert np.allclose(m, LPS_TO_GLTF.T)
    assert gltf["materials"][0]["alphaMode"] == "BLEND"
    # VTK's own glTF reader (independent of our writer) applies the root node: metres, Y up
    scene = pv.get_reader(tmp_path / "scene.glb").read()
    (x0, x1), (y0, y1), (z0, z1) = np.asarray(pv.read(tmp_path / "liver.stl").bounds).reshape(3, 2)
    expected = np.array([x0, x1, z0, z1, -y1, -y0]) / 1000   # X = left, Y = superior, Z = anterior
    assert np.allclose(scene.bounds, expected, atol=1e-4)


def test_remnant_resected_and_cut_surface(tmp_path):
    sphere, centre, remnant, resected = _sphere(15.0)
    result = export_models(structures_from_labels({"liver": sphere}, remnant=remnant,
                                                  resected=resected), tmp_path)
    names = [s["name"] for s in result.structures]
    assert names == ["Liver", "Remnant", "Resected", "Cut surface"]
    rem, res = pv.read(tmp_path / "remnant.stl"), pv.read(tmp_path / "resected.stl")
    assert rem.n_open_edges == 0 and res.n_open_edges == 0
    assert rem.center[0] < centre[0] < res.center[0]       # resected part is on the patient's left
    cut = pv.read(tmp_path / "cut_surface.ply")
    assert cut.n_points > 0
    assert np.allclose(cut.points[:, 0], centre[0], atol=2.5)   # the sagittal cut plane x = centre
    assert cut.area / 100 == pytest.approx(np.pi * 15.0**2 / 100, rel=0.3)


def test_models_are_decimated_to_the_face_budget(tmp_path):
    sphere, _, _, _ = _sphere(15.0)
    result = export_models([Structure("Liver", sphere, (1, 2, 3))], tmp_path, max_faces=1500)
    assert result.structures[0]["faces"] <= 1650
    assert pv.read(tmp_path / "liver.stl").n_open_edges == 0


def test_empty_structures_are_reported_not_written(tmp_path):
    sphere, _, _, _ = _sphere(10.0)
    empty = sitk.Image(sphere.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(sphere)
    result = export_models([Structure("Liver", sphere, (1, 2, 3)),
                            Structure("Portal vein", empty, (1, 2, 3))], tmp_path)
    assert not (tmp_path / "portal_vein.stl").exists()
    assert any("Portal vein is empty" in w for w in result.warnings)


def test_no_structures_is_an_error(tmp_path):
    with pytest.raises(ExportError, match="segment the liver"):
        export_models([], tmp_path)


def test_small_case_exports_every_structure(small_case, tmp_path):
    result = export_models(structures_from_labels(small_case.labels), tmp_path)
    names = {s["name"] for s in result.structures}
    assert {"Liver", "Lesion 1", "Lesion 2", "Portal vein", "Hepatic veins and IVC"} <= names
    assert {f"Segment {n}" for n in range(1, 9)} <= names
    for s in result.structures:
        assert s["closed"], s["name"]
