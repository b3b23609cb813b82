"""Reading bags: messages in time order (`read_bag_messages`), the episodes of a bag
(`read_bag_episodes`, decoded by `codec.episode_from_transitions`), every episode under a directory
(`load_episodes`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..episode import Episode, Source
from .codec import EPISODE_INFO_TYPE, TRANSITION_TYPE, BagError, episode_from_transitions, typestore
from .metadata import WAL_NAME, find_bags, mcap_file, mcap_truncated, read_status_file

LOG = logging.getLogger(__name__)


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
    return [episode_from_transitions(bag_dir, eid, items, infos.get(eid), starts.get(eid))
            for eid, items in steps.items()]



def read_episode_bag(bag_dir: Path | str) -> Episode:
    """The one episode of an episode bag."""
    episodes = read_bag_episodes(bag_dir)
    if len(episodes) != 1:
        raise BagError(f"{bag_dir}: expected one episode, found {len(episodes)}; use read_bag_episodes")
    return episodes[0]



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

