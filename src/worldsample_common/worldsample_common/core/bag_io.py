"""rosbag2 (MCAP) input/output of WorldSample episodes, through the pure-Python `rosbags`.

The schema of our bags is the `worldsample_msgs` .msg files themselves: they are registered
in a rosbags typestore (on top of ROS 2 Kilted's standard types), so a bag written here holds
`worldsample_msgs/msg/Transition` messages that `ros2 bag info` on a full ROS install and
Foxglove can open. Metadata version 8 is written by default so ROS 2 Humble's `ros2 bag`
reads it too (Humble needs its MCAP storage plugin installed).

Topics of an episode bag (names in `TOPIC_*`):

- ``/transitions``: one `Transition` per step (images of s and s', proprio, action, reward, ...)
- ``/episodes``: `EpisodeInfo` at the start and the end of each episode

Crash safety: `EpisodeBagWriter` appends every message to a write-ahead log (``recording.wal``
in the bag directory, flushed per message, fsynced every ``fsync_period_s`` and on `sync()`,
which the recorder calls at each episode's END) besides the MCAP writer. A normal close writes
the MCAP file and metadata.yaml, fsyncs them, then deletes the log. If the process dies (even
SIGKILL), `recover_bag` rebuilds a readable bag from the log, up to its last complete message.
A write that fails for lack of space (ENOSPC, EDQUOT, EFBIG) is noted in ``recording.status``, a
file allocated when the bag opens and rewritten in place, so `bag_status` can say "disk full"
rather than "killed". A ``.mcap`` cut short (copied half-way, disk full at close) is reported as
truncated, and `recover_bag` salvages its complete records.

What a bag is, in its metadata.yaml ``custom_data`` (`bag_status` reads it):
``worldsample.status`` = ``complete`` | ``cut: <reason>`` (shutdown, restarted, grace_timeout:
fewer transitions than the END announced) | ``recovered: <detail>``, plus
``worldsample.transitions`` / ``worldsample.expected`` and ``worldsample.run_id``.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .episode import Episode, Source
from .image_codec import image_to_numpy

LOG = logging.getLogger(__name__)

TOPIC_TRANSITIONS = "/transitions"
TOPIC_EPISODES = "/episodes"
TRANSITION_TYPE = "worldsample_msgs/msg/Transition"
EPISODE_INFO_TYPE = "worldsample_msgs/msg/EpisodeInfo"
DEFAULT_BAG_VERSION = 8
WAL_NAME = "recording.wal"
WAL_MAGIC = b"WSWAL001"
STATUS_NAME = "recording.status"
STATUS_SIZE = 512  # allocated when a bag opens, rewritten in place (works on a full disk)
MCAP_MAGIC = b"\x89MCAP0\r\n"
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
DEFAULT_PERIOD_NS = 100_000_000  # 10 Hz, for stamps of episodes that carry none


class BagError(RuntimeError):
    """A bag cannot be read or written; the message names the bag and the problem."""


# --------------------------------------------------------------------------- typestore
def msgs_dir() -> Path:
    """Directory holding worldsample_msgs' .msg/.srv files.

    Looked up in this order: $WORLDSAMPLE_MSGS_DIR, the ament prefixes
    (share/worldsample_msgs after `colcon build`), the source tree next to this package.
    """
    candidates: list[Path] = []
    if os.environ.get("WORLDSAMPLE_MSGS_DIR"):
        candidates.append(Path(os.environ["WORLDSAMPLE_MSGS_DIR"]))
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / "worldsample_msgs")
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidates.append(parent / "worldsample_msgs")
        candidates.append(parent / "src" / "worldsample_msgs")
    for cand in candidates:
        if (cand / "msg" / "Transition.msg").is_file():
            return cand
    raise BagError(
        "cannot find worldsample_msgs/msg/*.msg (looked in $WORLDSAMPLE_MSGS_DIR, the ament prefixes and "
        "the source tree); run `source scripts/env.sh` after `bash scripts/setup.sh`"
    )


@lru_cache(maxsize=1)
def typestore():
    """A rosbags typestore: ROS 2 Kilted's standard types plus every worldsample_msgs message."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types: dict[str, Any] = {}
    for path in sorted((msgs_dir() / "msg").glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"worldsample_msgs/msg/{path.stem}"))
    store.register(types)
    return store


def msg_class(msgtype: str):
    try:
        return typestore().types[msgtype]
    except KeyError:
        raise BagError(f"unknown message type {msgtype!r}: not a ROS 2 Kilted standard type nor in worldsample_msgs") from None


# --------------------------------------------------------------------------- message builders
def _stamp(ns: int):
    Time = msg_class("builtin_interfaces/msg/Time")
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def header(ns: int, frame_id: str = ""):
    return msg_class("std_msgs/msg/Header")(stamp=_stamp(ns), frame_id=frame_id)


