"""The four tasks: scene objects, randomised resets, privileged state, success and shaped reward.

World frame = robot base frame (the Panda's ``link0`` sits at the origin, the floor at z = 0
doubles as the table). ``evaluate`` returns (success, progress in [0, 1]); the reward convention
that turns progress into rewards is `worldsample_control.core.reward`. Static fixtures (targets, bins, the hole) are mocap bodies so their
pose is part of ``MjData`` and changes per reset without recompiling.

- ``push``: push a 5 cm cube into a green target disc (success: centre within 3 cm, in xy).
- ``pick_place``: pick a 4 cm cube and put it on a green target disc 15-30 cm away
  (success: cube resting on the floor, centre within 3 cm of the target, in xy).
- ``sort``: a red and a blue cube, each into the bin of its colour; bin sides are random
  (success: both cubes inside their own bin).
- ``peg_insertion``: the peg (2.8 cm square, 8 cm long) starts grasped and the hand stays closed
  (as in HIL-SERL's insertion tasks: no policy output can drop it); insert it into a square
  hole with 4 mm clearance per side in a randomly placed fixture (success: peg bottom at
  least 2.5 cm below the hole rim, inside the hole).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .env import FrankaTaskEnv

RED = (0.85, 0.15, 0.15, 1.0)
BLUE = (0.15, 0.30, 0.90, 1.0)
GREEN = (0.20, 0.75, 0.25, 1.0)
YELLOW = (0.95, 0.80, 0.15, 1.0)
GREY = (0.55, 0.55, 0.60, 1.0)


def _mj():
    import mujoco

    return mujoco


def _add_free_box(spec, name: str, half: tuple[float, float, float], rgba, mass: float, friction=1.0):
    mj = _mj()
    body = spec.worldbody.add_body(name=name, pos=[0.5, 0.0, half[2]])
    body.add_freejoint(name=name)
    body.add_geom(
        name=name, type=mj.mjtGeom.mjGEOM_BOX, size=list(half), rgba=list(rgba), mass=mass,
        friction=[friction, 0.005, 0.0001], condim=4,
    )
    return body


def _add_disc(spec, name: str, radius: float, rgba):
    """A visual-only target marker lying on the floor (mocap, no collisions)."""
    mj = _mj()
    body = spec.worldbody.add_body(name=name, mocap=True, pos=[0.5, 0.0, 0.0])
    body.add_geom(
        name=name, type=mj.mjtGeom.mjGEOM_CYLINDER, size=[radius, 0.001, 0], rgba=list(rgba),
        contype=0, conaffinity=0, pos=[0, 0, 0.001],
    )
    return body


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


class Task:
    """Base class; subclasses fill in the scene, reset, state, success and shaped reward."""

    name = ""
    state_dim = 0
    state_labels: tuple[str, ...] = ()
    # the state entries that only say where the scene sits on the table (absolute x, y of objects and of drawn
    # targets, offsets to a drawn target) while the rest of the state already holds every relation physics acts on;
    # a dynamics model blind to them (`model_blind_dims`) learns one law for the whole table instead of one per place
    placement_labels: tuple[str, ...] = ()
    # True: the hand stays closed whatever the gripper command (the task starts with the object in hand)
    gripper_held_closed = False

    def build(self, spec) -> None:
        raise NotImplementedError

    def bind(self, env: FrankaTaskEnv) -> None:
        """Cache ids once the model is compiled."""

    def start_ee(self, rng: np.random.Generator) -> np.ndarray:
        return np.array([rng.uniform(0.40, 0.50), rng.uniform(-0.06, 0.06), rng.uniform(0.22, 0.28)])

    def reset(self, env: FrankaTaskEnv, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def state(self, env: FrankaTaskEnv) -> np.ndarray:
        """Privileged state: object and target positions, then the relative vectors that decide the
        task (object -> target, gripper -> object), in metres; ``state_labels`` names them."""
        raise NotImplementedError

    def evaluate(self, env: FrankaTaskEnv) -> tuple[bool, float]:
        """(success, progress in [0, 1]): how close the state is to success; `core.reward` turns it into
        the step's reward (0 on success, ``-1 + 0.8 * progress`` otherwise)."""
        return self.evaluate_state(self.state(env))

    def evaluate_state(self, state: np.ndarray) -> tuple[bool, float]:
        """`evaluate` from the privileged state vector alone (what `state` returns): the success detector
        and shaped score of the task as a function of that vector, so a *predicted* state (a world model's
        imagined step) is judged by the same rule as a real one."""
        raise NotImplementedError

    def in_contact_zone(self, state: np.ndarray) -> bool:
        """Whether the privileged state is where the task's next outcome turns on a contact the state does not
        carry (a world model's imagined branch stops before stepping from there: `contact_states`). No task has a
        zone unless it says so."""
        return False


