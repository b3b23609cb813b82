"""Camera core against a real video file written with cv2.VideoWriter (incl. end-of-file dropout)."""

from __future__ import annotations

import numpy as np
import pytest
from worldsample_common.testing import ros_available
from worldsample_control.core.camera import Camera, CameraConfig, CameraError, process_frame

cv2 = pytest.importorskip("cv2")


def _write_video(path, n=6, w=80, h=60):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
    assert writer.isOpened()
    for i in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, :, 2] = 40 * i  # red channel (BGR order) encodes the frame number
        img[:, : w // 2, 1] = 200  # green left half
        writer.write(img)
    writer.release()


def test_reads_file_resizes_and_reconnects_after_end(tmp_path):
    path = tmp_path / "cam.avi"
    _write_video(path)
    logs: list[str] = []
    cam = Camera(CameraConfig(name="front", source=str(path), width=32, height=32, reconnect_delay_s=0.0),
                 log=logs.append)
    assert cam.open()
    frames = []
    for _ in range(6):
        f = cam.read()
        assert f is not None
        frames.append(f)
    for f in frames:
        assert f.image.shape == (32, 32, 3) and f.image.dtype == np.uint8
    reds = [int(f.image[..., 0].mean()) for f in frames]
    assert reds == sorted(reds) and reds[-1] - reds[0] > 150  # RGB order, frame order kept
    assert frames[0].image[:, :5, 1].mean() > 150 and frames[0].image[:, -5:, 1].mean() < 50
    assert [f.index for f in frames] == list(range(6))
    # End of file = dropout: None, one log line, capture re-opened, frames flow again from the start.
    assert cam.read() is None
    assert cam.dropouts == 1 and cam.reconnects == 1
    assert any("dropout" in line for line in logs) and any("reconnected" in line for line in logs)
    again = cam.read()
    assert again is not None and again.index == 6
    assert abs(int(again.image[..., 0].mean()) - reds[0]) < 10
    cam.close()


def test_missing_source_gives_up_after_attempts(tmp_path):
    logs: list[str] = []
    cam = Camera(CameraConfig(name="wrist", source=str(tmp_path / "nope.avi"), reconnect_delay_s=0.0,
                              max_reconnect_attempts=3), log=logs.append)
    assert not cam.open()
    assert cam.read() is None
    assert cam.read() is None
    with pytest.raises(CameraError, match="wrist"):
        cam.read()
    assert len([line for line in logs if "cannot open" in line]) == 3


def test_crop_and_center_crop():
    img = np.zeros((60, 100, 3), np.uint8)
    img[:, :20] = 255  # white left strip is cut by the centre crop to a square
    out = process_frame(img, CameraConfig(width=30, height=30))
    assert out.shape == (30, 30, 3) and out.max() == 0
    out = process_frame(img, CameraConfig(width=10, height=10, crop=(0, 0, 20, 20)))
    assert out.min() == 255
    with pytest.raises(CameraError, match="crop"):
        process_frame(img, CameraConfig(width=10, height=10, crop=(90, 0, 20, 20)))
    with pytest.raises(ValueError, match="width/height"):
        CameraConfig(width=10, height=0).validate()


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.skipif(not ros_available("sensor_msgs.msg"), reason="rclpy / worldsample_msgs not importable (source scripts/env.sh)")
def test_camera_node_publishes_and_survives_end_of_file(tmp_path):
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    import rclpy
    from sensor_msgs.msg import Image

    root = Path(__file__).resolve().parents[3]
    path = tmp_path / "cam.avi"
    _write_video(path, n=4)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src" / "worldsample_common"), str(root / "src" / "worldsample_control"),
                                         env.get("PYTHONPATH", "")])
    env["ROS_DOMAIN_ID"] = str(os.getpid() % 100 + 1)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["ROS_DOMAIN_ID"] = env["ROS_DOMAIN_ID"]
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    proc = subprocess.Popen([sys.executable, "-u", "-m", "worldsample_control.nodes.camera_node", "--ros-args",
                             "-p", "name:=wrist", "-p", f"source:={path}", "-p", "fps:=30.0", "-p", "width:=32",
                             "-p", "height:=24", "-p", "reconnect_delay_s:=0.0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rclpy.init()
    node = rclpy.create_node("camera_probe")
    frames = []
    node.create_subscription(Image, "cameras/wrist/image_raw", frames.append, 10)
    try:
        deadline = time.monotonic() + 30
        while len(frames) < 10:  # more frames than the file has: it was re-opened
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, f"{len(frames)} frames in 30 s"
            rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        proc.send_signal(2)
        out = proc.communicate(timeout=20)[0]
        node.destroy_node()
        rclpy.shutdown()
    assert proc.returncode == 0, out
    f = frames[-1]
    assert (f.width, f.height, f.encoding, f.header.frame_id) == (32, 24, "rgb8", "wrist_camera_optical_frame")
    assert "dropout after 4 frames" in out and "reconnected" in out
