"""Simulation: the MuJoCo KUKA iiwa 14 + Robotiq 2F-85 plant and Meta-World task wrappers.

Importing it registers the Gymnasium ids ``legion/sawyer-<task>`` and ``legion/kuka-<task>`` for the paper's ten
Meta-World v3 tasks (:func:`legion_sim.metaworld_env.register_envs`), after choosing MuJoCo's OpenGL back-end
(:func:`legion_sim.gl.choose_backend`: ``egl`` on a machine without a display, unless ``MUJOCO_GL`` is set).
"""
from legion_sim.gl import choose_backend

choose_backend()  # MUJOCO_GL before anything imports mujoco: egl when there is no display
from legion_sim.metaworld_env import register_envs  # noqa: E402

register_envs()
