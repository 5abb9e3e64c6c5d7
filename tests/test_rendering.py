"""Off-screen pictures: quiet without a display, VTK's own window with one (the desktop app's
runner, which renders them on the GUI thread, is tested with the window: tests/viewers)."""

import os
import subprocess
import sys

import pyvista as pv

from liverplan.rendering import offscreen_plotter


def test_offscreen_render_without_display_is_quiet(tmp_path):
    """No 'bad X server connection' from VTK trying X first when there is no display."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "VTK_DEFAULT_OPENGL_WINDOW")}
    code = ("from liverplan.rendering import offscreen_plotter\n"
            "import pyvista as pv, os\n"
            "with offscreen_plotter((64, 48)) as p:\n"
            "    p.add_mesh(pv.Sphere())\n"
            "    image = p.screenshot(return_img=True)\n"
            "    print(p.ren_win.GetClassName(), image.shape, image.max(),\n"
            "          'VTK_DEFAULT_OPENGL_WINDOW' in os.environ)\n")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["vtkEGLRenderWindow", "(48,", "64,", "3)", "255", "False"]
    assert "bad X server" not in run.stderr and "DISPLAY" not in run.stderr


def test_offscreen_render_with_a_display_keeps_vtks_choice():
    # pytest-xvfb provides DISPLAY here, as the GUI has: VTK's own choice is left alone
    assert os.environ.get("DISPLAY")
    with offscreen_plotter((64, 48)) as plotter:
        plotter.add_mesh(pv.Sphere())
        image = plotter.screenshot(return_img=True)
        assert plotter.ren_win.GetClassName() == "vtkXOpenGLRenderWindow"
    assert image.shape == (48, 64, 3) and image.max() > 100
    assert "VTK_DEFAULT_OPENGL_WINDOW" not in os.environ