def _sample_xy(rng, lo, hi, avoid: list[np.ndarray], min_dist: float, tries: int = 200) -> np.ndarray:
    for _ in range(tries):
        p = np.array([rng.uniform(lo[0], hi[0]), rng.uniform(lo[1], hi[1])])
        if all(np.linalg.norm(p - a) >= min_dist for a in avoid):
            return p
    raise RuntimeError(f"could not place an object in {lo}..{hi} at {min_dist} m from {avoid}")


def _with_relative(env, body: str, target_xy: np.ndarray) -> np.ndarray:
    """Object xyz, target xy, then the vectors a policy acts on: object -> target (xy), gripper -> object."""
    b = env.body_pos(body)
    return np.concatenate([b, target_xy, target_xy - b[:2], b - env.ee_pos()])


def _closeness(d: float, scale: float = 10.0) -> float:
    return float(1.0 - math.tanh(scale * d))


class PushTask(Task):
    name = "push"
    state_dim = 10
    state_labels = ("block_x", "block_y", "block_z", "target_x", "target_y",
                    "block_to_target_x", "block_to_target_y", "ee_to_block_x", "ee_to_block_y", "ee_to_block_z")
    # the target is a drawn disc (no contact) and ee_to_block holds the arm-block relation
    placement_labels = ("block_x", "block_y", "target_x", "target_y", "block_to_target_x", "block_to_target_y")
    half = 0.025
    success_radius = 0.03

    def build(self, spec) -> None:
        _add_free_box(spec, "block", (self.half,) * 3, RED, mass=0.15, friction=0.6)
        _add_disc(spec, "target", 0.04, GREEN)

    def start_ee(self, rng):
        return np.array([rng.uniform(0.38, 0.45), rng.uniform(-0.05, 0.05), rng.uniform(0.15, 0.20)])

    def reset(self, env, rng) -> None:
        block = _sample_xy(rng, (0.45, -0.12), (0.58, 0.12), [], 0.0)
        for _ in range(200):
            ang = rng.uniform(-math.pi, math.pi)
            dist = rng.uniform(0.10, 0.18)
            target = block + dist * np.array([math.cos(ang), math.sin(ang)])
            # keep the target reachable and the pushing side of the block inside the workspace
            behind = block - 0.07 * (target - block) / dist
            if 0.40 <= target[0] <= 0.66 and abs(target[1]) <= 0.22 and 0.35 <= behind[0] <= 0.68:
                break
        env.set_free_body("block", [block[0], block[1], self.half], _yaw_quat(rng.uniform(-0.4, 0.4)))
        env.set_mocap("target", [target[0], target[1], 0.0])

    def state(self, env) -> np.ndarray:
        return _with_relative(env, "block", env.mocap_pos("target")[:2])

    def evaluate_state(self, state):
        b, t, ee_to_b = state[0:3], state[3:5], state[7:10]
        d = float(np.linalg.norm(b[:2] - t))
        success = bool(d < self.success_radius and b[2] < 0.05)
        shaped = 0.3 * _closeness(float(np.linalg.norm(ee_to_b))) + 0.7 * _closeness(d)
        return success, 1.0 if success else shaped


