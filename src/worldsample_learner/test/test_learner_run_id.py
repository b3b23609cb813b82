"""Issue 11: a learner with a ``run_id`` takes real and synthetic episode bags of its own run only.

A second run on the same ROS_DOMAIN_ID announces bags on `episodes/recorded` and `world_model/synthetic`
too; the learner node (a real process over DDS) must keep those out of its replay, out of PPL's
scoring and out of PPL's progress.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from helpers import node_process_env
from worldsample_common.testing import ros_available


@pytest.mark.ros
@pytest.mark.skipif(not ros_available(), reason="rclpy / worldsample_msgs not importable (source scripts/env.sh)")
def test_learner_ignores_other_runs_transitions_and_bags(tmp_path):
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from worldsample_common.core.bag_io import write_episode_bag, write_episodes_bag
    from worldsample_common.core.episode import Source
    from worldsample_common.testing import random_episode
    from worldsample_learner.core.replay import ObsSpec, ReplayStore

    from worldsample_msgs.msg import EpisodeInfo, PolicyCheckpoint, PPLStatus

    mine, theirs = "run-mine", "run-theirs"
    own_bag, foreign_bag = tmp_path / "own" / "ep-own-bag", tmp_path / "other" / "ep-foreign-bag"
    own_bag2, foreign_syn = tmp_path / "own" / "ep-mine", tmp_path / "other" / "synthetic"
    write_episode_bag(random_episode("own-bag", steps=5, state_dim=2, seed=1), own_bag)
    write_episode_bag(random_episode("ep-mine", steps=10, state_dim=2, seed=3), own_bag2)
    write_episode_bag(random_episode("foreign-bag", steps=7, state_dim=2, seed=2), foreign_bag)
    write_episodes_bag([random_episode(f"syn-{i}", steps=3, source=Source.SYNTHETIC, state_dim=2, seed=10 + i)
                        for i in range(4)], foreign_syn)
    own_syn = tmp_path / "own" / "synthetic"
    write_episodes_bag([random_episode(f"own-syn-{i}", steps=3, source=Source.SYNTHETIC, state_dim=2, seed=20 + i)
                        for i in range(2)], own_syn)
    params = {"obs_mode": "state", "state_dim": 2, "batch_size": 8, "min_transitions": 1, "checkpoint_every_updates": 1,
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
        syn = node.create_publisher(EpisodeInfo, "world_model/synthetic", reliable)
        rec = node.create_publisher(EpisodeInfo, "episodes/recorded", reliable)
        env_steps: list[int] = []
        statuses: list = []
        node.create_subscription(PolicyCheckpoint, "policy/checkpoint", lambda m: env_steps.append(m.env_steps), latched)
        node.create_subscription(PPLStatus, "ppl/status", statuses.append, reliable)
        deadline = time.time() + 60
        while (syn.get_subscription_count() == 0 or rec.get_subscription_count() == 0) and time.time() < deadline \
                and proc.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.1)
        assert syn.get_subscription_count() and rec.get_subscription_count(), log.read_text()
        end, real = EpisodeInfo.EVENT_END, EpisodeInfo.SOURCE_REAL
        # the other run's announcements first, each on the same writer as ours: once ours are in, theirs were handled
        syn.publish(EpisodeInfo(event=end, episode_id="synthetic", source=EpisodeInfo.SOURCE_SYNTHETIC, run_id=theirs,
                                bag_uri=str(foreign_syn), length=12))
        rec.publish(EpisodeInfo(event=end, episode_id="foreign-bag", source=real, run_id=theirs,
                                bag_uri=str(foreign_bag)))
        rec.publish(EpisodeInfo(event=end, episode_id="ep-mine", source=real, run_id=mine, bag_uri=str(own_bag2)))
        rec.publish(EpisodeInfo(event=end, episode_id="own-bag", source=real, run_id=mine, bag_uri=str(own_bag)))
        syn.publish(EpisodeInfo(event=end, episode_id="own-synthetic", source=EpisodeInfo.SOURCE_SYNTHETIC,
                                run_id=mine, bag_uri=str(own_syn), length=6))
        decisions = tmp_path / "learner" / "ppl_decisions.csv"
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None and not (15 in env_steps and decisions.exists()):
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
    assert max(env_steps) == 15, sorted(set(env_steps))  # the other run's 7 real transitions never counted
    # PPL scored our synthetic bag only (announced after theirs on the same writer: theirs was handled first)
    bags = {line.split(",")[1] for line in decisions.read_text().splitlines()[1:]}
    assert bags == {str(own_syn)}, bags
    assert all(st.admitted + st.rejected <= 6 for st in statuses)
    store = ReplayStore("real", ObsSpec(7, 2), directory=tmp_path / "learner" / "replay" / "real")
    assert {eid for eid, _, _ in store.keys()} == {"ep-mine", "own-bag"}
    assert len(store) == 15
    text = log.read_text()
    assert "ignoring messages of another run ('run-theirs'" in text, text
