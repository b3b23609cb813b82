"""The gym-style environment protocol every WorldSample task implements.

The learner and the world model also use it in-process (experiment driver, tests).

Action convention (all tasks): float32 vector of ``ACTION_DIM = 4`` values in [-1, 1]:
``(dx, dy, dz, gripper)``. The first three are an end-effector translation per control step,
scaled by the task's ``action_scale`` [m]; the gripper value closes the hand when > 0 and
opens it when <= 0. The end-effector orientation is held pointing down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

ACTION_DIM = 4


@dataclass
class Observation:
    """What the policy sees: one RGB uint8 (H, W, 3) frame per camera and proprioception."""

    images: dict[str, np.ndarray]
    proprio: np.ndarray  # float32 (P,)
    # Privileged simulator state (object poses, target), float32 (S,). None on a real robot.
    # Only for state-based experiments and debugging; policies meant for the arm use images + proprio.
    state: np.ndarray | None = None


@dataclass
class StepResult:
    observation: Observation
    reward: float
    terminated: bool
    truncated: bool
    success: bool
    info: dict[str, Any] = field(default_factory=dict)


class Env(Protocol):
    task: str
    camera_names: tuple[str, ...]
    proprio_dim: int
    action_dim: int
    max_episode_steps: int
    control_hz: float

    def reset(self, seed: int | None = None) -> Observation: ...

    def step(self, action: np.ndarray) -> StepResult: ...

    def close(self) -> None: ...
