"""success_node: reward and success on a real arm, from the success classifier and a human override.

Subscribes ``cameras/<name>/image_raw`` (sensor_msgs/Image) of the classifier's cameras, the
human override ``success/override`` (std_msgs/Bool: true = success, false = failure; sent by a
key press or button, see ``success_keys`` below) and ``episodes`` (EpisodeInfo: START and END
reset the override and the classifier's streak). Publishes ``success/reward``
(diagnostic_msgs/DiagnosticArray, one status named ``sim`` with the keys ``reward``,
``success``, ``terminated``, ``truncated``, ``probability``, ``source``), stamped like the newest
camera frame — the format of the simulator's ``sim/reward``, so the actor reads it unchanged:
``use_sim_reward:=true topic_sim_reward:=success/reward lockstep:=false``.

``classifier`` = a checkpoint written by ``python -m worldsample_learner.commands.success_classifier``;
empty = human-only labelling (reward 0 until the operator presses a key).
The logic lives in `worldsample_learner.core.success_classifier.SuccessDetector`.

``success_keys``: a console helper that publishes the override: type ``s`` + Enter for success,
``f`` + Enter for failure.
"""

from __future__ import annotations

import sys

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Bool
from worldsample_common.core.franka_interface import EVENTS, IMAGES, QoSSpec, WorldSampleTopics
from worldsample_common.core.image_codec import image_msg_to_rgb8
from worldsample_common.core.params import topic_params
from worldsample_common.nodes.support import declare_config, qos, time_to_ns
from worldsample_common.nodes.support import run as run_node

from worldsample_msgs.msg import EpisodeInfo

from ..core.config import SuccessNodeConfig
from ..core.success_classifier import SuccessClassifier, SuccessDetector, SuccessDetectorConfig

OVERRIDE = QoSSpec("reliable", 10)


class SuccessNode(Node):
    def __init__(self) -> None:
        super().__init__("success_detector")
        cfg = declare_config(self, SuccessNodeConfig())
        cfg.validate()
        t = topic_params(cfg)
        clf = SuccessClassifier.load(cfg.classifier, device=cfg.device) if cfg.classifier else None
        self.detector = SuccessDetector(clf, SuccessDetectorConfig(
            confirm_frames=int(cfg.confirm_frames),
            terminate_on_success=bool(cfg.terminate_on_success)))
        self.cameras = self.detector.cameras or tuple(cfg.cameras)
        self.latest: dict[str, tuple[int, Image]] = {}
        self._last_stamp = -1
        self.bad_frames = 0
        self.pub = self.create_publisher(DiagnosticArray, t["reward"], qos(QoSSpec("reliable", 10)))
        for cam in self.cameras:
            self.create_subscription(Image, WorldSampleTopics.camera_image(cam),
                                     lambda m, c=cam: self._on_image(c, m), qos(IMAGES))
        self.create_subscription(Bool, t["override"], self._on_override, qos(OVERRIDE))
        self.create_subscription(EpisodeInfo, t["episodes"], self._on_episode, qos(EVENTS))
        self.get_logger().info(f"success detector: {'classifier ' + cfg.classifier if clf else 'human override only'}"
                               f", cameras {list(self.cameras)}, override on {t['override']!r} -> {t['reward']!r}")

    def _on_override(self, msg: Bool) -> None:
        self.detector.override(bool(msg.data))
        self.get_logger().info(f"human override: {'SUCCESS' if msg.data else 'FAILURE'}")
        self._publish()

    def _on_episode(self, msg: EpisodeInfo) -> None:
        if msg.event in (EpisodeInfo.EVENT_START, EpisodeInfo.EVENT_END):
            self.detector.reset()

    def _on_image(self, cam: str, msg: Image) -> None:
        self.latest[cam] = (time_to_ns(msg.header.stamp), msg)
        self._publish()

    def _publish(self) -> None:
        if not self.context.ok():  # a callback still queued while SIGTERM shuts the node down
            return
        if any(c not in self.latest for c in self.cameras):
            return
        stamp = max(s for s, _ in self.latest.values())
        if stamp <= self._last_stamp and not self.detector.override_pending:
            return  # judged this frame set already; an override is re-published at once
        images = None
        if self.detector.classifier is not None:
            try:
                images = {c: image_msg_to_rgb8(self.latest[c][1]) for c in self.cameras}
                d = self.detector.step(images)
            except ValueError as exc:  # wrong encoding / size: counted, named, the node keeps running
                self.bad_frames += 1
                self.get_logger().warning(f"frame rejected ({self.bad_frames} so far): {exc}",
                                          throttle_duration_sec=5.0)
                return
        else:
            d = self.detector.step(None)
        self._last_stamp = stamp
        st = DiagnosticStatus(name="sim", message=d.source, values=[
            KeyValue(key="reward", value=repr(float(d.reward))),
            KeyValue(key="success", value="true" if d.success else "false"),
            KeyValue(key="terminated", value="true" if d.terminated else "false"),
            KeyValue(key="truncated", value="false"),
            KeyValue(key="probability", value=repr(d.probability)),
            KeyValue(key="source", value=d.source)])
        msg = DiagnosticArray(status=[st])
        msg.header.stamp = max(self.latest.values(), key=lambda sm: sm[0])[1].header.stamp
        try:
            self.pub.publish(msg)
        except Exception:  # noqa: BLE001 - only a shutdown racing this callback is not an error
            if self.context.ok():
                raise


def main(args: list[str] | None = None) -> int:
    return run_node(SuccessNode, args)


def keys_main(args: list[str] | None = None) -> int:
    """``success_keys``: s + Enter publishes success, f + Enter failure, on ``success/override``."""
    import rclpy

    rclpy.init(args=sys.argv if args is None else args)
    node = rclpy.create_node("success_keys")
    topic = node.declare_parameter("topic_override", "success/override").value
    pub = node.create_publisher(Bool, topic, qos(OVERRIDE))
    print(f"success_keys: 's' + Enter = success, 'f' + Enter = failure (publishing on {topic!r}); Ctrl-D quits")
    try:
        for line in sys.stdin:
            key = line.strip().lower()
            if key in ("s", "f"):
                pub.publish(Bool(data=key == "s"))
                print("-> SUCCESS" if key == "s" else "-> FAILURE")
            elif key:
                print(f"success_keys: unknown key {key!r}; expected 's' or 'f'")
            rclpy.spin_once(node, timeout_sec=0.0)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
