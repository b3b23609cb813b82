"""The one codec of WorldSample's episode messages: Episode <-> `worldsample_msgs/msg/Transition` and
`EpisodeInfo`, as rosbags message objects (CDR through `typestore()`, the same bytes rclpy puts on a
topic and rosbag2 stores).

The schema is the `worldsample_msgs` .msg files themselves, registered in a rosbags typestore on top
of ROS 2 Kilted's standard types. `transition_msgs` / `episode_info_msg` encode an episode;
`episode_from_transitions` decodes the Transition stream of one episode (from a bag, or from a topic:
``typestore().deserialize_cdr(raw, TRANSITION_TYPE)``). ROS-free.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..episode import Episode, Source
from ..image_codec import image_to_numpy

TOPIC_TRANSITIONS = "/transitions"
TOPIC_EPISODES = "/episodes"
TRANSITION_TYPE = "worldsample_msgs/msg/Transition"
EPISODE_INFO_TYPE = "worldsample_msgs/msg/EpisodeInfo"
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


# --------------------------------------------------------------------------- encoding
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



def transition_msg(*, episode_id: str, step: int, task: str, cameras: list[str], images: dict[str, np.ndarray],
                   next_images: dict[str, np.ndarray], proprio: np.ndarray, next_proprio: np.ndarray,
                   action: np.ndarray, reward: float, terminated: bool, truncated: bool, success: bool,
                   stamp_ns: int, next_stamp_ns: int, source: Source, state: np.ndarray | None = None,
                   next_state: np.ndarray | None = None, uncertainty: float = 0.0, trust: float = 1.0,
                   world_model_version: str = "", policy_version: str = "", run_id: str = ""):
    """One Transition (rosbags message; `typestore().serialize_cdr(msg, TRANSITION_TYPE)` gives the CDR
    bytes rclpy publishes). Images of s are stamped ``stamp_ns``, those of s' ``next_stamp_ns``."""
    no_state = np.zeros(0, np.float32)
    with_state = state is not None and next_state is not None
    return msg_class(TRANSITION_TYPE)(
        header=header(int(stamp_ns)),
        episode_id=episode_id,
        step=int(step),
        task=task,
        camera_names=list(cameras),
        observation_images=[image_msg(images[c], int(stamp_ns), c) for c in cameras],
        proprio=np.asarray(proprio, np.float32),
        action=np.asarray(action, np.float32),
        reward=float(reward),
        terminated=bool(terminated),
        truncated=bool(truncated),
        success=bool(success),
        next_observation_images=[image_msg(next_images[c], int(next_stamp_ns), c) for c in cameras],
        next_proprio=np.asarray(next_proprio, np.float32),
        state=np.asarray(state, np.float32) if with_state else no_state,
        next_state=np.asarray(next_state, np.float32) if with_state else no_state,
        source=int(source),
        uncertainty=float(uncertainty),
        trust=float(trust),
        world_model_version=world_model_version,
        policy_version=policy_version,
        run_id=run_id,
    )


def transition_msgs(episode: Episode, t0_ns: int | None = None) -> Iterator[tuple[int, Any]]:
    """(stamp_ns, Transition) for each step of an episode."""
    stamps = episode_stamps(episode, t0_ns)
    cams = list(episode.camera_names)
    states = episode.states
    for t in range(episode.length):
        yield int(stamps[t]), transition_msg(
            episode_id=episode.episode_id, step=t, task=episode.task, cameras=cams,
            images={c: episode.images[c][t] for c in cams}, next_images={c: episode.images[c][t + 1] for c in cams},
            proprio=episode.proprio[t], next_proprio=episode.proprio[t + 1], action=episode.actions[t],
            reward=episode.rewards[t], terminated=episode.terminated[t], truncated=episode.truncated[t],
            success=episode.successes[t], stamp_ns=stamps[t], next_stamp_ns=stamps[t + 1], source=episode.source,
            state=None if states is None else states[t], next_state=None if states is None else states[t + 1],
            uncertainty=episode.uncertainty[t], trust=episode.trust[t],
            world_model_version=episode.world_model_version, policy_version=episode.policy_version,
            run_id=episode.extras.get("run_id", ""),
        )


def episode_messages(episode: Episode, t0_ns: int | None = None,
                     bag_uri: str = "") -> Iterator[tuple[str, str, Any, int]]:
    """(topic, msgtype, message, stamp_ns) of a whole episode as a bag holds it: EpisodeInfo START, one
    Transition per step, EpisodeInfo END (carrying ``bag_uri``)."""
    EpisodeInfo = msg_class(EPISODE_INFO_TYPE)
    stamps = episode_stamps(episode, t0_ns)
    yield TOPIC_EPISODES, EPISODE_INFO_TYPE, episode_info_msg(episode, EpisodeInfo.EVENT_START, int(stamps[0])), \
        int(stamps[0])
    for ns, msg in transition_msgs(episode, t0_ns):
        yield TOPIC_TRANSITIONS, TRANSITION_TYPE, msg, ns
    yield TOPIC_EPISODES, EPISODE_INFO_TYPE, episode_info_msg(episode, EpisodeInfo.EVENT_END, int(stamps[-1]), bag_uri), \
        int(stamps[-1])


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



def episode_stamps(episode: Episode, t0_ns: int | None) -> np.ndarray:
    if episode.stamps_ns is not None:
        return np.asarray(episode.stamps_ns, dtype=np.int64)
    t0 = 1_700_000_000_000_000_000 if t0_ns is None else t0_ns
    return t0 + DEFAULT_PERIOD_NS * np.arange(episode.length + 1, dtype=np.int64)


# --------------------------------------------------------------------------- decoding
def image_array(msg, where: str) -> np.ndarray:
    """uint8 (H, W, 3) from an rgb8 sensor_msgs/Image; anything else is a clear error."""
    if msg.encoding != "rgb8":
        raise BagError(f"{where}: image encoding {msg.encoding!r}, expected 'rgb8'")
    try:
        return image_to_numpy(msg)
    except ValueError as exc:
        raise BagError(f"{where}: {exc}") from exc



def episode_from_transitions(bag_dir: Path, episode_id: str, items: list[tuple[int, Any]], info,
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