def image_msg(frame: np.ndarray, ns: int, frame_id: str = ""):
    """rgb8 sensor_msgs/Image (rosbags dataclass) from a uint8 (H, W, 3) array."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"image for {frame_id or 'camera'} must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
    h, w, _ = frame.shape
    return msg_class("sensor_msgs/msg/Image")(
        header=header(ns, frame_id), height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3,
        data=np.ascontiguousarray(frame).reshape(-1),
    )


def image_array(msg, where: str) -> np.ndarray:
    """uint8 (H, W, 3) from an rgb8 sensor_msgs/Image; anything else is a clear error."""
    if msg.encoding != "rgb8":
        raise BagError(f"{where}: image encoding {msg.encoding!r}, expected 'rgb8'")
    try:
        return image_to_numpy(msg)
    except ValueError as exc:
        raise BagError(f"{where}: {exc}") from exc


def transition_msgs(episode: Episode, t0_ns: int | None = None) -> Iterator[tuple[int, Any]]:
    """(stamp_ns, Transition) for each step of an episode."""
    Transition = msg_class(TRANSITION_TYPE)
    stamps = _episode_stamps(episode, t0_ns)
    cams = list(episode.camera_names)
    no_state = np.zeros(0, np.float32)
    for t in range(episode.length):
        yield int(stamps[t]), Transition(
            header=header(int(stamps[t])),
            episode_id=episode.episode_id,
            step=t,
            task=episode.task,
            camera_names=cams,
            observation_images=[image_msg(episode.images[c][t], int(stamps[t]), c) for c in cams],
            proprio=episode.proprio[t].astype(np.float32),
            action=episode.actions[t].astype(np.float32),
            reward=float(episode.rewards[t]),
            terminated=bool(episode.terminated[t]),
            truncated=bool(episode.truncated[t]),
            success=bool(episode.successes[t]),
            next_observation_images=[image_msg(episode.images[c][t + 1], int(stamps[t + 1]), c) for c in cams],
            next_proprio=episode.proprio[t + 1].astype(np.float32),
            state=no_state if episode.states is None else episode.states[t],
            next_state=no_state if episode.states is None else episode.states[t + 1],
            source=int(episode.source),
            uncertainty=float(episode.uncertainty[t]),
            trust=float(episode.trust[t]),
            world_model_version=episode.world_model_version,
            policy_version=episode.policy_version,
            run_id=episode.extras.get("run_id", ""),
        )


def episode_info_msg(episode: Episode, event: int, ns: int, bag_uri: str = ""):
    EpisodeInfo = msg_class(EPISODE_INFO_TYPE)
    end = event == EpisodeInfo.EVENT_END
    return EpisodeInfo(
        header=header(ns), event=event, episode_id=episode.episode_id, source=int(episode.source),
        task=episode.task, bag_uri=bag_uri, length=episode.length if end else 0,
        episode_return=episode.episode_return if end else 0.0, success=episode.success if end else False,
        policy_version=episode.policy_version, seed=int(episode.seed), run_id=episode.extras.get("run_id", ""),
        reason=episode.extras.get("reason", "") if end else "",
    )


def _episode_stamps(episode: Episode, t0_ns: int | None) -> np.ndarray:
    if episode.stamps_ns is not None:
        return np.asarray(episode.stamps_ns, dtype=np.int64)
    t0 = 1_700_000_000_000_000_000 if t0_ns is None else t0_ns
    return t0 + DEFAULT_PERIOD_NS * np.arange(episode.length + 1, dtype=np.int64)


# --------------------------------------------------------------------------- writing
@dataclass
class _WalConnection:
    topic: str
    msgtype: str


class EpisodeBagWriter:
    """Incremental, crash-safe writer of one rosbag2 (MCAP storage, metadata version 8).

    ``write(topic, msgtype, msg, stamp_ns)`` takes a rosbags message object (see `msg_class`)
    or already-serialised CDR bytes. Every message also goes to a flushed write-ahead log
    so a killed process loses nothing complete (see `recover_bag`).
    """

    def __init__(self, bag_dir: Path | str, version: int = DEFAULT_BAG_VERSION, durable: bool = True,
                 fsync_period_s: float = 1.0) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.bag_dir = Path(bag_dir)
        if self.bag_dir.exists():
            raise BagError(f"{self.bag_dir}: already exists; bags are never overwritten")
        self.bag_dir.parent.mkdir(parents=True, exist_ok=True)
        self._writer = Writer(self.bag_dir, version=version, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections: dict[tuple[str, str], Any] = {}
        self._wal = (self.bag_dir / WAL_NAME).open("wb") if durable else None
        self._status = None
        self.fsync_period_s = fsync_period_s
        self._last_sync = time.monotonic()
        self.syncs = 0
        self.error: str | None = None  # first write error (e.g. disk full); later writes are refused
        if self._wal is not None:
            self._wal.write(WAL_MAGIC)
            self._wal.flush()
            self._status = (self.bag_dir / STATUS_NAME).open("wb")
            self._set_status("recording")
            self.sync()
        self._wal_ids: dict[tuple[str, str], int] = {}
        self.count = 0
        self.closed = False

    def set_custom_data(self, key: str, value: str) -> None:
        """A ``custom_data`` entry of metadata.yaml (written at close)."""
        self._writer.set_custom_data(key, str(value))

    def _set_status(self, text: str) -> None:
        """Rewrite ``recording.status`` in place (same size: needs no new disk blocks)."""
        if self._status is None:
            return
        data = text.encode()[:STATUS_SIZE - 1].ljust(STATUS_SIZE - 1) + b"\n"
        try:
            self._status.seek(0)
            self._status.write(data)
            self._status.flush()
            os.fsync(self._status.fileno())
        except OSError as exc:
            LOG.error("%s: cannot update %s: %s", self.bag_dir, STATUS_NAME, exc)

    def sync(self) -> None:
        """Flush and fsync the write-ahead log: what was written survives a power cut."""
        if self._wal is not None and not self._wal.closed:
            self._wal.flush()
            os.fsync(self._wal.fileno())
            self._last_sync = time.monotonic()
            self.syncs += 1

    def _fail(self, exc: OSError) -> None:
        if self.error is None:
            full = exc.errno in DISK_FULL_ERRNOS
            self.error = f"{'disk full' if full else 'write error'}: {exc}"
            self._set_status(f"stopped: {self.error}")

    def __enter__(self) -> EpisodeBagWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, topic: str, msgtype: str, msg: Any, stamp_ns: int) -> None:
        if self.closed:
            raise BagError(f"{self.bag_dir}: write after close")
        key = (topic, msgtype)
        conn = self._connections.get(key)
        if conn is None:
            msg_class(msgtype)  # clear error for unknown types
            conn = self._writer.add_connection(topic, msgtype, typestore=typestore())
            self._connections[key] = conn
        data = msg if isinstance(msg, bytes | bytearray | memoryview) else typestore().serialize_cdr(msg, msgtype)
        if self.error is not None:
            raise BagError(f"{self.bag_dir}: not written ({self.error})")
        try:
            if self._wal is not None:
                wid = self._wal_ids.get(key)
                if wid is None:
                    wid = self._wal_ids[key] = len(self._wal_ids)
                    _wal_record(self._wal, b"C", struct.pack("<I", wid) + _pack_str(topic) + _pack_str(msgtype))
                _wal_record(self._wal, b"M", struct.pack("<Iq", wid, stamp_ns) + bytes(data))
                self._wal.flush()
                if time.monotonic() - self._last_sync >= self.fsync_period_s:
                    self.sync()
            self._writer.write(conn, int(stamp_ns), data)
        except OSError as exc:
            self._fail(exc)
            raise BagError(f"{self.bag_dir}: {self.error}") from exc
        self.count += 1

    def write_episode(self, episode: Episode, t0_ns: int | None = None, bag_uri: str = "") -> None:
        """All transitions of an episode, bracketed by EpisodeInfo START and END."""
        EpisodeInfo = msg_class(EPISODE_INFO_TYPE)
        stamps = _episode_stamps(episode, t0_ns)
        self.write(TOPIC_EPISODES, EPISODE_INFO_TYPE, episode_info_msg(episode, EpisodeInfo.EVENT_START, int(stamps[0])),
                   int(stamps[0]))
        for ns, msg in transition_msgs(episode, t0_ns):
            self.write(TOPIC_TRANSITIONS, TRANSITION_TYPE, msg, ns)
        self.write(TOPIC_EPISODES, EPISODE_INFO_TYPE,
                   episode_info_msg(episode, EpisodeInfo.EVENT_END, int(stamps[-1]), bag_uri or str(self.bag_dir)),
                   int(stamps[-1]))

    def close(self) -> Path:
        """Write the MCAP file and metadata.yaml, fsync them, then drop the write-ahead log.

        After a write error the log is kept (the bag is left for `recover_bag`) and BagError raised.
        """
        if self.closed:
            return self.bag_dir
        self.closed = True
        if self.error is not None:
            self._close_logs(keep=True)
            raise BagError(f"{self.bag_dir}: left for `worldsample bags recover` ({self.error})")
        try:
            self._writer.close()
            if self._wal is not None:
                for f in (*self.bag_dir.glob("*.mcap"), self.bag_dir / "metadata.yaml"):
                    fd = os.open(f, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
        except OSError as exc:
            self._fail(exc)
            self._close_logs(keep=True)
            raise BagError(f"{self.bag_dir}: cannot close the bag ({self.error}); left for "
                           "`worldsample bags recover`") from exc
        self._close_logs(keep=False)
        return self.bag_dir

    def _close_logs(self, keep: bool) -> None:
        for f in (self._wal, self._status):
            if f is not None and not f.closed:
                try:
                    if keep and f is self._wal:
                        self.sync()
                    f.close()
                except OSError as exc:
                    LOG.error("%s: %s", self.bag_dir, exc)
        if not keep and self._wal is not None:
            (self.bag_dir / WAL_NAME).unlink()
            (self.bag_dir / STATUS_NAME).unlink(missing_ok=True)


def write_episode_bag(episode: Episode, bag_dir: Path | str, version: int = DEFAULT_BAG_VERSION) -> Path:
    """Write one episode as one bag directory; returns the directory."""
    return write_episodes_bag([episode], bag_dir, version)


def write_episodes_bag(episodes: Iterable[Episode], bag_dir: Path | str, version: int = DEFAULT_BAG_VERSION) -> Path:
    """Write several episodes (e.g. a batch of synthetic branches) into one bag."""
    with EpisodeBagWriter(bag_dir, version=version, durable=False) as writer:
        t0 = None
        for ep in episodes:
            writer.write_episode(ep, t0_ns=t0)
            if ep.stamps_ns is None:
                t0 = (t0 or 1_700_000_000_000_000_000) + DEFAULT_PERIOD_NS * (ep.length + 2)
    return Path(bag_dir)


# --------------------------------------------------------------------------- write-ahead log
def _pack_str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<I", len(b)) + b


def _wal_record(f, kind: bytes, payload: bytes) -> None:
    f.write(kind + struct.pack("<I", len(payload)) + payload)


def _read_wal(path: Path) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, msgtype, stamp_ns, cdr) of every complete record; stops at a torn tail."""
    data = path.read_bytes()
    if len(data) < len(WAL_MAGIC) and WAL_MAGIC.startswith(data):
        return  # killed while opening the log: nothing in it
    if not data.startswith(WAL_MAGIC):
        raise BagError(f"{path}: not a WorldSample write-ahead log")
    pos, conns = len(WAL_MAGIC), {}
    while pos + 5 <= len(data):
        kind = data[pos:pos + 1]
        (size,) = struct.unpack_from("<I", data, pos + 1)
        if pos + 5 + size > len(data):
            break  # torn last record
        payload = data[pos + 5: pos + 5 + size]
        pos += 5 + size
        if kind == b"C":
            (wid,) = struct.unpack_from("<I", payload, 0)
            (n1,) = struct.unpack_from("<I", payload, 4)
            topic = payload[8:8 + n1].decode()
            (n2,) = struct.unpack_from("<I", payload, 8 + n1)
            conns[wid] = (topic, payload[12 + n1:12 + n1 + n2].decode())
        elif kind == b"M":
            wid, ns = struct.unpack_from("<Iq", payload, 0)
            topic, msgtype = conns[wid]
            yield topic, msgtype, ns, payload[12:]
        else:
            break


