"""LEGION agent, knowledge space, trainer and checkpoints (the language front end is :mod:`legion_language`).

No ROS and no robot here.
"""
__version__ = "0.1.0"
