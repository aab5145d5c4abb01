"""Simulation: the MuJoCo KUKA iiwa 14 + Robotiq 2F-85 plant and Meta-World task wrappers."""