@dataclass
class RecoveryReport:
    bag_dir: Path
    recovered: bool
    messages: int
    detail: str
    truncated: bool = False  # the bag was cut short: what is there was salvaged, the rest is lost


def mcap_file(bag_dir: Path) -> Path | None:
    files = sorted(Path(bag_dir).glob("*.mcap"))
    return files[0] if files else None


def mcap_truncated(path: Path) -> bool:
    """Whether an MCAP file starts like one but lacks its closing magic (cut short: copied half-way,
    disk full at close). An empty or foreign file is not "truncated" (the reader names it)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if f.read(len(MCAP_MAGIC)) != MCAP_MAGIC:
            return False
        if size < 2 * len(MCAP_MAGIC):
            return True
        f.seek(size - len(MCAP_MAGIC))
        return f.read() != MCAP_MAGIC


def _decompress(data: bytes, compression: str, size: int) -> bytes | None:
    if compression == "":
        return data
    try:
        if compression == "lz4":
            import lz4.frame

            return lz4.frame.decompress(data)
        if compression == "zstd":
            try:
                from compression import zstd  # type: ignore[import-not-found]  # Python >= 3.14

                return zstd.decompress(data)
            except ImportError:
                import zstandard  # type: ignore[import-not-found]

                return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
    except Exception:  # noqa: BLE001 - an undecodable chunk ends the salvage
        return None
    return None


def salvage_mcap(path: Path) -> tuple[list[tuple[str, str, int, bytes]], str]:
    """(topic, msgtype, stamp_ns, cdr) of every complete message record of an MCAP file, in file
    order, and a note on where reading stopped. Reads records sequentially (no summary or index
    needed), so a file cut anywhere gives everything before the cut."""
    data = path.read_bytes()
    if not data.startswith(MCAP_MAGIC):
        return [], "no MCAP magic at the start"
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}
    out: list[tuple[str, str, int, bytes]] = []
    note = "end of file"

    def strs(buf: bytes, pos: int, n: int) -> tuple[list[str], int]:
        vals = []
        for _ in range(n):
            (ln,) = struct.unpack_from("<I", buf, pos)
            vals.append(buf[pos + 4:pos + 4 + ln].decode())
            pos += 4 + ln
        return vals, pos

    def records(buf: bytes, pos: int, top: bool) -> bool:
        nonlocal note
        while pos + 9 <= len(buf):
            op = buf[pos]
            (size,) = struct.unpack_from("<Q", buf, pos + 1)
            body = buf[pos + 9:pos + 9 + size]
            if len(body) < size:
                note = f"record at byte {pos} cut short"
                if op == 0x06 and top and len(body) > 40:  # a cut chunk: uncompressed, its records still read
                    try:
                        (comp,), q = strs(body, 28, 1)
                    except (struct.error, UnicodeDecodeError):
                        return False
                    if comp == "":
                        records(body[q + 8:], 0, False)
                        note = f"file cut inside the chunk at byte {pos}"
                return False
            pos += 9 + size
            try:
                if op == 0x03:
                    (sid,) = struct.unpack_from("<H", body, 0)
                    (name,), _ = strs(body, 2, 1)
                    schemas[sid] = name
                elif op == 0x04:
                    cid, sid = struct.unpack_from("<HH", body, 0)
                    (topic,), _ = strs(body, 4, 1)
                    channels[cid] = (topic, schemas.get(sid, ""))
                elif op == 0x05:
                    cid, _seq, log_time, _pub = struct.unpack_from("<HIQQ", body, 0)
                    if cid in channels:
                        out.append((channels[cid][0], channels[cid][1], int(log_time), bytes(body[22:])))
                elif op == 0x06 and top:
                    _s, _e, usize, _crc = struct.unpack_from("<QQQI", body, 0)
                    (comp,), q = strs(body, 28, 1)
                    (csize,) = struct.unpack_from("<Q", body, q)
                    inner = _decompress(body[q + 8:q + 8 + csize], comp, usize)
                    if inner is None:
                        note = f"chunk at byte {pos - 9 - size} uses compression {comp!r} that cannot be read here"
                        return False
                    if not records(inner, 0, False):
                        return False
                elif op == 0x02 and top:  # footer
                    return True
            except (struct.error, UnicodeDecodeError):
                note = f"damaged record at byte {pos - 9 - size}"
                return False
        if pos != len(buf) and top:
            note = f"file cut inside a record header at byte {pos}"
        return True

    records(data, len(MCAP_MAGIC), True)
    return out, note


def _rebuild(bag_dir: Path, records: list[tuple[str, str, int, bytes]], status: str) -> None:
    """Move the damaged bag aside (``<bag>.incomplete``) and write a fresh one from ``records``."""
    kept = bag_dir.with_name(bag_dir.name + ".incomplete")
    if kept.exists():
        raise BagError(f"{kept}: left over from an earlier recovery; inspect and remove it")
    bag_dir.rename(kept)  # the partial files stay there, untouched
    try:
        with EpisodeBagWriter(bag_dir, durable=False) as writer:
            for topic, msgtype, ns, data in records:
                writer.write(topic, msgtype, data, ns)
            writer.set_custom_data("worldsample.status", status)
            writer.set_custom_data("worldsample.messages", str(len(records)))
    except Exception:
        if bag_dir.exists():
            for f in bag_dir.iterdir():
                f.unlink()
            bag_dir.rmdir()
        kept.rename(bag_dir)
        raise


def recover_bag(bag_dir: Path | str) -> RecoveryReport:
    """Make a bag left by a killed recorder, or cut short, readable again, as far as it goes.

    A bag with metadata.yaml, a whole ``.mcap`` and no write-ahead log is complete and left as
    it is. A bag with a write-ahead log is rebuilt from the log up to its last complete message;
    a bag whose ``.mcap`` is truncated (no log) from the complete records of that file. The partial
    files are kept in ``<bag>.incomplete/``; the new bag's metadata says ``recovered: ...``.
    """
    bag_dir = Path(bag_dir)
    wal = bag_dir / WAL_NAME
    if not wal.exists():
        if not (bag_dir / "metadata.yaml").exists():
            raise BagError(f"{bag_dir}: no metadata.yaml and no {WAL_NAME}; nothing to recover from")
        mcap = mcap_file(bag_dir)
        if mcap is None or not mcap_truncated(mcap):
            return RecoveryReport(bag_dir, False, 0, "complete bag, nothing to recover")
        records, note = salvage_mcap(mcap)
        expected = _metadata_count(bag_dir)
        detail = (f"TRUNCATED .mcap: salvaged {len(records)} message(s)"
                  f"{f' of {expected}' if expected else ''} ({note}); the rest is lost")
        _rebuild(bag_dir, records, f"recovered: {detail}")
        return RecoveryReport(bag_dir, True, len(records), detail, truncated=True)
    records = list(_read_wal(wal))
    reason = read_status_file(bag_dir) or "recorder killed"
    detail = f"recovered {len(records)} messages from the write-ahead log ({reason})"
    _rebuild(bag_dir, records, f"recovered: {detail}")
    kept = bag_dir.with_name(bag_dir.name + ".incomplete")
    (kept / WAL_NAME).rename(kept / (WAL_NAME + ".recovered"))
    return RecoveryReport(bag_dir, True, len(records), detail)


def _metadata(bag_dir: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load((Path(bag_dir) / "metadata.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    info = data.get("rosbag2_bagfile_information") if isinstance(data, dict) else None
    return info if isinstance(info, dict) else {}


def _metadata_count(bag_dir: Path) -> int:
    try:
        return int(_metadata(bag_dir).get("message_count") or 0)
    except (TypeError, ValueError):
        return 0


def read_status_file(bag_dir: Path | str) -> str:
    """What an open (or abandoned) bag's ``recording.status`` says ("" when there is none)."""
    try:
        text = (Path(bag_dir) / STATUS_NAME).read_text(errors="replace").strip()
    except OSError:
        return ""
    if text.startswith("stopped: "):
        return text[len("stopped: "):]
    return "recorder killed" if text == "recording" else text


