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
in the bag directory, flushed per message) besides the MCAP writer. A normal close writes
the MCAP file and metadata.yaml, then deletes the log. If the process dies (even SIGKILL),
`recover_bag` rebuilds a readable bag from the log, up to its last complete message.
"""

from __future__ import annotations

import logging
import os
import struct
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
        )


def episode_info_msg(episode: Episode, event: int, ns: int, bag_uri: str = ""):
    EpisodeInfo = msg_class(EPISODE_INFO_TYPE)
    end = event == EpisodeInfo.EVENT_END
    return EpisodeInfo(
        header=header(ns), event=event, episode_id=episode.episode_id, source=int(episode.source),
        task=episode.task, bag_uri=bag_uri, length=episode.length if end else 0,
        episode_return=episode.episode_return if end else 0.0, success=episode.success if end else False,
        policy_version=episode.policy_version, seed=int(episode.seed),
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

    def __init__(self, bag_dir: Path | str, version: int = DEFAULT_BAG_VERSION, durable: bool = True) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.bag_dir = Path(bag_dir)
        if self.bag_dir.exists():
            raise BagError(f"{self.bag_dir}: already exists; bags are never overwritten")
        self.bag_dir.parent.mkdir(parents=True, exist_ok=True)
        self._writer = Writer(self.bag_dir, version=version, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections: dict[tuple[str, str], Any] = {}
        self._wal = (self.bag_dir / WAL_NAME).open("wb") if durable else None
        if self._wal is not None:
            self._wal.write(WAL_MAGIC)
            self._wal.flush()
        self._wal_ids: dict[tuple[str, str], int] = {}
        self.count = 0
        self.closed = False

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
        if self._wal is not None:
            wid = self._wal_ids.get(key)
            if wid is None:
                wid = self._wal_ids[key] = len(self._wal_ids)
                _wal_record(self._wal, b"C", struct.pack("<I", wid) + _pack_str(topic) + _pack_str(msgtype))
            _wal_record(self._wal, b"M", struct.pack("<Iq", wid, stamp_ns) + bytes(data))
            self._wal.flush()
        self._writer.write(conn, int(stamp_ns), data)
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
        if not self.closed:
            self._writer.close()
            self.closed = True
            if self._wal is not None:
                self._wal.close()
                (self.bag_dir / WAL_NAME).unlink()
        return self.bag_dir


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


def recover_bag(bag_dir: Path | str) -> RecoveryReport:
    """Make a bag left by a killed recorder readable again, up to its last complete message.

    A bag with metadata.yaml and no write-ahead log is complete and left as it is. Otherwise
    the partial files are kept in ``<bag>.incomplete/`` and a fresh bag is written from the log.
    """
    bag_dir = Path(bag_dir)
    wal = bag_dir / WAL_NAME
    if not wal.exists():
        if (bag_dir / "metadata.yaml").exists():
            return RecoveryReport(bag_dir, False, 0, "complete bag, nothing to recover")
        raise BagError(f"{bag_dir}: no metadata.yaml and no {WAL_NAME}; nothing to recover from")
    records = list(_read_wal(wal))
    kept = bag_dir.with_name(bag_dir.name + ".incomplete")
    if kept.exists():
        raise BagError(f"{kept}: left over from an earlier recovery; inspect and remove it")
    bag_dir.rename(kept)  # the partial files stay there, untouched
    try:
        with EpisodeBagWriter(bag_dir, durable=False) as writer:
            for topic, msgtype, ns, data in records:
                writer.write(topic, msgtype, data, ns)
    except Exception:
        if bag_dir.exists():
            for f in bag_dir.iterdir():
                f.unlink()
            bag_dir.rmdir()
        kept.rename(bag_dir)
        raise
    (kept / WAL_NAME).rename(kept / (WAL_NAME + ".recovered"))
    return RecoveryReport(bag_dir, True, len(records), f"recovered {len(records)} messages from the write-ahead log")


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
        hint = (f" (a {WAL_NAME} is there: the recorder was killed; make it readable with "
                f"`worldsample bags recover {bag_dir}`)") if (bag_dir / WAL_NAME).exists() else ""
        raise BagError(f"{bag_dir}: not a rosbag2 directory (no metadata.yaml){hint}")
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
            for conn, ns, raw in reader.messages(connections=conns):
                try:
                    msg = store.deserialize_cdr(raw, conn.msgtype)
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
            extras={"bag": str(bag_dir)},
        )
    except ValueError as exc:
        raise BagError(f"{bag_dir}: {exc}") from exc


def _states(msgs: list[Any], where: str) -> np.ndarray | None:
    sizes = {len(m.state) for m in msgs} | {len(msgs[-1].next_state)}
    if sizes == {0}:
        return None
    if len(sizes) != 1:
        raise BagError(f"{where}: privileged state changes size inside the episode ({sorted(sizes)})")
    return np.stack([np.asarray(m.state) for m in msgs] + [np.asarray(msgs[-1].next_state)])


def find_bags(directory: Path | str) -> list[Path]:
    """Bag directories under `directory` (itself included): those with metadata.yaml or a write-ahead log."""
    directory = Path(directory)
    if not directory.exists():
        raise BagError(f"{directory}: no such directory")
    found = {p.parent for p in directory.rglob("metadata.yaml")} | {p.parent for p in directory.rglob(WAL_NAME)}
    return sorted(found)


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
