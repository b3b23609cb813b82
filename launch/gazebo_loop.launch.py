"""Closed loop against franka_ros2's Gazebo bringup instead of our MuJoCo node.

    ros2 launch worldsample_bringup gazebo_loop.launch.py task:=push run_dir:=runs/gz

Starts franka_gazebo_bringup (franka_ros2 v3.4.0, jazzy) for the FR3 with controller:=fr3_arm_controller
(JointTrajectoryController, type and parameters from our config/fr3_controllers.yaml through the spawner),
and our arm control (pose from `joint_states` through the FR3 kinematics: Gazebo has no state
broadcaster, gripper node or error recovery), cameras, actor, recorder, world model and learner.
Rewards on Gazebo come from the success classifier (no simulator reward topic).
"""

from worldsample_bringup.launch_support import graph_launch_description


def generate_launch_description():
    return graph_launch_description("gazebo")
