"""The WorldSample tasks as Gymnasium environments (what gym_hil / LeRobot / stable-baselines3 users expect).

Importing this module registers, for every task, a state and a pixel variant::

    import gymnasium as gym
    import worldsample_control.envs  # noqa: F401  (registers the ids)
    env = gym.make("WorldSample/Push-v0")            # or, without the import:
    env = gym.make("worldsample_control.envs:WorldSample/PushPixels-v0")

| id | observation |
|---|---|
| ``WorldSample/{Push,PegInsertion,Sort,PickPlace}-v0`` | Box float32 ``(7 + S,)``: proprio (ee xyz, gripper width, ee velocity) then the task's privileged state (object/target positions, ``env.unwrapped.state_labels``) |
| ``WorldSample/{...}Pixels-v0`` | Dict: ``front``, ``wrist`` uint8 ``(64, 64, 3)`` and ``proprio`` float32 ``(7,)`` — what a real arm has |

Action: Box ``[-1, 1]^4`` = (dx, dy, dz, gripper), as `env_protocol` describes. Reward: the
project's one convention (`core.reward`): 0 on the success step, which terminates the episode,
``-1 + 0.8 * progress`` otherwise (``reward="sparse"``: -1). ``truncated`` at the task's step
limit. ``info["is_success"]`` is the success flag (stable-baselines3 and LeRobot read it).
Keyword arguments of `gym.make` go to `EnvConfig` (``image_size``, ``reward``, ``seed``, ...).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .core.sim.config import TASKS, EnvConfig

_CAMEL = {"push": "Push", "peg_insertion": "PegInsertion", "sort": "Sort", "pick_place": "PickPlace"}
OBS_KINDS: tuple[str, ...] = ("state", "pixels")


def env_id(task: str, obs: str = "state") -> str:
    """Gymnasium id of ``task`` (one of `TASKS`) with ``obs`` "state" or "pixels"."""
    if task not in _CAMEL:
        raise ValueError(f"task {task!r} is unknown; expected one of {TASKS}")
    if obs not in OBS_KINDS:
        raise ValueError(f"obs must be one of {OBS_KINDS}, got {obs!r}")
    return f"WorldSample/{_CAMEL[task]}{'Pixels' if obs == 'pixels' else ''}-v0"


class WorldSampleGymEnv(gym.Env):
    """A `FrankaTaskEnv` behind the Gymnasium API (state vector or camera-dict observations)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, task: str, obs: str = "state", render_mode: str | None = None, **env_cfg: Any) -> None:
        from .core.sim import make_env

        if obs not in OBS_KINDS:
            raise ValueError(f"obs must be one of {OBS_KINDS}, got {obs!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.obs_kind = obs
        self.render_mode = render_mode
        pixels = obs == "pixels"
        cfg = EnvConfig(**{"render": pixels or render_mode == "rgb_array", **env_cfg})
        if not pixels and render_mode == "rgb_array" and "cameras" not in env_cfg:
            cfg.cameras = ("front",)
        self.sim = make_env(task, cfg)
        self.task = task
        self.state_labels = tuple(self.sim.state_labels)
        self.action_space = spaces.Box(-1.0, 1.0, (self.sim.action_dim,), np.float32)
        p = self.sim.proprio_dim
        if pixels:
            s = cfg.image_size
            self.observation_space = spaces.Dict({
                **{c: spaces.Box(0, 255, (s, s, 3), np.uint8) for c in cfg.cameras},
                "proprio": spaces.Box(-np.inf, np.inf, (p,), np.float32),
            })
        else:
            self.observation_space = spaces.Box(-np.inf, np.inf, (p + self.sim.state_dim,), np.float32)
        self._last = None

    def _convert(self, o) -> Any:
        self._last = o
        if self.obs_kind == "pixels":
            return {**{c: o.images[c] for c in self.observation_space.spaces if c != "proprio"},
                    "proprio": np.asarray(o.proprio, np.float32)}
        return np.concatenate([o.proprio, o.state]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(0, 2**31 - 1))
        return self._convert(self.sim.reset(seed=seed)), {"is_success": False}

    def step(self, action):
        res = self.sim.step(np.asarray(action, np.float32))
        info = dict(res.info)
        info["is_success"] = bool(res.success)
        return self._convert(res.observation), float(res.reward), bool(res.terminated), bool(res.truncated), info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if self._last is not None and "front" in self._last.images:
            return self._last.images["front"]
        return self.sim.render("front")

    def close(self) -> None:
        self.sim.close()


def register_envs() -> list[str]:
    """Register every task's state and pixel ids (idempotent); returns the ids."""
    ids = []
    for task in TASKS:
        for obs in OBS_KINDS:
            i = env_id(task, obs)
            if i not in gym.registry:
                gym.register(id=i, entry_point=WorldSampleGymEnv, kwargs={"task": task, "obs": obs},
                             max_episode_steps=None, disable_env_checker=False)
            ids.append(i)
    return ids


ENV_IDS = register_envs()
