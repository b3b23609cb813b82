"""learner_node as a separate process over real DDS: transitions in, checkpoint + PPL status out."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import node_process_env
from worldsample_common.testing import ros_available


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.skipif(not ros_available(), reason="rclpy / worldsample_msgs not importable (source scripts/env.sh)")
def test_learner_node_trains_and_publishes(tmp_path):
    """Episodes arrive only as bags announced by EpisodeInfo (one path per payload): a real episode's bag on
    ``episodes/recorded``, a world-model batch of synthetic branches on ``world_model/synthetic``."""
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from worldsample_common.core.bag_io import write_episode_bag, write_episodes_bag
    from worldsample_common.core.episode import Source
    from worldsample_common.testing import random_episode
    from worldsample_learner.core.policy import load_policy

    from worldsample_msgs.msg import EpisodeInfo, PolicyCheckpoint, PPLStatus

    real = write_episode_bag(random_episode("ep-a", steps=40, state_dim=2, seed=0), tmp_path / "bags" / "ep-a")
    branches = []
    for b in range(16):  # 16 synthetic branches of 4 steps (the last one truncated), as the world model writes
        ep = random_episode(f"syn-{b}", steps=4, source=Source.SYNTHETIC, state_dim=2, seed=100 + b)
        ep.terminated[:] = False
        ep.truncated[-1] = True
        ep.uncertainty[:] = 0.0 if b % 2 else 40.0
        branches.append(ep)
    synthetic = write_episodes_bag(branches, tmp_path / "synthetic" / "batch-000001")

    env = node_process_env(101)
    params = {"obs_mode": "state", "state_dim": 2, "batch_size": 16, "min_transitions": 20, "checkpoint_every_updates": 5,
              "status_period_s": 0.5, "out_dir": str(tmp_path / "learner"), "mode": "ppl", "device": "cpu"}
    cmd = [sys.executable, "-m", "worldsample_learner.nodes.learner_node", "--ros-args"]
    for k, v in params.items():
        cmd += ["-p", f"{k}:={v}"]
    log = open(tmp_path / "node.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    rclpy.init()
    node = rclpy.create_node("learner_test")
    try:
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        recorded = node.create_publisher(EpisodeInfo, "episodes/recorded", reliable)
        syn = node.create_publisher(EpisodeInfo, "world_model/synthetic", reliable)
        ckpts, statuses = [], []
        node.create_subscription(PolicyCheckpoint, "policy/checkpoint", ckpts.append, latched)
        node.create_subscription(PPLStatus, "ppl/status", statuses.append, reliable)
        deadline = time.time() + 30
        while (recorded.get_subscription_count() == 0 or syn.get_subscription_count() == 0) \
                and time.time() < deadline and proc.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.1)
        assert syn.get_subscription_count() > 0, (tmp_path / "node.log").read_text()
        end = EpisodeInfo.EVENT_END
        # an episode whose bag cannot be read: reported, the node goes on (its outcome still counts for PPL)
        recorded.publish(EpisodeInfo(event=end, episode_id="ep-broken", source=0, success=True,
                                     bag_uri=str(tmp_path / "none")))
        recorded.publish(EpisodeInfo(event=end, episode_id="ep-a", source=0, success=True, bag_uri=str(real)))
        recorded.publish(EpisodeInfo(event=end, episode_id="ep-a", source=0, success=True, bag_uri=str(real)))  # again
        syn.publish(EpisodeInfo(event=end, episode_id="batch-000001", source=EpisodeInfo.SOURCE_SYNTHETIC,
                                bag_uri=str(synthetic), length=64))
        deadline = time.time() + 40
        while time.time() < deadline and not (ckpts and any(s.admitted + s.rejected >= 64 for s in statuses)):
            rclpy.spin_once(node, timeout_sec=0.1)
        assert ckpts, (tmp_path / "node.log").read_text()
        c = ckpts[-1]
        assert c.version.startswith("policy-") and c.learner_step > 0 and c.env_steps == 40
        pol = load_policy(c.uri)
        a = pol.act_batch({}, np.zeros((1, 7), np.float32), state=np.zeros((1, 2), np.float32))
        assert a.shape == (1, 4) and np.all(np.abs(a) <= 1)
        st = [s for s in statuses if s.admitted + s.rejected >= 64][-1]
        assert st.mode == "ppl" and st.real_success_rate == 1.0
        reasons = dict(zip(st.rejection_reasons, st.rejection_counts, strict=True))
        assert reasons.get("uncertainty", 0) >= 32 and st.admitted <= 32
    finally:
        node.destroy_node()
        rclpy.shutdown()
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
    assert proc.returncode == 0, (tmp_path / "node.log").read_text()
    text = (tmp_path / "node.log").read_text()
    assert "cannot load bags" in text  # the broken announcement was reported, the node went on
    # the replay on disk survived the shutdown: 40 real transitions, the repeated announcement loaded once
    from worldsample_learner.core.replay import ObsSpec, ReplayStore

    store = ReplayStore("real", ObsSpec(7, 2), directory=tmp_path / "learner" / "replay" / "real")
    assert len(store) == 40
    # PPL's decision on every synthetic transition, logged (the bag itself is not copied)
    import csv

    rows = list(csv.DictReader((tmp_path / "learner" / "ppl_decisions.csv").open()))
    assert len(rows) == 64 and {r["bag"] for r in rows} == {str(synthetic)}
    assert sum(int(r["admitted"]) for r in rows) == st.admitted
    assert all(float(r["trust"]) < 0.5 for r in rows if float(r["uncertainty"]) == 40.0)
    assert not (tmp_path / "learner" / "synthetic_scored").exists()


@pytest.mark.ros
@pytest.mark.skipif(not ros_available(), reason="rclpy / worldsample_msgs not importable (source scripts/env.sh)")
def test_a_pixel_learner_paces_by_how_its_encoder_reads_the_predicted_frames():
    from worldsample_learner.nodes.learner_node import wm_fidelity

    from worldsample_msgs.msg import WorldModelStatus

    # 3 dB and 0.05 SSIM past copy-last-frame, but its frames read worse than a copied frame to the pixel encoder
    msg = WorldModelStatus(ssim=[0.95], copy_ssim=[0.90], psnr=[28.0], copy_psnr=[25.0], feature_skill=[-2.6])
    assert wm_fidelity(msg, "pixels") == 0.0
    assert wm_fidelity(msg, "state") == pytest.approx(1 - 10 ** -0.3)  # a state learner does not read the frames
    msg.feature_skill = [0.3]
    assert wm_fidelity(msg, "pixels") == pytest.approx(0.3)
    msg.feature_skill = []  # a world model that had no pixel encoder to read them with
    assert wm_fidelity(msg, "pixels") == pytest.approx(1 - 10 ** -0.3)
    assert wm_fidelity(WorldModelStatus(ssim=[0.95], psnr=[28.0]), "pixels") is None  # no baseline


def _real_count(log_path) -> int | None:
    import re

    found = re.findall(r"replay real=(\d+)", log_path.read_text())
    return int(found[-1]) if found else None


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.skipif(not ros_available(), reason="rclpy / worldsample_msgs not importable (source scripts/env.sh)")
def test_learner_gets_every_real_bag_across_a_kill_and_restart(tmp_path):
    """Issue 11: the learner ingests every real episode of the run from RUN/bags, exactly once, without
    any event: at start-up, on rescans, and again after kill -9 + restart (from its persisted replay)."""
    from worldsample_common.core.bag_io import write_episode_bag
    from worldsample_common.testing import random_episode

    bags = tmp_path / "bags"
    lengths = [5, 7, 4, 6]
    for i, n in enumerate(lengths[:2]):
        write_episode_bag(random_episode(f"real-{i}", steps=n, state_dim=2, seed=i), bags / f"ep{i}")
    params = {"obs_mode": "state", "state_dim": 2, "batch_size": 8, "min_transitions": 10_000,
              "out_dir": str(tmp_path / "learner"), "real_dir": str(bags), "rescan_period_s": 0.3,
              "mode": "rl-only", "device": "cpu"}
    cmd = [sys.executable, "-m", "worldsample_learner.nodes.learner_node", "--ros-args"]
    for k, v in params.items():
        cmd += ["-p", f"{k}:={v}"]

    def start(name):
        log = tmp_path / name
        return subprocess.Popen(cmd, env=node_process_env(102), stdout=open(log, "w"), stderr=subprocess.STDOUT), log

    def wait_count(log, want, proc):
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if _real_count(log) == want:
                return
            time.sleep(0.2)
        pytest.fail(f"replay real never reached {want}:\n{log.read_text()}")

    proc, log = start("first.log")
    try:
        wait_count(log, sum(lengths[:2]), proc)  # loaded at start-up
        write_episode_bag(random_episode("real-2", steps=lengths[2], state_dim=2, seed=2), bags / "ep2")
        wait_count(log, sum(lengths[:3]), proc)  # picked up by a rescan, no event needed
    finally:
        proc.kill()
        proc.wait()
    # replay chunks are written per chunk_size or at a clean stop; after kill -9 the bags are reloaded
    write_episode_bag(random_episode("real-3", steps=lengths[3], state_dim=2, seed=3), bags / "ep3")
    proc, log = start("second.log")
    try:
        wait_count(log, sum(lengths), proc)
        proc.send_signal(__import__("signal").SIGINT)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    # after the clean stop the replay was persisted: a restart holds exactly the bags' transitions before
    # and after rescanning them (none lost, none duplicated)
    proc, log = start("third.log")
    try:
        wait_count(log, sum(lengths), proc)
    finally:
        proc.send_signal(__import__("signal").SIGINT)
        proc.wait(timeout=30)
    text = log.read_text()
    assert f"replay demo=0 real={sum(lengths)}" in text and "(+0)" in text, text
