"""world_model_node as a separate process over real DDS: episodes in, versions + status out, generate service."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from worldsample_common.testing import ros_available

ROOT = Path(__file__).resolve().parents[3]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = [str(ROOT / "src" / p) for p in ("worldsample_control", "worldsample_worldmodel", "worldsample_learner")]
    env["PYTHONPATH"] = os.pathsep.join(src + [str(ROOT / "launch"), env.get("PYTHONPATH", "")])
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.skipif(not ros_available(), reason="rclpy / worldsample_msgs not importable (source scripts/env.sh)")
def test_world_model_node_trains_and_generates(tmp_path):
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from worldsample_common.core.bag_io import read_bag_episodes, write_episode_bag
    from worldsample_common.core.episode import Source
    from worldsample_learner.core.agent import SACAgent
    from worldsample_learner.core.config import AgentConfig
    from worldsample_learner.core.policy import save_policy
    from worldsample_worldmodel.core.toy import toy_episode

    from worldsample_msgs.msg import EpisodeInfo, PolicyCheckpoint, WorldModelStatus
    from worldsample_msgs.srv import RequestSyntheticRollouts

    for i in range(3):
        write_episode_bag(toy_episode(i, steps=10), tmp_path / "demos" / f"demo_{i}")
    real = [write_episode_bag(toy_episode(10 + i, steps=10, source=Source.REAL, policy="random"),
                              tmp_path / "real" / f"real_{i}") for i in range(3)]
    # a pixel policy with a pre-trained frozen encoder: its checkpoint makes the fidelity read frames with it too
    agent = SACAgent(AgentConfig(obs_mode="pixels", cameras=("front", "wrist"), image_size=16, proprio_dim=4,
                                 hidden_dim=32, pixel_encoder="frozen", frozen_keypoints=2, frozen_channels=4,
                                 frozen_color_blobs=2, frozen_pretrain_steps=5, device="cpu"))
    agent.pretrain_encoder({c: toy_episode(0, steps=10).images[c] for c in ("front", "wrist")})
    pixel_policy = save_policy(agent, tmp_path / "policies", 1)
    broken = tmp_path / "real" / "broken"
    broken.mkdir()
    (broken / "metadata.yaml").write_text("garbage")
    domain = str(os.getpid() % 100 + 101)
    env = {**_env(), "ROS_DOMAIN_ID": domain}
    params = {"run_dir": str(tmp_path / "run"), "demos_dir": str(tmp_path / "demos"), "min_new_episodes": 2,
              "pretrain_steps": 6, "posttrain_steps": 4, "heldout_every": 2, "fidelity_horizons": "[1,2]",
              "device": "cpu", "threads": 1, "status_period_s": 0.5, "model.image_size": 16, "model.latent_channels": 8,
              "model.base_channels": 8, "model.hidden_dim": 32, "model.ensemble_size": 3,
              "model.batch_size": 8, "model.rollout_steps": 2}
    cmd = [sys.executable, "-m", "worldsample_worldmodel.nodes.world_model_node", "--ros-args"]
    for k, v in params.items():
        cmd += ["-p", f"{k}:={v}"]
    log = open(tmp_path / "node.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    os.environ["ROS_DOMAIN_ID"] = domain
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    rclpy.init()
    node = rclpy.create_node("wm_test_client")
    statuses: list = []
    synthetic: list = []
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(WorldModelStatus, "world_model/status", statuses.append, latched)
    node.create_subscription(EpisodeInfo, "world_model/synthetic", synthetic.append, 100)
    pub = node.create_publisher(EpisodeInfo, "episodes/recorded", 100)
    ckpt_pub = node.create_publisher(PolicyCheckpoint, "policy/checkpoint", latched)
    client = node.create_client(RequestSyntheticRollouts, "world_model/generate")

    def spin_until(cond, timeout: float) -> bool:
        end = time.time() + timeout
        while time.time() < end:
            rclpy.spin_once(node, timeout_sec=0.1)
            if cond():
                return True
            if proc.poll() is not None:
                return False
        return False

    def node_log() -> str:
        log.flush()
        return (tmp_path / "node.log").read_text()[-3000:]

    try:
        assert spin_until(lambda: statuses and statuses[-1].version == "wm-000001", 60), node_log()
        assert pub.get_subscription_count() >= 1 or spin_until(lambda: pub.get_subscription_count() >= 1, 10)
        ckpt_pub.publish(PolicyCheckpoint(version="policy-000001", uri=str(pixel_policy)))
        assert spin_until(lambda: "pixel encoder of" in node_log(), 30), node_log()  # before the next version
        for i, bag in enumerate([broken, *real]):
            pub.publish(EpisodeInfo(event=EpisodeInfo.EVENT_END, episode_id=f"real-{i}", source=EpisodeInfo.SOURCE_REAL,
                                    task="toy", bag_uri=str(bag), length=10))
        assert spin_until(lambda: statuses and statuses[-1].version == "wm-000002"
                          and statuses[-1].state == WorldModelStatus.STATE_IDLE, 60), node_log()
        st = statuses[-1]
        assert st.num_real_episodes == 2 and st.num_demo_episodes == 3 and list(st.horizons) == [1, 2]
        assert len(st.psnr) == 2 and all(p > 0 for p in st.psnr)
        # the copy-last-frame baseline on the same held-out starts, and the uncertainty-error rank correlation
        assert len(st.copy_psnr) == 2 and all(p > 0 for p in st.copy_psnr) and len(st.copy_ssim) == 2
        assert len(st.uncertainty_error_rank_corr) == 2
        # the predicted frames as the pixel policy's encoder reads them, against copy-last-frame's, per horizon
        assert len(st.feature_skill) == 2 and all(math.isfinite(v) and v <= 1.0 for v in st.feature_skill), node_log()
        assert "copy" in st.message  # the log/status line carries the baseline too
        assert "broken" in node_log()  # the bad bag was named in the log
        assert client.wait_for_service(timeout_sec=10)
        fut = client.call_async(RequestSyntheticRollouts.Request(policy_uri="random", policy_version="rand",
                                                                 num_branches=3, horizon=4, action_noise=0.1))
        assert spin_until(fut.done, 60), node_log()
        resp = fut.result()
        assert resp.accepted, resp.message
        eps = read_bag_episodes(resp.bag_uri)
        assert len(eps) == 3 and all(e.source == Source.SYNTHETIC and e.world_model_version == "wm-000002" for e in eps)
        assert resp.num_transitions == sum(e.length for e in eps)
        assert spin_until(lambda: len(synthetic) >= 1, 20)  # the bag is announced (episodes travel as bags)
        (ann,) = synthetic
        assert ann.event == EpisodeInfo.EVENT_END and ann.source == EpisodeInfo.SOURCE_SYNTHETIC
        assert ann.bag_uri == resp.bag_uri and ann.length == resp.num_transitions
        # a bad request is refused with a reason, not a crash
        fut = client.call_async(RequestSyntheticRollouts.Request(policy_uri="/no/such/policy.pt", num_branches=1,
                                                                 horizon=1))
        assert spin_until(fut.done, 20)
        assert not fut.result().accepted and "/no/such/policy.pt" in fut.result().message
    finally:
        node.destroy_node()
        rclpy.shutdown()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
