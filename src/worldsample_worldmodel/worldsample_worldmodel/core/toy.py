"""A tiny deterministic 'moving square' world for tests and for benchmarks without MuJoCo.

State: a point (x, y, z) in [0, 1]^3 and a gripper value; action (dx, dy, dz, g) in [-1, 1]
moves it by ``0.08 * action``. The "front" camera shows a red square at (x, y) on a grey
background whose brightness follows z; the "wrist" camera shows a green square at (1-y, x)
whose size follows the gripper. Proprio = (x, y, z, gripper). Reward = -distance to a goal
at (0.8, 0.8, 0.5); success and termination when closer than 0.1.
"""

from __future__ import annotations

import numpy as np
from worldsample_common.core.episode import Episode, Source

GOAL = np.array([0.8, 0.8, 0.5], np.float32)


def _draw(size: int, cx: float, cy: float, half: int, color, bg: int) -> np.ndarray:
    img = np.full((size, size, 3), bg, np.uint8)
    px, py = int(round(cx * (size - 1))), int(round(cy * (size - 1)))
    img[max(0, py - half): py + half + 1, max(0, px - half): px + half + 1] = color
    return img


def render(state: np.ndarray, size: int) -> dict[str, np.ndarray]:
    x, y, z, g = (float(v) for v in state)
    half = max(1, size // 10)
    front = _draw(size, x, y, half, (220, 40, 40), int(60 + 120 * z))
    wrist = _draw(size, 1.0 - y, x, half + (1 if g > 0 else 0), (40, 200, 60), 90)
    return {"front": front, "wrist": wrist}


def toy_episode(seed: int, steps: int = 20, size: int = 16, source: Source = Source.DEMO,
                policy: str = "expert", noise: float = 0.2) -> Episode:
    """One episode; ``policy`` "expert" heads for the goal (plus noise), "random" acts uniformly."""
    rng = np.random.default_rng(seed)
    s = np.concatenate([rng.uniform(0.1, 0.5, 3), [-1.0]]).astype(np.float32)
    frames = {c: [f] for c, f in render(s, size).items()}
    prop, acts, rews, term, succ = [s.copy()], [], [], [], []
    for _t in range(steps):
        if policy == "expert":
            a = np.concatenate([np.clip((GOAL - s[:3]) / 0.08, -1, 1), [1.0]]) + rng.normal(0, noise, 4)
        else:
            a = rng.uniform(-1, 1, 4)
        a = np.clip(a, -1, 1).astype(np.float32)
        s = np.concatenate([np.clip(s[:3] + 0.08 * a[:3], 0, 1), [1.0 if a[3] > 0 else -1.0]]).astype(np.float32)
        d = float(np.linalg.norm(s[:3] - GOAL))
        for c, f in render(s, size).items():
            frames[c].append(f)
        prop.append(s.copy())
        acts.append(a)
        rews.append(-d)
        succ.append(d < 0.1)
        term.append(d < 0.1)
        if d < 0.1:
            break
    n = len(acts)
    trunc = np.zeros(n, bool)
    trunc[-1] = not term[-1]
    return Episode(episode_id=f"toy-{source.name.lower()}-{seed}", task="toy", source=source,
                   images={c: np.stack(f) for c, f in frames.items()}, proprio=np.stack(prop),
                   actions=np.stack(acts), rewards=np.array(rews, np.float32), terminated=np.array(term),
                   truncated=trunc, successes=np.array(succ), seed=seed)


def toy_episodes(n: int, seed0: int = 0, **kw) -> list[Episode]:
    return [toy_episode(seed0 + i, **kw) for i in range(n)]