class PickPlaceTask(Task):
    name = "pick_place"
    state_dim = 10
    state_labels = PushTask.state_labels
    placement_labels = PushTask.placement_labels
    half = 0.02
    success_radius = 0.03

    def build(self, spec) -> None:
        _add_free_box(spec, "block", (self.half,) * 3, RED, mass=0.08)
        _add_disc(spec, "target", 0.035, GREEN)

    def reset(self, env, rng) -> None:
        block = _sample_xy(rng, (0.42, -0.15), (0.60, 0.15), [], 0.0)
        target = _sample_xy(rng, (0.40, -0.20), (0.62, 0.20), [block], 0.15)
        env.set_free_body("block", [block[0], block[1], self.half], _yaw_quat(rng.uniform(-0.4, 0.4)))
        env.set_mocap("target", [target[0], target[1], 0.0])

    def state(self, env) -> np.ndarray:
        return _with_relative(env, "block", env.mocap_pos("target")[:2])

    def evaluate_state(self, state):
        b, t, ee_to_b = state[0:3], state[3:5], state[7:10]
        d = float(np.linalg.norm(b[:2] - t))
        success = bool(d < self.success_radius and b[2] < self.half + 0.005)
        reach = _closeness(float(np.linalg.norm(ee_to_b)))
        lifted = min(1.0, max(0.0, (b[2] - self.half) / 0.05))
        shaped = 0.25 * reach + 0.25 * max(lifted, _closeness(d)) + 0.5 * _closeness(d)
        return success, 1.0 if success else shaped


class SortTask(Task):
    name = "sort"
    state_dim = 20
    state_labels = ("red_x", "red_y", "red_z", "blue_x", "blue_y", "blue_z",
                    "red_bin_x", "red_bin_y", "blue_bin_x", "blue_bin_y",
                    "red_to_bin_x", "red_to_bin_y", "blue_to_bin_x", "blue_to_bin_y",
                    "ee_to_red_x", "ee_to_red_y", "ee_to_red_z", "ee_to_blue_x", "ee_to_blue_y", "ee_to_blue_z")
    # every relation is kept: ee_to_*, *_to_bin, and red-blue as the difference of the two ee_to_ vectors
    placement_labels = ("red_x", "red_y", "blue_x", "blue_y", "red_bin_x", "red_bin_y", "blue_bin_x", "blue_bin_y")
    half = 0.02
    bin_inner = 0.055  # inner half-width of a bin
    wall_h = 0.02
    wall_t = 0.005

    def _add_bin(self, spec, name: str, rgba) -> None:
        mj = _mj()
        body = spec.worldbody.add_body(name=name, mocap=True, pos=[0.6, 0.0, 0.0])
        a, t, h = self.bin_inner, self.wall_t, self.wall_h
        box = mj.mjtGeom.mjGEOM_BOX
        body.add_geom(type=box, size=[a, a, 0.001], pos=[0, 0, 0.001], rgba=[rgba[0], rgba[1], rgba[2], 0.6],
                      contype=0, conaffinity=0)
        for sx, sy, size in (
            (1, 0, [t, a + 2 * t, h / 2]), (-1, 0, [t, a + 2 * t, h / 2]),
            (0, 1, [a, t, h / 2]), (0, -1, [a, t, h / 2]),
        ):
            body.add_geom(type=box, size=size, pos=[sx * (a + t), sy * (a + t), h / 2], rgba=list(rgba))

    def build(self, spec) -> None:
        _add_free_box(spec, "red_block", (self.half,) * 3, RED, mass=0.08)
        _add_free_box(spec, "blue_block", (self.half,) * 3, BLUE, mass=0.08)
        self._add_bin(spec, "red_bin", RED)
        self._add_bin(spec, "blue_bin", BLUE)

    def reset(self, env, rng) -> None:
        x_bin = rng.uniform(0.58, 0.63)
        side = 1.0 if rng.uniform() < 0.5 else -1.0
        env.set_mocap("red_bin", [x_bin, side * rng.uniform(0.15, 0.19), 0.0])
        env.set_mocap("blue_bin", [x_bin, -side * rng.uniform(0.15, 0.19), 0.0])
        red = _sample_xy(rng, (0.38, -0.10), (0.48, 0.10), [], 0.0)
        blue = _sample_xy(rng, (0.38, -0.10), (0.48, 0.10), [red], 0.08)
        env.set_free_body("red_block", [red[0], red[1], self.half], _yaw_quat(rng.uniform(-0.4, 0.4)))
        env.set_free_body("blue_block", [blue[0], blue[1], self.half], _yaw_quat(rng.uniform(-0.4, 0.4)))

    def state(self, env) -> np.ndarray:
        red, blue, ee = env.body_pos("red_block"), env.body_pos("blue_block"), env.ee_pos()
        rbin, bbin = env.mocap_pos("red_bin")[:2], env.mocap_pos("blue_bin")[:2]
        return np.concatenate([red, blue, rbin, bbin, rbin - red[:2], bbin - blue[:2], red - ee, blue - ee])

    # slices of `state` per colour: block xyz, bin xy, block -> ee
    _SLICES = {"red": (slice(0, 3), slice(6, 8), slice(14, 17)), "blue": (slice(3, 6), slice(8, 10), slice(17, 20))}

    def _in_bin(self, state, colour: str) -> bool:
        blk, bin_, _ = self._SLICES[colour]
        b, c = state[blk], state[bin_]
        return bool(np.all(np.abs(b[:2] - c) < self.bin_inner) and b[2] < 0.05)

    def evaluate_state(self, state):
        done = [self._in_bin(state, c) for c in ("red", "blue")]
        success = all(done)
        score = 0.0
        pending = [c for c, ok in zip(("red", "blue"), done, strict=True) if not ok]
        for c, ok in zip(("red", "blue"), done, strict=True):
            blk, bin_, _ = self._SLICES[c]
            d = float(np.linalg.norm(state[blk][:2] - state[bin_]))
            score += 0.4 * (1.0 if ok else _closeness(d, 5.0))
        if pending:
            score += 0.2 * _closeness(float(np.linalg.norm(state[self._SLICES[pending[0]][2]])))
        else:
            score += 0.2
        return success, 1.0 if success else score


