"""Topic names, message types and QoS of the franka_ros2 interface our nodes speak (no rclpy here).

From franka_ros2 (jazzy branch, v3.x) - the same names our MuJoCo `sim_node` publishes, so one
graph runs against the simulator, a real Franka, or (partly) franka_ros2's Gazebo bringup:

state (published by franka_robot_state_broadcaster; best-effort QoS since v3.3.0):
  franka_robot_state_broadcaster/current_pose                   geometry_msgs/PoseStamped
  franka_robot_state_broadcaster/external_wrench_in_base_frame  geometry_msgs/WrenchStamped
  franka_robot_state_broadcaster/measured_joint_states          sensor_msgs/JointState (fr3_joint1..7)
  joint_states                                                  sensor_msgs/JointState (merged, reliable)
  franka_gripper/joint_states                                   sensor_msgs/JointState (fr3_finger_joint1/2,
                                                                each finger = half the opening width)
commands:
  fr3_arm_controller/joint_trajectory                           trajectory_msgs/JointTrajectory (reliable;
                                                                fr3_joint1..7): ros2_controllers'
                                                                JointTrajectoryController as franka_ros2's
                                                                franka_fr3_moveit_config runs it; our arm
                                                                control streams IK joint targets there
  franka_gripper/width_command                                  worldsample_msgs/GripperCommand (ours;
                                                                franka_msgs' Move/Grasp actions where installed)
  franka_gripper/move, franka_gripper/grasp                     franka_msgs actions (real robot)
  action_server/error_recovery                                  franka_msgs/action/ErrorRecovery (real robot)

Everything is relative to a namespace (``""`` by default; franka_ros2's multi-arm launch uses one
per arm) and every name is a parameter of the nodes, so a remapping is never needed.
"""

from __future__ import annotations

from dataclasses import dataclass

ARM_JOINT_NAMES = tuple(f"fr3_joint{i}" for i in range(1, 8))
FINGER_JOINT_NAMES = ("fr3_finger_joint1", "fr3_finger_joint2")
BASE_FRAME = "fr3_link0"
EE_FRAME = "fr3_hand_tcp"


@dataclass(frozen=True)
class QoSSpec:
    """A QoS profile as data; nodes turn it into rclpy.qos.QoSProfile."""

    reliability: str = "reliable"  # or "best_effort"
    depth: int = 10
    durability: str = "volatile"  # or "transient_local"


RELIABLE = QoSSpec("reliable", 10)
BEST_EFFORT = QoSSpec("best_effort", 10)
LATCHED = QoSSpec("reliable", 1, "transient_local")
# Images: reliable with a short queue. Best effort drops large frames under load over Fast DDS's
# default UDP transport; a reliable depth-2 queue keeps latency bounded.
IMAGES = QoSSpec("reliable", 2)
# Episode events, synthetic-bag announcements, actions: reliable, deep enough for a burst
EVENTS = QoSSpec("reliable", 100)


@dataclass
class FrankaTopics:
    """Topic names (relative; a namespace is prepended by ROS) of the franka_ros2 interface."""

    current_pose: str = "franka_robot_state_broadcaster/current_pose"
    external_wrench: str = "franka_robot_state_broadcaster/external_wrench_in_base_frame"
    measured_joint_states: str = "franka_robot_state_broadcaster/measured_joint_states"
    joint_states: str = "joint_states"
    gripper_joint_states: str = "franka_gripper/joint_states"
    joint_trajectory: str = "fr3_arm_controller/joint_trajectory"
    arm_controller: str = "fr3_arm_controller"  # its name in the controller manager (our controller yaml)
    gripper_width_command: str = "franka_gripper/width_command"
    gripper_move_action: str = "franka_gripper/move"
    gripper_grasp_action: str = "franka_gripper/grasp"
    error_recovery_action: str = "action_server/error_recovery"

    # QoS of each stream, as franka_ros2 v3.3.0+ publishes them.
    state_qos: QoSSpec = BEST_EFFORT
    joint_states_qos: QoSSpec = RELIABLE
    command_qos: QoSSpec = RELIABLE


@dataclass
class WorldSampleTopics:
    """Our own topics around the arm (relative names)."""

    policy_action: str = "policy/action"  # worldsample_msgs/PolicyAction
    applied_action: str = "arm/applied_action"  # worldsample_msgs/PolicyAction arm control applied (recorded)
    arm_safety: str = "arm/safety"  # diagnostic_msgs/DiagnosticArray
    arm_reset: str = "arm/reset"  # worldsample_msgs/srv/ResetEpisode
    sim_reset: str = "sim/reset"  # worldsample_msgs/srv/ResetEpisode
    sim_reward: str = "sim/reward"  # diagnostic_msgs/DiagnosticArray, see sim_node
    episodes: str = "episodes"  # worldsample_msgs/EpisodeInfo (actor: START/END)
    episodes_recorded: str = "episodes/recorded"  # worldsample_msgs/EpisodeInfo END with bag_uri (recorder)
    transitions: str = "transitions/real"  # worldsample_msgs/Transition, per step: actor -> recorder (the bag)
    policy_checkpoint: str = "policy/checkpoint"  # worldsample_msgs/PolicyCheckpoint
    synthetic_bags: str = "world_model/synthetic"  # worldsample_msgs/EpisodeInfo END, one per synthetic bag (world model)
    world_model_status: str = "world_model/status"  # worldsample_msgs/WorldModelStatus (latched)
    world_model_generate: str = "world_model/generate"  # worldsample_msgs/srv/RequestSyntheticRollouts
    ppl_status: str = "ppl/status"  # worldsample_msgs/PPLStatus (learner)
    teleop_action: str = "teleop/action"  # worldsample_msgs/PolicyAction from a teleoperation device (actor policy:=teleop)

    @staticmethod
    def camera_image(name: str) -> str:
        return f"cameras/{name}/image_raw"

    @staticmethod
    def camera_info(name: str) -> str:
        return f"cameras/{name}/camera_info"


def gripper_width_from_fingers(positions) -> float:
    """Opening width [m] from the two finger joint positions (each finger moves half the width)."""
    vals = [float(p) for p in positions]
    if not vals:
        raise ValueError("gripper joint state has no finger positions")
    return sum(vals[:2]) if len(vals) >= 2 else 2.0 * vals[0]
