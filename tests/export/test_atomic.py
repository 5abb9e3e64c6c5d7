import subprocess
import sys
import textwrap

import pytest

from liverplan.errors import ExportError
from liverplan.io.atomic import atomic_write, ensure_folder

from .conftest import ROOT


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "report.pdf"
    target.write_bytes(b"old report")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"half a new rep")
            raise RuntimeError("renderer crashed")
    assert target.read_bytes() == b"old report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.pdf"]


def test_the_temporary_file_keeps_the_suffix_and_the_folder(tmp_path):
    with atomic_write(tmp_path / "liver.stl") as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".stl" and tmp.name.startswith(".")
        tmp.write_text("solid")
    assert (tmp_path / "liver.stl").read_text() == "solid"


def test_a_file_in_place_of_the_folder_is_explained(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="part of the path is a file") as info:
        with atomic_write(tmp_path / "file" / "liver.stl") as tmp:
            tmp.write_text("solid")
    assert info.value.path == tmp_path / "file" / "liver.stl"
    assert (tmp_path / "file").read_text() == "x"


def test_a_folder_that_cannot_be_created_is_explained(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="could not write") as info:
        ensure_folder(tmp_path / "file" / "export")
    assert info.value.path == tmp_path / "file" / "export"


# Runs in a child process whose file-size limit makes every write beyond 20 kB fail (EFBIG),
# the way a full disk fails a write half-way. Python ignores SIGXFSZ, so write() raises.
_FULL_DISK = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from liverplan.errors import ExportError
    from liverplan.io.export_seg import write_seg
    from liverplan.io.images import read_image
    folder = Path({folder!r})
    labels = {{name: read_image(folder / f"{{name}}.nii.gz") for name in ("liver", "tumors")}}
    files = sorted(str(p) for p in (folder / "ct").iterdir())
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
    try:
        write_seg(labels, files, folder / "seg.dcm")
    except ExportError as exc:
        print(exc)
        sys.exit(3)
""")


def test_a_full_disk_gives_a_clear_message_and_keeps_the_old_export(small_case, tmp_path):
    from liverplan.io.images import write_image
    import shutil

    shutil.copytree(small_case.dicom_dir, tmp_path / "ct")
    for name in ("liver", "tumors"):
        write_image(small_case.labels[name], tmp_path / f"{name}.nii.gz")
    (tmp_path / "seg.dcm").write_bytes(b"previous export")
    run = subprocess.run([sys.executable, "-c", _FULL_DISK.format(root=str(ROOT), folder=str(tmp_path))],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 3, run.stderr
    assert "disk is full" in run.stdout and "seg.dcm" in run.stdout
    assert (tmp_path / "seg.dcm").read_bytes() == b"previous export"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
