"""Rules of the house that a reading of the code can check (../shared/DESIGN.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ("io", "volumetry", "planner")


def _modules(*folders: str):
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path, ast.parse(path.read_text(), str(path))


def test_the_core_never_imports_qt():
    found = []
    for path, tree in _modules(*(f"liverplan/{p}" for p in CORE)):
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names
                      if n.split(".")[0] in ("PySide6", "pyvistaqt")]
    assert not found


@pytest.mark.parametrize("folder", ["liverplan", "tests", "benchmarks"])
def test_no_array_view_of_a_temporary_image(folder):
    """A NumPy view does not keep its SimpleITK image alive: a view of an image made in the same
    expression reads freed memory (a CI run failed on one in a test)."""
    found = []
    for path, tree in _modules(folder):
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and node.args
                    and getattr(node.func, "attr", getattr(node.func, "id", "")) ==
                    "GetArrayViewFromImage" and _makes_an_image(node.args[0])):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found


def _makes_an_image(arg: ast.expr) -> bool:
    """A call (or an attribute of a call's result), except the accessors that return an image
    that something else holds (a Case's labels)."""
    while isinstance(arg, ast.Attribute):
        arg = arg.value
    return isinstance(arg, ast.Call) and getattr(arg.func, "attr", None) not in ("label", "get")