def bag_status(bag_dir: Path | str) -> str:
    """What a bag is, in a few words: ``complete``, ``cut: <reason>``, ``recovered: ...``,
    ``TRUNCATED ...``, ``NOT RECOVERED (<why>) ...``, or ``closed`` for a bag without WorldSample status."""
    bag_dir = Path(bag_dir)
    if (bag_dir / WAL_NAME).exists():
        why = read_status_file(bag_dir) or "recorder killed"
        return f"NOT RECOVERED ({why}); run `worldsample bags recover {bag_dir}`"
    if not (bag_dir / "metadata.yaml").exists():
        return "not a bag (no metadata.yaml)"
    mcap = mcap_file(bag_dir)
    if mcap is not None and mcap_truncated(mcap):
        return f"TRUNCATED .mcap ({mcap.name}); run `worldsample bags recover {bag_dir}` to salvage it"
    custom = _metadata(bag_dir).get("custom_data") or {}
    return str(custom.get("worldsample.status", "closed")) if isinstance(custom, dict) else "closed"


# --------------------------------------------------------------------------- reading
def read_bag_messages(bag_dir: Path | str, topics: Iterable[str] | None = None,
                      msgtypes: Iterable[str] | None = None) -> Iterator[tuple[str, str, int, Any]]:
    """(topic, msgtype, stamp_ns, message) of a bag in time order; BagError names the bag on failure.

    ``topics`` / ``msgtypes`` select connections; a selected connection whose type is neither a
    ROS 2 Kilted standard type nor a worldsample_msgs type is an error naming topic and type.
    """
    from rosbags.rosbag2 import Reader

    bag_dir = Path(bag_dir)
    if not (bag_dir / "metadata.yaml").exists():
        hint = (f" (a {WAL_NAME} is there: {read_status_file(bag_dir) or 'recorder killed'}; make it readable "
                f"with `worldsample bags recover {bag_dir}`)") if (bag_dir / WAL_NAME).exists() else ""
        raise BagError(f"{bag_dir}: not a rosbag2 directory (no metadata.yaml){hint}")
    mcap = mcap_file(bag_dir)
    if mcap is not None and mcap_truncated(mcap):
        raise BagError(f"{bag_dir}: cannot read bag: TRUNCATED: {mcap.name} is cut short (no closing MCAP magic); salvage what is "
                       f"there with `worldsample bags recover {bag_dir}`")
    store = typestore()
    topic_set = None if topics is None else set(topics)
    type_set = None if msgtypes is None else set(msgtypes)
    try:
        with Reader(bag_dir) as reader:
            conns = [c for c in reader.connections if (topic_set is None or c.topic in topic_set)
                     and (type_set is None or c.msgtype in type_set)]
            if not conns:  # nothing selected (rosbags reads every connection when given none)
                return
            for conn in conns:
                if conn.msgtype not in store.types:
                    raise BagError(f"{bag_dir}: topic {conn.topic} has unknown message type {conn.msgtype!r} "
                                   "(expected a ROS 2 Kilted standard type or a worldsample_msgs type)")
            stores = {c.id: _store_for(c) for c in conns}
            for conn, ns, raw in reader.messages(connections=conns):
                try:
                    msg = stores[conn.id].deserialize_cdr(raw, conn.msgtype)
                except Exception as exc:  # noqa: BLE001 - any decode error is a corrupt message
                    hint = (" (or written with a different version of worldsample_msgs)"
                            if conn.msgtype.startswith("worldsample_msgs/") else "")
                    raise BagError(f"{bag_dir}: corrupt {conn.msgtype} message on {conn.topic} at {ns}{hint}: "
                                   f"{type(exc).__name__}: {exc}") from exc
                yield conn.topic, conn.msgtype, ns, msg
    except BagError:
        raise
    except Exception as exc:  # noqa: BLE001 - rosbags raises several types for damaged files
        raise BagError(f"{bag_dir}: cannot read bag: {type(exc).__name__}: {exc}") from exc


