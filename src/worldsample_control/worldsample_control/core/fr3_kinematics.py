"""FR3 kinematics and inverse kinematics (plain NumPy, no ROS): the arm's Cartesian -> joint layer.

Kinematic parameters: Franka's published modified (Craig) Denavit-Hartenberg table of the FR3
("Robot and interface specifications", Franka documentation; identical to the Panda's), with each
link transform ``RotX(alpha) * TransX(a) * RotZ(q) * TransZ(d)``:

    joint   a [m]     d [m]    alpha [rad]
    1       0         0.333    0
    2       0         0        -pi/2
    3       0         0.316    pi/2
    4       0.0825    0        pi/2
    5      -0.0825    0.384    -pi/2
    6       0         0        pi/2
    7       0.088     0        pi/2
    flange  0         0.107    0

Joint limits are the FR3's (same document; the Panda's differ): position ``FR3_Q_MIN/MAX`` [rad],
velocity ``FR3_DQ_MAX`` [rad/s]. The tool centre point (TCP) is a fixed transform from the flange:
the Franka Hand's ``fr3_hand_tcp`` is 0.1034 m along the flange z axis, rotated -45 deg about it
(franka_description); our MuJoCo model's pinch point between the Robotiq fingers is 0.1488 m further
out with the same rotation (`core.sim.config.SIM_TCP_OFFSET`).

`solve_ik` is damped least squares on the 6-D pose error (position + rotation vector), warm-started
from a seed (normally the last commanded joints), with a null-space pull towards a rest posture,
joint limits (less a margin) enforced on every iteration (a joint at a limit is frozen out of the
solve while the error pushes it outwards) and the target position first clipped into a workspace
box. Quaternions are ROS order ``(x, y, z, w)``. The robot base ``fr3_link0`` is the base frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# a, d, alpha per joint (modified DH), then the flange.
FR3_DH: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -math.pi / 2),
    (0.0, 0.316, math.pi / 2),
    (0.0825, 0.0, math.pi / 2),
    (-0.0825, 0.384, -math.pi / 2),
    (0.0, 0.0, math.pi / 2),
    (0.088, 0.0, math.pi / 2),
)
FR3_FLANGE_D = 0.107
FR3_Q_MIN = (-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159)
FR3_Q_MAX = (2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159)
FR3_DQ_MAX = (2.62, 2.62, 2.62, 2.62, 5.26, 4.18, 5.26)
# Franka's "ready" pose (franka_ros2's move_to_start / MoveIt 'ready' state)
FR3_READY = (0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4)
_S = math.sin(math.pi / 8)
_C = math.cos(math.pi / 8)
# Franka Hand TCP (fr3_hand_tcp) relative to the flange: xyz [m], quaternion (x, y, z, w)
FRANKA_HAND_TCP: tuple[tuple[float, float, float], tuple[float, float, float, float]] = (
    (0.0, 0.0, 0.1034), (0.0, 0.0, -_S, _C))


# ----------------------------------------------------------------------------- rotations
def quat_to_matrix(q) -> np.ndarray:
    """(x, y, z, w) -> 3x3 rotation matrix."""
    x, y, z, w = np.asarray(q, float) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix -> (x, y, z, w) with w >= 0."""
    m = np.asarray(r, float)
    t = np.trace(m)
    if t > 0:
        s = math.sqrt(t + 1.0) * 2
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return q if q[3] >= 0 else -q


def rotation_error(r_target: np.ndarray, r_current: np.ndarray) -> np.ndarray:
    """Rotation vector (base frame) that turns ``r_current`` into ``r_target``."""
    re = r_target @ r_current.T
    cos = max(-1.0, min(1.0, (np.trace(re) - 1.0) / 2.0))
    angle = math.acos(cos)
    axis = np.array([re[2, 1] - re[1, 2], re[0, 2] - re[2, 0], re[1, 0] - re[0, 1]])
    if angle < 1e-9:
        return 0.5 * axis
    if math.pi - angle < 1e-6:  # 180 deg: axis from the symmetric part
        sym = (re + np.eye(3)) / 2.0
        axis = sym[int(np.argmax(np.diag(sym)))]
        return angle * axis / np.linalg.norm(axis)
    return angle * axis / (2.0 * math.sin(angle))


def _transform(a: float, d: float, alpha: float, theta: float) -> np.ndarray:
    ca, sa, ct, st = math.cos(alpha), math.sin(alpha), math.cos(theta), math.sin(theta)
    return np.array([
        [ct, -st, 0.0, a],
        [st * ca, ct * ca, -sa, -d * sa],
        [st * sa, ct * sa, ca, d * ca],
        [0.0, 0.0, 0.0, 1.0],
    ])


