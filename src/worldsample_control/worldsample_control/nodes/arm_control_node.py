"""arm_control_node: policy actions -> safe joint targets for the FR3's JointTrajectoryController.

The command path (the same on a real FR3, in franka_ros2's Gazebo and in our MuJoCo node):
policy action -> `core.safety.ActionFilter` (workspace box, step and velocity limits, watchdog, NaN
rejection) -> safe Cartesian target -> our FR3 IK (`core.joint_command.JointCommander`, damped least
squares on Franka's DH parameters, joint limits, workspace box) -> a one-point
``trajectory_msgs/JointTrajectory`` (joints fr3_joint1..7, ``time_from_start`` within a fraction of
the FR3 joint velocity limits) on ``fr3_arm_controller/joint_trajectory``: ros2_controllers'
``joint_trajectory_controller/JointTrajectoryController`` as franka_ros2's franka_fr3_moveit_config
configures it (effort command interface). A target the IK cannot reach within
``joints.max_position_error`` is not sent (the arm holds; reason ``ik_unreachable`` on ``arm/safety``).

Subscribes ``policy/action`` (worldsample_msgs/PolicyAction), the robot's
``franka_robot_state_broadcaster/current_pose`` (best effort), ``joint_states`` (fr3_joint1..7: IK
seed and velocity scaling) and ``franka_gripper/joint_states``; with ``pose_from_joints:=true``
(Gazebo, which has no state broadcaster) the end-effector pose comes from ``joint_states`` through
the same FR3 kinematics instead of ``current_pose``. Publishes the joint trajectory and the gripper
command: ``franka_gripper/width_command`` (worldsample_msgs/GripperCommand,
``gripper_interface:=topic``, what our simulator listens to) or, on a real Franka Hand with
``gripper_interface:=franka_action``, franka_msgs' ``franka_gripper/move`` and ``franka_gripper/grasp``
action goals (sent when the command changes; needs franka_msgs). Every clipped or rejected action is
reported on ``arm/safety`` (diagnostic_msgs/DiagnosticArray: reason, requested, commanded) and in
the log. Service ``arm/reset`` (worldsample_msgs/srv/ResetEpisode): in simulation it forwards to
``sim/reset``; on a real arm it runs franka's error recovery (franka_msgs ErrorRecovery action,
where franka_msgs is installed; otherwise a logged no-op) and then moves to ``home_position``
through the safety filter.

Who may command the arm (`core.action_gate.ActionGate`): an action on ``policy/action`` is applied
only when it comes from the actor node (``actor_node`` in this node's namespace, checked by the
publisher's GID), carries this run's ``run_id`` (parameter; "" = any run), belongs to the running
episode (START/END on ``episodes``) and has a step after the last one applied. Everything else is
dropped and counted by reason (a warning at most every 2 s and the totals at shutdown, also as
``arm_control/actions`` on ``arm/safety``); at most ``max_pending_actions`` wait to be applied. Each
applied action is published on ``arm/applied_action`` (PolicyAction, same episode, step, stamp), which
the recorder records: the bag holds what moved the arm, one action per step.

Pacing (``lockstep``, the one switch the simulator and the actor share):
- false (real robot, Gazebo): a timer at ``control_hz`` publishes the filtered target of the newest
  action, or holds the pose when none arrived within ``safety.watchdog_timeout_s`` (watchdog).
- true (lock-step simulation): one command per action, stamped with the action's stamp,
  sent once a current_pose at least as new as the action's observation arrived (at most
  ``pose_wait_s``). The simulator only moves on commands, so a stalled policy holds the arm.

All topic names are parameters (``topic_*``) relative to the node namespace, so the node runs
unchanged against our sim_node and a real franka_ros2 bringup.

Real Franka (FR3, franka_ros2 >= v3.2.0 on jazzy): ``ros2 launch worldsample_bringup real_loop.launch.py
robot_ip:=<ROBOT_IP>`` starts everything. By hand: franka_bringup's core launch with our controller
file (robot state publisher, ros2_control with the FR3 hardware, joint_state_broadcaster,
franka_robot_state_broadcaster, the Franka Hand node), then the trajectory controller, then this node:

    ros2 launch franka_bringup franka.launch.py robot_type:=fr3 robot_ip:=<ROBOT_IP> load_gripper:=true \
        controllers_yaml:=$(ros2 pkg prefix worldsample_bringup)/share/worldsample_bringup/config/fr3_controllers.yaml
    ros2 run controller_manager spawner fr3_arm_controller --param-file <that fr3_controllers.yaml>
    ros2 run worldsample_control arm_control_node --ros-args -p lockstep:=false -p sim:=false \
        -p gripper_interface:=franka_action

(franka_bringup's ``example.launch.py`` takes ``controller_names`` and ``robot_ips`` - not
``controller_name`` / ``robot_ip`` - but spawns only the controllers of its own controllers.yaml,
which has no trajectory controller; hence franka.launch.py's ``controllers_yaml`` argument.) Do not
command the arm through ``cartesian_impedance_example_controller``: its ``update()`` replaces the
commanded position with a built-in demo motion every cycle (v3.4.0). franka_ros2's Gazebo bringup
publishes only ``joint_states`` (no current_pose, gripper node or error recovery): run this node
with ``pose_from_joints:=true`` there (gazebo_loop.launch.py does).
"""

