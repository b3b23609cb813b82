"""Throughput of the MuJoCo tasks: control steps per second (wired into `worldsample bench sim`)."""

from __future__ import annotations

import time

import numpy as np

from .config import EnvConfig


def measure_steps_per_s(
    task: str, render: bool, image_size: int = 64, steps: int = 200, seed: int = 0, robot_meshes: str = "collision"
) -> float:
    """Control steps per second of ``task`` under uniform random actions (resets included).

    One warm-up step (renderer creation) is excluded from the timing.
    """
    from . import make_env

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    env = make_env(task, EnvConfig(render=render, image_size=image_size, robot_meshes=robot_meshes))
    rng = np.random.default_rng(seed)
    try:
        env.reset(seed=seed)
        env.step(np.zeros(4, np.float32))
        t0 = time.perf_counter()
        for _ in range(steps):
            res = env.step(rng.uniform(-1.0, 1.0, 4).astype(np.float32))
            if res.terminated or res.truncated:
                env.reset()
        return steps / (time.perf_counter() - t0)
    finally:
        env.close()


if __name__ == "__main__":
    from .config import TASKS

    for task in TASKS:
        fast = measure_steps_per_s(task, render=False, steps=500)
        coll = measure_steps_per_s(task, render=True, steps=100)
        vis = measure_steps_per_s(task, render=True, steps=100, robot_meshes="visual")
        print(f"{task}: state-only {fast:.0f} steps/s; 2 cameras 64x64: {coll:.1f} steps/s (collision meshes), "
              f"{vis:.1f} steps/s (visual meshes); collision/visual {coll / vis:.2f}x, state-only/collision "
              f"{fast / coll:.1f}x")
