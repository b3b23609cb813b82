"""Safe Cartesian targets -> joint targets for a JointTrajectoryController (no ROS here).

The arm's one command path (real FR3, Gazebo, our MuJoCo node): `core.safety.ActionFilter` makes a
safe absolute end-effector target (box, step and velocity limits, watchdog, NaN rejection), then
`JointCommander` turns it into FR3 joint positions with `core.fr3_kinematics.FR3IK` and a duration
that keeps every joint under a fraction of its velocity limit. The ROS node sends that as a
one-point ``trajectory_msgs/JointTrajectory`` to ros2_controllers' JointTrajectoryController
(``fr3_arm_controller/joint_trajectory``, joints ``fr3_joint1..7``), which franka_ros2's MoveIt
config runs on the real arm and which our simulator node imitates.

The IK is seeded with the last commanded joints (so consecutive targets give continuous joints);
after `reset` (or before any command) with the measured joints. A target the arm cannot reach (IK
error above ``max_position_error`` / ``max_rotation_error``) is not sent: the commander holds the
last joint target (or the measured joints) and reports why; so does a solution that would move any
joint more than ``max_joint_jump`` in one command (a reconfiguration of the redundant arm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from worldsample_common.core.franka_interface import ARM_JOINT_NAMES

from .fr3_kinematics import FR3_DQ_MAX, FR3IK, IKConfig


@dataclass
class JointCommandConfig:
    """How joint targets are streamed. Times in seconds."""

    ik: IKConfig = field(default_factory=IKConfig)
    velocity_scale: float = 0.3  # fraction of the FR3 joint velocity limits a command may ask for
    min_duration: float = 0.1  # time_from_start of a command at least this (one control period)
    max_position_error: float = 0.01  # [m] IK residual above which a target is refused (hold)
    max_rotation_error: float = 0.1  # [rad]
    max_joint_jump: float = 0.5  # [rad] a solution farther than this from the seed on any joint is refused

    def validate(self) -> None:
        self.ik.validate()
        if not (0 < self.velocity_scale <= 1):
            raise ValueError(f"JointCommandConfig.velocity_scale must be in (0, 1], got {self.velocity_scale}")
        for name in ("min_duration", "max_position_error", "max_rotation_error", "max_joint_jump"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"JointCommandConfig.{name} must be a positive finite number, got {v!r}")


@dataclass
class JointTarget:
    positions: np.ndarray  # (7,) fr3_joint1..7 [rad]
    duration: float  # [s] time_from_start of the trajectory point
    position_error: float  # [m] IK residual to the (box-clipped) Cartesian target
    rotation_error: float  # [rad]
    hold: bool = False  # the Cartesian target was refused; these are the held joints
    reason: str = ""  # why it was refused or changed ("" when the target was reached by the IK)


def joints_from_state(names, positions, joint_names=ARM_JOINT_NAMES) -> np.ndarray | None:
    """The arm joints, in ``joint_names`` order, from a JointState's names/positions (None if any is missing)."""
    index = {str(n): i for i, n in enumerate(names)}
    try:
        q = np.array([float(positions[index[n]]) for n in joint_names])
    except (KeyError, IndexError):
        return None
    return q if np.isfinite(q).all() else None


class JointCommander:
    def __init__(self, config: JointCommandConfig | None = None):
        self.config = config or JointCommandConfig()
        self.config.validate()
        self.ik = FR3IK(self.config.ik)
        self.dq_max = np.asarray(FR3_DQ_MAX) * self.config.velocity_scale
        self.measured: np.ndarray | None = None
        self.last: np.ndarray | None = None

    @property
    def has_joints(self) -> bool:
        return self.measured is not None

    def update_joints(self, q) -> None:
        q = np.asarray(q, float)
        if q.shape != (7,) or not np.isfinite(q).all():
            raise ValueError(f"measured joints must be 7 finite values, got {q!r}")
        self.measured = q

    def reset(self) -> None:
        """Seed the next solve from the measured joints (after a reset / error recovery)."""
        self.last = None

    def _duration(self, q: np.ndarray) -> float:
        ref = self.measured if self.measured is not None else q
        need = float(np.max(np.abs(q - ref) / self.dq_max))
        return max(self.config.min_duration, need)

    def command(self, position, quaternion) -> JointTarget:
        """Joint target for a (safe) TCP pose: position [m], quaternion (x, y, z, w), base frame."""
        if self.measured is None:
            raise RuntimeError("no measured joint positions yet (joint_states)")
        seed = self.last if self.last is not None else self.measured
        res = self.ik.solve(position, quaternion, seed)
        c = self.config
        if res.position_error > c.max_position_error or res.rotation_error > c.max_rotation_error:
            held = seed.copy()
            return JointTarget(held, self._duration(held), res.position_error, res.rotation_error, hold=True,
                               reason=f"ik_unreachable: error {res.position_error * 1000:.1f} mm / "
                                      f"{res.rotation_error:.3f} rad after {res.iterations} iterations")
        jump = float(np.max(np.abs(res.q - seed)))
        if jump > c.max_joint_jump:  # a reconfiguration of the redundant arm, never a small Cartesian step
            held = seed.copy()
            return JointTarget(held, self._duration(held), res.position_error, res.rotation_error, hold=True,
                               reason=f"ik_joint_jump: a joint would move {jump:.2f} rad in one command "
                                      f"(max_joint_jump {c.max_joint_jump})")
        self.last = res.q.copy()
        reason = "ik_workspace_clip" if res.clipped_to_workspace else ""
        return JointTarget(res.q.copy(), self._duration(res.q), res.position_error, res.rotation_error,
                           reason=reason)
