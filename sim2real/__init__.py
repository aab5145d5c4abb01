"""Frames, Real2Sim / Sim2Real transforms, inverse kinematics and the safety filter.

No ROS and no torch here: these modules are shared by the ROS 2 nodes and the in-process runner.
"""
