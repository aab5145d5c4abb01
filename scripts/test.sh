#!/usr/bin/env bash
# Set up (if needed) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MUJOCO_GL=${MUJOCO_GL:-egl}
# A real ROS 2 Jazzy for the tests of the nodes and launch files (tests/test_ros_nodes.py, test_fault_injection.py,
# test_ros_packages.py on rclpy / launch in-process; tests/test_ros2_real.py with colcon and ros2 launch): a sourced
# one (a robot PC: pytest runs as is), or the one ../shared/ros2/build.sh builds into a prefix outside the clone
# (12-16 min once per machine, before pytest's clock starts; later calls return at once). Then pytest runs inside
# ../shared/ros2/loopback.sh: ROS 2 sourced, in a network namespace with loopback only (DDS reaches nothing else).
# Without either, those tests are skipped with the reason.
if [ -z "${ROS_DISTRO:-}" ] && [ -f ../shared/ros2/build.sh ]; then
  export LEGION_ROS2_PREFIX=${LEGION_ROS2_PREFIX:-/opt/legion/ros2-jazzy}
  log=${TMPDIR:-/tmp}/legion-ros2-build.log
  bash ../shared/ros2/build.sh "$LEGION_ROS2_PREFIX" > "$log" 2>&1 \
    || { tail -n 40 "$log"; echo "[test] building ROS 2 Jazzy failed: $log" >&2; exit 1; }
  tail -n 1 "$log"
  exec bash ../shared/ros2/loopback.sh "$LEGION_ROS2_PREFIX" .venv/bin/python -m pytest -q "$@"
fi
exec .venv/bin/python -m pytest -q "$@"
