"""Closed loop against franka_ros2's Gazebo bringup instead of our MuJoCo node.

    ros2 launch worldsample_bringup gazebo_loop.launch.py task:=push run_dir:=runs/gz

Starts franka_gazebo_bringup (jazzy) for the FR3 with the cartesian impedance controller, and
our arm control (which copes with Gazebo offering only `joint_states`: no state broadcaster,
gripper node or error recovery there), cameras, actor, recorder, world model and learner.
Rewards on Gazebo come from the success classifier (no simulator reward topic).
"""

from worldsample_bringup.launch_support import graph_launch_description


def generate_launch_description():
    return graph_launch_description("gazebo")
