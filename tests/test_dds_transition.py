"""worldsample_msgs/Transition with camera images travels between two processes over real Fast DDS.

Encoded and decoded by the one Transition codec (`worldsample_common.core.bag_io.codec`): the CDR
bytes it makes are what rclpy publishes and what rosbag2 stores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import rclpy
from worldsample_common.core.bag_io import TRANSITION_TYPE, episode_from_transitions, typestore
from worldsample_common.testing import random_episode, test_domain_id

from worldsample_msgs.msg import Transition

PUBLISHER = textwrap.dedent(
    """
    import time, rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy
    from worldsample_common.core.bag_io import TRANSITION_TYPE, transition_msgs, typestore
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
    for ns, msg in transition_msgs(ep, t0_ns=1_000_000_000):
        pub.publish(bytes(typestore().serialize_cdr(msg, TRANSITION_TYPE)))  # CDR, as rclpy sends it
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
        node.create_subscription(Transition, "transitions/real", received.append, qos, raw=True)
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
    msgs = [typestore().deserialize_cdr(raw, TRANSITION_TYPE) for raw in received]
    stamps = [m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec for m in msgs]
    got = episode_from_transitions("dds", "dds-ep", list(zip(stamps, msgs, strict=True)), None)
    assert got.episode_id == "dds-ep" and got.length == steps
    for cam in sent.camera_names:
        assert got.images[cam].tobytes() == sent.images[cam].tobytes()
    np.testing.assert_array_equal(got.actions, sent.actions)
    np.testing.assert_array_equal(got.proprio, sent.proprio)
    np.testing.assert_array_equal(got.uncertainty, sent.uncertainty)
    np.testing.assert_array_equal(got.states, sent.states)
    assert stamps == [1_000_000_000 + 100_000_000 * t for t in range(steps)]  # the codec's 10 Hz default
