"""Episodes say what they are (issue 11, item 5) and only the running episode's actor moves the arm
(item 3, the ROS-free part): cut/recovered/truncated bags are marked and `bags info` shows it, the
write-ahead log is fsynced, a full disk is reported as such, `loop --resume` recovers before it
counts, bags written before run ids existed still read; `ActionGate` drops and counts the rest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from worldsample_common.core import bag_io
from worldsample_common.core.episode import Episode, Source
from worldsample_control.core.action_gate import ActionGate
from worldsample_control.core.recorder import EpisodeRecorder


def _episode(eid: str, t: int = 5, seed: int = 0) -> Episode:
    rng = np.random.default_rng(seed)
    return Episode(
        episode_id=eid, task="push", source=Source.REAL,
        images={"front": rng.integers(0, 255, (t + 1, 8, 8, 3), dtype=np.uint8)},
        proprio=rng.normal(size=(t + 1, 4)), actions=rng.uniform(-1, 1, (t, 4)),
        rewards=rng.normal(size=t), terminated=[False] * t, truncated=[False] * (t - 1) + [True],
        successes=[False] * t, seed=seed,
    )


def _ser(msg, msgtype: str) -> bytes:
    return bytes(bag_io.typestore().serialize_cdr(msg, msgtype))


def _record(rec: EpisodeRecorder, ep: Episode, steps: int, end: bool, run_id: str = "") -> None:
    info_t = bag_io.EPISODE_INFO_TYPE
    EpisodeInfo = bag_io.msg_class(info_t)
    ep.extras["run_id"] = run_id
    msgs = list(bag_io.transition_msgs(ep))
    rec.start_episode(ep.episode_id, "/episodes", info_t,
                      _ser(bag_io.episode_info_msg(ep, EpisodeInfo.EVENT_START, msgs[0][0]), info_t), msgs[0][0])
    for ns, m in msgs[:steps]:
        rec.write("/transitions", bag_io.TRANSITION_TYPE, _ser(m, bag_io.TRANSITION_TYPE), ns, ep.episode_id)
    if end:
        ep.extras["reason"] = "truncated"
        rec.end_episode(ep.episode_id, ep.length, "/episodes", info_t,
                        _ser(bag_io.episode_info_msg(ep, EpisodeInfo.EVENT_END, msgs[-1][0]), info_t), msgs[-1][0])


class _Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def test_bags_info_tells_complete_cut_recovered_and_truncated_episodes(tmp_path: Path, capsys) -> None:
    from worldsample_control.commands import bags

    clock = _Clock()
    rec = EpisodeRecorder(tmp_path, grace_s=1.0, linger_s=0.0, clock=clock, run_id="run-a")
    _record(rec, _episode("whole"), 5, end=True, run_id="run-a")
    clock.t = 0.1
    rec.poll()
    assert [d.status for d in rec.finished] == ["complete"]
    _record(rec, _episode("short"), 3, end=True, run_id="run-a")  # END says 5, 3 arrive
    clock.t = 5.0
    rec.poll()
    assert rec.finished[-1].status == "cut: grace_timeout (3/5 transitions)"
    _record(rec, _episode("stopped"), 2, end=False, run_id="run-a")  # Ctrl-C before the END
    (stopped,) = rec.close_all()
    assert stopped.status == "cut: shutdown" and not stopped.complete
    # a killed recorder: a write-ahead log and no metadata
    w = bag_io.EpisodeBagWriter(tmp_path / "killed")
    for ns, msg in list(bag_io.transition_msgs(_episode("killed")))[:4]:
        w.write(bag_io.TOPIC_TRANSITIONS, bag_io.TRANSITION_TYPE, msg, ns)
    # a bag whose .mcap was cut short (copied half-way): it has metadata, no log
    trunc = bag_io.write_episode_bag(_episode("trunc", t=6), tmp_path / "trunc")
    mcap = bag_io.mcap_file(trunc)
    data = mcap.read_bytes()
    mcap.write_bytes(data[: int(len(data) * 0.6)])

    assert bags.main(["info", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "whole  REAL  push  length=5" in out and "[complete]" in out
    assert "short  REAL  push  length=3" in out and "[cut: grace_timeout (3/5 transitions)]" in out
    assert "stopped  REAL  push  length=2" in out and "[cut: shutdown]" in out
    assert f"UNREADABLE {tmp_path / 'killed'}: not a rosbag2 directory (no metadata.yaml) (a recording.wal is " \
           "there: recorder killed" in out
    assert f"UNREADABLE {tmp_path / 'trunc'}: cannot read bag: TRUNCATED: trunc.mcap is cut short" in out
    assert "3 episode(s) in 5 bag(s): 1 complete, 2 cut, 2 unreadable" in out
    # the recorder wrote an END for the episode it cut, with the length it reached
    (ep,) = bag_io.read_bag_episodes(tmp_path / "stopped")
    assert ep.extras["reason"] == "cut: shutdown" and ep.extras["run_id"] == "run-a"

    assert bags.main(["recover", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "recovered 4 messages from the write-ahead log (recorder killed)" in out
    assert "TRUNCATED .mcap: salvaged" in out and "the rest is lost" in out
    assert "complete" not in out.split("TRUNCATED")[1].split("\n")[0]
    salvaged = bag_io.read_bag_episodes(tmp_path / "trunc")[0]
    assert 0 < salvaged.length < 6  # as far as the file went, not "complete"
    assert bag_io.bag_status(tmp_path / "trunc").startswith("recovered: TRUNCATED .mcap: salvaged")
    assert bags.main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "[recovered: recovered 4 messages" in out and "[recovered: TRUNCATED .mcap" in out
    assert "5 episode(s) in 5 bag(s): 1 complete, 2 cut, 2 recovered" in out


def test_write_ahead_log_is_fsynced_at_episode_end_and_periodically(tmp_path: Path) -> None:
    rec = EpisodeRecorder(tmp_path, grace_s=1.0, linger_s=0.0, clock=_Clock())
    ep = _episode("e")
    _record(rec, ep, 5, end=False)
    writer = rec._open["e"].writer
    writer.fsync_period_s = 3600.0  # no periodic fsync in this part
    before = writer.syncs
    _record_end = bag_io.msg_class(bag_io.EPISODE_INFO_TYPE)
    end = bag_io.episode_info_msg(ep, _record_end.EVENT_END, 99)
    rec.end_episode("e", 5, "/episodes", bag_io.EPISODE_INFO_TYPE, _ser(end, bag_io.EPISODE_INFO_TYPE), 99)
    assert writer.syncs == before + 1  # the END is on disk
    w = bag_io.EpisodeBagWriter(tmp_path / "periodic", fsync_period_s=0.0)
    n0 = w.syncs
    for ns, msg in bag_io.transition_msgs(_episode("p", t=3)):
        w.write(bag_io.TOPIC_TRANSITIONS, bag_io.TRANSITION_TYPE, msg, ns)
    assert w.syncs == n0 + 3
    w.close()


_FULL_DISK = r"""
import resource, signal, sys
from pathlib import Path
from worldsample_common.core import bag_io
from worldsample_control.core.recorder import EpisodeRecorder
from test_episode_integrity import _episode, _record, _Clock
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
out = Path(sys.argv[1])
rec = EpisodeRecorder(out, clock=_Clock())
ep = _episode("full", t=40)
ep.images["front"] = ep.images["front"].repeat(8, axis=1).repeat(8, axis=2)  # 64x64 frames
resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))
_record(rec, ep, 40, end=False)
print("write_errors", rec.write_errors, "errors", rec.errors)
"""


def test_a_full_disk_is_reported_as_such_not_as_a_killed_recorder(tmp_path: Path, capsys) -> None:
    """RLIMIT_FSIZE makes the recorder's writes fail as on a full disk (EFBIG, like ENOSPC)."""
    from worldsample_control.commands import bags

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", _FULL_DISK, str(tmp_path)], env=env, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert "errors ['episode full: " in res.stdout and "disk full" in res.stdout
    assert bags.main(["info", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "disk full" in out and "recorder killed" not in out
    assert bags.main(["recover", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "from the write-ahead log (disk full: " in out
    (ep,) = bag_io.read_bag_episodes(tmp_path / "full")
    assert 0 < ep.length < 40  # what fitted is kept


def test_loop_resume_recovers_write_ahead_logs_before_counting(tmp_path: Path, capsys) -> None:
    from worldsample_bringup.loop import recorded_real_episodes, recover_interrupted_bags

    bag_io.write_episode_bag(_episode("done"), tmp_path / "done")
    w = bag_io.EpisodeBagWriter(tmp_path / "killed")
    for ns, msg in list(bag_io.transition_msgs(_episode("killed")))[:3]:
        w.write(bag_io.TOPIC_TRANSITIONS, bag_io.TRANSITION_TYPE, msg, ns)
    reports = recover_interrupted_bags(tmp_path)
    assert [r.bag_dir.name for r in reports] == ["killed"] and reports[0].messages == 3
    assert "loop: recovered killed: recovered 3 messages" in capsys.readouterr().out
    assert not (tmp_path / "killed" / bag_io.WAL_NAME).exists()
    assert recorded_real_episodes(tmp_path) == 2
    assert len(bag_io.load_episodes(tmp_path)) == 2  # both readable now: the learner gets both
    assert recover_interrupted_bags(tmp_path) == []  # nothing left to do


def test_bags_recorded_before_run_ids_still_read(tmp_path: Path) -> None:
    """A Transition recorded with the older definition (no run_id field) decodes with the bag's own."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    text = (bag_io.msgs_dir() / "msg" / "Transition.msg").read_text()
    old_text = "\n".join(line for line in text.splitlines() if not line.startswith("string run_id"))
    assert old_text != text
    old = get_typestore(Stores.ROS2_KILTED)
    old.register(get_types_from_msg(old_text, bag_io.TRANSITION_TYPE))
    ep = _episode("old", t=3)
    new_msgs = list(bag_io.transition_msgs(ep))
    fields = [f for f in old.types[bag_io.TRANSITION_TYPE].__dataclass_fields__ if f != "__msgtype__"]
    with Writer(tmp_path / "old", version=8, storage_plugin=StoragePlugin.MCAP) as w:
        conn = w.add_connection(bag_io.TOPIC_TRANSITIONS, bag_io.TRANSITION_TYPE, typestore=old)
        for ns, m in new_msgs:
            om = old.types[bag_io.TRANSITION_TYPE](**{f: getattr(m, f) for f in fields})
            w.write(conn, ns, old.serialize_cdr(om, bag_io.TRANSITION_TYPE))
    back = bag_io.read_episode_bag(tmp_path / "old")
    np.testing.assert_allclose(back.actions, ep.actions.astype(np.float32))
    assert "run_id" not in back.extras


def test_recorder_ignores_other_runs() -> None:
    rec = EpisodeRecorder.__new__(EpisodeRecorder)
    rec.run_id, rec.foreign = "mine", 0
    assert rec.accepts("mine") and not rec.accepts("theirs") and rec.foreign == 1
    rec.run_id = ""
    assert rec.accepts("anyone")


def test_action_gate_takes_the_running_episodes_actions_from_the_actor_in_step_order() -> None:
    g = ActionGate("run", max_pending=2)
    assert g.check("e1", "run", 0, sender_ok=True, pending=0) is None  # step 0 overtaking its START
    assert g.on_start("e1", "run") and g.current == "e1"
    assert g.check("e1", "run", 0, True, 0) == "stale_step"  # a replay
    assert g.check("e1", "run", 1, False, 0) == "foreign_sender"
    assert g.check("e1", "other", 1, True, 0) == "other_run"
    assert g.check("e2", "run", 5, True, 0) == "other_episode"
    assert g.check("e1", "run", 1, True, 2) == "queue_full"
    assert g.check("e1", "run", 1, True, 1) is None
    assert g.check("e1", "run", 3, True, 0) is None and g.stats.skipped == 1  # a lost step does not stall
    assert not g.on_start("x", "other") and g.current == "e1"  # another run's START changes nothing
    assert g.on_end("e1", "run") and g.current is None
    assert g.check("e1", "run", 4, True, 0) == "ended"
    assert g.check("e1", "run", 0, True, 0) == "ended"
    assert g.check("e3", "run", 2, True, 0) == "no_episode"
    assert g.stats.accepted == 3 and g.stats.dropped_total == 8
    assert "accepted 3, dropped 8" in g.stats.describe()
    with pytest.raises(ValueError, match="max_pending"):
        ActionGate(max_pending=0)
