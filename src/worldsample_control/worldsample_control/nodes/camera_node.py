"""camera_node: an OpenCV camera (device index, video file or stream URL) -> sensor_msgs/Image.

Publishes ``cameras/<name>/image_raw`` (rgb8, cropped/resized to ``width`` x ``height``) and
``cameras/<name>/camera_info`` (size only; calibrate and fill K/D with camera_calibration on a
full ROS install) at up to ``fps``. A dropout (unplugged USB camera, stream hiccup, end of a
video file) is logged and the capture re-opened every ``reconnect_delay_s``; after
``max_reconnect_attempts`` failed re-opens (0: never) the node exits with an error.

Parameters map onto `core.camera.CameraConfig`: name, source, width, height, crop ([x, y, w, h];
empty = centre crop to the output aspect), fps, reconnect_delay_s, max_reconnect_attempts,
frame_id. Example (the wrist camera on /dev/video2, 64x64 like the simulator):

    ros2 run worldsample_control camera_node --ros-args -p name:=wrist -p source:=2
"""

from __future__ import annotations

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from worldsample_common.core.franka_interface import IMAGES, WorldSampleTopics
from worldsample_common.nodes.support import declare_config, image_msg, qos, run

from ..core.camera import Camera, CameraError
from ..core.node_config import CameraNodeConfig


class CameraNode(Node):
    def __init__(self) -> None:
        super().__init__("camera")
        node_cfg = declare_config(self, CameraNodeConfig())
        node_cfg.validate()
        cfg = node_cfg.camera_config()
        self.frame_id = cfg.frame_id or f"{cfg.name}_camera_optical_frame"
        self.camera = Camera(cfg, log=lambda line: self.get_logger().warning(line), sleep=lambda _s: None)
        self.pub = self.create_publisher(Image, WorldSampleTopics.camera_image(cfg.name), qos(IMAGES))
        self.pub_info = self.create_publisher(CameraInfo, WorldSampleTopics.camera_info(cfg.name), qos(IMAGES))
        if not self.camera.open():
            self.get_logger().warning(f"cannot open camera source {cfg.source!r} yet; retrying")
        self._retry_at = 0.0
        self.exit_code = 0
        self.create_timer(1.0 / max(cfg.fps, 1e-3), self._tick)
        self.get_logger().info(f"camera {cfg.name!r} from {cfg.source!r} -> {self.pub.topic_name} "
                               f"({cfg.width}x{cfg.height})")

    def _tick(self) -> None:
        now = self.get_clock().now().nanoseconds * 1e-9
        if not self.camera.is_open and now < self._retry_at:
            return
        try:
            frame = self.camera.read()
        except CameraError as exc:
            self.get_logger().error(str(exc))
            self.exit_code = 1
            raise SystemExit(1) from exc
        if frame is None:
            self._retry_at = now + self.camera.config.reconnect_delay_s
            return
        stamp = self.get_clock().now().to_msg()
        self.pub.publish(image_msg(frame.image, stamp, self.frame_id))
        info = CameraInfo(height=frame.image.shape[0], width=frame.image.shape[1])
        info.header.stamp, info.header.frame_id = stamp, self.frame_id
        self.pub_info.publish(info)

    def on_shutdown(self) -> None:
        self.camera.close()


def main(args: list[str] | None = None) -> int:
    return run(CameraNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
