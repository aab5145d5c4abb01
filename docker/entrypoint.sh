#!/bin/bash
# Container entrypoint: ROS 2 Jazzy, then the LEGION workspace (its setup.bash also sources the drivers'
# underlay /opt/drivers_ws it was built on), then the command (compose's `command`, or bash).
set -e
source /opt/ros/jazzy/setup.bash
source /legion/ros2_ws/install/setup.bash
exec "$@"
