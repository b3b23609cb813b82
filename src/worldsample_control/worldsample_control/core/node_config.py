"""The robot-side nodes' parameters as config trees (ROS-free, no MuJoCo import).

One dataclass per node: every field is one ROS parameter (nested dataclasses give dotted names,
``safety.max_velocity``), its trailing comment is the parameter's description. The node declares
them all (`worldsample_common.nodes.support.declare_config`) and hands the filled config (or its
sub-configs) to its core; ``worldsample loop`` and the launch files validate the one parameter YAML
(launch/config/loop.yaml, keyed by node name) against the same trees before anything starts
(`worldsample_common.core.params.validate_params`).

Topic names default from the one topic table (`worldsample_common.core.franka_interface`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

from worldsample_common.core.franka_interface import BASE_FRAME, FrankaTopics, WorldSampleTopics
from worldsample_common.core.params import require_non_negative, require_one_of, require_positive

from .actor import ActorConfig
from .camera import CameraConfig
from .joint_command import JointCommandConfig
from .safety import SafetyConfig
from .sim.config import TASKS, EnvConfig

_F, _W = FrankaTopics(), WorldSampleTopics()


@dataclass
class LockstepSwitch:
    """The one lock-step switch, a parameter of each node that steps with the others in simulation
    (`LOCKSTEP_NODES`); the node graph sets it once for all of them (`worldsample_bringup.graph`)."""

    # the per-node names it replaced: a parameter file that still sets one is refused naming `lockstep`
    PARAM_RENAMED: ClassVar[dict[str, str]] = {"mode": "lockstep", "publish_mode": "lockstep"}

    # lock-step simulation: the simulator steps once per applied command, arm control sends one joint
    # command per action, the actor acts as soon as a step's observation is complete; false (real arm,
    # Gazebo, `worldsample sim --realtime`): each of them runs at control_hz
    lockstep: bool = True


LOCKSTEP_NODES: tuple[str, ...] = ("sim", "arm_control", "actor")  # the nodes with the `lockstep` parameter


@dataclass
class SimNodeConfig(LockstepSwitch):
    """``sim``: the MuJoCo Franka node (franka_ros2's topics, camera images, the task's reward)."""

    task: str = "push"  # one of the MuJoCo tasks: peg_insertion, push, sort, pick_place
    seed: int = 0  # seed of the first episode
    cameras: tuple[str, ...] = ("front", "wrist")  # rendered cameras, published on cameras/<name>/image_raw
    image_size: int = 64  # rendered image size [px] (square)
    render: bool = True  # render camera images (false: proprio/state only)
    control_hz: float = 10.0  # control rate [Hz]: one environment step per period
    max_episode_steps: int = 0  # episode length limit (0: the task's default)
    reward: str = "shaped"  # shaped or sparse (worldsample_control.core.reward)
    publish_expert: bool = False  # publish the task's scripted expert action as a suggestion (demos)
    gripper_wait_s: float = 0.5  # how long a gripper command may take before the step goes on [s]
    heartbeat_hz: float = 2.0  # state republished at this rate while idle (lock-step) [Hz]
    command_node: str = "arm_control"  # the only node whose joint commands are followed
    max_target_outside_m: float = 0.05  # joint targets whose hand lies farther outside the box are refused [m]
    base_frame: str = BASE_FRAME  # frame_id of published poses
    topic_current_pose: str = _F.current_pose
    topic_external_wrench: str = _F.external_wrench
    topic_measured_joint_states: str = _F.measured_joint_states
    topic_joint_states: str = _F.joint_states
    topic_gripper_joint_states: str = _F.gripper_joint_states
    topic_joint_trajectory: str = _F.joint_trajectory
    topic_gripper_width_command: str = _F.gripper_width_command
    topic_sim_reset: str = _W.sim_reset
    topic_sim_reward: str = _W.sim_reward
    topic_ee_twist: str = "sim/ee_twist"

    def validate(self) -> None:
        require_one_of("SimNodeConfig", "task", self.task, TASKS)
        require_positive("SimNodeConfig", heartbeat_hz=self.heartbeat_hz,
                         max_target_outside_m=self.max_target_outside_m)
        require_non_negative("SimNodeConfig", gripper_wait_s=self.gripper_wait_s)
        self.env_config().validate()

    def env_config(self) -> EnvConfig:
        return EnvConfig(image_size=self.image_size, cameras=tuple(self.cameras), render=self.render,
                         control_hz=self.control_hz, max_episode_steps=self.max_episode_steps,
                         reward=self.reward, seed=self.seed)


@dataclass
class ArmControlNodeConfig(LockstepSwitch):
    """``arm_control``: policy actions -> safety filter -> FR3 IK -> JointTrajectory (+ gripper)."""

    # one control rate for the node, its safety filter and its joint commands (derived, see `resolved`)
    PARAM_SKIP: ClassVar[tuple[str, ...]] = ("safety.max_events", "safety.control_hz", "joints.min_duration",
                                             "joints.ik.workspace_min", "joints.ik.workspace_max")

    control_hz: float = 10.0  # command rate [Hz]
    sim: bool = False  # the MuJoCo simulator is the arm (resets go to sim/reset)
    pose_wait_s: float = 0.5  # wait this long for a first pose before refusing actions [s]
    gripper_speed: float = 0.1  # franka_gripper move speed [m/s]
    gripper_force: float = 20.0  # franka_gripper grasp force [N]
    gripper_interface: str = "topic"  # topic: GripperCommand on width_command; franka_action: franka_msgs actions
    home_position: tuple[float, ...] = (0.5, 0.0, 0.3)  # where a reset moves the hand [m, base frame]
    base_frame: str = BASE_FRAME  # frame of commanded poses
    state_best_effort: bool = True  # subscribe the robot state best effort (franka_ros2 >= v3.3.0)
    pose_from_joints: bool = False  # hand pose from joint_states through FR3 kinematics (Gazebo)
    run_id: str = ""  # this run's id: actions of another run are dropped ("" = any)
    actor_node: str = "actor"  # the only node whose actions are applied
    max_pending_actions: int = 4  # actions waiting for the next control tick; older ones are dropped
    safety: SafetyConfig = field(default_factory=SafetyConfig)  # workspace box, step and velocity limits, watchdog
    joints: JointCommandConfig = field(default_factory=JointCommandConfig)  # IK and JointTrajectory streaming
    topic_current_pose: str = _F.current_pose
    topic_gripper_joint_states: str = _F.gripper_joint_states
    topic_joint_states: str = _F.joint_states
    topic_joint_trajectory: str = _F.joint_trajectory
    topic_gripper_width_command: str = _F.gripper_width_command
    topic_policy_action: str = _W.policy_action
    topic_applied_action: str = _W.applied_action
    topic_episodes: str = _W.episodes
    topic_arm_safety: str = _W.arm_safety
    topic_arm_reset: str = _W.arm_reset
    topic_sim_reset: str = _W.sim_reset
    topic_error_recovery: str = _F.error_recovery_action
    topic_gripper_move: str = _F.gripper_move_action
    topic_gripper_grasp: str = _F.gripper_grasp_action

    def resolved(self) -> ArmControlNodeConfig:
        """Derived once: the filter's dt and the joint commands' shortest duration are one control
        period; the IK's workspace is the safety filter's box (one box)."""
        safety = replace(self.safety, control_hz=self.control_hz)
        ik = replace(self.joints.ik, workspace_min=safety.workspace_min, workspace_max=safety.workspace_max)
        joints = replace(self.joints, ik=ik, min_duration=1.0 / self.control_hz)
        return replace(self, safety=safety, joints=joints)

    def validate(self) -> None:
        require_positive("ArmControlNodeConfig", control_hz=self.control_hz, gripper_speed=self.gripper_speed,
                         gripper_force=self.gripper_force)
        require_non_negative("ArmControlNodeConfig", pose_wait_s=self.pose_wait_s)
        require_one_of("ArmControlNodeConfig", "gripper_interface", self.gripper_interface,
                       ("topic", "franka_action"))
        if len(self.home_position) != 3:
            raise ValueError(f"ArmControlNodeConfig.home_position must be 3 values, got {self.home_position}")
        if self.max_pending_actions < 1:
            raise ValueError(f"ArmControlNodeConfig.max_pending_actions must be >= 1, got {self.max_pending_actions}")
        r = self.resolved()
        r.safety.validate()
        r.joints.validate()


@dataclass
class ActorNodeConfig(ActorConfig, LockstepSwitch):
    """``actor``: runs the policy, one episode after another (`ActorConfig` + how the node paces it)."""

    use_sim_reward: bool = True  # take the reward from topic_sim_reward (simulator or success detector)
    twist_topic: str = "sim/ee_twist"  # end-effector twist published by the simulator ("" = none)
    log_dir: str = ""  # per-episode logs ("" = none)
    run_id: str = ""  # carried by every episode message of this run
    action_resend_s: float = 1.0  # resend the last action after this long without an observation [s]
    reset_timeout_s: float = 30.0  # a reset that takes longer fails the episode [s]
    observation_timeout_s: float = 30.0  # no observation for this long ends the episode (cut) [s]
    recorded_timeout_s: float = 15.0  # wait this long for the recorder's episodes/recorded [s]
    wait_recorded: bool = True  # start the next episode only after the recorder closed the last bag
    wait_for_recorder_s: float = 0.0  # wait this long for a recorder before the first episode [s]
    # iteration pacing: after this many episodes with one policy, hold (between episodes, arm at rest)
    # until the learner announces a newer checkpoint, at most policy_wait_s (0: off)
    episodes_per_policy: int = 0
    policy_wait_s: float = 300.0  # longest hold for a newer checkpoint [s]
    teleop_timeout_s: float = 0.5  # policy teleop: a teleop action older than this is zero motion [s]
    topic_current_pose: str = _F.current_pose
    topic_gripper_joint_states: str = _F.gripper_joint_states
    topic_policy_action: str = _W.policy_action
    topic_applied_action: str = _W.applied_action
    topic_episodes: str = _W.episodes
    topic_episodes_recorded: str = _W.episodes_recorded
    topic_transitions: str = _W.transitions
    topic_policy_checkpoint: str = _W.policy_checkpoint
    topic_arm_reset: str = _W.arm_reset
    topic_sim_reward: str = _W.sim_reward
    topic_teleop_action: str = _W.teleop_action

    def validate(self) -> None:
        self.source_enum()
        require_positive("ActorNodeConfig", control_hz=self.control_hz, action_resend_s=self.action_resend_s,
                         reset_timeout_s=self.reset_timeout_s, observation_timeout_s=self.observation_timeout_s,
                         recorded_timeout_s=self.recorded_timeout_s, teleop_timeout_s=self.teleop_timeout_s)
        require_non_negative("ActorNodeConfig", wait_for_recorder_s=self.wait_for_recorder_s,
                             policy_wait_s=self.policy_wait_s)
        for name in ("episodes", "max_steps", "episodes_per_policy"):
            if getattr(self, name) < 0:
                raise ValueError(f"ActorNodeConfig.{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class RecorderNodeConfig:
    """``recorder``: one rosbag2 (MCAP) per episode, announced on episodes/recorded."""

    out_dir: str = "bags"  # bags go here, one directory per episode
    run_id: str = ""  # record only this run's episodes ("" = any)
    cameras: tuple[str, ...] = ("front", "wrist")  # image topics recorded
    grace_s: float = 3.0  # messages up to this long after an episode's END still belong to it [s]
    linger_s: float = 0.5  # keep a bag open this long after END for late messages [s]
    record_state: bool = True  # record the robot state topics
    record_images: bool = True  # record the camera images
    topic_episodes: str = _W.episodes
    topic_episodes_recorded: str = _W.episodes_recorded
    topic_transitions: str = _W.transitions
    topic_applied_action: str = _W.applied_action
    topic_arm_safety: str = _W.arm_safety
    topic_sim_reward: str = _W.sim_reward
    topic_current_pose: str = _F.current_pose
    topic_external_wrench: str = _F.external_wrench
    topic_measured_joint_states: str = _F.measured_joint_states
    topic_joint_states: str = _F.joint_states
    topic_gripper_joint_states: str = _F.gripper_joint_states

    def validate(self) -> None:
        require_non_negative("RecorderNodeConfig", grace_s=self.grace_s, linger_s=self.linger_s)


@dataclass
class CameraNodeConfig(CameraConfig):
    """``camera_<name>`` (real arm): one OpenCV camera -> cameras/<name>/image_raw (`CameraConfig`)."""

    crop: tuple[int, ...] = (0, 0, 0, 0)  # (x, y, w, h) in captured pixels before resizing; all 0 = none

    def camera_config(self) -> CameraConfig:
        fields = {k: getattr(self, k) for k in CameraConfig.__dataclass_fields__}
        fields["crop"] = tuple(int(v) for v in self.crop) if any(self.crop) else None
        return CameraConfig(**fields)

    def validate(self) -> None:
        if len(self.crop) != 4:
            raise ValueError(f"CameraNodeConfig.crop must be 4 values (x, y, w, h), got {self.crop}")
        require_positive("CameraNodeConfig", fps=self.fps)
        self.camera_config().validate()


# node name in the parameter YAML -> its config class ("camera_*": every camera_<name> node)
ROBOT_NODE_CONFIGS: dict[str, type] = {
    "sim": SimNodeConfig, "arm_control": ArmControlNodeConfig, "actor": ActorNodeConfig,
    "recorder": RecorderNodeConfig, "camera_*": CameraNodeConfig,
}
