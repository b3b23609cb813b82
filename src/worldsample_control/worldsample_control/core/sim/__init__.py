"""MuJoCo Franka Panda task suite: ``peg_insertion``, ``push``, ``sort``, ``pick_place``.

``make_env(task, cfg)`` returns a `FrankaTaskEnv` (see `env.py` for the robot model, the control
scheme, proprioception and privileged state; `tasks.py` for the tasks). Importing this package
does not import MuJoCo; `make_env` does. It sets ``MUJOCO_GL=egl`` when unset (headless
rendering), which only works if MuJoCo was not imported before.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

# Headless rendering: must be decided before the first `import mujoco` anywhere in the process.
MUJOCO_IMPORTED_BEFORE_GL_SET = "mujoco" in sys.modules and "MUJOCO_GL" not in os.environ
os.environ.setdefault("MUJOCO_GL", "egl")

from .config import DEFAULT_MAX_STEPS, TASKS, EnvConfig  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from .env import FrankaTaskEnv

__all__ = ["DEFAULT_MAX_STEPS", "TASKS", "EnvConfig", "make_env"]


def make_env(task: str, cfg: EnvConfig | None = None) -> FrankaTaskEnv:
    """Build the environment for ``task`` (one of `TASKS`) with ``cfg`` (defaults when None)."""
    if task not in TASKS:
        raise ValueError(f"task {task!r} is unknown; expected one of {TASKS}")
    from .env import FrankaTaskEnv

    return FrankaTaskEnv(task, cfg)