@lru_cache(maxsize=32)
def _store_from_definition(msgtype: str, definition: str):
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg(definition, msgtype))
    return store


def _store_for(conn):
    """The typestore that decodes a connection: ours, or, for a worldsample_msgs type recorded with
    an older definition (e.g. before ``run_id`` was added), one built from the bag's own definition.
    Fields missing in old messages read as absent (use ``getattr(msg, "run_id", "")``)."""
    store = typestore()
    msgdef = getattr(conn, "msgdef", None)
    text = getattr(msgdef, "data", "") if msgdef is not None else ""
    if not conn.msgtype.startswith("worldsample_msgs/") or not text:
        return store
    try:
        if store.generate_msgdef(conn.msgtype)[0].strip() == text.strip():
            return store
        return _store_from_definition(conn.msgtype, text)
    except Exception:  # noqa: BLE001 - an unparsable definition: decode with ours (and fail clearly)
        return store


def holds_transitions(bag_dir: Path | str) -> bool:
    """Whether a bag holds at least one Transition, i.e. is an episode with a step (reads one message).

    A bag stopped between an episode's START and its first step holds none. A bag that cannot be
    read (a killed recorder's, before `recover_bag`) counts as holding some: it is not discarded.
    """
    try:
        return next(read_bag_messages(bag_dir, msgtypes=(TRANSITION_TYPE,)), None) is not None
    except BagError:
        return True


