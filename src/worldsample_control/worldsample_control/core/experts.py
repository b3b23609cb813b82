"""Scripted experts for the MuJoCo task suite (demonstrations and sanity baselines).

``make_expert(task)`` returns an `Expert` whose ``act(obs, env)`` gives a normalised action
``(dx, dy, dz, gripper)``. Experts read the simulator's privileged state through ``env``
(object positions, the commanded end-effector target), so they only run in simulation.
Each is a small waypoint state machine; ``reset()`` must be called at the start of an episode
(`worldsample_control.core.rollout.run_episode` does it when the policy has a ``reset``).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from worldsample_common.core.env_protocol import Observation

from .sim.config import TASKS

OPEN, CLOSE = -1.0, 1.0


class Expert(Protocol):
    task: str

    def reset(self) -> None: ...

    def act(self, obs: Observation, env: Any) -> np.ndarray: ...


def _move(env, waypoint, gripper: float, gain: float = 1.0, max_speed: float = 1.0) -> np.ndarray:
    """Action that moves the commanded target towards ``waypoint`` at up to ``max_speed``."""
    delta = (np.asarray(waypoint, float) - env.ee_target()) / env.cfg.action_scale * gain
    n = float(np.abs(delta).max())
    if n > max_speed:
        delta *= max_speed / n
    return np.array([*delta, gripper], dtype=np.float32)


def _near(env, waypoint, tol: float = 0.01) -> bool:
    return bool(np.linalg.norm(env.ee_pos() - np.asarray(waypoint, float)) < tol)


class _StateMachine:
    task = ""

    def __init__(self) -> None:
        self.phase = 0
        self.timer = 0

    def reset(self) -> None:
        self.phase = 0
        self.timer = 0

    def _next(self) -> None:
        self.phase += 1
        self.timer = 0

    def __call__(self, obs: Observation, env: Any) -> np.ndarray:
        return self.act(obs, env)

    def act(self, obs: Observation, env: Any) -> np.ndarray:
        raise NotImplementedError


class PickPlaceExpert(_StateMachine):
    """Above the block -> down -> close -> lift -> above the goal -> down -> open -> retreat."""

    task = "pick_place"
    hover = 0.10
    grasp_z = 0.018

    def __init__(self) -> None:
        super().__init__()
        self.queue: list[tuple[str, str]] = []

    def goals(self, env) -> list[tuple[str, np.ndarray, float]]:
        """(block body, goal xy, release height) in the order to handle them."""
        return [("block", env.mocap_pos("target")[:2], 0.03)]

    def reset(self) -> None:
        super().reset()
        self.item = 0

    def act(self, obs, env):
        goals = self.goals(env)
        if self.item >= len(goals):
            return _move(env, env.ee_target(), OPEN)
        body, goal_xy, release_z = goals[self.item]
        b = env.body_pos(body)
        self.timer += 1
        if self.phase == 0:  # above the block, gripper open
            wp = np.array([b[0], b[1], max(self.hover, b[2] + 0.06)])
            if _near(env, wp, 0.015) and env.gripper_width() > 0.07:
                self._next()
            return _move(env, wp, OPEN)
        if self.phase == 1:  # down around the block
            wp = np.array([b[0], b[1], self.grasp_z])
            if _near(env, wp, 0.008) or self.timer > 25:
                self._next()
            return _move(env, wp, OPEN)
        if self.phase == 2:  # close
            if self.timer >= 5:
                self._next()
            return _move(env, env.ee_target(), CLOSE, max_speed=0.0)
        if self.phase == 3:  # lift
            wp = np.array([env.ee_target()[0], env.ee_target()[1], self.hover + 0.02])
            if env.ee_pos()[2] > self.hover:
                if b[2] < 0.04:  # dropped it: start over for this block
                    self.phase, self.timer = 0, 0
                else:
                    self._next()
            return _move(env, wp, CLOSE)
        if self.phase == 4:  # carry above the goal
            wp = np.array([goal_xy[0], goal_xy[1], self.hover + 0.02])
            if _near(env, wp, 0.012):
                self._next()
            return _move(env, wp, CLOSE)
        if self.phase == 5:  # lower
            wp = np.array([goal_xy[0], goal_xy[1], release_z])
            if _near(env, wp, 0.01) or self.timer > 20:
                self._next()
            return _move(env, wp, CLOSE)
        if self.phase == 6:  # release
            if self.timer >= 4:
                self._next()
            return _move(env, env.ee_target(), OPEN, max_speed=0.0)
        # retreat upwards, then the next block
        wp = np.array([env.ee_target()[0], env.ee_target()[1], self.hover + 0.03])
        if env.ee_pos()[2] > self.hover:
            self.item += 1
            self.phase, self.timer = 0, 0
        return _move(env, wp, OPEN)


class SortExpert(PickPlaceExpert):
    """Pick-and-place each cube into the bin of its colour (red first)."""

    task = "sort"
    hover = 0.12

    def goals(self, env):
        return [
            ("red_block", env.mocap_pos("red_bin")[:2], 0.06),
            ("blue_block", env.mocap_pos("blue_bin")[:2], 0.06),
        ]


class PushExpert(_StateMachine):
    """Go behind the cube (seen from the target), lower the closed gripper, push along the line."""

    task = "push"
    half = 0.025
    push_z = 0.025

    def act(self, obs, env):
        b = env.body_pos("block")
        t = env.mocap_pos("target")
        u = t[:2] - b[:2]
        dist = float(np.linalg.norm(u))
        u = u / max(dist, 1e-6)
        behind = b[:2] - u * (self.half + 0.03)
        ee = env.ee_pos()
        self.timer += 1
        if self.phase == 0:  # above the pre-push point
            wp = np.array([behind[0], behind[1], 0.10])
            if _near(env, wp, 0.015):
                self._next()
            return _move(env, wp, CLOSE)
        if self.phase == 1:  # lower behind the cube
            wp = np.array([behind[0], behind[1], self.push_z])
            if _near(env, wp, 0.01):
                self._next()
            return _move(env, wp, CLOSE)
        # push: track the line through the cube towards the target
        rel = ee[:2] - b[:2]
        lateral = abs(rel[0] * u[1] - rel[1] * u[0])
        along = float(rel @ u)
        if lateral > 0.025 or along > -self.half + 0.005:  # lost the cube: go around again
            self.phase, self.timer = 0, 0
            return _move(env, np.array([ee[0], ee[1], 0.10]), CLOSE)
        contact = b[:2] - u * (self.half + 0.012)
        wp2 = contact + u * min(0.03, dist)
        speed = 1.0 if dist > 0.05 else 0.5
        return _move(env, np.array([wp2[0], wp2[1], self.push_z]), CLOSE, max_speed=speed)


class PegInsertionExpert(_StateMachine):
    """Align the held peg over the hole (from the peg's own position), then lower it in."""

    task = "peg_insertion"

    def act(self, obs, env):
        p = env.body_pos("peg")
        task = env._task
        rim = task.hole_rim(env)
        bottom = p[2] - task.peg_half[2]
        ee_t = env.ee_target()
        err_xy = rim[:2] - p[:2]
        self.timer += 1
        if self.phase == 0:  # above the hole, peg bottom 2 cm above the rim
            wp = np.array([ee_t[0] + err_xy[0], ee_t[1] + err_xy[1], ee_t[2] + (rim[2] + 0.02 - bottom)])
            if float(np.linalg.norm(err_xy)) < 0.003 and abs(rim[2] + 0.02 - bottom) < 0.01:
                self._next()
            return _move(env, wp, CLOSE, max_speed=1.0)
        # descend slowly while keeping the peg centred
        if float(np.linalg.norm(err_xy)) > 0.006 and bottom > rim[2] - 0.002:
            wp = np.array([ee_t[0] + err_xy[0], ee_t[1] + err_xy[1], ee_t[2]])
            return _move(env, wp, CLOSE, max_speed=0.3)
        wp = np.array([ee_t[0] + err_xy[0], ee_t[1] + err_xy[1], ee_t[2] - 0.01])
        return _move(env, wp, CLOSE, max_speed=0.35)


_EXPERTS: dict[str, type[_StateMachine]] = {
    "peg_insertion": PegInsertionExpert,
    "push": PushExpert,
    "sort": SortExpert,
    "pick_place": PickPlaceExpert,
}


def make_expert(task: str) -> Expert:
    """Scripted expert for ``task`` (one of `worldsample_control.core.sim.TASKS`)."""
    if task not in _EXPERTS:
        raise ValueError(f"task {task!r} has no expert; expected one of {TASKS}")
    return _EXPERTS[task]()
