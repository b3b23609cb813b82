"""Episode data <-> rclpy messages (worldsample_msgs/Transition, EpisodeInfo, sensor_msgs/Image).

The rclpy twin of `core.bag_io`'s message builders: the same field meanings, so a
Transition published on a topic and one read from a bag decode to the same arrays. Episodes
travel between nodes as bags (decoded by `core.bag_io` alone); this module is for tools and
tests that put whole episodes on a topic (tests/test_dds_transition.py). Imports rclpy
message packages, so it lives outside `core`.
"""

from __future__ import annotations

import array
from dataclasses import dataclass

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from worldsample_msgs.msg import EpisodeInfo, Transition

from ..core.episode import Episode, Source
from ..core.image_codec import image_msg_to_rgb8
from .support import ns_to_time, time_to_ns

# one pair of stamp helpers for every rclpy module (nodes.support)
stamp_to_ns = time_to_ns
ns_to_stamp = ns_to_time


def rgb_to_image(frame: np.ndarray, stamp_ns: int, frame_id: str = "") -> Image:
    """rgb8 Image from a uint8 (H, W, 3) array (one memcpy, no per-pixel Python work)."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"image for {frame_id or 'camera'} must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
    h, w, _ = frame.shape
    msg = Image(header=Header(stamp=ns_to_stamp(stamp_ns), frame_id=frame_id), height=h, width=w,
                encoding="rgb8", is_bigendian=0, step=w * 3)
    msg.data = array.array("B", np.ascontiguousarray(frame).tobytes())
    return msg


def _floats(values: np.ndarray) -> array.array:
    return array.array("f", np.asarray(values, dtype=np.float32).tobytes())


@dataclass
class TransitionRecord:
    """One decoded Transition message (numpy arrays), ready for replay or a bag."""

    episode_id: str
    step: int
    task: str
    source: Source
    images: dict[str, np.ndarray]
    next_images: dict[str, np.ndarray]
    proprio: np.ndarray
    next_proprio: np.ndarray
    action: np.ndarray
    reward: float
    terminated: bool
    truncated: bool
    success: bool
    uncertainty: float
    trust: float
    world_model_version: str
    policy_version: str
    stamp_ns: int
    state: np.ndarray | None = None
    next_state: np.ndarray | None = None


def transition_to_msg(episode: Episode, t: int, stamp_ns: int, next_stamp_ns: int | None = None) -> Transition:
    """Transition message of step `t` of an episode."""
    nxt = stamp_ns if next_stamp_ns is None else next_stamp_ns
    cams = list(episode.camera_names)
    msg = Transition(
        header=Header(stamp=ns_to_stamp(stamp_ns)), episode_id=episode.episode_id, step=t, task=episode.task,
        camera_names=cams,
        observation_images=[rgb_to_image(episode.images[c][t], stamp_ns, c) for c in cams],
        reward=float(episode.rewards[t]), terminated=bool(episode.terminated[t]), truncated=bool(episode.truncated[t]),
        success=bool(episode.successes[t]),
        next_observation_images=[rgb_to_image(episode.images[c][t + 1], nxt, c) for c in cams],
        source=int(episode.source), uncertainty=float(episode.uncertainty[t]), trust=float(episode.trust[t]),
        world_model_version=episode.world_model_version, policy_version=episode.policy_version,
    )
    msg.proprio = _floats(episode.proprio[t])
    msg.next_proprio = _floats(episode.proprio[t + 1])
    msg.action = _floats(episode.actions[t])
    if episode.states is not None:
        msg.state = _floats(episode.states[t])
        msg.next_state = _floats(episode.states[t + 1])
    return msg


def transition_from_msg(msg: Transition) -> TransitionRecord:
    """Decode a Transition; ValueError names the episode/step when images or arrays are malformed."""
    where = f"transition {msg.episode_id!r} step {msg.step}"
    cams = list(msg.camera_names)
    if len(msg.observation_images) != len(cams) or len(msg.next_observation_images) != len(cams):
        raise ValueError(f"{where}: {len(cams)} camera names but {len(msg.observation_images)} / "
                         f"{len(msg.next_observation_images)} images")
    try:
        images = {c: image_msg_to_rgb8(m) for c, m in zip(cams, msg.observation_images, strict=True)}
        next_images = {c: image_msg_to_rgb8(m) for c, m in zip(cams, msg.next_observation_images, strict=True)}
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    return TransitionRecord(
        episode_id=msg.episode_id, step=int(msg.step), task=msg.task, source=Source(msg.source),
        images=images, next_images=next_images,
        proprio=np.asarray(msg.proprio, dtype=np.float32), next_proprio=np.asarray(msg.next_proprio, dtype=np.float32),
        action=np.asarray(msg.action, dtype=np.float32), reward=float(msg.reward), terminated=bool(msg.terminated),
        truncated=bool(msg.truncated), success=bool(msg.success), uncertainty=float(msg.uncertainty),
        trust=float(msg.trust), world_model_version=msg.world_model_version, policy_version=msg.policy_version,
        stamp_ns=stamp_to_ns(msg.header.stamp),
        state=np.asarray(msg.state, dtype=np.float32) if len(msg.state) else None,
        next_state=np.asarray(msg.next_state, dtype=np.float32) if len(msg.next_state) else None,
    )


def episode_from_records(records: list[TransitionRecord]) -> Episode:
    """Rebuild an Episode from its transitions (any order); ValueError if steps are missing."""
    if not records:
        raise ValueError("no transitions to build an episode from")
    recs = sorted(records, key=lambda r: r.step)
    if [r.step for r in recs] != list(range(len(recs))):
        raise ValueError(f"episode {recs[0].episode_id!r}: steps {[r.step for r in recs]} are not 0..{len(recs) - 1}")
    cams = list(recs[0].images)
    return Episode(
        episode_id=recs[0].episode_id, task=recs[0].task, source=recs[0].source,
        images={c: np.stack([r.images[c] for r in recs] + [recs[-1].next_images[c]]) for c in cams},
        proprio=np.stack([r.proprio for r in recs] + [recs[-1].next_proprio]),
        actions=np.stack([r.action for r in recs]), rewards=np.array([r.reward for r in recs]),
        terminated=np.array([r.terminated for r in recs]), truncated=np.array([r.truncated for r in recs]),
        successes=np.array([r.success for r in recs]), uncertainty=np.array([r.uncertainty for r in recs]),
        trust=np.array([r.trust for r in recs]), policy_version=recs[0].policy_version,
        world_model_version=recs[0].world_model_version,
        states=None if recs[0].state is None else np.stack([r.state for r in recs] + [recs[-1].next_state]),
    )


def episode_info_to_msg(episode_id: str, event: int, source: Source, task: str, stamp_ns: int, *,
                        bag_uri: str = "", length: int = 0, episode_return: float = 0.0, success: bool = False,
                        policy_version: str = "", seed: int = -1) -> EpisodeInfo:
    return EpisodeInfo(
        header=Header(stamp=ns_to_stamp(stamp_ns)), event=event, episode_id=episode_id, source=int(source), task=task,
        bag_uri=bag_uri, length=length, episode_return=float(episode_return), success=success,
        policy_version=policy_version, seed=seed,
    )
