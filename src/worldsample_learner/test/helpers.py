"""Crafted episodes and the node-process environment for learner tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from worldsample_common.core.episode import Episode, Source


def make_episode(eid: str, t: int = 6, source: Source = Source.REAL, cams: tuple[str, ...] = ("front", "wrist"),
                 size: int = 8, state_dim: int = 2, seed: int = 0, success: bool = False,
                 uncertainty: np.ndarray | None = None) -> Episode:
    rng = np.random.default_rng(seed)
    succ = np.zeros(t, bool)
    if success:
        succ[-1] = True
    return Episode(
        episode_id=eid, task="point", source=source,
        images={c: rng.integers(0, 256, (t + 1, size, size, 3), dtype=np.uint8) for c in cams},
        proprio=rng.normal(size=(t + 1, 7)).astype(np.float32),
        actions=rng.uniform(-1, 1, (t, 4)).astype(np.float32),
        rewards=rng.normal(size=t).astype(np.float32), terminated=succ.copy(),
        truncated=np.zeros(t, bool), successes=succ,
        uncertainty=uncertainty,
        states=rng.normal(size=(t + 1, state_dim)).astype(np.float32) if state_dim else None,
    )


def node_process_env(domain_offset: int) -> dict[str, str]:
    """Environment for a node started as ``python -m``: our packages' sources on PYTHONPATH and a
    ROS domain of its own (also set in this process, so the test's own rclpy joins it)."""
    root = Path(__file__).resolve().parents[3]
    env = dict(os.environ)
    src = [str(root / "src" / p) for p in ("worldsample_common", "worldsample_control", "worldsample_worldmodel",
                                                 "worldsample_learner")]
    env["PYTHONPATH"] = os.pathsep.join(src + [env.get("PYTHONPATH", "")])
    domain = str(os.getpid() % 100 + domain_offset)
    for e in (env, os.environ):
        e["ROS_DOMAIN_ID"] = domain
        e["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return env
