"""recorder_node: one MCAP rosbag2 per episode, with every topic of the episode.

Subscribes (raw CDR, nothing is re-encoded): ``episodes`` (EpisodeInfo START/END),
``transitions/real`` (Transition), ``arm/applied_action`` (the actions arm control accepted and
applied, one per step: not ``policy/action``, where anyone on the domain can publish),
``arm/safety``, ``sim/reward``, the camera
images ``cameras/<name>/image_raw``, and the franka_ros2 state topics (current_pose,
external wrench, measured joint states, joint_states, gripper joint states).

Publishes ``episodes/recorded`` (EpisodeInfo END with ``bag_uri`` filled) once an episode's bag
is closed. SIGINT/SIGTERM close the open bag cleanly; the bag of a SIGKILLed recorder is made
readable with ``worldsample_common.core.bag_io.recover_bag`` (write-ahead log).

``run_id``: episode messages (EpisodeInfo, Transition, applied actions) of another run are
dropped and counted (warned once per run id); "" records every run.

Parameters: ``out_dir`` (bags go to out_dir/<episode_id>), ``run_id``, ``cameras`` (string array),
``grace_s`` (how long an ended episode waits for its late transitions), ``linger_s`` (how
long a complete episode stays open for other late messages), ``record_state``,
``record_images`` and every topic name (``topic_*``).
"""

from __future__ import annotations

import os
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, WrenchStamped
from rclpy.node import Node
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image, JointState
from worldsample_common.core.franka_interface import (
    BEST_EFFORT,
    EVENTS,
    IMAGES,
    QoSSpec,
    WorldSampleTopics,
)
from worldsample_common.core.params import topic_params
from worldsample_common.nodes.support import declare_config, qos, run, time_to_ns

from worldsample_msgs.msg import EpisodeInfo, PolicyAction, Transition

from ..core.node_config import RecorderNodeConfig
from ..core.recorder import EpisodeRecorder, header_stamp_ns


def msgtype_of(cls) -> str:
    return f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"


