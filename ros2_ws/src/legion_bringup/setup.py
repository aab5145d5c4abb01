"""ament_python package installing the repository's launch/ files and launch/config/ parameter files.

The files live in the repository's top-level launch/ (usable as `ros2 launch launch/<file>` from a checkout);
this package installs them under share/legion_bringup so that `ros2 launch legion_bringup <file>` works too.
"""
from glob import glob
from pathlib import Path

from setuptools import setup

PACKAGE = "legion_bringup"
LAUNCH = Path(__file__).resolve().parents[3] / "launch"  # ros2_ws/src/legion_bringup -> repository root

setup(
    name=PACKAGE,
    version="0.5.0",
    packages=[PACKAGE],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", sorted(glob(str(LAUNCH / "*.py")))),  # launch files and their _legion.py
        (f"share/{PACKAGE}/launch/config", sorted(glob(str(LAUNCH / "config" / "*.yaml")))),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="LEGION stack maintainers",
    maintainer_email="legion-stack@users.noreply.github.com",
    description="Launch and parameter files of the LEGION deployment",
    license="Apache-2.0",
)
