"""Simulation: the MuJoCo KUKA iiwa 14 + Robotiq 2F-85 plant and Meta-World task wrappers.

Importing it registers the Gymnasium ids ``legion/sawyer-<task>`` and ``legion/kuka-<task>`` for the paper's ten
Meta-World v3 tasks (:func:`legion_sim.metaworld_env.register_envs`).
"""
from legion_sim.metaworld_env import register_envs

register_envs()
