"""In-process rollouts: run a policy in an `Env` and collect an `Episode`; evaluate a policy.

Used by the demo recorder, the experiment driver and benchmarks (the ROS actor node drives
the same env through its own loop). A policy is any ``Callable[[Observation], np.ndarray]``;
if it also has a ``reset()`` method, that is called at the start of every episode.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
from worldsample_common.core.env_protocol import Env, Observation
from worldsample_common.core.episode import Episode, Source

Policy = Callable[[Observation], np.ndarray]


def run_episode(
    env: Env,
    policy: Policy,
    seed: int,
    source: Source = Source.REAL,
    episode_id: str | None = None,
    policy_version: str = "",
    max_steps: int | None = None,
) -> Episode:
    """Reset ``env`` with ``seed`` and run ``policy`` until termination or truncation.

    The episode holds every observation including the final one (T + 1 frames; privileged
    ``states`` too when the env provides ``Observation.state``), the action the
    environment actually executed (clipped to [-1, 1]), the configured reward, and the flags.
    ``max_steps`` cuts the episode short (marked truncated) before the env's own limit.
    """
    if not isinstance(seed, int | np.integer):
        raise ValueError(f"seed must be an int, got {seed!r}")
    reset = getattr(policy, "reset", None)
    if callable(reset):
        reset()
    limit = int(env.max_episode_steps if max_steps is None else max_steps)
    if limit < 1:
        raise ValueError(f"max_steps must be >= 1, got {limit}")
    obs = env.reset(seed=int(seed))
    data = getattr(env, "data", None)
    t0_ns = time.time_ns()
    images: dict[str, list[np.ndarray]] = {c: [obs.images[c]] for c in env.camera_names}
    proprio = [obs.proprio]
    states = [obs.state]
    stamps = [t0_ns]
    sim_t0 = float(data.time) if data is not None else 0.0
    actions, rewards, terminated, truncated, successes = [], [], [], [], []
    for t in range(limit):
        action = np.asarray(policy(obs), dtype=np.float32)
        res = env.step(action)
        obs = res.observation
        executed = res.info.get("clipped_action", np.clip(action, -1.0, 1.0))
        actions.append(np.asarray(executed, dtype=np.float32))
        rewards.append(res.reward)
        terminated.append(res.terminated)
        trunc = res.truncated or (t == limit - 1 and not res.terminated)
        truncated.append(trunc)
        successes.append(res.success)
        for c in env.camera_names:
            images[c].append(obs.images[c])
        proprio.append(obs.proprio)
        states.append(obs.state)
        if data is not None:
            stamps.append(t0_ns + int(round((float(data.time) - sim_t0) * 1e9)))
        else:
            stamps.append(t0_ns + int(round((t + 1) * 1e9 / env.control_hz)))
        if res.terminated or trunc:
            break
    return Episode(
        episode_id=episode_id or f"{env.task}-{source.name.lower()}-{seed}-{uuid.uuid4().hex[:8]}",
        task=env.task,
        source=source,
        images={c: np.stack(frames) for c, frames in images.items()},
        proprio=np.stack(proprio),
        actions=np.stack(actions).reshape(len(actions), env.action_dim),
        rewards=np.asarray(rewards, np.float32),
        terminated=np.asarray(terminated, bool),
        truncated=np.asarray(truncated, bool),
        successes=np.asarray(successes, bool),
        policy_version=policy_version,
        seed=int(seed),
        states=None if any(x is None for x in states) else np.stack(states),
        stamps_ns=np.asarray(stamps, np.int64),
    )


def evaluate(env: Env, policy: Policy, episodes: int, seed0: int = 0) -> dict[str, Any]:
    """Run ``episodes`` episodes with seeds ``seed0, seed0 + 1, ...``.

    Returns ``success_rate``, ``mean_return``, ``mean_length`` and the per-episode ``successes``.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    succ, rets, lens = [], [], []
    for i in range(episodes):
        ep = run_episode(env, policy, seed=seed0 + i)
        succ.append(ep.success)
        rets.append(ep.episode_return)
        lens.append(ep.length)
    return {
        "success_rate": float(np.mean(succ)),
        "mean_return": float(np.mean(rets)),
        "mean_length": float(np.mean(lens)),
        "successes": succ,
    }