class RecorderNode(Node):
    def __init__(self) -> None:
        super().__init__("recorder")
        cfg = declare_config(self, RecorderNodeConfig())
        cfg.validate()
        out_dir, run_id, cameras = cfg.out_dir, str(cfg.run_id), list(cfg.cameras)
        grace, linger = float(cfg.grace_s), float(cfg.linger_s)
        record_state, record_images = bool(cfg.record_state), bool(cfg.record_images)
        t = topic_params(cfg)
        self.core = EpisodeRecorder(Path(out_dir), grace_s=grace, linger_s=linger, run_id=run_id)
        self._foreign_runs: set[str] = set()
        self._errors_reported = 0
        self._end_msgs: dict[str, EpisodeInfo] = {}
        self._pub_recorded = self.create_publisher(EpisodeInfo, t["episodes_recorded"], qos(EVENTS))
        self._sub(EpisodeInfo, t["episodes"], EVENTS, self._on_episode)
        self._sub(Transition, t["transitions"], EVENTS, self._on_transition)
        self._sub(PolicyAction, t["applied_action"], EVENTS, self._on_applied_action)
        self._sub(DiagnosticArray, t["arm_safety"], EVENTS, None)
        self._sub(DiagnosticArray, t["sim_reward"], EVENTS, None)
        if record_images:
            for cam in cameras:
                self._sub(Image, WorldSampleTopics.camera_image(cam), IMAGES, None)
        if record_state:
            self._sub(PoseStamped, t["current_pose"], BEST_EFFORT, None)
            self._sub(WrenchStamped, t["external_wrench"], BEST_EFFORT, None)
            self._sub(JointState, t["measured_joint_states"], BEST_EFFORT, None)
            self._sub(JointState, t["joint_states"], BEST_EFFORT, None)
            self._sub(JointState, t["gripper_joint_states"], BEST_EFFORT, None)
        self.create_timer(0.2, self._poll)
        self.get_logger().info(f"recording episodes {f'of run {run_id} ' if run_id else ''}to {self.core.out_dir}")

    # ------------------------------------------------------------------ subscriptions
    def _sub(self, cls, topic: str, spec: QoSSpec, handler) -> None:
        msgtype = msgtype_of(cls)
        holder: dict = {}

        def cb(raw: bytes) -> None:
            name = holder["sub"].topic_name
            try:
                if handler is None:
                    stamp = header_stamp_ns(raw)
                    self.core.write(name, msgtype, raw, self._now_ns() if stamp is None else stamp)
                else:
                    handler(name, msgtype, raw)
            except Exception as exc:  # noqa: BLE001 - never let one bad message stop the recording
                self.get_logger().error(f"cannot record a {msgtype} on {name}: {type(exc).__name__}: {exc}")

        holder["sub"] = self.create_subscription(cls, topic, cb, qos(spec), raw=True)

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _ours(self, msg) -> bool:
        if self.core.accepts(msg.run_id):
            return True
        if msg.run_id not in self._foreign_runs:
            self._foreign_runs.add(msg.run_id)
            self.get_logger().warning(f"messages of another run ({msg.run_id!r}, episode {msg.episode_id}) on this "
                                      "ROS domain are ignored: two WorldSample graphs share ROS_DOMAIN_ID="
                                      f"{os.environ.get('ROS_DOMAIN_ID', '0')}")
        return False

    def _on_episode(self, topic: str, msgtype: str, raw: bytes) -> None:
        msg = deserialize_message(raw, EpisodeInfo)
        if not self._ours(msg):
            return
        if msg.event == EpisodeInfo.EVENT_START:
            path = self.core.start_episode(msg.episode_id, topic, msgtype, raw, time_to_ns(msg.header.stamp))
            self.get_logger().info(f"episode {msg.episode_id}: recording to {path}")
            self._publish_done(self.core.poll())
            return
        path = self.core.bag_path(msg.episode_id)
        msg.bag_uri = str(path.resolve())
        self._end_msgs[msg.episode_id] = msg
        done = self.core.end_episode(msg.episode_id, msg.length, topic, msgtype, serialize_message(msg),
                                     time_to_ns(msg.header.stamp))
        self._publish_done(done)

    def _on_transition(self, topic: str, msgtype: str, raw: bytes) -> None:
        msg = deserialize_message(raw, Transition)
        if not self._ours(msg):
            return
        stamp = time_to_ns(msg.header.stamp)
        if not self.core.write(topic, msgtype, raw, stamp, episode_id=msg.episode_id):
            self.get_logger().warning(f"transition {msg.episode_id}/{msg.step} arrived outside its episode; "
                                      "not recorded")
        self._publish_done(self.core.poll())

    def _on_applied_action(self, topic: str, msgtype: str, raw: bytes) -> None:
        msg = deserialize_message(raw, PolicyAction)
        if not self._ours(msg):
            return
        self.core.write(topic, msgtype, raw, time_to_ns(msg.header.stamp), episode_id=msg.episode_id or None)

    # ------------------------------------------------------------------ closing
    def _poll(self) -> None:
        self._publish_done(self.core.poll())

    def _publish_done(self, done) -> None:
        for err in self.core.errors[self._errors_reported:]:
            self.get_logger().error(f"recording failed: {err}; the bag is left for `worldsample bags recover`")
        self._errors_reported = len(self.core.errors)
        for rec in done:
            msg = self._end_msgs.pop(rec.episode_id, None)
            if msg is None:
                msg = EpisodeInfo(event=EpisodeInfo.EVENT_END, episode_id=rec.episode_id, run_id=self.core.run_id)
            msg.bag_uri = str(Path(rec.bag_uri).resolve())
            if not rec.complete:
                msg.reason = rec.status
            msg.header.stamp = self.get_clock().now().to_msg()
            self._pub_recorded.publish(msg)
            text = (f"episode {rec.episode_id}: bag closed ({rec.reason}, {rec.messages} messages, "
                    f"{rec.transitions}/{rec.expected_transitions} transitions) -> {msg.bag_uri}")
            if rec.complete:
                self.get_logger().info(text)
            else:
                self.get_logger().warning(text)

    def on_shutdown(self) -> None:
        for rec in self.core.close_all("shutdown"):
            self.get_logger().info(f"episode {rec.episode_id}: bag closed on shutdown ({rec.messages} messages) "
                                   f"-> {rec.bag_uri}")


def main(args: list[str] | None = None) -> int:
    return run(RecorderNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
