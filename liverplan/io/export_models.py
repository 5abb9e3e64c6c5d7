"""3D models for printing and AR/VR: STL per structure, PLY per structure, one glTF binary scene.

Vertices are in the patient coordinates of the source CT (DICOM LPS, millimetres): a model
printed or overlaid lines up with the scan. STL and PLY carry that statement in their header;
the folder holds models.json and README.txt that say it too. The glTF scene keeps the LPS mm
vertices and adds one root node that converts them to glTF's convention (metres, +Y up), so AR
viewers show the organ at its true size with the patient upright and facing the viewer.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import pyvista as pv
import SimpleITK as sitk
import vtk

from liverplan import __version__
from liverplan.case import LIVER, SEGMENTS, TUMORS, VESSELS
from liverplan.errors import ExportError
from liverplan.io.atomic import atomic_write, ensure_folder
from liverplan.io.export_seg import (HEPATIC_VEINS_LABEL, LIVER_LABEL, PORTAL_VEIN_LABEL,
                                     STRUCTURE_RGB, lesion_label, segment_colour, segment_label)
from liverplan.meshes import mask_to_mesh
from liverplan.progress import Steps

MAX_FACES = 100_000          # per structure: smooth enough to print, small enough for AR headsets
COORDINATES = "DICOM patient coordinates LPS (x to the patient's Left, y Posterior, z Superior), mm"
# LPS mm -> glTF (metres; +X patient left, +Y superior, +Z anterior: the patient faces the viewer).
LPS_TO_GLTF = (0.001 * np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1000]])).T


@dataclass(frozen=True)
class Structure:
    """A mask to turn into a model: its name, label value (None: non-zero), colour and opacity."""
    name: str
    mask: sitk.Image
    rgb: tuple[int, int, int]
    label: int | None = None
    opacity: float = 1.0


@dataclass
class ModelExport:
    folder: Path
    files: list[Path] = field(default_factory=list)
    structures: list[dict] = field(default_factory=list)   # what models.json lists
    warnings: list[str] = field(default_factory=list)


def structures_from_labels(labels: Mapping[str, sitk.Image], *, remnant: sitk.Image | None = None,
                           resected: sitk.Image | None = None) -> list[Structure]:
    """The structures a surgeon wants as models, from a Case's label images and a resection."""
    out: list[Structure] = []
    liver = labels.get(LIVER)
    if liver is not None:
        out.append(Structure(LIVER_LABEL, liver, STRUCTURE_RGB["liver"], opacity=0.35))
    tumors = labels.get(TUMORS)
    if tumors is not None:
        a = sitk.GetArrayViewFromImage(tumors)
        out += [Structure(lesion_label(int(i)), tumors, STRUCTURE_RGB["lesion"], label=int(i))
                for i in np.unique(a[a > 0])]
    vessels = labels.get(VESSELS)
    if vessels is not None:
        out += [Structure(PORTAL_VEIN_LABEL, vessels, STRUCTURE_RGB["portal"], label=1),
                Structure(HEPATIC_VEINS_LABEL, vessels, STRUCTURE_RGB["hepatic"], label=2)]
    segments = labels.get(SEGMENTS)
    if segments is not None:
        out += [Structure(segment_label(n), segments, segment_colour(n), label=n, opacity=0.5)
                for n in range(1, 9)]
    if remnant is not None:
        out.append(Structure("Remnant", remnant, STRUCTURE_RGB["remnant"], opacity=0.6))
    if resected is not None:
        out.append(Structure("Resected", resected, STRUCTURE_RGB["resected"], opacity=0.6))
    return out


