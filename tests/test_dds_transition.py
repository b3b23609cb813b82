"""worldsample_msgs/Transition with camera images travels between two processes over real Fast DDS."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import rclpy
from worldsample_common.nodes.ros_conversions import episode_from_records, transition_from_msg
from worldsample_common.testing import random_episode, test_domain_id

from worldsample_msgs.msg import Transition

PUBLISHER = textwrap.dedent(
    """
    import time, rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy
    from worldsample_common.nodes.ros_conversions import transition_to_msg
    from worldsample_common.testing import random_episode
    from worldsample_msgs.msg import Transition
    ep = random_episode("dds-ep", steps={steps}, size={size}, seed=7)
    rclpy.init()
    node = rclpy.create_node("transition_publisher")
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub = node.create_publisher(Transition, "transitions/real", qos)
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    for t in range(ep.length):
        pub.publish(transition_to_msg(ep, t, stamp_ns=1_000_000_000 * (t + 1)))
    print("published", ep.length, flush=True)
    time.sleep(5)
    node.destroy_node()
    rclpy.shutdown()
    """
)


@pytest.mark.ros
def test_transition_with_images_crosses_processes_over_dds() -> None:
    steps, size = 6, 64
    env = dict(os.environ, ROS_DOMAIN_ID=str(test_domain_id()))
    os.environ["ROS_DOMAIN_ID"] = env["ROS_DOMAIN_ID"]
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    context = rclpy.context.Context()
    rclpy.init(context=context)
    received = []
    proc = None
    try:
        node = rclpy.create_node("transition_subscriber", context=context)
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(Transition, "transitions/real", received.append, qos)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        proc = subprocess.Popen([sys.executable, "-c", PUBLISHER.format(steps=steps, size=size)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 45
        while len(received) < steps and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
            assert proc.poll() in (None, 0), proc.stdout.read()
        assert len(received) == steps, f"got {len(received)} of {steps} transitions over DDS"
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        rclpy.shutdown(context=context)

    sent = random_episode("dds-ep", steps=steps, size=size, seed=7)
    got = episode_from_records([transition_from_msg(m) for m in received])
    assert got.episode_id == "dds-ep" and got.length == steps
    for cam in sent.camera_names:
        assert got.images[cam].tobytes() == sent.images[cam].tobytes()
    np.testing.assert_array_equal(got.actions, sent.actions)
    np.testing.assert_array_equal(got.proprio, sent.proprio)
    np.testing.assert_array_equal(got.uncertainty, sent.uncertainty)
    np.testing.assert_array_equal(got.states, sent.states)
    assert [m.header.stamp.sec for m in received] == list(range(1, steps + 1))
