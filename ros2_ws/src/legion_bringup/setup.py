"""ament_python package installing the repository's launch/ files and launch/config/ parameter files.

The files live in the repository's top-level launch/ (usable as `ros2 launch launch/<file>` from a checkout);
this package installs them under share/legion_bringup so that `ros2 launch legion_bringup <file>` works too.
"""
import os
from glob import glob
from pathlib import Path

from setuptools import setup

PACKAGE = "legion_bringup"
HERE = Path(__file__).resolve().parent
LAUNCH = HERE.parents[2] / "launch"  # ros2_ws/src/legion_bringup -> repository root


def relative(pattern: str) -> list[str]:
    """Files matching ``pattern`` (absolute), as paths relative to this folder: colcon requires relative data_files."""
    return sorted(os.path.relpath(path, HERE) for path in glob(pattern))


setup(
    name=PACKAGE,
    version="0.5.0",
    packages=[PACKAGE],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", relative(str(LAUNCH / "*.py"))),  # launch files and their _legion.py
        (f"share/{PACKAGE}/launch/config", relative(str(LAUNCH / "config" / "*.yaml"))),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="LEGION stack maintainers",
    maintainer_email="legion-stack@users.noreply.github.com",
    description="Launch and parameter files of the LEGION deployment",
    license="Apache-2.0",
)
