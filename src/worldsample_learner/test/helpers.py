"""Crafted episodes for learner tests."""

from __future__ import annotations

import numpy as np
from worldsample_control.core.episode import Episode, Source


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
