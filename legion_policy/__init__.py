"""LEGION agent, knowledge space, trainer, checkpoints, and the language front end (speech, embedding).

No ROS and no robot here.
"""
__version__ = "0.1.0"
