"""rosbag2 I/O of episodes: round trip, crash recovery, and clear errors on bad bags."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from worldsample_common.core import bag_io
from worldsample_common.core.bag_io import BagError
from worldsample_common.core.episode import Episode, Source
from worldsample_common.testing import random_episode


def make_episode(episode_id: str = "ep-0", steps: int = 5, size: int = 16, source: Source = Source.REAL,
                 seed: int = 0) -> Episode:
    return random_episode(episode_id, steps, size, source, seed)


def assert_same_episode(a: Episode, b: Episode, check_seed: bool = True) -> None:
    assert (a.episode_id, a.task, a.source) == (b.episode_id, b.task, b.source)
    if check_seed:  # the seed travels in EpisodeInfo, which a killed writer never wrote
        assert a.seed == b.seed
    assert (a.policy_version, a.world_model_version) == (b.policy_version, b.world_model_version)
    assert a.camera_names == b.camera_names
    for cam in a.camera_names:
        assert a.images[cam].tobytes() == b.images[cam].tobytes()  # byte-exact image data
    for name in ("proprio", "actions", "rewards", "terminated", "truncated", "successes", "uncertainty", "trust",
                 "states"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_episode_round_trip_field_for_field(tmp_path: Path) -> None:
    ep = make_episode()
    bag = bag_io.write_episode_bag(ep, tmp_path / "ep-0")
    meta = (bag / "metadata.yaml").read_text()
    assert "version: 8" in meta and "storage_identifier: mcap" in meta
    assert "worldsample_msgs/msg/Transition" in meta
    back = bag_io.read_episode_bag(bag)
    assert_same_episode(ep, back)


def test_several_episodes_in_one_bag_and_directory_loading(tmp_path: Path) -> None:
    eps = [make_episode(f"syn-{i}", steps=3, source=Source.SYNTHETIC, seed=i) for i in range(3)]
    bag_io.write_episodes_bag(eps, tmp_path / "synthetic" / "batch-0")
    bag_io.write_episode_bag(make_episode("real-0"), tmp_path / "real" / "real-0")
    loaded = {e.episode_id: e for e in bag_io.load_episodes(tmp_path)}
    assert sorted(loaded) == ["real-0", "syn-0", "syn-1", "syn-2"]
    for ep in eps:
        assert_same_episode(ep, loaded[ep.episode_id])
    only_real = bag_io.load_episodes(tmp_path, sources=[Source.REAL])
    assert [e.episode_id for e in only_real] == ["real-0"]


def test_truncated_bag_is_a_clear_error_and_skipped_by_loader(tmp_path: Path) -> None:
    bag = bag_io.write_episode_bag(make_episode(), tmp_path / "bad")
    mcap = next(bag.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    with pytest.raises(BagError, match="bad"):
        bag_io.read_episode_bag(bag)
    bag_io.write_episode_bag(make_episode("good"), tmp_path / "good")
    report = bag_io.load_episodes_report(tmp_path)
    assert [e.episode_id for e in report.episodes] == ["good"]
    assert len(report.skipped) == 1 and report.skipped[0][0] == bag


def test_unknown_type_and_missing_bag_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(BagError, match="unknown message type 'nope_msgs/msg/Nope'"):
        with bag_io.EpisodeBagWriter(tmp_path / "x") as w:
            w.write("/x", "nope_msgs/msg/Nope", b"", 0)
    with pytest.raises(BagError, match="no metadata.yaml"):
        bag_io.read_episode_bag(tmp_path / "missing")


def test_wrong_image_encoding_is_rejected_with_bag_name(tmp_path: Path) -> None:
    ep = make_episode(steps=2)
    bag_dir = tmp_path / "bgr"
    with bag_io.EpisodeBagWriter(bag_dir, durable=False) as w:
        for ns, msg in bag_io.transition_msgs(ep):
            for img in msg.observation_images:
                img.encoding = "bgr8"
            w.write(bag_io.TOPIC_TRANSITIONS, bag_io.TRANSITION_TYPE, msg, ns)
    with pytest.raises(BagError, match=r"bgr.*encoding 'bgr8', expected 'rgb8'"):
        bag_io.read_episode_bag(bag_dir)


RECORDER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {test_dir!r})
    from test_bag_io import make_episode
    from worldsample_common.core import bag_io
    ep = make_episode(steps=50)
    w = bag_io.EpisodeBagWriter({bag!r})
    for i, (ns, msg) in enumerate(bag_io.transition_msgs(ep)):
        w.write(bag_io.TOPIC_TRANSITIONS, bag_io.TRANSITION_TYPE, msg, ns)
        print(i, flush=True)
    time.sleep(60)
    """
)


