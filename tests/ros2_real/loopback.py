"""The ROS 2 Jazzy of ../shared/ros2 for tests and benchmarks: its prefix, and scripts run inside one loopback.sh call.

``LEGION_ROS2_PREFIX`` names a prefix built by ``../shared/ros2/build.sh`` (scripts/test.sh sets it). Every DDS
process runs inside ``../shared/ros2/loopback.sh`` (a network namespace with loopback only).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = ROOT.parent / "shared" / "ros2" / "loopback.sh"
PREFIX = os.environ.get("LEGION_ROS2_PREFIX", "")
NO_ROS2 = ("no ROS 2 Jazzy here: set LEGION_ROS2_PREFIX to a prefix built by ../shared/ros2/build.sh "
           "(scripts/test.sh does when ../shared/ros2 exists)")


def available(prefix: str = PREFIX) -> bool:
    """Whether ``prefix`` holds a built ROS 2 and loopback.sh is there."""
    return bool(prefix) and (Path(prefix) / "install" / "setup.bash").is_file() and LOOPBACK.is_file()


def skip_module_without_ros2() -> None:
    """Skip the calling test module, with :data:`NO_ROS2`, where no ROS 2 prefix is available."""
    if not available():
        pytest.skip(NO_ROS2, allow_module_level=True)


def in_namespace(script: str, timeout: float, prefix: str = PREFIX) -> subprocess.CompletedProcess:
    """Run a bash script with ROS 2 sourced inside one loopback-only network namespace (text output captured)."""
    return subprocess.run(["bash", str(LOOPBACK), prefix, "bash", "-c", script], capture_output=True, text=True,
                          timeout=timeout)


def colcon_build(out: Path, timeout: float, prefix: str = PREFIX) -> subprocess.CompletedProcess:
    """colcon build of ros2_ws with this interpreter into ``out`` (build, install, log), outside the repository."""
    return in_namespace(f"cd {ROOT / 'ros2_ws'} && {sys.executable} -m colcon --log-base {out}/log build "
                        f"--build-base {out}/build --install-base {out}/install", timeout, prefix)
