"""sim_node: the MuJoCo Franka task simulator behind franka_ros2's topics.

Owns one `FrankaTaskEnv` (worldsample_control.core.sim) and imitates franka_ros2 (jazzy, v3.x):

publishes (every step, all with the same header stamp)
  franka_robot_state_broadcaster/current_pose                   PoseStamped (fr3_link0, best effort)
  franka_robot_state_broadcaster/external_wrench_in_base_frame  WrenchStamped (best effort)
  franka_robot_state_broadcaster/measured_joint_states          JointState fr3_joint1..7 (best effort)
  joint_states                                                  JointState fr3_joint1..7 + fingers (reliable)
  franka_gripper/joint_states                                   JointState fr3_finger_joint1/2 = width / 2 each
  cameras/<name>/image_raw                                      Image rgb8 (one per camera)
  sim/ee_twist                                                  TwistStamped, measured end-effector velocity (sim only)
  sim/reward                                                    DiagnosticArray (sim only, see below)
subscribes
  fr3_arm_controller/joint_trajectory                           trajectory_msgs/JointTrajectory, joints
                                                                fr3_joint1..7 (any order; other joints
                                                                ignored): the last point's positions are
                                                                the joint set-points (what franka_ros2's
                                                                JointTrajectoryController reaches)
  franka_gripper/width_command                                  worldsample_msgs/GripperCommand
actions (only where franka_msgs is installed)
  franka_gripper/move, franka_gripper/grasp                     franka_msgs/action/Move, Grasp (set the width
                                                                used from the next step; lock-step then steps
                                                                on the pose after ``gripper_wait_s``)
service
  sim/reset                                                     worldsample_msgs/srv/ResetEpisode: re-randomise

``sim/reward`` carries what only a simulator knows, in one DiagnosticStatus named "sim" whose
key/values are: ``step`` (steps since reset), ``episode`` (resets so far), ``seed``, ``reward``,
``success``/``terminated``/``truncated`` ("true"/"false"), ``state`` (privileged state, comma-
separated floats), ``expert_action`` (the scripted expert's action for this observation, when
``publish_expert``). On a real robot the success classifier replaces it.

Stepping (``lockstep``, the one switch arm control and the actor share):
- true (default; tests, the embedded loop): one control period per received command:
  a joint trajectory plus the gripper command with the same header stamp (arm_control sends both;
  a trajectory without a gripper command steps after ``gripper_wait_s``). Results do not depend on
  CPU load.
- false (`worldsample sim --realtime`): a timer at ``control_hz`` steps towards the latest joint target.
Commands are taken only from ``command_node`` (default ``arm_control``, in this node's namespace,
checked by the publisher's GID; "" takes any publisher): a node of another graph on the same
ROS_DOMAIN_ID, or anyone publishing on ``joint_trajectory`` directly, does not move this arm (dropped,
counted, warned). Joint targets whose end effector lies farther than ``max_target_outside_m`` outside
the workspace box are refused with an error message (the arm holds); arm control never sends one.
The joint targets drive the MuJoCo arm's joint position servos (`FrankaTaskEnv.step_joint_targets`):
the same command path as on the real FR3 and in Gazebo, where arm_control's IK output goes to the
JointTrajectoryController. Reward and success are the env's. The latest state is re-published every
``1 / heartbeat_hz`` s with its original stamp (late subscribers, lost best-effort messages).
"""

from __future__ import annotations

import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory
from worldsample_common.core.franka_interface import (
    ARM_JOINT_NAMES,
    FINGER_JOINT_NAMES,
    IMAGES,
    FrankaTopics,
    QoSSpec,
    WorldSampleTopics,
)
from worldsample_common.core.params import topic_params
from worldsample_common.nodes.support import declare_config, image_msg, qos, run, time_to_ns

from worldsample_msgs.msg import GripperCommand
from worldsample_msgs.srv import ResetEpisode

from ..core.node_config import SimNodeConfig

CMD_QOS = QoSSpec("reliable", 10)


def floats_csv(values) -> str:
    return ",".join(repr(float(v)) for v in np.asarray(values, np.float64).ravel())