class PegInsertionTask(Task):
    name = "peg_insertion"
    state_dim = 9
    state_labels = ("peg_x", "peg_y", "peg_z", "hole_x", "hole_y", "hole_z",
                    "peg_to_hole_x", "peg_to_hole_y", "peg_bottom_above_rim")
    # the hole's place is peg + peg_to_hole; the peg's own x, y stay (with the hand's, its offset in the fingers)
    placement_labels = ("hole_x", "hole_y")
    peg_half = (0.014, 0.014, 0.04)
    # 4 mm clearance per side: with 1.7 mm the exploring policy (2 cm per unit action) never hit the
    # hole by chance, so the critic saw success only in the demos and RL-only stayed at ~0.1 (issue 16)
    hole_half = 0.018
    outer_half = 0.05
    depth = 0.04
    insert_depth = 0.025  # success: peg bottom this far below the rim
    contact_margin = 0.005  # `in_contact_zone`: the peg's bottom at most this far above the rim
    gripper_held_closed = True

    def build(self, spec) -> None:
        mj = _mj()
        _add_free_box(spec, "peg", self.peg_half, YELLOW, mass=0.05, friction=0.8)
        body = spec.worldbody.add_body(name="fixture", mocap=True, pos=[0.55, 0.0, 0.0])
        a, w, h = self.hole_half, self.outer_half, self.depth
        box = mj.mjtGeom.mjGEOM_BOX
        for sx, sy, size in (
            (1, 0, [(w - a) / 2, w, h / 2]), (-1, 0, [(w - a) / 2, w, h / 2]),
            (0, 1, [a, (w - a) / 2, h / 2]), (0, -1, [a, (w - a) / 2, h / 2]),
        ):
            off = (a + w) / 2
            body.add_geom(type=box, size=size, pos=[sx * off, sy * off, h / 2], rgba=list(GREY),
                          friction=[0.3, 0.005, 0.0001])
        body.add_geom(type=box, size=[a, a, 0.001], pos=[0, 0, 0.001], rgba=list(GREEN), contype=0, conaffinity=0)

    def start_ee(self, rng):
        return np.array([rng.uniform(0.42, 0.50), rng.uniform(-0.06, 0.06), rng.uniform(0.16, 0.20)])

    def reset(self, env, rng) -> None:
        hole = _sample_xy(rng, (0.48, -0.15), (0.62, 0.15), [], 0.0)
        env.set_mocap("fixture", [hole[0], hole[1], 0.0])
        # The peg hangs from the fingers: its top 2 cm above the pinch point, then the gripper closes.
        ee = env.ee_pos()
        env.set_free_body("peg", [ee[0], ee[1], ee[2] + 0.02 - self.peg_half[2]], np.array([1.0, 0, 0, 0]))
        env.settle_grasp()

    def hole_rim(self, env) -> np.ndarray:
        c = env.mocap_pos("fixture")
        return np.array([c[0], c[1], self.depth])

    def state(self, env) -> np.ndarray:
        p, rim = env.body_pos("peg"), self.hole_rim(env)
        return np.concatenate([p, rim, rim[:2] - p[:2], [p[2] - self.peg_half[2] - rim[2]]])

    def evaluate_state(self, state):
        p, rim = state[0:3], state[3:6]
        bottom = p[2] - self.peg_half[2]
        dxy = float(np.linalg.norm(p[:2] - rim[:2]))
        inserted = rim[2] - bottom
        success = bool(inserted >= self.insert_depth and dxy < self.hole_half)
        # progress guides from afar: the xy term is 0.24 at 10 cm, 0.9 at 1 cm; the depth term
        # (from 3 cm above the rim down to the success depth) counts only over the hole (soft gate:
        # 0.8 at 2 mm off-centre, 0.24 at 1 cm), so pressing the peg on the fixture top pays nothing
        depth = min(1.0, max(0.0, (0.03 + inserted) / (0.03 + self.insert_depth)))
        progress = 0.5 * _closeness(dxy, 10.0) + 0.5 * depth * _closeness(dxy, 100.0)
        return success, 1.0 if success else float(progress)

    def in_contact_zone(self, state: np.ndarray) -> bool:
        """The peg's bottom at most ``contact_margin`` above the rim while it overlaps the hole's opening: from
        here it either slides in or tips in the fingers and jams, which its position alone does not tell
        (docs/results.md, "A model of two outcomes at peg's rim")."""
        p, rim = state[0:3], state[3:6]
        over = float(np.linalg.norm(p[:2] - rim[:2])) < self.hole_half + self.peg_half[0]
        return bool(over and p[2] - self.peg_half[2] - rim[2] < self.contact_margin)


