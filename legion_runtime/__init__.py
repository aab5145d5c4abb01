"""The runtime: the in-process deployment graph (runner, main job, long-horizon runner), bags, reports, the CLI.

Importing it chooses MuJoCo's OpenGL back-end before anything imports ``mujoco``
(:func:`legion_sim.gl.choose_backend`: ``egl`` on a machine without a display, unless ``MUJOCO_GL`` is set).
"""
from legion_sim.gl import choose_backend

choose_backend()
