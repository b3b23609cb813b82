"""Recorder: per-episode bags from the core, and the recorder node over DDS (clean stop, SIGKILL + recovery)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from worldsample_common.core import bag_io
from worldsample_common.core.episode import Episode, Source
from worldsample_common.testing import ros_available
from worldsample_control.core.recorder import EpisodeRecorder, bag_name, header_stamp_ns

ROOT = Path(__file__).resolve().parents[3]


def _episode(eid: str, t: int = 4, seed: int = 0) -> Episode:
    rng = np.random.default_rng(seed)
    return Episode(
        episode_id=eid, task="push", source=Source.REAL,
        images={"front": rng.integers(0, 255, (t + 1, 8, 8, 3), dtype=np.uint8)},
        proprio=rng.normal(size=(t + 1, 4)), actions=rng.uniform(-1, 1, (t, 4)),
        rewards=rng.normal(size=t), terminated=[False] * t, truncated=[False] * (t - 1) + [True],
        successes=[False] * (t - 1) + [True], seed=seed,
    )


def _ser(msg, msgtype: str) -> bytes:
    return bytes(bag_io.typestore().serialize_cdr(msg, msgtype))


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_core_records_one_bag_per_episode_and_waits_for_late_transitions(tmp_path):
    clock = _Clock()
    rec = EpisodeRecorder(tmp_path, grace_s=5.0, linger_s=0.5, clock=clock)
    eps = [_episode("ep/0", 4, 0), _episode("ep-1", 3, 1)]
    info_t = bag_io.EPISODE_INFO_TYPE
    EpisodeInfo = bag_io.msg_class(info_t)
    for ep in eps:
        msgs = list(bag_io.transition_msgs(ep, t0_ns=1_000))
        start = bag_io.episode_info_msg(ep, EpisodeInfo.EVENT_START, msgs[0][0])
        rec.start_episode(ep.episode_id, "/episodes", info_t, _ser(start, info_t), msgs[0][0])
        # A state message without an episode id goes to the open episode.
        joint_state = _ser(bag_io.msg_class("sensor_msgs/msg/JointState")(
            header=bag_io.header(5), name=["a"], position=np.array([1.0]), velocity=np.array([], float),
            effort=np.array([], float)), "sensor_msgs/msg/JointState")
        assert rec.write("/joint_states", "sensor_msgs/msg/JointState", joint_state, 5)
        for ns, m in msgs[:-1]:
            rec.write("/transitions/real", bag_io.TRANSITION_TYPE, _ser(m, bag_io.TRANSITION_TYPE), ns,
                      episode_id=ep.episode_id)
        end = bag_io.episode_info_msg(ep, EpisodeInfo.EVENT_END, msgs[-1][0])
        # END overtakes the last transition: the bag must stay open for it.
        assert rec.end_episode(ep.episode_id, ep.length, "/episodes", info_t, _ser(end, info_t), msgs[-1][0]) == []
        assert rec.open_episodes == [ep.episode_id]
        assert not rec.write("/joint_states", "sensor_msgs/msg/JointState", b"x", 6)  # between episodes
        # an action of the next episode overtaking its START is held back, then written
        nxt = "ep-1" if ep.episode_id == "ep/0" else None
        if nxt:
            assert rec.write("/early", "sensor_msgs/msg/JointState", joint_state, 7, episode_id=nxt)
        ns, m = msgs[-1]
        rec.write("/transitions/real", bag_io.TRANSITION_TYPE, _ser(m, bag_io.TRANSITION_TYPE), ns,
                  episode_id=ep.episode_id)
        assert rec.poll() == []  # complete, lingering for other late messages
        clock.t += 1.0
        done = rec.poll()
        assert [d.episode_id for d in done] == [ep.episode_id] and done[0].complete
        assert done[0].transitions == ep.length
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(bag_name(e.episode_id) for e in eps)
    for ep in eps:
        back = bag_io.read_episode_bag(rec.bag_path(ep.episode_id))
        np.testing.assert_array_equal(back.actions, ep.actions)
        np.testing.assert_array_equal(back.images["front"], ep.images["front"])
        np.testing.assert_array_equal(back.successes, ep.successes)
    topics = [t for t, _, _, _ in bag_io.read_bag_messages(rec.bag_path("ep-1"))]
    assert topics.count("/early") == 1 and topics.count("/joint_states") == 1
    assert rec.unassigned == 1  # the message between the episodes is older than ep-1's START
    assert header_stamp_ns(joint_state) == 5


def test_core_grace_timeout_and_shutdown_close_bags(tmp_path):
    clock = _Clock()
    rec = EpisodeRecorder(tmp_path, grace_s=2.0, clock=clock)
    ep = _episode("a", 3)
    info_t = bag_io.EPISODE_INFO_TYPE
    EpisodeInfo = bag_io.msg_class(info_t)
    msgs = list(bag_io.transition_msgs(ep))
    rec.start_episode("a", "/episodes", info_t, _ser(bag_io.episode_info_msg(ep, 0, 1), info_t), 1)
    rec.write("/t", bag_io.TRANSITION_TYPE, _ser(msgs[0][1], bag_io.TRANSITION_TYPE), msgs[0][0], "a")
    rec.end_episode("a", 3, "/episodes", info_t,
                    _ser(bag_io.episode_info_msg(ep, EpisodeInfo.EVENT_END, 2), info_t), 2)
    clock.t = 1.0
    assert rec.poll() == []
    clock.t = 2.5
    (done,) = rec.poll()
    assert done.reason == "grace_timeout" and not done.complete and done.transitions == 1
    assert len(bag_io.read_episode_bag(done.bag_uri).actions) == 1
    # A START that arrives after the episode's first images: those (stamped >= START) still go in.
    assert not rec.write("/cameras/front/image_raw", "sensor_msgs/msg/Image",
                         _ser(bag_io.image_msg(ep.images["front"][0], 10), "sensor_msgs/msg/Image"), 10)
    rec.start_episode("b", "/episodes", info_t, _ser(bag_io.episode_info_msg(ep, 0, 1), info_t), 1)
    (closed,) = rec.close_all()
    msgs_b = list(bag_io.read_bag_messages(closed.bag_uri))
    # the episode cut by the stop ends with an END the recorder wrote, saying so
    assert [t for t, _, _, _ in msgs_b] == ["/episodes", "/cameras/front/image_raw", "/episodes"]
    cut_end = msgs_b[-1][3]
    assert cut_end.event == EpisodeInfo.EVENT_END and cut_end.reason == "cut: shutdown" and cut_end.length == 0
    assert closed.reason == "shutdown" and (Path(closed.bag_uri) / "metadata.yaml").exists()
    assert closed.status == "cut: shutdown" and bag_io.bag_status(closed.bag_uri) == "cut: shutdown"
    assert bag_io.bag_status(done.bag_uri) == "cut: grace_timeout (1/3 transitions)"
    with pytest.raises(FileExistsError, match="already exists"):
        rec.start_episode("b", "/episodes", info_t, b"", 1)


# ---------------------------------------------------------------------------------------- ROS
def _ros_env() -> dict[str, str]:
    env = dict(os.environ)
    src = [str(ROOT / "src" / p) for p in ("worldsample_control", "worldsample_worldmodel", "worldsample_learner")]
    env["PYTHONPATH"] = os.pathsep.join(src + [str(ROOT / "launch")] + [env.get("PYTHONPATH", "")])
    env["ROS_DOMAIN_ID"] = str(os.getpid() % 100 + 100)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return env


def _transition(eid: str, step: int, rng):
    from worldsample_common.core.image_codec import numpy_to_image_fields
    from worldsample_common.nodes.support import image_msg, ns_to_time

    from worldsample_msgs.msg import Transition

    msg = Transition(episode_id=eid, step=step, task="push", camera_names=["front"])
    stamp = ns_to_time(1_000_000_000 + step * 100_000_000)
    msg.header.stamp = stamp
    msg.observation_images = [image_msg(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), stamp, "front")]
    msg.next_observation_images = [image_msg(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), stamp, "front")]
    msg.proprio = [0.1, 0.2, 0.3, 0.04]
    msg.next_proprio = [0.1, 0.2, 0.3, 0.04]
    msg.action = [float(x) for x in rng.uniform(-1, 1, 4)]
    msg.reward = float(step)
    del numpy_to_image_fields
    return msg


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.skipif(not ros_available(), reason="rclpy / worldsample_msgs not importable (source scripts/env.sh)")
@pytest.mark.parametrize("stop", ["sigint", "sigterm", "sigkill"])
def test_recorder_node_stop_and_recovery(tmp_path, stop):
    env = _ros_env()
    os.environ["ROS_DOMAIN_ID"] = env["ROS_DOMAIN_ID"]
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from worldsample_msgs.msg import EpisodeInfo, Transition

    out = tmp_path / "bags"
    proc = subprocess.Popen([sys.executable, "-u", "-m", "worldsample_control.nodes.recorder_node", "--ros-args",
                             "-p", f"out_dir:={out}", "-p", "cameras:=[front]"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rclpy.init()
    node = rclpy.create_node("recorder_test_feeder")
    try:
        q = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        pub_ep = node.create_publisher(EpisodeInfo, "episodes", q)
        pub_tr = node.create_publisher(Transition, "transitions/real", q)
        deadline = time.monotonic() + 30
        while (pub_ep.get_subscription_count() == 0 or pub_tr.get_subscription_count() == 0):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "recorder did not subscribe within 30 s"
            rclpy.spin_once(node, timeout_sec=0.1)
        eid = f"kill-test-{stop}"
        pub_ep.publish(EpisodeInfo(event=EpisodeInfo.EVENT_START, episode_id=eid, task="push"))
        rng = np.random.default_rng(0)
        sent = [_transition(eid, k, rng) for k in range(3)]
        for m in sent:
            pub_tr.publish(m)
        wal = out / eid / bag_io.WAL_NAME
        deadline = time.monotonic() + 20
        while True:  # all 4 messages durably in the write-ahead log
            n = len(list(bag_io.read_wal(wal))) if wal.exists() else 0
            if n >= 4:
                break
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, f"recorder logged {n}/4 messages within 20 s"
            time.sleep(0.1)
        proc.send_signal({"sigint": signal.SIGINT, "sigterm": signal.SIGTERM, "sigkill": signal.SIGKILL}[stop])
        proc.wait(timeout=20)
        bag = out / eid
        if stop == "sigkill":
            assert not (bag / "metadata.yaml").exists() or wal.exists()
            report = bag_io.recover_bag(bag)
            assert report.recovered and report.messages >= 4
        else:
            assert proc.returncode == 0, proc.stdout.read()
            assert (bag / "metadata.yaml").exists() and not wal.exists()
        msgs = list(bag_io.read_bag_messages(bag))
        kinds = [t for _, t, _, _ in msgs]
        # a clean stop writes the cut episode's END (reason "cut: shutdown"); a killed recorder cannot
        assert kinds.count(bag_io.TRANSITION_TYPE) == 3
        assert kinds.count(bag_io.EPISODE_INFO_TYPE) == (1 if stop == "sigkill" else 2)
        (ep,) = bag_io.read_bag_episodes(bag)
        if stop == "sigkill":
            assert ep.extras["reason"] == "cut: no END event"
            assert bag_io.bag_status(bag).startswith("recovered: recovered 4 messages from the write-ahead log "
                                                     "(recorder killed)")
        else:
            assert ep.extras["reason"] == "cut: shutdown" and bag_io.bag_status(bag) == "cut: shutdown"
        np.testing.assert_allclose(ep.actions, np.array([m.action for m in sent]), rtol=0, atol=0)
        np.testing.assert_array_equal(ep.rewards, [0.0, 1.0, 2.0])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        node.destroy_node()
        rclpy.shutdown()
