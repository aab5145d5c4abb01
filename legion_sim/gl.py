"""MuJoCo's OpenGL back-end: chosen before MuJoCo is first imported, and checked before a run needs it.

MuJoCo reads ``MUJOCO_GL`` once, when ``mujoco`` is first imported (``mujoco/gl_context.py``), and its
default (GLFW) needs a display. A headless machine (no ``DISPLAY`` / ``WAYLAND_DISPLAY``: a server, CI, a
robot PC over SSH) needs EGL (Mesa's ``libEGL``, software or GPU) or OSMesa instead.

* :func:`choose_backend` keeps the user's ``MUJOCO_GL`` and otherwise picks ``egl`` when there is no display.
  ``legion_sim/__init__.py`` and the ``legion`` command call it before anything imports ``mujoco``.
* :func:`check_rendering` makes one 8 x 8 px context with the chosen back-end, so a command that will render
  (video, the virtual RealSense) fails before it writes a run folder or moves anything, with one line that
  says what to do (:class:`RenderingUnavailable`).
"""
from __future__ import annotations

import os
from collections.abc import MutableMapping

HEADLESS_BACKEND = "egl"


class RenderingUnavailable(RuntimeError):
    """No working OpenGL back-end for MuJoCo; the message names the back-end, the cause and the fix."""


def choose_backend(environ: MutableMapping[str, str] = os.environ) -> str:
    """Set ``MUJOCO_GL`` if it is unset: ``egl`` without a display, MuJoCo's default (GLFW) with one.

    Args:
        environ: the environment to read and update (the process environment by default).

    Returns:
        the back-end MuJoCo will use: ``environ["MUJOCO_GL"]``, or ``"glfw"`` (MuJoCo's default).
    """
    if not environ.get("MUJOCO_GL"):
        if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
            return "glfw"
        environ["MUJOCO_GL"] = HEADLESS_BACKEND
    return environ["MUJOCO_GL"]


def check_rendering() -> None:
    """Create and free one small OpenGL context with the back-end MuJoCo was imported with.

    Raises:
        RenderingUnavailable: the back-end cannot make a context (no display for GLFW, no libEGL, no OSMesa,
            an invalid ``MUJOCO_GL``); the message is one line.
    """
    import gc
    import sys
    import warnings

    backend = os.environ.get("MUJOCO_GL") or "glfw"
    cause = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # GLFW reports a missing display as warnings, then renders nothing
            import mujoco

            model = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='0.1'/></worldbody></mujoco>")
            with mujoco.Renderer(model, 8, 8) as renderer:
                renderer.update_scene(mujoco.MjData(model))
                renderer.render()
    except Exception as exc:  # noqa: BLE001 - every back-end raises its own types (ImportError, GLError, ...)
        cause = " ".join(str(exc).split()) or type(exc).__name__
    if cause is None:
        return
    # the half-made Renderer and GLContext complain from __del__ when collected: collect them quietly now
    hook, sys.unraisablehook = sys.unraisablehook, lambda _unraisable: None
    try:
        gc.collect()
    finally:
        sys.unraisablehook = hook
    raise RenderingUnavailable(
        f"MuJoCo cannot render with MUJOCO_GL={backend} ({cause}). On a machine without a display use "
        f"MUJOCO_GL=egl (Debian packages libegl1 libegl-mesa0 libgl1-mesa-dri, installed by scripts/setup.sh) or "
        f"MUJOCO_GL=osmesa, or run without rendering: --no-video --perception simulator")
