"""Test-wide settings: headless MuJoCo rendering must be chosen before mujoco is first imported."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")
