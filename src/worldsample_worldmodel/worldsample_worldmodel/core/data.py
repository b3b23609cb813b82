"""Episodes -> training windows for the world model; checks that reject bad episodes by name.

A training sample is a window anchored at step ``t`` of an episode: the ``history`` frames
``t-history+1 .. t`` (clamped to frame 0 at the start of an episode) of every camera, the
proprioception at ``t``, the ``rollout_steps`` actions ``t .. t+K-1`` and the targets
``t+1 .. t+K`` (frames, proprio, reward, success, termination). Steps past the end of the
episode are masked out of the loss.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from worldsample_common.core.env_protocol import ACTION_DIM
from worldsample_common.core.episode import Episode, Source

LOG = logging.getLogger(__name__)


def episode_name(ep: Episode) -> str:
    """How messages name an episode: its bag when it came from one, else its id."""
    bag = ep.extras.get("bag") if ep.extras else None
    return f"bag {bag} (episode {ep.episode_id!r})" if bag else f"episode {ep.episode_id!r}"


def check_episode(ep: Episode, cameras: tuple[str, ...], image_size: int, proprio_dim: int | None) -> str | None:
    """Why ``ep`` cannot be used with a model of these cameras/size/proprio, or None if it can."""
    if not isinstance(ep, Episode):
        return f"expected an Episode, got {type(ep).__name__}"
    try:
        ep.validate()
    except ValueError as exc:
        return str(exc)
    if ep.length < 1:
        return "has no steps"
    missing = [c for c in cameras if c not in ep.images]
    if missing:
        return f"missing camera(s) {missing}; has {list(ep.images)}, the model needs {list(cameras)}"
    for c in cameras:
        h, w = ep.images[c].shape[1:3]
        if (h, w) != (image_size, image_size):
            return f"camera {c!r} frames are {h}x{w}, the model expects {image_size}x{image_size}"
    if ep.actions.shape[1] != ACTION_DIM:
        return f"actions have {ep.actions.shape[1]} dims, expected {ACTION_DIM}"
    if proprio_dim is not None and ep.proprio.shape[1] != proprio_dim:
        return f"proprio has {ep.proprio.shape[1]} dims, the model expects {proprio_dim}"
    return None


def filter_episodes(
    episodes: list[Episode], cameras: tuple[str, ...], image_size: int, proprio_dim: int | None = None
) -> tuple[list[Episode], list[tuple[str, str]]]:
    """Split into usable episodes and ``(name, reason)`` for each rejected one (each logged)."""
    kept: list[Episode] = []
    rejected: list[tuple[str, str]] = []
    for ep in episodes:
        reason = check_episode(ep, cameras, image_size, proprio_dim)
        if reason is None and proprio_dim is None and kept and ep.proprio.shape[1] != kept[0].proprio.shape[1]:
            reason = f"proprio has {ep.proprio.shape[1]} dims, other episodes have {kept[0].proprio.shape[1]}"
        if reason is None:
            kept.append(ep)
        else:
            name = episode_name(ep) if isinstance(ep, Episode) else repr(ep)
            LOG.warning("world model: skipping %s: %s", name, reason)
            rejected.append((name, reason))
    return kept, rejected


@dataclass
class Batch:
    """numpy arrays of one batch; B = batch, H = history, K = rollout steps."""

    frames: dict[str, np.ndarray]  # uint8 (B, H + K, S, S, 3): history then targets
    proprio: np.ndarray  # float32 (B, K + 1, P)
    actions: np.ndarray  # float32 (B, K, A)
    rewards: np.ndarray  # float32 (B, K)
    successes: np.ndarray  # float32 (B, K)
    terminated: np.ndarray  # float32 (B, K)
    mask: np.ndarray  # float32 (B, K): 1 where step t+k exists


class WindowSampler:
    """Random training windows from a fixed list of episodes (all arrays concatenated once)."""

    def __init__(self, episodes: list[Episode], cameras: tuple[str, ...], history: int, rollout_steps: int,
                 real_fraction: float = 0.7) -> None:
        if not episodes:
            raise ValueError("WindowSampler: no episodes to train on")
        self.cameras = cameras
        self.history = history
        self.k = rollout_steps
        self.frames = {c: np.concatenate([e.images[c] for e in episodes]) for c in cameras}
        self.proprio = np.concatenate([e.proprio for e in episodes]).astype(np.float32)
        self.frame_start: list[int] = []
        self.lengths = np.array([e.length for e in episodes], dtype=np.int64)
        off = 0
        for e in episodes:
            self.frame_start.append(off)
            off += e.length + 1
        self.frame_start_arr = np.array(self.frame_start, dtype=np.int64)
        a = ACTION_DIM
        # per-step arrays padded with one dummy step at the end of each episode so indexing matches frames
        self.actions = np.concatenate([np.vstack([e.actions, np.zeros((1, a), np.float32)]) for e in episodes])
        self.rewards = np.concatenate([np.append(e.rewards, 0.0) for e in episodes]).astype(np.float32)
        self.successes = np.concatenate([np.append(e.successes, False) for e in episodes]).astype(np.float32)
        self.terminated = np.concatenate([np.append(e.terminated, False) for e in episodes]).astype(np.float32)
        # anchor (episode index, step) for every transition, and its sampling weight
        self.anchor_ep = np.concatenate([np.full(e.length, i) for i, e in enumerate(episodes)])
        self.anchor_t = np.concatenate([np.arange(e.length) for e in episodes])
        is_real = np.array([e.source == Source.REAL for e in episodes])[self.anchor_ep]
        n_real = int(is_real.sum())
        n_other = len(is_real) - n_real
        if n_real and n_other:
            w = np.where(is_real, real_fraction / n_real, (1.0 - real_fraction) / n_other)
        else:
            w = np.full(len(is_real), 1.0 / len(is_real))
        self.weights = w / w.sum()
        self.num_transitions = len(self.anchor_t)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        idx = rng.choice(self.num_transitions, size=batch_size, p=self.weights)
        return self.window(self.anchor_ep[idx], self.anchor_t[idx])

    def window(self, ep_idx: np.ndarray, t: np.ndarray) -> Batch:
        h, k = self.history, self.k
        start = self.frame_start_arr[ep_idx][:, None]
        length = self.lengths[ep_idx][:, None]
        offs = t[:, None] + np.arange(-h + 1, k + 1)[None, :]  # (B, H+K)
        frame_idx = start + np.clip(offs, 0, length)
        steps = t[:, None] + np.arange(k)[None, :]  # (B, K) action steps t..t+K-1
        mask = (steps < length).astype(np.float32)
        step_idx = start + np.minimum(steps, length)  # dummy step at the end when past
        p_idx = start + np.clip(t[:, None] + np.arange(k + 1)[None, :], 0, length)
        return Batch(
            frames={c: self.frames[c][frame_idx] for c in self.cameras},
            proprio=self.proprio[p_idx],
            actions=self.actions[step_idx] * mask[..., None],
            rewards=self.rewards[step_idx],
            successes=self.successes[step_idx],
            terminated=self.terminated[step_idx],
            mask=mask,
        )