def read_bag_episodes(bag_dir: Path | str) -> list[Episode]:
    """Every episode in a bag, rebuilt from its Transition stream (grouped by episode_id)."""
    bag_dir = Path(bag_dir)
    steps: dict[str, list[tuple[int, Any]]] = {}
    infos: dict[str, Any] = {}
    starts: dict[str, Any] = {}
    # Only the episode's own types are decoded: other topics (camera, state, or types this
    # workspace does not know, e.g. franka_msgs recorded alongside) do not make a bag unreadable.
    for _topic, msgtype, ns, msg in read_bag_messages(bag_dir, msgtypes=(TRANSITION_TYPE, EPISODE_INFO_TYPE)):
        if msgtype == TRANSITION_TYPE:
            steps.setdefault(msg.episode_id, []).append((ns, msg))
        elif msgtype == EPISODE_INFO_TYPE and msg.event == msg.EVENT_END:
            infos[msg.episode_id] = msg
        elif msgtype == EPISODE_INFO_TYPE and msg.event == msg.EVENT_START:
            starts[msg.episode_id] = msg
    if not steps:
        raise BagError(f"{bag_dir}: no {TRANSITION_TYPE} messages (topics missing)")
    # an episode cut short (Ctrl-C, crash) has no END event: its START still gives the seed
    return [_episode_from_transitions(bag_dir, eid, items, infos.get(eid), starts.get(eid))
            for eid, items in steps.items()]