def test_bag_of_sigkilled_writer_is_recovered_up_to_last_complete_message(tmp_path: Path) -> None:
    bag = tmp_path / "killed"
    script = RECORDER.format(test_dir=str(Path(__file__).parent), bag=str(bag))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    lines = []
    deadline = time.monotonic() + 60
    while len(lines) < 50 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(lines) == 50, "writer did not get through its messages"
    with pytest.raises(BagError, match="recover"):
        bag_io.read_episode_bag(bag)
    report = bag_io.recover_bag(bag)
    assert report.recovered and report.messages == 50
    back = bag_io.read_episode_bag(bag)
    assert_same_episode(make_episode(steps=50), back, check_seed=False)
    assert (tmp_path / "killed.incomplete" / (bag_io.WAL_NAME + ".recovered")).exists()  # nothing thrown away
    assert bag_io.recover_bag(bag).recovered is False  # idempotent


def test_torn_write_ahead_log_tail_is_dropped(tmp_path: Path) -> None:
    bag = tmp_path / "torn"
    w = bag_io.EpisodeBagWriter(bag)
    ep = make_episode(steps=4)
    for ns, msg in bag_io.transition_msgs(ep):
        w.write(bag_io.TOPIC_TRANSITIONS, bag_io.TRANSITION_TYPE, msg, ns)
    wal = bag / bag_io.WAL_NAME
    wal.write_bytes(wal.read_bytes()[:-10])  # the last record is torn, as by a kill mid-write
    assert bag_io.recover_bag(bag).messages == 3
    back = bag_io.read_episode_bag(bag)
    assert back.length == 3
    np.testing.assert_array_equal(back.actions, ep.actions[:3])


