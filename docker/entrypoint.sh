#!/usr/bin/env bash
# Source ROS 2 Jazzy, franka_ros2 and the WorldSample workspace, then run the command.
set -e
source /opt/ros/jazzy/setup.bash
source /franka_ws/install/setup.bash
source /worldsample/install/setup.bash
exec "$@"