def tcp_transform(offset=FRANKA_HAND_TCP) -> np.ndarray:
    """4x4 flange -> TCP transform from ``(xyz, quaternion xyzw)``."""
    xyz, quat = offset
    t = np.eye(4)
    t[:3, :3] = quat_to_matrix(quat)
    t[:3, 3] = xyz
    return t


# ----------------------------------------------------------------------------- forward kinematics
def joint_frames(q) -> list[np.ndarray]:
    """Base-frame 4x4 transforms of joint frames 1..7 and the flange (8 matrices)."""
    q = np.asarray(q, float)
    if q.shape != (7,):
        raise ValueError(f"FR3 joint vector must have 7 values, got shape {q.shape}")
    t = np.eye(4)
    out = []
    for (a, d, alpha), theta in zip(FR3_DH, q, strict=True):
        t = t @ _transform(a, d, alpha, float(theta))
        out.append(t)
    out.append(t @ _transform(0.0, FR3_FLANGE_D, 0.0, 0.0))
    return out


def forward(q, tcp: np.ndarray | None = None) -> np.ndarray:
    """4x4 base -> TCP transform (``tcp`` = flange -> TCP, default the Franka Hand TCP)."""
    return joint_frames(q)[-1] @ (tcp_transform() if tcp is None else tcp)


