"""In-memory episode and transition types shared by the robot side, world model and learner.

This is the data contract of WorldSample's cores. A rosbag2 recording of an episode
(`worldsample_common.core.bag_io`) round-trips to exactly this structure.

Shapes (T = number of steps, P = proprioception size, A = action size):

- ``images[camera]``: uint8 ``(T + 1, H, W, 3)`` RGB, observation 0 .. T (the last is s_T)
- ``proprio``: float32 ``(T + 1, P)``
- ``actions``: float32 ``(T, A)`` normalised to [-1, 1]
- ``rewards``: float32 ``(T,)``; ``terminated`` / ``truncated`` / ``successes``: bool ``(T,)``
- ``uncertainty`` / ``trust``: float32 ``(T,)`` (0 / 1 for real and demo data)
- ``states``: float32 ``(T + 1, S)`` privileged simulator state (object poses), or None
  (real robot). Only for state-based experiments; policies for the arm use images + proprio.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

import numpy as np


class Source(enum.IntEnum):
    """Where transitions came from (values match worldsample_msgs/Transition.SOURCE_*)."""

    REAL = 0
    SYNTHETIC = 1
    DEMO = 2


@dataclass
class Episode:
    """One episode (or one synthetic branch) as arrays; see the module docstring for shapes."""

    episode_id: str
    task: str
    source: Source
    images: dict[str, np.ndarray]
    proprio: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    successes: np.ndarray
    uncertainty: np.ndarray | None = None
    trust: np.ndarray | None = None
    policy_version: str = ""
    world_model_version: str = ""
    seed: int = -1
    stamps_ns: np.ndarray | None = None  # int64 (T + 1,) observation times, when known
    states: np.ndarray | None = None  # float32 (T + 1, S) privileged sim state, None on a real robot
    extras: dict[str, str] = field(default_factory=dict)
    # float64 (T + 1, K) full simulator state per observation (`FrankaTaskEnv.sim_state`): kept by the
    # in-process driver for the oracle world model only; never written to bags
    sim_states: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.source = Source(self.source)
        self.actions = np.asarray(self.actions, dtype=np.float32)
        self.proprio = np.asarray(self.proprio, dtype=np.float32)
        self.rewards = np.asarray(self.rewards, dtype=np.float32)
        self.terminated = np.asarray(self.terminated, dtype=bool)
        self.truncated = np.asarray(self.truncated, dtype=bool)
        self.successes = np.asarray(self.successes, dtype=bool)
        t = len(self.actions)
        if self.uncertainty is None:
            self.uncertainty = np.zeros(t, np.float32)
        if self.trust is None:
            self.trust = np.ones(t, np.float32)
        self.uncertainty = np.asarray(self.uncertainty, dtype=np.float32)
        self.trust = np.asarray(self.trust, dtype=np.float32)
        if self.states is not None:
            self.states = np.asarray(self.states, dtype=np.float32)
        self.validate()

    # ------------------------------------------------------------------ properties
    @property
    def length(self) -> int:
        return int(len(self.actions))

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(self.images)

    @property
    def success(self) -> bool:
        return bool(self.successes.any())

    @property
    def episode_return(self) -> float:
        return float(self.rewards.sum())

    def first(self, n: int, **labels: np.ndarray) -> Episode:
        """The episode's first ``n`` steps (observations 0 .. n), with ``labels`` (per-step arrays of length ``n``,
        e.g. ``rewards``, ``terminated``, ``truncated``, ``successes``) in place of the cut ones: a synthetic branch
        cut and relabelled."""
        if not 1 <= n <= self.length:
            raise ValueError(f"episode {self.episode_id!r}: first({n}) needs 1 <= n <= {self.length}")
        steps = {k: getattr(self, k)[:n] for k in ("actions", "rewards", "terminated", "truncated", "successes",
                                                   "uncertainty", "trust")}
        obs = {k: None if getattr(self, k) is None else getattr(self, k)[: n + 1]
               for k in ("proprio", "states", "stamps_ns", "sim_states")}
        return replace(self, images={c: v[: n + 1] for c, v in self.images.items()}, **{**steps, **obs, **labels})

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ValueError naming the field when shapes or values are inconsistent."""
        t = self.length
        where = f"episode {self.episode_id!r}"
        if self.actions.ndim != 2:
            raise ValueError(f"{where}: actions must be (T, A), got {self.actions.shape}")
        if self.proprio.shape[0] != t + 1 or self.proprio.ndim != 2:
            raise ValueError(f"{where}: proprio must be (T+1={t + 1}, P), got {self.proprio.shape}")
        for name in ("rewards", "terminated", "truncated", "successes", "uncertainty", "trust"):
            arr = getattr(self, name)
            if arr.shape != (t,):
                raise ValueError(f"{where}: {name} must be ({t},), got {arr.shape}")
        if self.states is not None and (self.states.ndim != 2 or self.states.shape[0] != t + 1):
            raise ValueError(f"{where}: states must be (T+1={t + 1}, S), got {self.states.shape}")
        if self.sim_states is not None and (np.ndim(self.sim_states) != 2 or len(self.sim_states) != t + 1):
            raise ValueError(f"{where}: sim_states must be (T+1={t + 1}, K), got {np.shape(self.sim_states)}")
        for cam, frames in self.images.items():
            if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
                raise ValueError(
                    f"{where}: camera {cam!r} frames must be uint8 (T+1, H, W, 3), "
                    f"got {frames.dtype} {frames.shape}"
                )
            if frames.shape[0] != t + 1:
                raise ValueError(f"{where}: camera {cam!r} has {frames.shape[0]} frames, expected {t + 1}")
        for name in ("actions", "proprio", "rewards", "states"):
            arr = getattr(self, name)
            if arr is not None and not np.isfinite(arr).all():
                raise ValueError(f"{where}: {name} contains NaN or inf")
