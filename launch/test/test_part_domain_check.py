"""The domain check of a split run (issue 24): each part accepts its own other half, running, and still refuses
a second part of its own kind or another run's half. A restarted robot PC finds the learning part's graph
(learner, world model, learning_link) already running and must start beside it."""

from __future__ import annotations

import threading

import pytest
from worldsample_common.testing import test_domain_id

pytestmark = [pytest.mark.ros]


@pytest.fixture
def half(monkeypatch):
    """Start a half's node names in this process (plain nodes; the link declares ``run_id``) on a test domain."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor

    monkeypatch.setenv("ROS_DOMAIN_ID", str(test_domain_id(67)))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.delenv("WORLDSAMPLE_SKIP_DOMAIN_CHECK", raising=False)
    running = []

    def start(names: tuple[str, ...], link: str, run_id: str) -> None:
        ctx = rclpy.Context()
        rclpy.init(context=ctx, args=[])
        ex = MultiThreadedExecutor(num_threads=2, context=ctx)
        nodes = [rclpy.create_node(n, context=ctx) for n in names]
        link_node = rclpy.create_node(link, context=ctx)
        link_node.declare_parameter("run_id", run_id)
        for n in [*nodes, link_node]:
            ex.add_node(n)
        t = threading.Thread(target=ex.spin, daemon=True)
        t.start()
        running.append((ctx, ex, t))

    yield start
    for ctx, ex, t in running:
        ex.shutdown()
        rclpy.shutdown(context=ctx)
        t.join(timeout=5)


def test_each_part_accepts_its_running_other_half_and_nothing_else(half):
    from worldsample_bringup.domain_check import other_graph

    half(("learner", "world_model"), "learning_link", "rig1")  # the learning server's graph, running
    assert other_graph(wait_s=3.0, part="robot", run_id="rig1") == []  # a (re)started robot PC starts beside it
    refused = other_graph(wait_s=3.0, part="robot", run_id="rig2")  # another run's half
    assert len(refused) == 3 and all("run id 'rig1'" in f for f in refused), refused
    assert len(other_graph(wait_s=3.0, part="learning", run_id="rig1")) == 3  # a second learning part
    assert len(other_graph(wait_s=3.0, part="all")) == 3  # a one-machine graph


def test_the_learning_part_accepts_the_running_robot_half(half):
    from worldsample_bringup.domain_check import other_graph

    half(("sim", "arm_control", "actor", "recorder"), "robot_link", "rig1")
    assert other_graph(wait_s=3.0, part="learning", run_id="rig1") == []
    assert len(other_graph(wait_s=3.0, part="robot", run_id="rig1")) == 5  # a second robot part
