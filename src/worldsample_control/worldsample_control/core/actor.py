"""The actor: runs a policy for episodes and turns what happens into transitions (no rclpy here).

Policies (``ActorConfig.policy``):

- ``"random"``: uniform actions in [-1, 1];
- ``"scripted"``: the task's scripted expert. On the ROS graph the expert needs the simulator's
  privileged state, so the simulator node computes the expert action and sends it with the
  observation; `SuggestionPolicy` returns it (the in-process driver can pass a callable);
- ``"teleop"``: an operator's commands (`TeleopPolicy`): the actor node forwards the latest
  message of its teleoperation topic (``teleop/action``, worldsample_msgs/PolicyAction with
  the normalised ``(dx, dy, dz, gripper)`` action); with ``source="demo"`` this records
  demonstrations on a real arm through the same recorder;
- anything else is a checkpoint path, loaded lazily by `policy_registry.load_checkpoint` (the
  learner's ``.pt`` checkpoints by its loader; ``policy.act(obs) -> np.ndarray(4)``).

`Actor` is the episode state machine the actor node drives:
``begin_episode(obs)`` -> repeat ``act(obs)`` / ``observe(next_obs, reward, ...)`` -> ``end_episode()``.
A non-finite or wrongly shaped policy output stops the episode safely (`act` returns None,
the reason is kept in ``stop_reason``). A new checkpoint announced with `request_swap` is
loaded at the next `begin_episode`, never in the middle of an episode.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from worldsample_common.core.env_protocol import ACTION_DIM, Observation
from worldsample_common.core.episode import Episode, Source
from worldsample_common.core.policy_registry import load_checkpoint


class Policy(Protocol):
    def act(self, obs: Observation) -> np.ndarray: ...


class RandomPolicy:
    def __init__(self, seed: int = 0, action_dim: int = ACTION_DIM) -> None:
        self._rng = np.random.default_rng(seed)
        self.action_dim = action_dim

    def act(self, obs: Observation) -> np.ndarray:
        return self._rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)


class SuggestionPolicy:
    """Returns the action suggested with the latest observation (the simulator's expert)."""

    def __init__(self, source: Callable[[], np.ndarray | None] | None = None) -> None:
        self._source = source
        self.suggestion: np.ndarray | None = None

    def set_suggestion(self, action) -> None:
        self.suggestion = None if action is None else np.asarray(action, np.float32)

    def act(self, obs: Observation) -> np.ndarray:
        a = self._source() if self._source is not None else self.suggestion
        if a is None:
            raise RuntimeError("scripted policy: no expert action arrived with this observation "
                               "(is the simulator node running with publish_expert:=true?)")
        return np.asarray(a, np.float32)


class TeleopPolicy:
    """Teleoperation: the operator's latest command, as long as it is fresh.

    ``set_command(action)`` stores a normalised ``(dx, dy, dz, gripper)`` command from the
    teleoperation device (a non-finite or wrongly shaped one is ignored and its reason returned).
    ``act`` returns the latest command if it is at most ``timeout_s`` old; otherwise (no command
    yet, or the device went quiet) the arm stays where it is: zero translation, and the gripper
    keeps its last commanded state (open before any command), so a dropout never drops an object.
    The actor node starts an episode only when `ready` (a fresh command arrived).
    """

    def __init__(self, timeout_s: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        if not (timeout_s > 0 and np.isfinite(timeout_s)):
            raise ValueError(f"teleop timeout_s must be a positive finite number of seconds, got {timeout_s!r}")
        self.timeout_s = float(timeout_s)
        self._clock = clock
        self._command: np.ndarray | None = None
        self._received_at = -np.inf
        self._gripper = -1.0  # open
        self.stale_steps = 0  # steps answered with "stay" because no fresh command was there

    def set_command(self, action) -> str | None:
        a = np.asarray(action, np.float64) if action is not None else np.zeros(0)
        if a.shape != (ACTION_DIM,):
            return f"teleop command has shape {a.shape}, expected ({ACTION_DIM},) (dx, dy, dz, gripper)"
        if not np.isfinite(a).all():
            return f"teleop command {a.tolist()} is not finite"
        self._command = np.clip(a, -1.0, 1.0).astype(np.float32)
        self._received_at = self._clock()
        self._gripper = float(self._command[3])
        return None

    @property
    def ready(self) -> bool:
        """A fresh command is there: the device is connected and the operator at it (episodes start then)."""
        return self._command is not None and self._clock() - self._received_at <= self.timeout_s

    def act(self, obs: Observation) -> np.ndarray:
        if self.ready:
            return self._command.copy()
        self.stale_steps += 1
        return np.array([0.0, 0.0, 0.0, self._gripper], np.float32)


def policy_version_of(spec: str) -> str:
    if spec in ("random", "scripted", "teleop"):
        return ""
    return Path(spec).stem


def load_policy(spec: str, seed: int = 0) -> Policy:
    """"random", "scripted", "teleop" or a checkpoint path -> a policy object."""
    if spec == "random":
        return RandomPolicy(seed)
    if spec == "scripted":
        return SuggestionPolicy()
    if spec == "teleop":
        return TeleopPolicy()
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"policy checkpoint {spec!r} does not exist "
                                "(expected 'random', 'scripted', 'teleop' or a file)")
    return load_checkpoint(path)  # lazy: the loader pulls in torch


def new_episode_id(task: str, source: Source) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{task}-{source.name.lower()}-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class ActorConfig:
    task: str = "push"
    policy: str = "random"
    episodes: int = 1  # episodes to run; 0 = until stopped
    max_steps: int = 0  # 0: the task's default episode length
    seed: int = 0  # seed of the first episode; episode k uses seed + k
    cameras: tuple[str, ...] = ("front", "wrist")
    source: str = "real"  # "real" or "demo"
    control_hz: float = 10.0

    def source_enum(self) -> Source:
        try:
            return {"real": Source.REAL, "demo": Source.DEMO}[self.source]
        except KeyError:
            raise ValueError(f"ActorConfig.source must be 'real' or 'demo', got {self.source!r}") from None

    def resolved_max_steps(self) -> int:
        if self.max_steps > 0:
            return self.max_steps
        from .sim.config import DEFAULT_MAX_STEPS

        if self.task not in DEFAULT_MAX_STEPS:
            raise ValueError(f"ActorConfig.max_steps must be > 0 for task {self.task!r} (no default known)")
        return DEFAULT_MAX_STEPS[self.task]


@dataclass
class StepRecord:
    """One transition, ready to become a worldsample_msgs/Transition."""

    episode_id: str
    step: int
    obs: Observation
    action: np.ndarray
    reward: float
    terminated: bool
    truncated: bool
    success: bool
    next_obs: Observation
    stamp_ns: int
    next_stamp_ns: int


@dataclass
class EpisodeSummary:
    episode_id: str
    length: int
    episode_return: float
    success: bool
    seed: int
    policy_version: str
    reason: str  # "terminated", "truncated", "safe_stop: ...", "aborted: ..."
    actions: list[list[float]] = field(default_factory=list)


class Actor:
    def __init__(self, config: ActorConfig, policy: Policy | None = None, policy_version: str | None = None,
                 policy_loader: Callable[[str], Policy] | None = None) -> None:
        self.config = config
        self.source = config.source_enum()
        self.max_steps = config.resolved_max_steps()
        self.policy = policy if policy is not None else load_policy(config.policy, config.seed)
        self.policy_version = policy_version if policy_version is not None else policy_version_of(config.policy)
        self._loader = policy_loader or (lambda uri: load_policy(uri, config.seed))
        self._pending: tuple[str, str] | None = None
        self.swaps: list[str] = []
        self.episodes_with_policy = 0  # episodes begun with the policy now in use
        self.episode_id: str | None = None
        self.episode_index = 0
        self.step = 0
        self.seed = -1
        self._obs: Observation | None = None
        self._stamp = 0
        self._action: np.ndarray | None = None
        self._return = 0.0
        self._success = False
        self._actions: list[list[float]] = []
        self.stop_reason = ""
        self.records: list[StepRecord] = []  # of the current episode (kept for in-process use)
        self.keep_records = False

    # ------------------------------------------------------------------ policies
    def request_swap(self, uri: str, version: str) -> None:
        """Load ``uri`` before the next episode (the latest request wins). The version already in use
        (a resumed run's learner announces its newest checkpoint again) changes nothing: no reload, and
        its episode count for iteration pacing goes on."""
        if (version or Path(uri).stem) == self.policy_version:
            return
        self._pending = (uri, version)

    def _apply_swap(self) -> str | None:
        if self._pending is None:
            return None
        uri, version = self._pending
        self._pending = None
        self.policy = self._loader(uri)
        self.policy_version = version or Path(uri).stem
        self.swaps.append(self.policy_version)
        self.episodes_with_policy = 0
        return self.policy_version

    def waits_for_policy(self, episodes_per_policy: int) -> bool:
        """True when ``episodes_per_policy`` (> 0) episodes ran with the current policy and no newer
        checkpoint is waiting: an iteration-paced loop holds the arm here until the learner's next one."""
        return episodes_per_policy > 0 and self._pending is None and self.episodes_with_policy >= episodes_per_policy

    # ------------------------------------------------------------------ episodes
    @property
    def in_episode(self) -> bool:
        return self.episode_id is not None

    @property
    def done_all(self) -> bool:
        return self.config.episodes > 0 and self.episode_index >= self.config.episodes

    def next_seed(self) -> int:
        return int(self.config.seed + self.episode_index)

    def begin_episode(self, obs: Observation, stamp_ns: int, seed: int | None = None,
                      episode_id: str | None = None) -> str:
        if self.in_episode:
            raise RuntimeError(f"episode {self.episode_id} is still running")
        self._apply_swap()
        self._check_obs(obs)
        self.episodes_with_policy += 1
        self.episode_id = episode_id or new_episode_id(self.config.task, self.source)
        self.seed = self.next_seed() if seed is None else int(seed)
        self.step = 0
        self._obs, self._stamp = obs, int(stamp_ns)
        self._action = None
        self._return, self._success = 0.0, False
        self._actions = []
        self.stop_reason = ""
        self.records = []
        return self.episode_id

    def _check_obs(self, obs: Observation) -> None:
        missing = [c for c in self.config.cameras if c not in obs.images]
        if missing:
            raise ValueError(f"observation lacks camera(s) {missing}; has {sorted(obs.images)}")
        for c in self.config.cameras:
            img = obs.images[c]
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(f"camera {c!r} image must be uint8 (H, W, 3) RGB, got {img.dtype} {img.shape}")
        if not np.isfinite(np.asarray(obs.proprio, np.float64)).all():
            raise ValueError("observation proprio contains NaN or inf")

    def act(self, obs: Observation | None = None) -> np.ndarray | None:
        """The policy's action for the current observation, or None (safe stop: see stop_reason)."""
        if not self.in_episode:
            raise RuntimeError("act() outside an episode; call begin_episode() first")
        obs = self._obs if obs is None else obs
        try:
            raw = self.policy.act(obs)
        except Exception as exc:  # noqa: BLE001 - any policy failure stops the episode safely
            self.stop_reason = f"safe_stop: policy raised {type(exc).__name__}: {exc}"
            return None
        a = np.asarray(raw, np.float64)
        if a.shape != (ACTION_DIM,):
            self.stop_reason = f"safe_stop: policy returned shape {a.shape}, expected ({ACTION_DIM},)"
            return None
        if not np.isfinite(a).all():
            self.stop_reason = f"safe_stop: policy returned non-finite action {a.tolist()}"
            return None
        self._action = np.clip(a, -1.0, 1.0).astype(np.float32)
        return self._action

    def observe(self, next_obs: Observation, reward: float, terminated: bool, truncated: bool,
                success: bool, stamp_ns: int) -> tuple[StepRecord, bool]:
        """Record the outcome of the last action; returns the transition and whether the episode is over."""
        if self._action is None or self._obs is None or self.episode_id is None:
            raise RuntimeError("observe() without a preceding act()")
        self._check_obs(next_obs)
        if not np.isfinite(reward):
            raise ValueError(f"reward must be finite, got {reward}")
        truncated = bool(truncated) or (self.step + 1 >= self.max_steps and not terminated)
        rec = StepRecord(self.episode_id, self.step, self._obs, self._action, float(reward), bool(terminated),
                         truncated, bool(success), next_obs, self._stamp, int(stamp_ns))
        self._actions.append([float(x) for x in self._action])
        self._return += float(reward)
        self._success = self._success or bool(success)
        self.step += 1
        self._obs, self._stamp = next_obs, int(stamp_ns)
        self._action = None
        if self.keep_records:
            self.records.append(rec)
        return rec, bool(terminated) or truncated

    def end_episode(self, reason: str | None = None) -> EpisodeSummary:
        if self.episode_id is None:
            raise RuntimeError("end_episode() outside an episode")
        if reason is None:
            reason = self.stop_reason or "truncated"
        out = EpisodeSummary(self.episode_id, self.step, self._return, self._success, self.seed,
                             self.policy_version, reason, self._actions)
        self.episode_id = None
        self.episode_index += 1
        return out

    def episode_from_records(self) -> Episode:
        """The current/last episode as an `Episode` (needs ``keep_records = True``)."""
        if not self.records:
            raise RuntimeError("no recorded steps (set keep_records = True before the episode)")
        cams = list(self.config.cameras)
        r = self.records
        images = {c: np.stack([x.obs.images[c] for x in r] + [r[-1].next_obs.images[c]]) for c in cams}
        return Episode(
            episode_id=r[0].episode_id, task=self.config.task, source=self.source, images=images,
            proprio=np.stack([x.obs.proprio for x in r] + [r[-1].next_obs.proprio]),
            actions=np.stack([x.action for x in r]), rewards=[x.reward for x in r],
            terminated=[x.terminated for x in r], truncated=[x.truncated for x in r],
            successes=[x.success for x in r], policy_version=self.policy_version, seed=self.seed,
            stamps_ns=np.array([x.stamp_ns for x in r] + [r[-1].next_stamp_ns], np.int64),
        )


def describe(summary: EpisodeSummary) -> dict[str, Any]:
    return {"episode_id": summary.episode_id, "length": summary.length, "return": summary.episode_return,
            "success": summary.success, "seed": summary.seed, "policy_version": summary.policy_version,
            "reason": summary.reason}
