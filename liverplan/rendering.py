"""Off-screen pictures (report snapshots, the simulated NIR view) rendered where it is safe.

OpenGL and the X connection are not thread-safe: while the desktop app's 3-D view renders on
the GUI thread, a background task rendering off screen at the same time corrupted memory now
and then (the suite aborted in widget teardown: "malloc_consolidate(): unaligned fastbin chunk
detected"). The app therefore installs a runner (`set_runner`, liverplan.viewers.workers) that
hands each picture to the GUI thread; without one (command line, tests of the core) a picture
is rendered on the calling thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import pyvista as pv

_runner: Callable[[Callable[[], np.ndarray]], np.ndarray] | None = None


def set_runner(runner: Callable[[Callable[[], np.ndarray]], np.ndarray] | None) -> None:
    """`runner(render)` calls `render()` on the thread allowed to render and returns its result."""
    global _runner
    _runner = runner


@contextmanager
def offscreen_plotter(window_size: tuple[int, int], **kwargs):
    """An off-screen pyvista Plotter, closed on exit, that renders quietly without a display.

    Without DISPLAY, VTK would first try an X window, print "bad X server connection" and then
    fall back to EGL; asking for the EGL window (VTK_DEFAULT_OPENGL_WINDOW, read when the window
    is created) skips that attempt. With a display (the GUI, Xvfb) VTK chooses as usual, and a
    value the user set is respected. The variable is restored once the window exists.
    """
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                    or "VTK_DEFAULT_OPENGL_WINDOW" in os.environ)
    if headless:
        os.environ["VTK_DEFAULT_OPENGL_WINDOW"] = "vtkEGLRenderWindow"
    try:
        plotter = pv.Plotter(off_screen=True, window_size=list(window_size), **kwargs)
    finally:
        if headless:
            del os.environ["VTK_DEFAULT_OPENGL_WINDOW"]
    try:
        yield plotter
    finally:
        plotter.close()


def picture(window_size: tuple[int, int], draw: Callable[[pv.Plotter], None],
            **plotter_kwargs) -> np.ndarray:
    """An off-screen picture (H, W, 3 uint8) of what `draw(plotter)` puts in the scene."""
    def render() -> np.ndarray:
        with offscreen_plotter(window_size, **plotter_kwargs) as plotter:
            draw(plotter)
            return np.asarray(plotter.screenshot(return_img=True))[..., :3].copy()
    return render() if _runner is None else _runner(render)
