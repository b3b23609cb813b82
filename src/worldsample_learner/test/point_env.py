"""A tiny Env-protocol task for learner tests: a 2-D point that must reach a goal.

proprio = (x, y, 0, 0, 0, 0, 0) padded to 7 like the Franka tasks; state = goal (2,);
optional 16x16 renders ("front": point red, goal green; the point is drawn over the goal, as an
object in front of another hides it). Solved by a good policy in < 10 steps.
"""

from __future__ import annotations

import numpy as np
from worldsample_common.core.env_protocol import Observation, StepResult


class PointEnv:
    task = "point"
    action_dim = 4
    proprio_dim = 7
    control_hz = 10.0

    def __init__(self, render: bool = False, image_size: int = 16, max_episode_steps: int = 25) -> None:
        self.render = render
        self.image_size = image_size
        self.camera_names = ("front", "wrist") if render else ()
        self.max_episode_steps = max_episode_steps
        self.pos = np.zeros(2)
        self.goal = np.zeros(2)
        self.t = 0

    def _obs(self) -> Observation:
        images = {}
        if self.render:
            img = np.zeros((self.image_size, self.image_size, 3), np.uint8)
            for p, ch in ((self.goal, 1), (self.pos, 0)):
                i, j = ((np.clip(p, -1, 1) + 1) / 2 * (self.image_size - 1)).round().astype(int)
                img[max(0, j - 1): j + 2, max(0, i - 1): i + 2] = (255, 0, 0) if ch == 0 else (0, 255, 0)
            images = {"front": img, "wrist": img[::-1].copy()}
        proprio = np.zeros(7, np.float32)
        proprio[:2] = self.pos
        return Observation(images, proprio, self.goal.astype(np.float32).copy())

    def reset(self, seed: int | None = None) -> Observation:
        rng = np.random.default_rng(seed)
        self.pos = rng.uniform(-0.8, 0.8, 2)
        self.goal = rng.uniform(-0.8, 0.8, 2)
        self.t = 0
        return self._obs()

    def step(self, action: np.ndarray) -> StepResult:
        a = np.clip(np.asarray(action, np.float64), -1, 1)
        self.pos = np.clip(self.pos + 0.15 * a[:2], -1, 1)
        self.t += 1
        dist = float(np.linalg.norm(self.pos - self.goal))
        success = dist < 0.1
        reward = -dist + (1.0 if success else 0.0)
        truncated = self.t >= self.max_episode_steps and not success
        return StepResult(self._obs(), reward, success, truncated, success, {"clipped_action": a.astype(np.float32)})

    def close(self) -> None:
        pass
