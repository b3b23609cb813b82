"""Per-episode rosbag2 recording: every episode becomes one MCAP bag (via `bag_io.EpisodeBagWriter`).

ROS-free: messages arrive as already-serialised CDR bytes (what rosbag2 stores and what an
rclpy subscription with ``raw=True`` delivers), with their topic, type and time stamp.

Routing: a message that names its episode (Transition, PolicyAction, EpisodeInfo) goes to
that episode's bag (held back until the episode's START arrives, if it comes first); any
other message (images, robot state, safety reports) goes to the bag of the episode that is
currently open. Between episodes such messages wait in a bounded buffer (``recent_bytes``):
when a START arrives late, the buffered messages stamped at or after the START's stamp go
into the new bag; older ones are counted as ``unassigned``. `header_stamp_ns` reads the
stamp of any serialised message that begins with a std_msgs/Header.

End of an episode: the END event is written at once, but the bag stays open until all
``length`` transitions of the episode have arrived (topics are not ordered with respect to
each other over DDS) and ``linger_s`` more has passed (for the episode's other late messages,
e.g. the last action), or ``grace_s`` has passed; `poll()` closes such bags and returns them.
`close_all()` (SIGINT/SIGTERM) closes every open bag cleanly. A bag of a killed process is
made readable by `bag_io.recover_bag`. Each bag is written and closed on its own, so a
finished episode is never lost by a later failure.

Runs: with a ``run_id``, messages of another run (`accepts`) are dropped and counted in
``foreign``; two graphs that share a ROS domain by mistake then never write into each other's bags.

What a bag is: its metadata ``custom_data`` says ``worldsample.status`` = ``complete`` or ``cut: <reason>``
(shutdown, restarted, grace_timeout, write error), with the transitions received and expected.
An episode closed before its END arrived gets an END event written by the recorder with
``reason = "cut: <reason>"`` and the length it reached. The write-ahead log is fsynced when an
END is written (and by the writer every ``fsync_period_s``). A write that fails (disk full) stops
that bag (``write_errors``; its log stays for `bag_io.recover_bag`) without stopping the recorder.
"""

from __future__ import annotations

import re
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]")


def header_stamp_ns(data: bytes) -> int | None:
    """Stamp of a CDR-serialised message whose first field is a std_msgs/Header (else None)."""
    if len(data) < 12 or data[0] != 0:
        return None
    fmt = "<iI" if data[1] & 1 else ">iI"
    sec, nsec = struct.unpack_from(fmt, data, 4)
    if nsec >= 1_000_000_000:
        return None
    return sec * 1_000_000_000 + nsec


def bag_name(episode_id: str) -> str:
    """A directory name for an episode id (anything outside [A-Za-z0-9_.-] becomes '_')."""
    name = _SAFE_ID.sub("_", episode_id).strip(".")
    if not name:
        raise ValueError(f"episode id {episode_id!r} gives an empty bag name")
    return name


@dataclass
class RecordedEpisode:
    episode_id: str
    bag_uri: str
    messages: int
    transitions: int
    expected_transitions: int
    complete: bool  # all expected transitions arrived before the bag was closed
    reason: str  # "complete", "grace_timeout", "shutdown", "restarted", "write error: ..."
    status: str = ""  # what the bag's metadata says: "complete" or "cut: <reason>"


@dataclass
class _Open:
    episode_id: str
    writer: Any
    path: Path
    messages: int = 0
    transitions: int = 0
    expected: int | None = None
    end_time: float | None = None
    complete_time: float | None = None  # when the last expected transition arrived
    extra: dict[str, Any] = field(default_factory=dict)
    start: tuple[str, str, bytes, int] | None = None  # the START event (topic, type, data, stamp)
    last_stamp: int = 0
    error: str | None = None  # first write error (e.g. disk full): the bag is left for recovery


def _default_writer(path: Path):
    from worldsample_common.core.bag_io import EpisodeBagWriter

    return EpisodeBagWriter(path)


