"""Writing bags: `EpisodeBagWriter` (incremental, crash-safe: every message also goes to a
write-ahead log), `write_episode_bag` / `write_episodes_bag`, and the write-ahead log's format."""

from __future__ import annotations

import errno
import logging
import os
import struct
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..episode import Episode
from .codec import DEFAULT_PERIOD_NS, BagError, episode_messages, msg_class, typestore
from .metadata import STATUS_NAME, STATUS_SIZE, WAL_NAME

LOG = logging.getLogger(__name__)

DEFAULT_BAG_VERSION = 8
WAL_MAGIC = b"WSWAL001"
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


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
        """All transitions of an episode, bracketed by EpisodeInfo START and END (`codec.episode_messages`)."""
        for topic, msgtype, msg, ns in episode_messages(episode, t0_ns, bag_uri or str(self.bag_dir)):
            self.write(topic, msgtype, msg, ns)

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



def read_wal(path: Path) -> Iterator[tuple[str, str, int, bytes]]:
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

