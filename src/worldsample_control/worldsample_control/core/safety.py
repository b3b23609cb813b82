"""Safety limits between a policy and the arm: every command sent to the robot passes here.

`ActionFilter` turns either a normalised policy action ``(dx, dy, dz, gripper)`` in [-1, 1]
(see `env_protocol`) or an absolute end-effector target into a *safe absolute target*
(`SafeCommand`) for an impedance controller (franka_ros2's ``equilibrium_pose``):

1. non-finite input (NaN/inf) or a wrong shape is rejected: the command holds the pose;
2. normalised actions are clipped to [-1, 1] and scaled by ``action_scale`` [m];
3. the per-step translation is clipped to ``min(max_translation_per_step, max_velocity * dt)``
   and the per-step rotation to ``max_rotation_per_step`` (slerp towards the target);
4. the position is clipped to the workspace box; the gripper width to its range.

Normalised actions integrate like an impedance controller's equilibrium (and like the MuJoCo
tasks' own action path): ``target = last target + action * action_scale``, kept within
``max_target_lead`` of the measured pose (no wind-up against contacts); with
``max_target_lead = 0`` steps start from the measured pose. The step limit is measured from
that origin, which is always inside the box; because projection onto a box never increases
distances, the command is always inside the box *and* within one step of the origin. Every clip or reject appends a `SafetyEvent` (reason, requested, commanded).

Watchdog: `check_watchdog(now)` returns a hold command (stay at the base pose) when no action
arrived within ``watchdog_timeout_s``. Quaternions are ROS order ``(x, y, z, w)``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

# End-effector pointing down (flange z axis along world -z): 180 deg about x, ROS (x, y, z, w).
DOWN_QUAT_XYZW = (1.0, 0.0, 0.0, 0.0)


@dataclass
class SafetyConfig:
    """Limits of the arm-control layer. Lengths in metres, angles in radians, times in seconds."""

    # Tabletop box in front of the robot base (the MuJoCo tasks use the same one).
    workspace_min: tuple[float, float, float] = (0.30, -0.35, 0.012)
    workspace_max: tuple[float, float, float] = (0.75, 0.35, 0.45)
    max_translation_per_step: float = 0.035  # >= sqrt(3) * action_scale: a full diagonal action passes
    max_rotation_per_step: float = 0.15
    max_velocity: float = 0.5  # [m/s] of the commanded target
    control_hz: float = 10.0  # nominal command rate: dt used when no time stamps are given
    watchdog_timeout_s: float = 0.5
    gripper_width_min: float = 0.0
    gripper_width_max: float = 0.08
    action_scale: float = 0.02  # [m] per unit of a normalised action
    target_quat: tuple[float, float, float, float] = DOWN_QUAT_XYZW  # orientation held for normalised actions
    # Steps start from the last commanded target (an impedance controller's equilibrium), kept within
    # this distance of the measured pose so the target never winds up against a contact. 0: from the
    # measured pose.
    max_target_lead: float = 0.03
    max_events: int = 1000  # events kept in memory until drained

    def validate(self) -> None:
        lo, hi = np.asarray(self.workspace_min, float), np.asarray(self.workspace_max, float)
        if lo.shape != (3,) or hi.shape != (3,) or not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            raise ValueError(f"SafetyConfig: workspace_min/max must be 3 finite values, got {lo} {hi}")
        if (lo > hi).any():
            raise ValueError(f"SafetyConfig: workspace_min {tuple(lo)} exceeds workspace_max {tuple(hi)}")
        for name in ("max_translation_per_step", "max_rotation_per_step", "max_velocity", "control_hz",
                     "watchdog_timeout_s", "action_scale"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"SafetyConfig: {name} must be a positive finite number, got {v}")
        if not (math.isfinite(self.max_target_lead) and self.max_target_lead >= 0):
            raise ValueError(f"SafetyConfig: max_target_lead must be >= 0, got {self.max_target_lead}")
        if not (0 <= self.gripper_width_min <= self.gripper_width_max):
            raise ValueError(
                f"SafetyConfig: need 0 <= gripper_width_min <= gripper_width_max, got "
                f"{self.gripper_width_min}, {self.gripper_width_max}"
            )
        q = np.asarray(self.target_quat, float)
        if q.shape != (4,) or not np.isfinite(q).all() or np.linalg.norm(q) < 1e-6:
            raise ValueError(f"SafetyConfig: target_quat must be a non-zero (x, y, z, w), got {self.target_quat}")


@dataclass
class SafeCommand:
    """An absolute end-effector target that satisfies the limits."""

    position: np.ndarray  # (3,) [m], base frame
    quaternion: np.ndarray  # (4,) (x, y, z, w), unit
    gripper_width: float  # [m]
    hold: bool = False  # true when the command only holds the pose (reject / watchdog)


@dataclass
class SafetyEvent:
    """One clip or reject: why, what was asked and what was commanded instead."""

    reason: str
    requested: tuple[float, ...]
    commanded: tuple[float, ...]
    stamp: float | None = None
    detail: str = ""


@dataclass
class _State:
    position: np.ndarray | None = None
    quaternion: np.ndarray | None = None
    gripper_width: float | None = None


def _normalize_quat(q: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(q))
    return q / n


def quat_angle(q1: np.ndarray, q2: np.ndarray) -> float:
    """Rotation angle [rad] between two unit quaternions (either order convention, same for both)."""
    d = abs(float(np.dot(q1, q2)))
    return 2.0 * math.acos(min(1.0, d))


def _slerp(q1: np.ndarray, q2: np.ndarray, t: float) -> np.ndarray:
    d = float(np.dot(q1, q2))
    if d < 0.0:
        q2, d = -q2, -d
    if d > 0.9995:
        return _normalize_quat(q1 + t * (q2 - q1))
    theta0 = math.acos(min(1.0, d))
    theta = theta0 * t
    q3 = _normalize_quat(q2 - q1 * d)
    return _normalize_quat(q1 * math.cos(theta) + q3 * math.sin(theta))


@dataclass
class ActionFilter:
    """Turns policy actions or absolute targets into `SafeCommand`s; see the module docstring."""

    config: SafetyConfig = field(default_factory=SafetyConfig)

    def __post_init__(self) -> None:
        self.config.validate()
        self._lo = np.asarray(self.config.workspace_min, np.float64)
        self._hi = np.asarray(self.config.workspace_max, np.float64)
        self._target_quat = _normalize_quat(np.asarray(self.config.target_quat, np.float64))
        self._measured = _State()
        self._last_cmd: SafeCommand | None = None
        self._last_cmd_time: float | None = None
        self._last_action_time: float | None = None
        self._watchdog_tripped = False
        self.events: deque[SafetyEvent] = deque(maxlen=self.config.max_events)
        self.num_commands = 0
        self.num_events = 0

    # ------------------------------------------------------------------ state
    def update_state(self, position, quaternion=None, gripper_width: float | None = None,
                     stamp: float | None = None) -> bool:
        """Store the measured end-effector pose. Non-finite values are ignored (and reported)."""
        p = np.asarray(position, np.float64).reshape(-1)
        q = None if quaternion is None else np.asarray(quaternion, np.float64).reshape(-1)
        ok = p.shape == (3,) and np.isfinite(p).all()
        if q is not None:
            ok = ok and q.shape == (4,) and np.isfinite(q).all() and np.linalg.norm(q) > 1e-6
        if gripper_width is not None:
            ok = ok and math.isfinite(gripper_width)
        if not ok:
            self._report("invalid_state", np.concatenate([p.ravel(), [] if q is None else q.ravel()]),
                         np.array([]), stamp, "measured pose ignored")
            return False
        self._measured.position = p.copy()
        if q is not None:
            self._measured.quaternion = _normalize_quat(q)
        if gripper_width is not None:
            self._measured.gripper_width = float(gripper_width)
        return True

    def reset(self, position=None, quaternion=None, gripper_width: float | None = None) -> None:
        """Forget the command history (new episode); optionally set the measured pose."""
        self._last_cmd = None
        self._last_cmd_time = None
        self._last_action_time = None
        self._watchdog_tripped = False
        if position is not None:
            self.update_state(position, quaternion, gripper_width)

    @property
    def has_state(self) -> bool:
        return self._measured.position is not None or self._last_cmd is not None

    @property
    def last_command(self) -> SafeCommand | None:
        return self._last_cmd

    def drain_events(self) -> list[SafetyEvent]:
        out = list(self.events)
        self.events.clear()
        return out

    # ------------------------------------------------------------------ helpers
    def _report(self, reason: str, requested, commanded, stamp: float | None, detail: str = "") -> None:
        self.num_events += 1
        self.events.append(SafetyEvent(
            reason=reason,
            requested=tuple(float(x) for x in np.asarray(requested, np.float64).ravel()),
            commanded=tuple(float(x) for x in np.asarray(commanded, np.float64).ravel()),
            stamp=stamp, detail=detail,
        ))

    def _base(self, stamp: float | None, report: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
        """Base of the next step: the last target kept within max_target_lead of the measured pose
        (or the measured pose), projected into the box."""
        meas = self._measured.position
        last = None if self._last_cmd is None else self._last_cmd.position
        if meas is None and last is None:
            raise RuntimeError("ActionFilter: no measured pose yet; call update_state() before commanding")
        if meas is None:
            pos = last
        elif last is None or self.config.max_target_lead <= 0:
            pos = meas
        else:
            lead = self.config.max_target_lead
            pos = np.clip(last, meas - lead, meas + lead)
        proj = np.clip(pos, self._lo, self._hi)
        if report and meas is not None and not np.array_equal(np.clip(meas, self._lo, self._hi), meas):
            self._report("state_outside_workspace", meas, proj, stamp,
                         "measured pose outside the box; steps start from a projection into it")
        if self._measured.quaternion is not None:
            quat = self._measured.quaternion
        elif self._last_cmd is not None:
            quat = self._last_cmd.quaternion
        else:
            quat = self._target_quat
        if self._last_cmd is not None:
            width = self._last_cmd.gripper_width
        elif self._measured.gripper_width is not None:
            width = self._measured.gripper_width
        else:
            width = self.config.gripper_width_max
        width = float(np.clip(width, self.config.gripper_width_min, self.config.gripper_width_max))
        return proj, quat, width

    def _hold(self, stamp: float | None) -> SafeCommand:
        pos, quat, width = self._base(stamp)
        return SafeCommand(pos.copy(), quat.copy(), width, hold=True)

    def _step_limit(self, stamp: float | None) -> float:
        period = 1.0 / self.config.control_hz
        dt = period
        if stamp is not None and self._last_cmd_time is not None:
            dt = min(max(stamp - self._last_cmd_time, 0.0), period)
        return min(self.config.max_translation_per_step, self.config.max_velocity * dt)

    def _commit(self, cmd: SafeCommand, stamp: float | None, is_action: bool) -> SafeCommand:
        self._last_cmd = cmd
        if stamp is not None:
            self._last_cmd_time = stamp
            if is_action:
                self._last_action_time = stamp
                self._watchdog_tripped = False
        self.num_commands += 1
        return cmd

    # ------------------------------------------------------------------ commands
    def filter_action(self, action, stamp: float | None = None) -> SafeCommand:
        """A normalised policy action -> safe absolute target (orientation: ``target_quat``)."""
        a = np.asarray(action, np.float64) if action is not None else np.zeros(0)
        if a.shape != (4,) or not np.isfinite(a).all():
            reason = "bad_shape" if a.shape != (4,) else "non_finite_action"
            cmd = self._hold(stamp)
            self._report(reason, a, cmd.position, stamp,
                         f"expected 4 finite values (dx, dy, dz, gripper), got shape {a.shape}")
            return self._commit(cmd, stamp, is_action=True)
        clipped = np.clip(a, -1.0, 1.0)
        if not np.array_equal(clipped, a):
            self._report("action_out_of_range", a, clipped, stamp, "normalised action clipped to [-1, 1]")
        origin = self._origin(stamp)
        target = origin + clipped[:3] * self.config.action_scale
        meas, lead = self._measured.position, self.config.max_target_lead
        if lead > 0 and meas is not None:  # no wind-up: the target leads the measured pose by <= lead
            target = np.clip(target, meas - lead, meas + lead)
        width = self.config.gripper_width_min if clipped[3] > 0 else self.config.gripper_width_max
        return self._filter_absolute(target, self._target_quat, width, stamp, origin)

    def filter_target(self, position, quaternion=None, gripper_width: float | None = None,
                      stamp: float | None = None) -> SafeCommand:
        """An absolute target (position [m], optional quaternion xyzw, optional width) -> safe target."""
        p = np.asarray(position, np.float64).reshape(-1)
        q = self._target_quat if quaternion is None else np.asarray(quaternion, np.float64).reshape(-1)
        bad = p.shape != (3,) or q.shape != (4,) or not (np.isfinite(p).all() and np.isfinite(q).all())
        bad = bad or np.linalg.norm(q) < 1e-6
        if gripper_width is not None and not math.isfinite(gripper_width):
            bad = True
        if bad:
            cmd = self._hold(stamp)
            self._report("non_finite_target", np.concatenate([p.ravel(), q.ravel()]), cmd.position, stamp,
                         "expected finite position (3,) and non-zero quaternion (4,)")
            return self._commit(cmd, stamp, is_action=True)
        if gripper_width is None:
            gripper_width = self._base(None, report=False)[2]
        return self._filter_absolute(p, _normalize_quat(q), float(gripper_width), stamp, self._origin(stamp))

    def _origin(self, stamp: float | None) -> np.ndarray:
        """Where the next step starts: the last command (integrating targets, as an impedance
        controller's equilibrium) or, with ``max_target_lead = 0`` or before any command, the
        measured pose projected into the box. Always inside the box."""
        meas = self._measured.position
        last = None if self._last_cmd is None else self._last_cmd.position
        if last is not None and (self.config.max_target_lead > 0 or meas is None):
            return last
        proj = np.clip(meas, self._lo, self._hi)
        if not np.array_equal(proj, meas):
            self._report("state_outside_workspace", meas, proj, stamp,
                         "measured pose outside the box; the step starts from its projection")
        return proj

    def _filter_absolute(self, target: np.ndarray, quat: np.ndarray, width: float,
                         stamp: float | None, origin: np.ndarray) -> SafeCommand:
        _, base_quat, _ = self._base(stamp, report=False)
        base_pos = origin
        limit = self._step_limit(stamp)
        delta = target - base_pos
        dist = float(np.linalg.norm(delta))
        pos = target
        if dist > limit:
            pos = base_pos + delta * (limit / dist) if dist > 0 else base_pos
            reason = "translation_step" if limit >= self.config.max_translation_per_step else "velocity"
            self._report(reason, target, pos, stamp, f"step {dist:.4f} m > limit {limit:.4f} m")
        boxed = np.clip(pos, self._lo, self._hi)
        if not np.array_equal(boxed, pos):
            self._report("workspace", pos, boxed, stamp, "target clipped to the workspace box")
        angle = quat_angle(base_quat, quat)
        q_out = quat
        if angle > self.config.max_rotation_per_step:
            q_out = _slerp(base_quat, quat, self.config.max_rotation_per_step / angle)
            self._report("rotation_step", quat, q_out, stamp,
                         f"rotation {angle:.3f} rad > limit {self.config.max_rotation_per_step:.3f} rad")
        w = float(np.clip(width, self.config.gripper_width_min, self.config.gripper_width_max))
        if w != width:
            self._report("gripper_width", [width], [w], stamp, "gripper width clipped to its range")
        return self._commit(SafeCommand(boxed, q_out, w), stamp, is_action=True)

    def check_watchdog(self, now: float) -> SafeCommand | None:
        """A hold command when no action arrived within the timeout (reported once per stall)."""
        if not self.has_state:
            return None
        last = self._last_action_time
        if last is not None and now - last <= self.config.watchdog_timeout_s:
            return None
        cmd = self._hold(now)
        if not self._watchdog_tripped:
            waited = "never" if last is None else f"{now - last:.3f} s ago"
            self._report("watchdog", [], cmd.position, now,
                         f"no action within {self.config.watchdog_timeout_s} s (last {waited}); holding pose")
            self._watchdog_tripped = True
        self._last_cmd = cmd
        self._last_cmd_time = now
        return cmd

    def check_command(self, cmd: SafeCommand, base_position=None, step_limit: float | None = None) -> list[str]:
        """Violations of the limits by ``cmd`` (empty when safe); used by tests and as a last check."""
        bad: list[str] = []
        c = self.config
        if not (np.isfinite(cmd.position).all() and np.isfinite(cmd.quaternion).all()
                and math.isfinite(cmd.gripper_width)):
            return ["non_finite"]
        if (cmd.position < self._lo - 1e-9).any() or (cmd.position > self._hi + 1e-9).any():
            bad.append("workspace")
        if abs(np.linalg.norm(cmd.quaternion) - 1.0) > 1e-6:
            bad.append("quaternion_norm")
        if not (c.gripper_width_min - 1e-12 <= cmd.gripper_width <= c.gripper_width_max + 1e-12):
            bad.append("gripper_width")
        if base_position is not None:
            lim = c.max_translation_per_step if step_limit is None else step_limit
            if np.linalg.norm(cmd.position - np.clip(base_position, self._lo, self._hi)) > lim + 1e-9:
                bad.append("translation_step")
        return bad