def file_stem(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def cut_surface(remnant_mesh: pv.PolyData, resected_mesh: pv.PolyData, *,
                tolerance_mm: float) -> pv.PolyData:
    """The transection plane: the part of the remnant's surface that touches the resected part."""
    if remnant_mesh.n_points == 0 or resected_mesh.n_points == 0:
        return pv.PolyData()
    d = np.abs(remnant_mesh.compute_implicit_distance(resected_mesh)["implicit_distance"])
    near = remnant_mesh.extract_points(d <= tolerance_mm, adjacent_cells=False)
    return near.extract_surface(algorithm="dataset_surface") if near.n_points else pv.PolyData()


def _write_stl(mesh: pv.PolyData, path: Path, name: str) -> None:
    writer = vtk.vtkSTLWriter()
    writer.SetInputData(mesh)
    writer.SetFileTypeToBinary()
    writer.SetHeader(f"LiverPlan {name}: LPS mm"[:80])   # the 80-byte header is STL's only metadata
    with atomic_write(path) as tmp:
        writer.SetFileName(str(tmp))
        if not writer.Write():
            raise OSError(f"VTK could not write {path.name}")


def _write_ply(mesh: pv.PolyData, path: Path, name: str, rgb) -> None:
    writer = vtk.vtkPLYWriter()
    writer.SetInputData(mesh)
    writer.SetFileTypeToBinary()
    writer.AddComment(f"LiverPlan {name}")
    writer.AddComment(f"coordinates: {COORDINATES}")
    writer.SetColorModeToUniformColor()
    writer.SetColor(*rgb)
    with atomic_write(path) as tmp:
        writer.SetFileName(str(tmp))
        if not writer.Write():
            raise OSError(f"VTK could not write {path.name}")


def glb_bytes(meshes: list[tuple[str, pv.PolyData, tuple[int, int, int], float]],
              *, extras: dict) -> bytes:
    """A glTF 2.0 binary holding each (name, triangle mesh, rgb, opacity) as one node."""
    blob = bytearray()
    gltf: dict = {"asset": {"version": "2.0", "generator": f"LiverPlan {__version__}",
                            "extras": extras},
                  "scene": 0, "scenes": [{"nodes": [0]}],
                  "nodes": [{"name": "LPS_mm_to_glTF", "matrix": LPS_TO_GLTF.ravel().tolist(),
                             "children": []}],
                  "meshes": [], "materials": [], "accessors": [], "bufferViews": []}

    def add_view(array: np.ndarray, target: int) -> int:
        blob.extend(b"\0" * (-len(blob) % 4))
        gltf["bufferViews"].append({"buffer": 0, "byteOffset": len(blob),
                                    "byteLength": array.nbytes, "target": target})
        blob.extend(array.tobytes())
        return len(gltf["bufferViews"]) - 1

    def add_accessor(array: np.ndarray, component: int, kind: str, target: int, bounds=False) -> int:
        acc = {"bufferView": add_view(array, target), "componentType": component,
               "count": len(array), "type": kind}
        if bounds:
            acc["min"], acc["max"] = array.min(axis=0).tolist(), array.max(axis=0).tolist()
        gltf["accessors"].append(acc)
        return len(gltf["accessors"]) - 1

    for name, mesh, rgb, opacity in meshes:
        tri = mesh.triangulate()
        if "Normals" not in tri.point_data:
            tri = tri.compute_normals(split_vertices=False)
        points = np.ascontiguousarray(tri.points, dtype="<f4")
        normals = np.ascontiguousarray(tri.point_data["Normals"], dtype="<f4")
        faces = np.ascontiguousarray(tri.faces.reshape(-1, 4)[:, 1:].ravel(), dtype="<u4")
        position = add_accessor(points, 5126, "VEC3", 34962, bounds=True)
        normal = add_accessor(normals, 5126, "VEC3", 34962)
        indices = add_accessor(faces, 5125, "SCALAR", 34963)
        gltf["materials"].append({
            "name": name, "doubleSided": True,
            "alphaMode": "BLEND" if opacity < 1 else "OPAQUE",
            "pbrMetallicRoughness": {"baseColorFactor": [*(c / 255 for c in rgb), opacity],
                                     "metallicFactor": 0.0, "roughnessFactor": 0.7}})
        gltf["meshes"].append({"name": name, "primitives": [{
            "attributes": {"POSITION": position, "NORMAL": normal}, "indices": indices,
            "material": len(gltf["materials"]) - 1, "mode": 4}]})
        gltf["nodes"].append({"name": name, "mesh": len(gltf["meshes"]) - 1})
        gltf["nodes"][0]["children"].append(len(gltf["nodes"]) - 1)
    blob.extend(b"\0" * (-len(blob) % 4))
    gltf["buffers"] = [{"byteLength": len(blob)}]
    text = json.dumps(gltf, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + len(blob)
    return (struct.pack("<III", 0x46546C67, 2, total)
            + struct.pack("<II", len(text), 0x4E4F534A) + text
            + struct.pack("<II", len(blob), 0x004E4942) + bytes(blob))


def export_models(structures: list[Structure], out_dir: str | Path, *,
                  source: dict | None = None, max_faces: int = MAX_FACES,
                  progress=None, cancel=None) -> ModelExport:
    """Write STL + PLY per structure, the cut surface, one scene.glb, models.json and README.txt.

    `source` (e.g. {"series_instance_uid": ..., "frame_of_reference_uid": ...}) is recorded in
    models.json so the models can be matched to the scan they came from.
    """
    if not structures:
        raise ExportError("there is no segmentation to make models from; segment the liver first")
    steps = Steps(progress, cancel)
    folder = ensure_folder(out_dir)
    result = ModelExport(folder)
    scene, meshes = [], {}
    for i, s in enumerate(structures):
        steps.report(0.8 * i / len(structures), f"Surface of {s.name}")
        mesh = mask_to_mesh(s.mask, label=s.label, target_faces=max_faces)
        if mesh.n_points == 0:
            result.warnings.append(f"{s.name} is empty; no model was written for it")
            continue
        meshes[s.name] = mesh
        stem = file_stem(s.name)
        stl, ply = folder / f"{stem}.stl", folder / f"{stem}.ply"
        _write_stl(mesh, stl, s.name)
        _write_ply(mesh, ply, s.name, s.rgb)
        result.files += [stl, ply]
        scene.append((s.name, mesh, s.rgb, s.opacity))
        result.structures.append({"name": s.name, "files": [stl.name, ply.name],
                                  "volume_ml": round(mesh.volume / 1000.0, 2),
                                  "faces": mesh.n_cells, "closed": mesh.n_open_edges == 0,
                                  "rgb": list(s.rgb)})
    if "Remnant" in meshes and "Resected" in meshes:
        steps.report(0.85, "Cut surface")
        spacing = max(next(s.mask for s in structures if s.name == "Remnant").GetSpacing())
        cut = cut_surface(meshes["Remnant"], meshes["Resected"], tolerance_mm=spacing)
        if cut.n_points:
            ply = folder / "cut_surface.ply"
            _write_ply(cut, ply, "Cut surface (transection plane, open sheet)", STRUCTURE_RGB["cut"])
            result.files.append(ply)
            scene.append(("Cut surface", cut, STRUCTURE_RGB["cut"], 1.0))
            result.structures.append({"name": "Cut surface", "files": [ply.name],
                                      "area_cm2": round(cut.area / 100.0, 1),
                                      "faces": cut.n_cells, "closed": False,
                                      "rgb": list(STRUCTURE_RGB["cut"])})
        else:
            result.warnings.append("the remnant and the resected part do not touch; "
                                   "no cut surface was written")
    steps.report(0.9, "glTF scene")
    info = {"coordinates": COORDINATES, "units": "mm", "software": f"LiverPlan {__version__}",
            "source": source or {},
            "gltf_root_node": "LPS_mm_to_glTF scales mm to m and turns LPS to glTF +Y up"}
    glb = folder / "scene.glb"
    with atomic_write(glb) as tmp:
        tmp.write_bytes(glb_bytes(scene, extras=info))
    result.files.append(glb)
    sidecar = folder / "models.json"
    with atomic_write(sidecar) as tmp:
        tmp.write_text(json.dumps({**info, "structures": result.structures,
                                   "warnings": result.warnings}, indent=2))
    readme = folder / "README.txt"
    with atomic_write(readme) as tmp:
        tmp.write_text(_readme(result))
    result.files += [sidecar, readme]
    steps.report(1.0, "Models written")
    return result


def _readme(result: ModelExport) -> str:
    lines = ["LiverPlan 3D models", "",
             f"Coordinates: {COORDINATES}.",
             "Every STL and PLY file is in millimetres in the coordinates of the source CT, so",
             "the models line up with the scan and with each other. STL files are closed",
             "(watertight) surfaces for 3D printing; set your slicer's unit to millimetres.",
             "cut_surface.ply is the transection plane, an open sheet for viewing only.",
             "scene.glb holds every model for AR/VR viewers: its root node converts to glTF",
             "metres with +Y superior and +Z anterior (the patient faces the viewer).",
             "", "Structures:"]
    lines += [f"  {s['name']}: {', '.join(s['files'])}" for s in result.structures]
    lines += ["", "Decision support only: check every model against the CT before use."]
    return "\n".join(lines) + "\n"