class EpisodeRecorder:
    def __init__(self, out_dir: str | Path, writer_factory: Callable[[Path], Any] = _default_writer,
                 grace_s: float = 3.0, linger_s: float = 0.5, recent_bytes: int = 64 << 20, clock: Callable[[], float] = time.monotonic,
                 transition_type: str = "worldsample_msgs/msg/Transition", run_id: str = "") -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._factory = writer_factory
        self.grace_s = grace_s
        self.linger_s = linger_s
        self._clock = clock
        self.transition_type = transition_type
        self._open: dict[str, _Open] = {}
        self._current: str | None = None  # episode receiving messages without an episode id
        self.finished: list[RecordedEpisode] = []
        self.unassigned = 0
        self.dropped_late = 0
        # messages naming an episode whose START has not arrived yet (topics are not ordered)
        self._early: dict[str, list[tuple[str, str, bytes, int]]] = {}
        self.max_early = 2000
        self._recent: deque[tuple[str, str, bytes, int]] = deque()
        self._recent_size = 0
        self.recent_bytes = recent_bytes
        self._closed_ids: set[str] = set()
        self.run_id = run_id
        self.foreign = 0  # messages of other runs, dropped
        self.write_errors = 0
        self.errors: list[str] = []  # first error of each bag that could not be written

    # ------------------------------------------------------------------ paths
    def bag_path(self, episode_id: str) -> Path:
        return self.out_dir / bag_name(episode_id)

    @property
    def current_episode(self) -> str | None:
        return self._current

    @property
    def open_episodes(self) -> list[str]:
        return list(self._open)

    def accepts(self, run_id: str) -> bool:
        """Whether a message of run ``run_id`` belongs to this recorder's run (counted when not)."""
        if not self.run_id or run_id == self.run_id:
            return True
        self.foreign += 1
        return False

    # ------------------------------------------------------------------ events
    def start_episode(self, episode_id: str, topic: str, msgtype: str, data: bytes, stamp_ns: int) -> Path:
        """Open the episode's bag and write its START event; returns the bag directory."""
        finished = []
        if episode_id in self._open:  # duplicate START: keep the running bag
            self._write(self._open[episode_id], topic, msgtype, data, stamp_ns)
            return self._open[episode_id].path
        if self._current is not None and self._current in self._open:
            prev = self._open[self._current]
            if prev.end_time is None:  # a START without the previous END: the actor restarted
                finished.append(self._close(prev, "restarted"))
        path = self.bag_path(episode_id)
        if path.exists():
            raise FileExistsError(f"bag {path} already exists; episode ids must be unique")
        rec = _Open(episode_id, self._factory(path), path, start=(topic, msgtype, bytes(data), int(stamp_ns)))
        self._open[episode_id] = rec
        self._current = episode_id
        self._write(rec, topic, msgtype, data, stamp_ns)
        for item in self._early.pop(episode_id, []):
            self.write(*item, episode_id=episode_id)
        while self._recent:  # messages that arrived before this (late) START
            item = self._recent.popleft()
            self._recent_size -= len(item[2])
            if item[3] >= stamp_ns:
                self._write(rec, *item)
            else:
                self.unassigned += 1
        self._recent_size = 0
        return path

    def end_episode(self, episode_id: str, length: int, topic: str, msgtype: str, data: bytes,
                    stamp_ns: int) -> list[RecordedEpisode]:
        """Write the END event; the bag closes once ``length`` transitions are in (or after grace_s)."""
        rec = self._open.get(episode_id)
        if rec is None:
            self.dropped_late += 1
            return []
        self._write(rec, topic, msgtype, data, stamp_ns)
        rec.expected = int(length)
        rec.end_time = self._clock()
        sync = getattr(rec.writer, "sync", None)
        if sync is not None and rec.error is None:
            try:
                sync()  # the episode's record is on disk once its END is
            except OSError as exc:
                self._failed(rec, f"fsync failed: {exc}")
        if self._current == episode_id:
            self._current = None
        return self.poll()

    def write(self, topic: str, msgtype: str, data: bytes, stamp_ns: int, episode_id: str | None = None) -> bool:
        """Record one message; False when it was neither written nor held back for its episode."""
        if episode_id is None:
            episode_id = self._current
            if episode_id is None:
                self._recent.append((topic, msgtype, bytes(data), int(stamp_ns)))
                self._recent_size += len(data)
                while self._recent and self._recent_size > self.recent_bytes:
                    self._recent_size -= len(self._recent.popleft()[2])
                    self.unassigned += 1
                return False
        rec = self._open.get(episode_id)
        if rec is None:
            if episode_id in self._closed_ids:
                self.dropped_late += 1
                return False
            early = self._early.setdefault(episode_id, [])
            if sum(len(v) for v in self._early.values()) >= self.max_early:
                self.dropped_late += 1
                return False
            early.append((topic, msgtype, bytes(data), int(stamp_ns)))
            return True
        self._write(rec, topic, msgtype, data, stamp_ns)
        if msgtype == self.transition_type:
            rec.transitions += 1
        return True

    def poll(self) -> list[RecordedEpisode]:
        """Close the ended episodes that are complete or past their grace period."""
        now = self._clock()
        done = []
        for rec in list(self._open.values()):
            if rec.end_time is None:
                continue
            if rec.expected is not None and rec.transitions >= rec.expected:
                if rec.complete_time is None:
                    rec.complete_time = now
                if now - rec.complete_time >= self.linger_s:
                    done.append(self._close(rec, "complete"))
            elif now - rec.end_time >= self.grace_s:
                done.append(self._close(rec, "grace_timeout"))
        return done

    def close_all(self, reason: str = "shutdown") -> list[RecordedEpisode]:
        return [self._close(rec, reason) for rec in list(self._open.values())]

    # ------------------------------------------------------------------ internals
    def _write(self, rec: _Open, topic: str, msgtype: str, data: bytes, stamp_ns: int) -> bool:
        if rec.error is not None:
            self.write_errors += 1
            return False
        try:
            rec.writer.write(topic, msgtype, data, int(stamp_ns))
        except (OSError, RuntimeError) as exc:  # bag_io.BagError is a RuntimeError (disk full, ...)
            self._failed(rec, str(exc))
            self.write_errors += 1
            return False
        rec.messages += 1
        rec.last_stamp = max(rec.last_stamp, int(stamp_ns))
        return True

    def _failed(self, rec: _Open, error: str) -> None:
        if rec.error is None:
            rec.error = error
            self.errors.append(f"episode {rec.episode_id}: {error}")

    def _cut_end(self, rec: _Open, reason: str) -> None:
        """Write an END event for an episode closed before its own END arrived."""
        if rec.start is None:
            return
        from worldsample_common.core.bag_io import typestore

        topic, msgtype, data, stamp = rec.start
        try:
            store = typestore()
            info = store.deserialize_cdr(data, msgtype)
            info.event = info.EVENT_END
            info.length = rec.transitions
            info.reason = f"cut: {reason}"
            self._write(rec, topic, msgtype, bytes(store.serialize_cdr(info, msgtype)), max(rec.last_stamp, stamp))
        except Exception as exc:  # noqa: BLE001 - a foreign START type: the metadata still says "cut"
            self.errors.append(f"episode {rec.episode_id}: no END written for the cut episode: {exc}")

    def _close(self, rec: _Open, reason: str) -> RecordedEpisode:
        self._open.pop(rec.episode_id, None)
        self._closed_ids.add(rec.episode_id)
        if self._current == rec.episode_id:
            self._current = None
        complete = rec.expected is not None and rec.transitions >= rec.expected and rec.error is None
        if rec.expected is None and rec.error is None:
            self._cut_end(rec, reason)
        if rec.error is not None:
            reason = f"write error: {rec.error}"
        if complete:
            status = "complete"
        elif rec.expected is not None and rec.error is None:
            status = f"cut: {reason} ({rec.transitions}/{rec.expected} transitions)"
        else:
            status = f"cut: {reason}"
        set_custom = getattr(rec.writer, "set_custom_data", None)
        if set_custom is not None:
            set_custom("worldsample.status", status)
            set_custom("worldsample.transitions", str(rec.transitions))
            set_custom("worldsample.expected", str(rec.expected if rec.expected is not None else -1))
            if self.run_id:
                set_custom("worldsample.run_id", self.run_id)
        try:
            rec.writer.close()
        except (OSError, RuntimeError) as exc:  # disk full at close: the log stays for recovery
            self._failed(rec, str(exc))
            complete, reason, status = False, f"write error: {exc}", f"cut: write error: {exc}"
        expected = rec.expected if rec.expected is not None else -1
        out = RecordedEpisode(rec.episode_id, str(rec.path), rec.messages, rec.transitions, expected,
                              complete=complete, reason=reason, status=status)
        self.finished.append(out)
        return out
