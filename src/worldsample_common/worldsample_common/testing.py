"""Helpers for tests across the workspace: deterministic random episodes and ROS test domains."""

from __future__ import annotations

import importlib
import os

import numpy as np

from .core.episode import Episode, Source


def random_episode(episode_id: str = "ep-0", steps: int = 5, size: int = 16, source: Source = Source.REAL,
                   seed: int = 0, task: str = "push", cameras: tuple[str, ...] = ("front", "wrist"),
                   state_dim: int = 6) -> Episode:
    """A valid Episode with random content, identical for identical arguments."""
    rng = np.random.default_rng(seed)
    return Episode(
        episode_id=episode_id, task=task, source=source,
        images={c: rng.integers(0, 256, (steps + 1, size, size, 3), dtype=np.uint8) for c in cameras},
        proprio=rng.normal(size=(steps + 1, 7)).astype(np.float32),
        actions=rng.uniform(-1, 1, (steps, 4)).astype(np.float32),
        rewards=rng.normal(size=steps).astype(np.float32),
        terminated=np.eye(steps, dtype=bool)[-1], truncated=np.zeros(steps, bool),
        successes=np.eye(steps, dtype=bool)[-1],
        uncertainty=rng.uniform(size=steps).astype(np.float32), trust=rng.uniform(size=steps).astype(np.float32),
        policy_version="policy-000003", world_model_version="wm-000002", seed=42,
        states=rng.normal(size=(steps + 1, state_dim)).astype(np.float32) if state_dim else None,
    )


def ros_available(*extra_modules: str) -> bool:
    """Whether rclpy, the built worldsample_msgs and ``extra_modules`` import (tests that start nodes skip if not)."""
    try:
        for name in ("rclpy", "worldsample_msgs.msg", *extra_modules):
            importlib.import_module(name)
    except ImportError:
        return False
    return True


def test_domain_id(offset: int = 0) -> int:
    """A ROS_DOMAIN_ID for one test, distinct between concurrent test processes (1..101 range avoided)."""
    return 110 + (os.getpid() + offset) % 100


test_domain_id.__test__ = False  # not a pytest test