TASK_CLASSES: dict[str, type[Task]] = {
    "peg_insertion": PegInsertionTask,
    "push": PushTask,
    "sort": SortTask,
    "pick_place": PickPlaceTask,
}


def model_blind_dims(task: str, proprio_dim: int) -> tuple[int, ...]:
    """Where the task's ``placement_labels`` sit in a [proprio, state] vector (the MLP state model's observation):
    the inputs a translation-free dynamics model hides (`MLPDynamicsConfig.ignore_inputs`)."""
    if task not in TASK_CLASSES:
        raise ValueError(f"task {task!r} is unknown; expected one of {tuple(TASK_CLASSES)}")
    t = TASK_CLASSES[task]
    return tuple(proprio_dim + t.state_labels.index(name) for name in t.placement_labels)


def judge_states(task: str, states: np.ndarray, reward: str = "shaped") -> tuple[np.ndarray, np.ndarray]:
    """The task's success detector and reward on a sequence of privileged states (T, state_dim), e.g. the
    next states of a world model's imagined branch -> (success (T,) bool, reward (T,) float32) by the one
    reward convention of `core.reward` (the rule every real step is labelled with)."""
    from ..reward import step_reward

    t, x = _task_states("judge_states", task, states)
    out = [t.evaluate_state(row) for row in x]
    success = np.array([o[0] for o in out], bool)
    rewards = np.array([step_reward(ok, prog, reward) for ok, prog in out], np.float32)
    return success, rewards


def contact_states(task: str, states: np.ndarray) -> np.ndarray:
    """`Task.in_contact_zone` on a sequence of privileged states (T, state_dim) -> (T,) bool, e.g. a world model's
    imagined branch (`worldsample_worldmodel.core.source.VideoSourceConfig.stop_at_contact`)."""
    t, x = _task_states("contact_states", task, states)
    return np.array([t.in_contact_zone(row) for row in x], bool)


def _task_states(who: str, task: str, states: np.ndarray) -> tuple[Task, np.ndarray]:
    """The task and a checked (T, state_dim) float64 copy of ``states`` (ValueError naming ``who`` otherwise)."""
    if task not in TASK_CLASSES:
        raise ValueError(f"task {task!r} is unknown; expected one of {tuple(TASK_CLASSES)}")
    t = TASK_CLASSES[task]()
    x = np.asarray(states, np.float64)
    if x.ndim != 2 or x.shape[1] != t.state_dim:
        raise ValueError(f"{who}({task!r}): states must be (T, {t.state_dim}), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{who}({task!r}): states hold NaN or inf")
    return t, x