def jacobian(q, tcp: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(6x7 geometric Jacobian [linear; angular] of the TCP in the base frame, base -> TCP transform)."""
    frames = joint_frames(q)
    ee = frames[-1] @ (tcp_transform() if tcp is None else tcp)
    p = ee[:3, 3]
    jac = np.zeros((6, 7))
    for i in range(7):
        z, o = frames[i][:3, 2], frames[i][:3, 3]
        jac[:3, i] = np.cross(z, p - o)
        jac[3:, i] = z
    return jac, ee


# ----------------------------------------------------------------------------- inverse kinematics
@dataclass
class IKConfig:
    """Damped-least-squares IK settings. Lengths in metres, angles in radians."""

    tcp_xyz: tuple[float, float, float] = FRANKA_HAND_TCP[0]
    tcp_quat: tuple[float, float, float, float] = FRANKA_HAND_TCP[1]  # (x, y, z, w), flange -> TCP
    q_min: tuple[float, ...] = FR3_Q_MIN
    q_max: tuple[float, ...] = FR3_Q_MAX
    joint_margin: float = 0.02  # stay this far inside every position limit
    workspace_min: tuple[float, float, float] = (0.30, -0.35, 0.012)
    workspace_max: tuple[float, float, float] = (0.75, 0.35, 0.45)
    damping: float = 0.02  # lambda of (J J^T + lambda^2 I)
    rotation_weight: float = 0.5  # [m/rad]: how much a radian of orientation error counts against a metre
    max_iterations: int = 50
    tolerance_position: float = 1e-4
    tolerance_rotation: float = 1e-3
    max_step: float = 0.2  # [rad] largest joint change of one iteration
    rest_posture: tuple[float, ...] = FR3_READY
    nullspace_gain: float = 0.05  # pull towards rest_posture in the null space, per iteration
    posture_weights: tuple[float, ...] = field(default=(1.0, 0.2, 1.0, 0.2, 1.0, 0.2, 1.0))

    def validate(self) -> None:
        for name in ("q_min", "q_max", "rest_posture", "posture_weights"):
            v = np.asarray(getattr(self, name), float)
            if v.shape != (7,) or not np.isfinite(v).all():
                raise ValueError(f"IKConfig.{name} must be 7 finite values, got {getattr(self, name)!r}")
        lo, hi = np.asarray(self.q_min), np.asarray(self.q_max)
        if (hi - lo <= 2 * self.joint_margin).any():
            raise ValueError(f"IKConfig: q_min {self.q_min} must lie below q_max {self.q_max} by more than "
                             f"2 * joint_margin ({self.joint_margin})")
        wl, wh = np.asarray(self.workspace_min, float), np.asarray(self.workspace_max, float)
        if wl.shape != (3,) or wh.shape != (3,) or (wl >= wh).any():
            raise ValueError(f"IKConfig: workspace_min {self.workspace_min} must be below workspace_max "
                             f"{self.workspace_max} on every axis")
        if np.asarray(self.tcp_xyz, float).shape != (3,) or np.asarray(self.tcp_quat, float).shape != (4,):
            raise ValueError(f"IKConfig: tcp_xyz needs 3 values and tcp_quat 4 (x, y, z, w), got "
                             f"{self.tcp_xyz!r}, {self.tcp_quat!r}")
        for name in ("damping", "rotation_weight", "tolerance_position", "tolerance_rotation", "max_step"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"IKConfig.{name} must be a positive finite number, got {v!r}")
        if not (self.joint_margin >= 0 and self.nullspace_gain >= 0 and self.max_iterations >= 1):
            raise ValueError("IKConfig: joint_margin and nullspace_gain must be >= 0, max_iterations >= 1")


@dataclass
class IKResult:
    q: np.ndarray  # (7,) joint positions within the limits (less the margin)
    position_error: float  # [m] remaining TCP position error to the (box-clipped) target
    rotation_error: float  # [rad] remaining orientation error
    iterations: int
    converged: bool
    target: np.ndarray  # (3,) the target position actually solved for (inside the workspace box)
    clipped_to_workspace: bool


class FR3IK:
    """Damped-least-squares IK of the FR3 for one TCP (see the module docstring)."""

    def __init__(self, config: IKConfig | None = None):
        self.config = config or IKConfig()
        self.config.validate()
        c = self.config
        self.tcp = tcp_transform((c.tcp_xyz, c.tcp_quat))
        self.lo = np.asarray(c.q_min, float) + c.joint_margin
        self.hi = np.asarray(c.q_max, float) - c.joint_margin
        self.rest = np.asarray(c.rest_posture, float)
        self.wpost = np.asarray(c.posture_weights, float)

    def forward(self, q) -> np.ndarray:
        return forward(q, self.tcp)

    def pose(self, q) -> tuple[np.ndarray, np.ndarray]:
        """TCP position and quaternion (x, y, z, w) for joints ``q``."""
        t = self.forward(q)
        return t[:3, 3].copy(), matrix_to_quat(t[:3, :3])

    def solve(self, position, quaternion, seed) -> IKResult:
        c = self.config
        pos = np.asarray(position, float)
        quat = np.asarray(quaternion, float)
        seed = np.asarray(seed, float)
        if pos.shape != (3,) or not np.isfinite(pos).all():
            raise ValueError(f"IK target position must be 3 finite values, got {position!r}")
        if quat.shape != (4,) or not np.isfinite(quat).all() or np.linalg.norm(quat) < 1e-9:
            raise ValueError(f"IK target quaternion must be 4 finite values (x, y, z, w), got {quaternion!r}")
        if seed.shape != (7,) or not np.isfinite(seed).all():
            raise ValueError(f"IK seed must be 7 finite joint positions, got {seed!r}")
        target = np.clip(pos, c.workspace_min, c.workspace_max)
        clipped = bool(np.any(target != pos))
        r_target = quat_to_matrix(quat)
        q = np.clip(seed, self.lo, self.hi)
        w = c.rotation_weight
        lam2 = c.damping ** 2
        it = 0
        for it in range(1, c.max_iterations + 1):  # noqa: B007 - the count is reported
            jac, ee = jacobian(q, self.tcp)
            e_p = target - ee[:3, 3]
            e_r = rotation_error(r_target, ee[:3, :3])
            if np.linalg.norm(e_p) < c.tolerance_position and np.linalg.norm(e_r) < c.tolerance_rotation:
                it -= 1
                break
            err = np.concatenate([e_p, w * e_r])
            jw = jac.copy()
            jw[3:] *= w
            free = np.ones(7, bool)
            dq = np.zeros(7)
            for _ in range(3):  # freeze joints at a limit that the step pushes outwards, then re-solve
                js = jw[:, free]
                jjt = js @ js.T + lam2 * np.eye(6)
                inv = js.T @ np.linalg.inv(jjt)
                step = inv @ err
                null = np.eye(int(free.sum())) - inv @ js
                step += null @ (c.nullspace_gain * self.wpost[free] * (self.rest[free] - q[free]))
                dq = np.zeros(7)
                dq[free] = step
                out = ((q <= self.lo + 1e-9) & (dq < 0)) | ((q >= self.hi - 1e-9) & (dq > 0))
                if not out.any():
                    break
                free &= ~out
                if not free.any():
                    dq = np.zeros(7)
                    break
            biggest = float(np.abs(dq).max())
            if biggest > c.max_step:
                dq *= c.max_step / biggest
            q = np.clip(q + dq, self.lo, self.hi)
        ee = self.forward(q)
        pe = float(np.linalg.norm(target - ee[:3, 3]))
        re = float(np.linalg.norm(rotation_error(r_target, ee[:3, :3])))
        ok = pe < max(c.tolerance_position, 1e-3) and re < max(c.tolerance_rotation, 1e-2)
        return IKResult(q=q, position_error=pe, rotation_error=re, iterations=it, converged=ok, target=target,
                        clipped_to_workspace=clipped)