from __future__ import annotations

import math
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from worldsample_common.core.franka_interface import (
    ARM_JOINT_NAMES,
    BEST_EFFORT,
    RELIABLE,
    FrankaTopics,
    QoSSpec,
    gripper_width_from_fingers,
)
from worldsample_common.core.params import topic_params
from worldsample_common.nodes.support import declare_config, qos, run, time_to_ns

from worldsample_msgs.msg import EpisodeInfo, GripperCommand, PolicyAction
from worldsample_msgs.srv import ResetEpisode

from ..core.action_gate import ActionGate
from ..core.joint_command import JointCommander, JointTarget, joints_from_state
from ..core.node_config import ArmControlNodeConfig
from ..core.safety import ActionFilter, SafeCommand, SafetyEvent


class ArmControlNode(Node):
    def __init__(self) -> None:
        super().__init__("arm_control")
        fr = FrankaTopics()
        cfg = declare_config(self, ArmControlNodeConfig())
        cfg.validate()
        cfg = cfg.resolved()
        self.cfg = cfg
        self.control_hz = float(cfg.control_hz)
        self.lockstep = bool(cfg.lockstep)
        self.sim = bool(cfg.sim)
        self.pose_wait_s = float(cfg.pose_wait_s)
        self.gripper_speed = float(cfg.gripper_speed)
        self.gripper_force = float(cfg.gripper_force)
        self.gripper_interface = cfg.gripper_interface
        self.home_position = [float(v) for v in cfg.home_position]
        self.frame_id = cfg.base_frame
        state_best_effort = bool(cfg.state_best_effort)
        self.filter = ActionFilter(cfg.safety)
        self.joints = JointCommander(cfg.joints)
        self.pose_from_joints = bool(cfg.pose_from_joints)
        t = topic_params(cfg)
        self.topics = t
        group = ReentrantCallbackGroup()
        state_q = qos(BEST_EFFORT if state_best_effort else RELIABLE)
        self.pub_trajectory = self.create_publisher(JointTrajectory, t["joint_trajectory"], qos(fr.command_qos))
        self.pub_gripper = self.create_publisher(GripperCommand, t["gripper_width_command"], qos(fr.command_qos))
        self._franka_gripper = None
        if self.gripper_interface == "franka_action":
            self._franka_gripper = self._make_franka_gripper(t)
        self.pub_safety = self.create_publisher(DiagnosticArray, t["arm_safety"], qos(QoSSpec("reliable", 50)))
        if not self.pose_from_joints:
            self.create_subscription(PoseStamped, t["current_pose"], self._on_pose, state_q)
        self.create_subscription(JointState, t["joint_states"], self._on_joints, qos(fr.joint_states_qos))
        self.create_subscription(JointState, t["gripper_joint_states"], self._on_gripper, state_q)
        self.run_id = str(cfg.run_id)
        self.actor_node = str(cfg.actor_node)
        self.gate = ActionGate(self.run_id, max_pending=int(cfg.max_pending_actions))
        self._actor_gids: set[bytes] = set()
        self._gids_checked = -1.0
        self._drops_reported = 0
        self._drops_logged_at = 0.0
        self.pub_applied = self.create_publisher(PolicyAction, t["applied_action"], qos(QoSSpec("reliable", 100)))
        self.create_subscription(EpisodeInfo, t["episodes"], self._on_episode, qos(QoSSpec("reliable", 100)))
        # the publisher's GID comes with the message info (rclpy >= Iron); Humble's rclpy has none
        with_info = hasattr(rclpy.subscription, "MessageInfo")
        self._sub_action = self.create_subscription(
            PolicyAction, t["policy_action"], self._on_policy_action if with_info else (lambda m: self._on_policy_action(m, None)),
            qos(QoSSpec("reliable", 200)))  # room for the actor's action in a flood (the actor resends too)
        self.create_service(ResetEpisode, t["arm_reset"], self._on_reset, callback_group=group)
        self.sim_reset = self.create_client(ResetEpisode, t["sim_reset"], callback_group=group) if self.sim else None
        self._pose_stamp = -1
        self._width: float | None = None
        self._pending: list[PolicyAction] = []
        self._pending_since = 0.0
        self._latest: PolicyAction | None = None
        self._homing: dict | None = None
        self._no_pose_logged = False
        self.create_timer(0.05 if self.lockstep else 1.0 / self.control_hz, self._tick)
        pacing = "lock-step" if self.lockstep else "streaming"
        self.get_logger().info(f"arm control ({pacing}, {self.control_hz} Hz, sim={self.sim}); box "
                               f"{cfg.safety.workspace_min}..{cfg.safety.workspace_max}, step <= "
                               f"{cfg.safety.max_translation_per_step} m")

    # ------------------------------------------------------------------ state
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_pose(self, msg: PoseStamped) -> None:
        p, o = msg.pose.position, msg.pose.orientation
        self._update_pose([p.x, p.y, p.z], [o.x, o.y, o.z, o.w], msg.header.stamp)

    def _on_joints(self, msg: JointState) -> None:
        q = joints_from_state(msg.name, msg.position)
        if q is None:
            return  # another robot's / the fingers' joint states only
        self.joints.update_joints(q)
        if self.pose_from_joints:
            pos, quat = self.joints.ik.pose(q)
            self._update_pose(pos, quat, msg.header.stamp)

    def _update_pose(self, position, quaternion, stamp) -> None:
        ok = self.filter.update_state(position, quaternion, self._width)
        if ok:
            self._pose_stamp = max(self._pose_stamp, time_to_ns(stamp))
        self._flush_events()
        if self.lockstep:
            self._process_pending()

    def _on_gripper(self, msg: JointState) -> None:
        try:
            w = gripper_width_from_fingers(msg.position)
        except ValueError:
            return
        if math.isfinite(w):
            self._width = w

    def _on_episode(self, msg: EpisodeInfo) -> None:
        if msg.event == EpisodeInfo.EVENT_START:
            self.gate.on_start(msg.episode_id, msg.run_id)
        elif msg.event == EpisodeInfo.EVENT_END:
            self.gate.on_end(msg.episode_id, msg.run_id)

    def _sender_is_actor(self, info) -> bool:
        """Whether the action's publisher belongs to the actor node of this namespace (by GID)."""
        gid = (info or {}).get("publisher_gid") if isinstance(info, dict) else None
        data = bytes(gid.get("data", b"")) if isinstance(gid, dict) else b""
        if not data:
            return True  # middleware without publisher GIDs: run id, episode and step still apply
        if data in self._actor_gids:
            return True
        now = time.monotonic()
        if now - self._gids_checked < 0.5:  # a flood must not turn into a graph query per message
            return False
        self._gids_checked = now
        ns = self.get_namespace()
        self._actor_gids = {bytes(i.endpoint_gid)[:len(data)]
                            for i in self.get_publishers_info_by_topic(self._sub_action.topic_name)
                            if i.node_name == self.actor_node and i.node_namespace == ns}
        return data in self._actor_gids

    def _gate(self, msg: PolicyAction, info) -> bool:
        pending = len(self._pending) if self.lockstep else 0
        reason = self.gate.check(msg.episode_id, msg.run_id, msg.step, self._sender_is_actor(info), pending)
        if reason is None:
            return True
        self._report_drops()
        return False

    def _report_drops(self, force: bool = False) -> None:
        total = self.gate.stats.dropped_total
        now = time.monotonic()
        if total == self._drops_reported or not (force or now - self._drops_logged_at > 2.0):
            return
        self._drops_reported, self._drops_logged_at = total, now
        text = f"policy actions: {self.gate.stats.describe()}"
        self.get_logger().warning(text)
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        vals = [KeyValue(key="accepted", value=str(self.gate.stats.accepted))] + [
            KeyValue(key=f"dropped_{k}", value=str(v)) for k, v in sorted(self.gate.stats.dropped.items())]
        arr.status = [DiagnosticStatus(level=DiagnosticStatus.WARN, name="arm_control/actions", message=text,
                                       hardware_id="fr3", values=vals)]
        self.pub_safety.publish(arr)

    def _applied(self, msg: PolicyAction) -> None:
        """Tell the recorder which action moved the arm (same episode, step, stamp and values)."""
        self.pub_applied.publish(msg)

    def _on_policy_action(self, msg: PolicyAction, info) -> None:
        if not self._gate(msg, info):
            return
        if self._homing is not None:
            self.get_logger().warning(f"action {msg.episode_id}/{msg.step} ignored while homing")
            return
        if not self.lockstep:
            self._latest = msg
            return
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append(msg)
        self._process_pending()

    # ------------------------------------------------------------------ commands
    def _process_pending(self, force: bool = False) -> None:
        while self._pending:
            msg = self._pending[0]
            fresh = self._pose_stamp >= time_to_ns(msg.header.stamp)
            if not (fresh or force):
                return
            if not self.filter.has_state:
                self._log_no_pose()
                return
            self._pending.pop(0)
            cmd = self.filter.filter_action(np.asarray(msg.action, np.float64))
            self._publish(cmd, msg.header.stamp)
            self._applied(msg)
            self._pending_since = time.monotonic()

    def _log_no_pose(self) -> None:
        if not self._no_pose_logged:
            self.get_logger().warning(f"no end-effector pose on {self.topics['current_pose']!r} yet; "
                                      "actions wait (is the robot state broadcaster running?)")
            self._no_pose_logged = True

    def _tick(self) -> None:
        if self._homing is not None:
            self._home_step()
            return
        if self.lockstep:
            if self._pending and time.monotonic() - self._pending_since > self.pose_wait_s:
                self._process_pending(force=True)
            return
        if not self.filter.has_state:
            if self._latest is not None:
                self._log_no_pose()
            return
        now = self._now()
        msg, self._latest = self._latest, None
        if msg is not None:
            cmd = self.filter.filter_action(np.asarray(msg.action, np.float64), stamp=now)
            self._applied(msg)
        else:
            cmd = self.filter.check_watchdog(now) or self.filter.last_command
            if cmd is None:
                return
        self._publish(cmd, self.get_clock().now().to_msg())

    def _publish(self, cmd: SafeCommand, stamp) -> None:
        bad = self.filter.check_command(cmd)
        if bad:  # last line of defence; cannot happen unless the filter is broken
            self.get_logger().error(f"filtered command violates {bad}; not sent")
            return
        g = GripperCommand(width=float(cmd.gripper_width), speed=self.gripper_speed, force=self.gripper_force,
                           grasp=bool(cmd.gripper_width <= self.filter.config.gripper_width_min + 1e-6))
        g.header.stamp, g.header.frame_id = stamp, self.frame_id
        if not self.joints.has_joints:
            self.get_logger().warning(f"no fr3_joint1..7 on {self.topics['joint_states']!r} yet; command not sent",
                                      throttle_duration_sec=2.0)
            self._flush_events()
            return
        target = self.joints.command(cmd.position, cmd.quaternion)
        traj = JointTrajectory(joint_names=list(ARM_JOINT_NAMES))
        # lock-step simulation pairs the trajectory with the gripper command by stamp; a controller on a
        # real arm starts a trajectory stamped zero on receipt
        if self.lockstep:
            traj.header.stamp = stamp
        sec = int(target.duration)
        traj.points = [JointTrajectoryPoint(positions=[float(v) for v in target.positions])]
        traj.points[0].time_from_start.sec = sec
        traj.points[0].time_from_start.nanosec = int(round((target.duration - sec) * 1e9))
        if self._franka_gripper is not None:
            self._send_franka_gripper(g)
        else:
            self.pub_gripper.publish(g)  # gripper first: the lock-step simulator steps on the arm command
        self.pub_trajectory.publish(traj)
        if target.reason:
            self._report_ik(cmd, target)
        self._flush_events()

    def _report_ik(self, cmd: SafeCommand, target: JointTarget) -> None:
        """An IK refusal (arm holds) or workspace clip, on arm/safety and in the log."""
        reached = self.joints.ik.pose(target.positions)[0]
        reason = target.reason.split(":")[0]
        e = SafetyEvent(reason, tuple(float(v) for v in cmd.position), tuple(float(v) for v in reached),
                        detail=target.reason)
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [self._status(e)]
        self.pub_safety.publish(arr)
        self.get_logger().warning(f"joint command: {target.reason} requested={_fmt(e.requested)} "
                                  f"reached={_fmt(e.commanded)}", throttle_duration_sec=1.0)

    def _flush_events(self) -> None:
        events = self.filter.drain_events()
        if not events:
            return
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [self._status(e) for e in events]
        self.pub_safety.publish(arr)
        for e in events:  # one call site per severity (rclpy's logger insists)
            text = f"safety: {e.reason}: {e.detail} requested={_fmt(e.requested)} commanded={_fmt(e.commanded)}"
            if e.reason in ("non_finite_action", "non_finite_target", "bad_shape"):
                self.get_logger().error(text)
            else:
                self.get_logger().warning(text)

    @staticmethod
    def _status(e: SafetyEvent) -> DiagnosticStatus:
        level = DiagnosticStatus.ERROR if e.reason.startswith(("non_finite", "bad_shape")) else DiagnosticStatus.WARN
        return DiagnosticStatus(level=level, name="arm_control/safety", message=f"{e.reason}: {e.detail}",
                                hardware_id="fr3", values=[KeyValue(key="reason", value=e.reason),
                                                           KeyValue(key="requested", value=_fmt(e.requested)),
                                                           KeyValue(key="commanded", value=_fmt(e.commanded))])

    # ------------------------------------------------------------------ franka gripper actions
    def _make_franka_gripper(self, t: dict) -> dict:
        try:
            from franka_msgs.action import Grasp, Move  # type: ignore[import-not-found]
            from rclpy.action import ActionClient
        except ImportError as exc:
            raise RuntimeError("gripper_interface:=franka_action needs franka_msgs (a franka_ros2 install); "
                               "use gripper_interface:=topic otherwise") from exc
        return {"Move": Move, "Grasp": Grasp, "move": ActionClient(self, Move, t["gripper_move"]),
                "grasp": ActionClient(self, Grasp, t["gripper_grasp"]), "last": None}

    def _send_franka_gripper(self, g: GripperCommand) -> None:
        """franka_gripper Move (open to a width) / Grasp (close with force), only when the command changes."""
        fg = self._franka_gripper
        key = (bool(g.grasp), round(float(g.width), 4))
        if key == fg["last"]:
            return
        fg["last"] = key
        if g.grasp:
            goal = fg["Grasp"].Goal(width=0.0, speed=float(g.speed), force=float(g.force))
            goal.epsilon.inner, goal.epsilon.outer = 0.08, 0.08  # succeed on any object size
            client = fg["grasp"]
        else:
            goal = fg["Move"].Goal(width=float(g.width), speed=float(g.speed))
            client = fg["move"]
        if not client.server_is_ready():
            self.get_logger().warning("franka gripper action server not ready; gripper command dropped",
                                      throttle_duration_sec=5.0)
            fg["last"] = None
            return
        client.send_goal_async(goal)

    def on_shutdown(self) -> None:
        self.get_logger().info(f"policy actions at shutdown: {self.gate.stats.describe()}")

    # ------------------------------------------------------------------ reset
    async def _on_reset(self, req: ResetEpisode.Request, resp: ResetEpisode.Response) -> ResetEpisode.Response:
        self._pending.clear()
        self._latest = None
        if self.sim:
            if not self.sim_reset.wait_for_service(timeout_sec=5.0):
                resp.success, resp.seed = False, -1
                resp.message = f"simulator reset service {self.topics['sim_reset']!r} is not available"
                self.get_logger().error(resp.message)
                return resp
            result = await self.sim_reset.call_async(req)
            self.filter.reset()
            self.joints.reset()
            resp.success, resp.message, resp.seed = result.success, result.message, result.seed
            return resp
        self._error_recovery()
        fut = rclpy.task.Future()
        self.filter.reset()
        self.joints.reset()
        self._homing = {"future": fut, "deadline": time.monotonic() + 20.0}
        ok, message = await fut
        resp.success, resp.message, resp.seed = ok, message, -1
        return resp

    def _error_recovery(self) -> None:
        try:
            from franka_msgs.action import ErrorRecovery  # type: ignore[import-not-found]
            from rclpy.action import ActionClient
        except ImportError:
            self.get_logger().info("franka_msgs is not installed: error recovery skipped (no-op)")
            return
        client = ActionClient(self, ErrorRecovery, self.topics["error_recovery"])
        if client.wait_for_server(timeout_sec=2.0):
            client.send_goal_async(ErrorRecovery.Goal())
            self.get_logger().info("error recovery requested")
        else:
            self.get_logger().warning(f"error recovery server {self.topics['error_recovery']!r} not available")

    def _home_step(self) -> None:
        h = self._homing
        fut: rclpy.task.Future = h["future"]
        if time.monotonic() > h["deadline"]:
            self._homing = None
            fut.set_result((False, "homing timed out (is the arm moving?)"))
            return
        if not self.filter.has_state:
            self._log_no_pose()
            return
        meas = self.filter._measured.position
        if meas is not None and np.linalg.norm(meas - np.asarray(self.home_position)) < 0.005:
            self._homing = None
            fut.set_result((True, f"at home {self.home_position}"))
            return
        cmd = self.filter.filter_target(self.home_position, gripper_width=self.filter.config.gripper_width_max,
                                        stamp=self._now())
        self._publish(cmd, self.get_clock().now().to_msg())


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def main(args: list[str] | None = None) -> int:
    return run(ArmControlNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