def _bag_with_foreign_topic(bag_dir: Path, ep: Episode) -> Path:
    """A bag as `ros2 bag record` might leave it: our transitions plus a type this workspace does not know."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    other = get_typestore(Stores.ROS2_KILTED)
    other.register(get_types_from_msg("int32 value\nstring note", "other_msgs/msg/Thing"))
    store = bag_io.typestore()
    with Writer(bag_dir, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        thing = w.add_connection("/thing", "other_msgs/msg/Thing", typestore=other)
        w.write(thing, 1, other.serialize_cdr(other.types["other_msgs/msg/Thing"](value=3, note="x"),
                                              "other_msgs/msg/Thing"))
        conn = w.add_connection(bag_io.TOPIC_TRANSITIONS, bag_io.TRANSITION_TYPE, typestore=store)
        for ns, msg in bag_io.transition_msgs(ep):
            w.write(conn, ns, store.serialize_cdr(msg, bag_io.TRANSITION_TYPE))
    return bag_dir


def test_unknown_type_in_a_bag_is_named_by_the_reader_and_does_not_hide_the_episode(tmp_path: Path) -> None:
    ep = make_episode(steps=3)
    bag = _bag_with_foreign_topic(tmp_path / "foreign", ep)
    with pytest.raises(BagError, match=r"foreign: topic /thing has unknown message type 'other_msgs/msg/Thing'"):
        list(bag_io.read_bag_messages(bag))
    # selecting other topics reads fine; the episode loader only decodes its own types
    assert [m[0] for m in bag_io.read_bag_messages(bag, topics=[bag_io.TOPIC_TRANSITIONS])] == [bag_io.TOPIC_TRANSITIONS] * 3
    back = bag_io.read_episode_bag(bag)
    assert_same_episode(ep, back, check_seed=False)  # no EpisodeInfo in this bag, so no seed
    assert [e.episode_id for e in bag_io.load_episodes(tmp_path)] == [ep.episode_id]


def _garbage_storage(bag: Path) -> None:
    next(bag.glob("*.mcap")).write_bytes(b"not an mcap file " * 8)


def _empty_storage(bag: Path) -> None:
    next(bag.glob("*.mcap")).write_bytes(b"")


def _missing_storage(bag: Path) -> None:
    next(bag.glob("*.mcap")).unlink()


def _broken_metadata(bag: Path) -> None:
    (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: [")


def _other_message_data(bag: Path) -> None:
    """Transition bytes that do not decode as a Transition (e.g. an incompatible schema)."""
    data = next(bag.glob("*.mcap")).read_bytes()
    ep = make_episode(steps=2)
    raw = bytes(bag_io.typestore().serialize_cdr(next(bag_io.transition_msgs(ep))[1], bag_io.TRANSITION_TYPE))
    start = data.index(raw[:64])
    cut = bytearray(data)
    cut[start + 4:start + len(raw)] = b"\xff" * (len(raw) - 4)  # same length: the MCAP framing stays valid
    next(bag.glob("*.mcap")).write_bytes(bytes(cut))


@pytest.mark.parametrize("damage,expected", [
    (_garbage_storage, "cannot read bag.*magic"),
    (_empty_storage, "cannot read bag.*empty"),
    (_missing_storage, "cannot read bag.*missing"),
    (_broken_metadata, "cannot read bag.*metadata.yaml"),
    (_other_message_data, "corrupt worldsample_msgs/msg/Transition message on /transitions.*different version"),
])
def test_damaged_bags_are_clear_errors_naming_the_bag(tmp_path: Path, damage, expected) -> None:
    bag = bag_io.write_episode_bag(make_episode(steps=2), tmp_path / "damaged")
    damage(bag)
    with pytest.raises(BagError, match=f"^{tmp_path / 'damaged'}: {expected}"):
        bag_io.read_episode_bag(bag)
    assert bag_io.load_episodes_report(tmp_path).skipped[0][0] == bag


def test_bags_command_recovers_and_lists(tmp_path: Path, capsys) -> None:
    from worldsample_control.commands import bags

    bag_io.write_episode_bag(make_episode("done"), tmp_path / "done")
    w = bag_io.EpisodeBagWriter(tmp_path / "killed")  # never closed: as a killed recorder leaves it
    for ns, msg in bag_io.transition_msgs(make_episode("killed", steps=4)):
        w.write(bag_io.TOPIC_TRANSITIONS, bag_io.TRANSITION_TYPE, msg, ns)
    assert bags.main(["info", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "done  REAL" in out and f"UNREADABLE {tmp_path / 'killed'}: not a rosbag2 directory" in out
    assert "worldsample bags recover" in out
    assert bags.main(["recover", str(tmp_path)]) == 0
    assert f"recovered {tmp_path / 'killed'}: recovered 4 messages" in capsys.readouterr().out
    assert bags.main(["info", str(tmp_path / "killed")]) == 0
    assert "killed  REAL  push  length=4" in capsys.readouterr().out
    assert bags.main(["recover", str(tmp_path)]) == 0
    assert "nothing to recover" in capsys.readouterr().out
    assert bags.main(["info", str(tmp_path / "nowhere")]) == 2


def test_episode_cut_before_its_end_event_keeps_the_seed_of_its_start(tmp_path):
    ep = make_episode("cut", steps=4)
    ep.seed = 17
    start_type = bag_io.msg_class(bag_io.EPISODE_INFO_TYPE)
    w = bag_io.EpisodeBagWriter(tmp_path / "cut")  # as the recorder leaves a bag stopped mid-episode
    w.write(bag_io.TOPIC_EPISODES, bag_io.EPISODE_INFO_TYPE,
            bag_io.episode_info_msg(ep, start_type.EVENT_START, 1), 1)
    for ns, msg in bag_io.transition_msgs(ep, t0_ns=10):
        w.write(bag_io.TOPIC_TRANSITIONS, bag_io.TRANSITION_TYPE, msg, ns)
    w.close()
    back = bag_io.read_episode_bag(tmp_path / "cut")
    assert back.length == 4 and back.seed == 17


def test_holds_transitions_tells_a_bag_stopped_before_the_first_step(tmp_path):
    ep = make_episode("early", steps=3)
    info_type = bag_io.msg_class(bag_io.EPISODE_INFO_TYPE)
    w = bag_io.EpisodeBagWriter(tmp_path / "start_only")  # Ctrl-C between START and the first step
    w.write(bag_io.TOPIC_EPISODES, bag_io.EPISODE_INFO_TYPE, bag_io.episode_info_msg(ep, info_type.EVENT_START, 1), 1)
    w.close()
    assert not bag_io.holds_transitions(tmp_path / "start_only")
    bag_io.write_episode_bag(ep, tmp_path / "full")
    assert bag_io.holds_transitions(tmp_path / "full")
    killed = bag_io.EpisodeBagWriter(tmp_path / "killed")  # never closed: unreadable until recovered, kept
    for ns, msg in bag_io.transition_msgs(ep):
        killed.write(bag_io.TOPIC_TRANSITIONS, bag_io.TRANSITION_TYPE, msg, ns)
    assert bag_io.holds_transitions(tmp_path / "killed")