def read_episode_bag(bag_dir: Path | str) -> Episode:
    """The one episode of an episode bag."""
    episodes = read_bag_episodes(bag_dir)
    if len(episodes) != 1:
        raise BagError(f"{bag_dir}: expected one episode, found {len(episodes)}; use read_bag_episodes")
    return episodes[0]


def _episode_from_transitions(bag_dir: Path, episode_id: str, items: list[tuple[int, Any]], info,
                              start=None) -> Episode:
    items.sort(key=lambda x: x[1].step)
    msgs = [m for _, m in items]
    where = f"{bag_dir} episode {episode_id!r}"
    if [m.step for m in msgs] != list(range(len(msgs))):
        raise BagError(f"{where}: steps are not 0..{len(msgs) - 1} (missing or duplicated transitions)")
    cams = list(msgs[0].camera_names)
    images: dict[str, list[np.ndarray]] = {c: [] for c in cams}
    for m in msgs:
        if list(m.camera_names) != cams or len(m.observation_images) != len(cams) or len(m.next_observation_images) != len(cams):
            raise BagError(f"{where} step {m.step}: cameras {list(m.camera_names)} differ from {cams} or images are missing")
        for c, img in zip(cams, m.observation_images, strict=True):
            images[c].append(image_array(img, f"{where} step {m.step} camera {c}"))
    for c, img in zip(cams, msgs[-1].next_observation_images, strict=True):
        images[c].append(image_array(img, f"{where} last step camera {c}"))
    for c, frames in images.items():
        if len({f.shape for f in frames}) != 1:
            raise BagError(f"{where}: camera {c} changes image size inside the episode")
    stamps = [ns for ns, _ in items]
    stamps.append(stamps[-1] + (stamps[-1] - stamps[-2] if len(stamps) > 1 else DEFAULT_PERIOD_NS))
    try:
        return Episode(
            episode_id=episode_id, task=msgs[0].task, source=Source(msgs[0].source),
            images={c: np.stack(f) for c, f in images.items()},
            proprio=np.stack([np.asarray(m.proprio) for m in msgs] + [np.asarray(msgs[-1].next_proprio)]),
            actions=np.stack([np.asarray(m.action) for m in msgs]),
            rewards=np.array([m.reward for m in msgs]), terminated=np.array([m.terminated for m in msgs]),
            truncated=np.array([m.truncated for m in msgs]), successes=np.array([m.success for m in msgs]),
            uncertainty=np.array([m.uncertainty for m in msgs]), trust=np.array([m.trust for m in msgs]),
            policy_version=msgs[0].policy_version, world_model_version=msgs[0].world_model_version,
            seed=int(info.seed) if info is not None else (int(start.seed) if start is not None else -1),
            stamps_ns=np.array(stamps, dtype=np.int64),
            states=_states(msgs, where),
            extras=_extras(bag_dir, msgs[0], info),
        )
    except ValueError as exc:
        raise BagError(f"{bag_dir}: {exc}") from exc


