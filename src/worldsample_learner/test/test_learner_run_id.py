"""Issue 11: a learner with a ``run_id`` takes real transitions and episode bags of its own run only.

A second run on the same ROS_DOMAIN_ID publishes `transitions/real` and `episodes/recorded` too; the
learner node (a real process over DDS) must keep those out of its replay and out of PPL's progress.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import node_process_env
from worldsample_common.testing import ros_available


@pytest.mark.ros
@pytest.mark.skipif(not ros_available(), reason="rclpy / worldsample_msgs not importable (source scripts/env.sh)")
def test_learner_ignores_other_runs_transitions_and_bags(tmp_path):
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from worldsample_common.core.bag_io import write_episode_bag
    from worldsample_common.testing import random_episode
    from worldsample_learner.core.replay import ObsSpec, ReplayStore

    from worldsample_msgs.msg import EpisodeInfo, PolicyCheckpoint, Transition

    mine, theirs = "run-mine", "run-theirs"
    own_bag, foreign_bag = tmp_path / "own" / "ep-own-bag", tmp_path / "other" / "ep-foreign-bag"
    write_episode_bag(random_episode("own-bag", steps=5, state_dim=2, seed=1), own_bag)
    write_episode_bag(random_episode("foreign-bag", steps=7, state_dim=2, seed=2), foreign_bag)
    params = {"obs_mode": "state", "state_dim": 2, "batch_size": 8, "min_transitions": 1, "checkpoint_every": 1,
              "out_dir": str(tmp_path / "learner"), "mode": "rl-only", "device": "cpu", "run_id": mine}
    cmd = [sys.executable, "-m", "worldsample_learner.nodes.learner_node", "--ros-args"]
    for k, v in params.items():
        cmd += ["-p", f"{k}:={v}"]
    log = tmp_path / "node.log"
    proc = subprocess.Popen(cmd, env=node_process_env(103), stdout=open(log, "w"), stderr=subprocess.STDOUT)
    rclpy.init()
    node = rclpy.create_node("learner_run_id_test")
    try:
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        pub = node.create_publisher(Transition, "transitions/real", reliable)
        rec = node.create_publisher(EpisodeInfo, "episodes/recorded", reliable)
        env_steps: list[int] = []
        node.create_subscription(PolicyCheckpoint, "policy/checkpoint", lambda m: env_steps.append(m.env_steps), latched)
        deadline = time.time() + 60
        while (pub.get_subscription_count() == 0 or rec.get_subscription_count() == 0) and time.time() < deadline \
                and proc.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.1)
        assert pub.get_subscription_count() and rec.get_subscription_count(), log.read_text()
        rng = np.random.default_rng(0)

        def transition(eid, i, run_id):
            return Transition(episode_id=eid, step=i, task="push", source=Transition.SOURCE_REAL, run_id=run_id,
                              proprio=rng.normal(size=7).astype(np.float32).tolist(),
                              next_proprio=rng.normal(size=7).astype(np.float32).tolist(),
                              action=rng.uniform(-1, 1, 4).astype(np.float32).tolist(), reward=-1.0,
                              state=[0.1, 0.2], next_state=[0.2, 0.3])

        # the other run's messages first, each on the same writer as ours: once ours are in, theirs were handled
        for i in range(12):
            pub.publish(transition("ep-theirs", i, theirs))
        for i in range(10):
            pub.publish(transition("ep-mine", i, mine))
        rec.publish(EpisodeInfo(event=EpisodeInfo.EVENT_END, episode_id="foreign-bag", source=EpisodeInfo.SOURCE_REAL,
                                run_id=theirs, bag_uri=str(foreign_bag)))
        rec.publish(EpisodeInfo(event=EpisodeInfo.EVENT_END, episode_id="own-bag", source=EpisodeInfo.SOURCE_REAL,
                                run_id=mine, bag_uri=str(own_bag)))
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None and 15 not in env_steps:
            rclpy.spin_once(node, timeout_sec=0.1)
        assert 15 in env_steps, f"checkpoints' env_steps {sorted(set(env_steps))}, want 15:\n{log.read_text()}"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        node.destroy_node()
        rclpy.shutdown()
    assert max(env_steps) == 15, sorted(set(env_steps))  # the other run's 12 + 7 transitions never counted
    store = ReplayStore("real", ObsSpec(7, 2), directory=tmp_path / "learner" / "replay" / "real")
    assert {eid for eid, _, _ in store.keys()} == {"ep-mine", "own-bag"}
    assert len(store) == 15
    text = log.read_text()
    assert "ignoring messages of another run ('run-theirs'" in text, text