class SimNode(Node):
    def __init__(self) -> None:
        super().__init__("sim")
        fr = FrankaTopics()
        cfg = declare_config(self, SimNodeConfig())
        cfg.validate()
        self.cfg = cfg
        self.task = cfg.task  # one of the tasks: SimNodeConfig.validate
        self.seed = int(cfg.seed)
        cams = tuple(cfg.cameras)
        self.env_cfg = cfg.env_config()
        self.lockstep = bool(cfg.lockstep)
        self.publish_expert = bool(cfg.publish_expert)
        self.gripper_wait_s = float(cfg.gripper_wait_s)
        heartbeat_hz = float(cfg.heartbeat_hz)
        self.command_node = str(cfg.command_node)
        self.max_outside = float(cfg.max_target_outside_m)
        self._commander_gids: set[bytes] = set()
        self._gids_checked = -1.0
        self.dropped_commands = 0
        t = topic_params(cfg)
        self._gripper_topic = t["gripper_width_command"]
        self.frame_id = cfg.base_frame

        self._make_env(self.task)
        state_q, js_q = qos(fr.state_qos), qos(fr.joint_states_qos)
        self.pub_pose = self.create_publisher(PoseStamped, t["current_pose"], state_q)
        self.pub_wrench = self.create_publisher(WrenchStamped, t["external_wrench"], state_q)
        self.pub_measured = self.create_publisher(JointState, t["measured_joint_states"], state_q)
        self.pub_joints = self.create_publisher(JointState, t["joint_states"], js_q)
        self.pub_gripper = self.create_publisher(JointState, t["gripper_joint_states"], js_q)
        self.pub_twist = self.create_publisher(TwistStamped, t["ee_twist"], state_q)
        self.pub_info = self.create_publisher(DiagnosticArray, t["sim_reward"], qos(QoSSpec("reliable", 10)))
        self.pub_images = {c: self.create_publisher(Image, WorldSampleTopics.camera_image(c), qos(IMAGES))
                           for c in cams}
        self._sub_command = self.create_subscription(
            JointTrajectory, t["joint_trajectory"],
            lambda m, i: self._on_trajectory(m) if self._from_commander(i) else None, qos(CMD_QOS))
        self.create_subscription(GripperCommand, t["gripper_width_command"],
                                 lambda m, i: self._on_gripper(m) if self._from_commander(i) else None, qos(CMD_QOS))
        self.create_service(ResetEpisode, t["sim_reset"], self._on_reset)
        self._gripper_actions = self._franka_gripper_servers()

        self._pending: tuple[int, np.ndarray] | None = None  # (stamp ns, joint targets) not yet applied
        self._pending_since = 0.0
        self._gripper_cmds: dict[int, float] = {}  # stamp -> width of commands not yet used
        self._width = float(self.env_cfg_max_width())
        self._target: np.ndarray | None = None
        self._cached: list = []
        self.episode = 0
        self.steps = 0
        self._rng = np.random.default_rng(self.seed)
        self._reset(self.seed)
        if self.lockstep:
            self.create_timer(0.05, self._lockstep_timeout)
        else:
            self.create_timer(1.0 / self.env_cfg.control_hz, self._realtime_tick)
        if heartbeat_hz > 0:
            self.create_timer(1.0 / heartbeat_hz, self._heartbeat)
        self.get_logger().info(f"simulating {self.task} ({'lock-step' if self.lockstep else 'real time'}, {self.env_cfg.control_hz} Hz, cameras {cams})")

    # ------------------------------------------------------------------ env
    def env_cfg_max_width(self) -> float:
        from ..core.sim.env import GRIPPER_MAX_WIDTH

        return GRIPPER_MAX_WIDTH

    def _make_env(self, task: str) -> None:
        from ..core.experts import make_expert
        from ..core.sim import make_env

        self.env = make_env(task, self.env_cfg)
        self.task = task
        self.expert = make_expert(task) if self.publish_expert else None

    def _reset(self, seed: int) -> None:
        self.obs = self.env.reset(seed=seed)
        self.seed = seed
        if self.expert is not None:
            self.expert.reset()
        self.episode += 1
        self.steps = 0
        self._target = None
        self._width = self.env_cfg_max_width()
        self._pending = None
        self._gripper_cmds.clear()
        self._result = (0.0, False, False, False)
        self._publish()

    def _on_reset(self, req: ResetEpisode.Request, resp: ResetEpisode.Response) -> ResetEpisode.Response:
        try:
            from ..core.sim import TASKS

            if req.task and req.task != self.task:
                if req.task not in TASKS:
                    raise ValueError(f"task {req.task!r} is unknown; expected one of {TASKS}")
                self.env.close()
                self._make_env(req.task)
            seed = int(req.seed) if req.seed >= 0 else int(self._rng.integers(0, 2**31 - 1))
            self._reset(seed)
            resp.success, resp.seed = True, seed
            resp.message = f"{self.task} reset with seed {seed}"
            self.get_logger().info(resp.message)
        except Exception as exc:  # noqa: BLE001 - answer the caller instead of dying
            resp.success, resp.seed = False, -1
            resp.message = f"reset failed: {type(exc).__name__}: {exc}"
            self.get_logger().error(resp.message)
        return resp

    # ------------------------------------------------------------------ commands
    def _from_commander(self, info) -> bool:
        """Whether a command comes from ``command_node`` of this namespace (by publisher GID)."""
        gid = info.get("publisher_gid") if isinstance(info, dict) else None
        data = bytes(gid.get("data", b"")) if isinstance(gid, dict) else b""
        if not self.command_node or not data or data in self._commander_gids:
            return True
        now = time.monotonic()
        if now - self._gids_checked >= 0.5:  # refresh at most twice a second (a flood stays cheap)
            self._gids_checked = now
            ns = self.get_namespace()
            self._commander_gids = {
                bytes(i.endpoint_gid)[:len(data)] for topic in (self._sub_command.topic_name,)
                for i in self.get_publishers_info_by_topic(topic)
                if i.node_name == self.command_node and i.node_namespace == ns}
            self._commander_gids |= {
                bytes(i.endpoint_gid)[:len(data)] for i in self.get_publishers_info_by_topic(
                    self.resolve_topic_name(self._gripper_topic))
                if i.node_name == self.command_node and i.node_namespace == ns}
            if data in self._commander_gids:
                return True
        self.dropped_commands += 1
        self.get_logger().warning(f"{self.dropped_commands} command(s) from a node other than "
                                  f"{self.command_node!r} ignored (another graph on this ROS_DOMAIN_ID, or a direct "
                                  "publisher: command the arm through arm control)", throttle_duration_sec=2.0)
        return False

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        from ..core.joint_command import joints_from_state

        if not msg.points:
            self.get_logger().error("joint trajectory without points ignored (holding)")
            return
        q = joints_from_state(msg.joint_names, msg.points[-1].positions)
        if q is None:
            self.get_logger().error(f"joint trajectory for {list(msg.joint_names)} with positions "
                                    f"{list(msg.points[-1].positions)} ignored (holding): need finite positions "
                                    f"for {list(ARM_JOINT_NAMES)}")
            return
        pos = self.env.ee_pos_at(q)
        lo, hi = np.asarray(self.env.cfg.workspace_min, float), np.asarray(self.env.cfg.workspace_max, float)
        outside = float(np.max(np.maximum(lo - pos, pos - hi)))
        if outside > self.max_outside:
            self.get_logger().error(f"joint target {np.round(q, 4).tolist()} puts the end effector at {pos.tolist()}, "
                                    f"{outside:.3f} m outside the workspace box {lo.tolist()}..{hi.tolist()} (more "
                                    f"than max_target_outside_m={self.max_outside}); refused, holding")
            return
        if not self.lockstep:
            self._target = q
            return
        if self._pending is not None:
            self.get_logger().warning("a new target arrived before the previous one was applied; using the newest")
        self._pending = (time_to_ns(msg.header.stamp), q)
        self._pending_since = time.monotonic()
        self._try_lockstep()

    def _on_gripper(self, msg: GripperCommand) -> None:
        if not np.isfinite(msg.width):
            self.get_logger().error(f"gripper width {msg.width} ignored")
            return
        width = 0.0 if msg.grasp else float(msg.width)
        if not self.lockstep:
            self._width = width
            return
        self._gripper_cmds[time_to_ns(msg.header.stamp)] = width
        if len(self._gripper_cmds) > 50:
            self._gripper_cmds.pop(next(iter(self._gripper_cmds)))
        self._try_lockstep()

    def _franka_gripper_servers(self) -> list:
        """franka_gripper/move and /grasp action servers, where franka_msgs is installed."""
        try:
            from franka_msgs.action import Grasp, Move  # type: ignore[import-not-found]
            from rclpy.action import ActionServer
        except ImportError:
            return []

        def move(handle):
            self._width = float(handle.request.width)
            handle.succeed()
            return Move.Result(success=True)

        def grasp(handle):
            self._width = 0.0
            handle.succeed()
            return Grasp.Result(success=True)

        return [ActionServer(self, Move, "franka_gripper/move", move),
                ActionServer(self, Grasp, "franka_gripper/grasp", grasp)]

    def _try_lockstep(self, timed_out: bool = False) -> None:
        if self._pending is None:
            return
        stamp, q = self._pending
        if stamp in self._gripper_cmds:
            self._width = self._gripper_cmds.pop(stamp)
        elif not timed_out:
            return
        self._pending = None
        self._step(q)

    def _lockstep_timeout(self) -> None:
        if self._pending is not None and time.monotonic() - self._pending_since > self.gripper_wait_s:
            self._try_lockstep(timed_out=True)

    def _realtime_tick(self) -> None:
        self._step(self._target if self._target is not None else self.env.joint_targets())

    def _step(self, q: np.ndarray) -> None:
        # the hand opens or closes (binary, as in the env's own action path)
        closed = self._width < 0.5 * self.env_cfg_max_width()
        res = self.env.step_joint_targets(q, 0.0 if closed else self.env_cfg_max_width())
        self.obs = res.observation
        self.steps += 1
        self._result = (res.reward, res.success, res.terminated, res.truncated)
        self._publish()

    # ------------------------------------------------------------------ publishing
    def _publish(self) -> None:
        stamp = self.get_clock().now().to_msg()
        env = self.env
        pos, quat_wxyz = env.ee_pose()
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, self.frame_id
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in pos)
        o = pose.pose.orientation
        o.w, o.x, o.y, o.z = (float(v) for v in quat_wxyz)
        wrench = WrenchStamped()
        wrench.header.stamp, wrench.header.frame_id = stamp, self.frame_id
        w = env.external_wrench()
        wrench.wrench.force.x, wrench.wrench.force.y, wrench.wrench.force.z = (float(v) for v in w[:3])
        wrench.wrench.torque.x, wrench.wrench.torque.y, wrench.wrench.torque.z = (float(v) for v in w[3:])
        q, dq, tau = env.joint_positions(), env.joint_velocities(), env.joint_torques()
        width = float(env.gripper_width())
        measured = JointState(name=list(ARM_JOINT_NAMES), position=q.tolist(), velocity=dq.tolist(),
                              effort=tau.tolist())
        measured.header.stamp = stamp
        merged = JointState(name=list(ARM_JOINT_NAMES) + list(FINGER_JOINT_NAMES),
                            position=q.tolist() + [width / 2, width / 2], velocity=dq.tolist() + [0.0, 0.0],
                            effort=tau.tolist() + [0.0, 0.0])
        merged.header.stamp = stamp
        gripper = JointState(name=list(FINGER_JOINT_NAMES), position=[width / 2, width / 2], velocity=[0.0, 0.0],
                             effort=[0.0, 0.0])
        gripper.header.stamp = stamp
        twist = TwistStamped()
        twist.header.stamp, twist.header.frame_id = stamp, self.frame_id
        v = env.ee_velocity()
        twist.twist.linear.x, twist.twist.linear.y, twist.twist.linear.z = (float(x) for x in v[:3])
        twist.twist.angular.x, twist.twist.angular.y, twist.twist.angular.z = (float(x) for x in v[3:])
        images = [(self.pub_images[c], image_msg(self.obs.images[c], stamp, f"{c}_camera_optical_frame"))
                  for c in self.pub_images if c in self.obs.images]
        info = self._info_msg(stamp)
        self._cached = [(self.pub_pose, pose), (self.pub_wrench, wrench), (self.pub_measured, measured),
                        (self.pub_joints, merged), (self.pub_gripper, gripper), (self.pub_twist, twist),
                        *images, (self.pub_info, info)]
        for pub, msg in self._cached:  # sim/reward last: it marks a complete step
            pub.publish(msg)

    def _info_msg(self, stamp) -> DiagnosticArray:
        reward, success, terminated, truncated = self._result
        vals = {
            "step": str(self.steps), "episode": str(self.episode), "seed": str(self.seed), "task": self.task,
            "reward": repr(float(reward)), "success": str(bool(success)).lower(),
            "terminated": str(bool(terminated)).lower(), "truncated": str(bool(truncated)).lower(),
        }
        if self.obs.state is not None:
            vals["state"] = floats_csv(self.obs.state)
        if self.expert is not None:
            try:
                vals["expert_action"] = floats_csv(self.expert.act(self.obs, self.env))
            except Exception as exc:  # noqa: BLE001
                self.get_logger().error(f"expert failed: {exc}")
        status = DiagnosticStatus(level=DiagnosticStatus.OK, name="sim", message=self.task,
                                  hardware_id="mujoco", values=[KeyValue(key=k, value=v) for k, v in vals.items()])
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = stamp
        return arr

    def _heartbeat(self) -> None:
        for pub, msg in self._cached:
            pub.publish(msg)

    def on_shutdown(self) -> None:
        self.env.close()


def main(args: list[str] | None = None) -> int:
    return run(SimNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