def _extras(bag_dir: Path, first, info) -> dict[str, str]:
    out = {"bag": str(bag_dir)}
    run_id = getattr(first, "run_id", "") or (getattr(info, "run_id", "") if info is not None else "")
    if run_id:
        out["run_id"] = run_id
    out["reason"] = "cut: no END event" if info is None else (getattr(info, "reason", "") or "ended")
    return out


def _states(msgs: list[Any], where: str) -> np.ndarray | None:
    sizes = {len(m.state) for m in msgs} | {len(msgs[-1].next_state)}
    if sizes == {0}:
        return None
    if len(sizes) != 1:
        raise BagError(f"{where}: privileged state changes size inside the episode ({sorted(sizes)})")
    return np.stack([np.asarray(m.state) for m in msgs] + [np.asarray(msgs[-1].next_state)])


def bag_closed(bag_dir: Path) -> bool:
    """Whether the recorder has finished a bag: metadata written and no write-ahead log left."""
    return (bag_dir / "metadata.yaml").exists() and not (bag_dir / WAL_NAME).exists()


def find_bags(directory: Path | str) -> list[Path]:
    """Bag directories under `directory` (itself included): those with metadata.yaml or a write-ahead log,
    except the damaged originals a recovery kept (``*.incomplete``)."""
    directory = Path(directory)
    if not directory.exists():
        raise BagError(f"{directory}: no such directory")
    found = {p.parent for p in directory.rglob("metadata.yaml")} | {p.parent for p in directory.rglob(WAL_NAME)}
    # ``<bag>.incomplete``: the damaged originals `recover_bag` keeps beside the rebuilt bag
    return sorted(b for b in found if not any(part.endswith(".incomplete") for part in b.relative_to(directory).parts))


@dataclass
class LoadReport:
    episodes: list[Episode]
    skipped: list[tuple[Path, str]]


def load_episodes_report(directory: Path | str, sources: Iterable[Source] | None = None) -> LoadReport:
    """Episodes of every readable bag under `directory`; bad bags are skipped with their reason."""
    wanted = None if sources is None else {Source(s) for s in sources}
    episodes: list[Episode] = []
    skipped: list[tuple[Path, str]] = []
    for bag in find_bags(directory):
        try:
            eps = read_bag_episodes(bag)
        except BagError as exc:
            LOG.warning("skipping bag: %s", exc)
            skipped.append((bag, str(exc)))
            continue
        episodes.extend(e for e in eps if wanted is None or e.source in wanted)
    return LoadReport(episodes, skipped)


def load_episodes(directory: Path | str, sources: Iterable[Source] | None = None) -> list[Episode]:
    """Episodes of every readable bag under `directory` (bad bags skipped with a logged reason)."""
    return load_episodes_report(directory, sources).episodes
