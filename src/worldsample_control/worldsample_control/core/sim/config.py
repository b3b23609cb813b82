"""Configuration of the MuJoCo Franka task suite (no MuJoCo import here: cheap to import)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..reward import REWARD_MODES  # one list of reward modes

TASKS: tuple[str, ...] = ("peg_insertion", "push", "sort", "pick_place")

# Episode length per task at the default 10 Hz control rate (scripted experts need well under this).
DEFAULT_MAX_STEPS: dict[str, int] = {"peg_insertion": 80, "push": 80, "sort": 200, "pick_place": 100}

CAMERAS: tuple[str, ...] = ("front", "wrist")

# The end-effector point of our MuJoCo arm (the ``pinch`` site between the Robotiq fingers) relative to
# the FR3/Panda flange (DH frame 7 + 0.107 m): 0.1488 m along the flange z axis, rotated -45 deg about it
# like the Franka Hand's TCP. (xyz [m], quaternion (x, y, z, w)); `core.fr3_kinematics` uses it as the TCP
# when it commands the simulator (test_fr3_kinematics checks it against the MuJoCo model).
SIM_TCP_OFFSET: tuple[tuple[float, float, float], tuple[float, float, float, float]] = (
    (0.0, 0.0, 0.1488), (0.0, 0.0, -math.sin(math.pi / 8), math.cos(math.pi / 8)))
# The arm's home posture (joint1..7 [rad]); resets solve IK from it (env.HOME_QPOS is this array).
SIM_HOME_QPOS: tuple[float, ...] = (0.0, 0.2, 0.0, -2.3, 0.0, 2.5, math.pi / 4)
ROBOT_MESHES: tuple[str, ...] = ("collision", "visual")


@dataclass
class EnvConfig:
    """Everything that configures one `FrankaTaskEnv`. Lengths in metres, times in seconds.

    ``max_episode_steps = 0`` picks the task default (`DEFAULT_MAX_STEPS`). Physics runs at
    ``timestep`` and is sub-stepped ``round(1 / (control_hz * timestep))`` times per control step.
    ``action_scale`` is the end-effector translation [m] of a unit normalised action per step.
    ``workspace_min/max`` bound the end-effector target (the ``pinch`` point between the fingers).
    """

    image_size: int = 64
    cameras: tuple[str, ...] = CAMERAS
    render: bool = True
    control_hz: float = 10.0
    timestep: float = 0.002
    max_episode_steps: int = 0
    reward: str = "shaped"
    # "collision": draw the robot with its collision meshes (about 2.5x faster on llvmpipe, nearly
    # the same image at 64 px); "visual": the detailed visual meshes
    robot_meshes: str = "collision"
    action_scale: float = 0.02
    seed: int = 0
    workspace_min: tuple[float, float, float] = (0.30, -0.35, 0.012)
    workspace_max: tuple[float, float, float] = (0.75, 0.35, 0.45)
    # The target may lead the measured end-effector by at most this much (no wind-up against contacts).
    max_target_lead: float = 0.03

    @property
    def substeps(self) -> int:
        return max(1, int(round(1.0 / (self.control_hz * self.timestep))))

    def max_steps_for(self, task: str) -> int:
        return self.max_episode_steps if self.max_episode_steps > 0 else DEFAULT_MAX_STEPS[task]

    def validate(self, task: str | None = None) -> None:
        """Raise ValueError naming the first bad field."""
        if task is not None and task not in TASKS:
            raise ValueError(f"task {task!r} is unknown; expected one of {TASKS}")
        if not isinstance(self.image_size, int) or not 8 <= self.image_size <= 1024:
            raise ValueError(f"EnvConfig.image_size must be an int in [8, 1024], got {self.image_size!r}")
        cams = tuple(self.cameras)
        if not cams or any(c not in CAMERAS for c in cams) or len(set(cams)) != len(cams):
            raise ValueError(f"EnvConfig.cameras must be distinct names from {CAMERAS}, got {self.cameras!r}")
        for name in ("control_hz", "timestep", "action_scale", "max_target_lead"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"EnvConfig.{name} must be a positive finite number, got {v!r}")
        if self.timestep * self.control_hz > 1.0:
            raise ValueError(
                f"EnvConfig.timestep {self.timestep} is longer than one control period 1/{self.control_hz} s"
            )
        if not isinstance(self.max_episode_steps, int) or self.max_episode_steps < 0:
            raise ValueError(f"EnvConfig.max_episode_steps must be an int >= 0, got {self.max_episode_steps!r}")
        if self.reward not in REWARD_MODES:
            raise ValueError(f"EnvConfig.reward must be one of {REWARD_MODES}, got {self.reward!r}")
        if self.robot_meshes not in ROBOT_MESHES:
            raise ValueError(f"EnvConfig.robot_meshes must be one of {ROBOT_MESHES}, got {self.robot_meshes!r}")
        lo, hi = self.workspace_min, self.workspace_max
        if len(lo) != 3 or len(hi) != 3 or any(a >= b for a, b in zip(lo, hi, strict=True)):
            raise ValueError(f"EnvConfig.workspace_min {lo} must be below workspace_max {hi} on every axis")
