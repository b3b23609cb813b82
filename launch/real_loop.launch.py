"""Closed loop on a real Franka through franka_ros2, with real cameras.

    ros2 launch worldsample_bringup real_loop.launch.py robot_ip:=172.16.0.2 task:=peg_insertion \
        cameras:="front,wrist" camera_sources:="/dev/video0,/dev/video2" run_dir:=runs/real

Starts franka_bringup's franka.launch.py (franka_ros2 >= v3.2.0, checked at v3.4.0) with our
config/fr3_controllers.yaml and spawns fr3_arm_controller (JointTrajectoryController); our arm control
(safety box, step limits, watchdog, FR3 IK -> fr3_arm_controller/joint_trajectory), camera nodes, the actor (reward from the success
classifier, human override topic), the recorder, the world model and the learner.
"""

from worldsample_bringup.launch_support import graph_launch_description


def generate_launch_description():
    return graph_launch_description("real")
