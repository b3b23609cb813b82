"""success_node as a separate process over real DDS: camera frames + human override in, reward out."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import node_process_env
from test_success_classifier import _constant_classifier
from worldsample_common.testing import ros_available


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.skipif(not ros_available(), reason="rclpy / worldsample_msgs not importable (source scripts/env.sh)")
def test_success_node_classifier_and_human_override(tmp_path):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Bool
    from worldsample_common.nodes.support import image_msg, ns_to_time

    from worldsample_msgs.msg import EpisodeInfo

    clf_path = _constant_classifier(4.0).save(tmp_path / "always_success.pt")  # says "success" on every frame
    env = node_process_env(1)
    cmd = [sys.executable, "-m", "worldsample_learner.nodes.success_node", "--ros-args",
           "-p", f"classifier:={clf_path}", "-p", "confirm_frames:=3"]
    log = open(tmp_path / "node.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    rclpy.init()
    node = rclpy.create_node("success_test")
    try:
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        cams = {c: node.create_publisher(Image, f"cameras/{c}/image_raw", reliable) for c in ("front", "wrist")}
        override = node.create_publisher(Bool, "success/override", reliable)
        episodes = node.create_publisher(EpisodeInfo, "episodes", reliable)
        got: list[DiagnosticArray] = []
        node.create_subscription(DiagnosticArray, "success/reward", got.append, reliable)
        deadline = time.time() + 30
        while time.time() < deadline and proc.poll() is None and not (
                all(p.get_subscription_count() for p in cams.values()) and override.get_subscription_count()
                and episodes.get_subscription_count() and node.count_publishers("success/reward")):
            rclpy.spin_once(node, timeout_sec=0.1)
        assert proc.poll() is None and override.get_subscription_count(), (tmp_path / "node.log").read_text()
        time.sleep(0.5)

        def frames(k: int, size: int = 16) -> None:
            for c, pub in cams.items():
                pub.publish(image_msg(np.zeros((size, size, 3), np.uint8), ns_to_time(k * 100_000_000), c))

        def wait(n: int) -> list[dict[str, str]]:
            end = time.time() + 15
            while len(got) < n and time.time() < end:
                rclpy.spin_once(node, timeout_sec=0.05)
            assert len(got) >= n, (len(got), (tmp_path / "node.log").read_text())
            return [{kv.key: kv.value for kv in m.status[0].values} for m in got]

        for k in range(1, 5):  # 4 frame pairs: judged per new frame set, success confirmed on the 3rd
            frames(k)
            out = wait(k)
        assert [o["success"] for o in out[:3]] == ["false", "false", "true"]
        # the simulator's reward convention (core.reward): -1 per step, 0 on the success step
        assert [float(o["reward"]) for o in out[:3]] == [-1.0, -1.0, 0.0]
        assert out[2]["terminated"] == "true" and out[2]["source"] == "classifier"
        assert got[0].status[0].name == "sim"  # the simulator's format: the actor reads it unchanged
        # the operator presses "failure": it wins over the classifier at once, until the next episode starts
        n = len(got)
        override.publish(Bool(data=False))
        out = wait(n + 1)
        assert out[-1]["source"] == "human" and out[-1]["success"] == "false" and out[-1]["terminated"] == "true"
        episodes.publish(EpisodeInfo(event=EpisodeInfo.EVENT_START, episode_id="e2"))
        time.sleep(0.5)
        rclpy.spin_once(node, timeout_sec=0.1)
        n = len(got)
        frames(10)
        out = wait(n + 1)
        assert out[-1]["source"] == "classifier" and out[-1]["success"] == "false"  # streak restarted
        # a frame of the wrong size is rejected by name; the node keeps running
        n = len(got)
        frames(11, size=8)
        frames(12)
        out = wait(n + 1)
        assert out[-1]["source"] == "classifier"
    finally:
        node.destroy_node()
        rclpy.shutdown()
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
    text = (tmp_path / "node.log").read_text()
    assert proc.returncode == 0, text
    assert "human override: FAILURE" in text and "frame rejected (1 so far)" in text and "expected (N, 16, 16, 3)" in text
