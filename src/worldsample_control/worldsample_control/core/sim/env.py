"""`FrankaTaskEnv`: the MuJoCo Franka Panda + task scene behind the `Env` protocol.

Robot model: ``gym_hil/assets/panda.xml`` from the installed gym-hil package (gym-hil is
Apache-2.0). That MJCF combines MuJoCo Menagerie's Franka Emika Panda (Apache-2.0) with
Menagerie's Robotiq 2F-85 gripper (BSD-2-Clause, from the ROS-Industrial URDF); the gripper,
not the Franka Hand, is what grasps here. The meshes it names are read from
``gym_hil/assets/franka_emika_panda/meshes`` and ``gym_hil/assets/robotiq_2f85/meshes``.
It is loaded from the package at run time with
``mujoco.MjSpec`` and modified in memory (nothing is copied into this repository):
the seven joint torque motors become joint position servos, robot bodies get gravity
compensation, and the floor, lights, cameras and task objects are added.

Control: ``set_ee_target(pos, quat, gripper_width)`` solves damped-least-squares differential
IK (warm-started, with a null-space pull towards the home posture) for the ``pinch`` site
between the fingers and sets the joint servo set-points; ``step_physics(n)`` advances the
physics ``n`` substeps. ``step(action)`` is built on these two: the normalised action
``(dx, dy, dz, gripper)`` moves the previous target by ``action[:3] * action_scale`` (kept in the
workspace box and within ``max_target_lead`` of the measured end-effector), holds the
orientation pointing down, closes the gripper when ``action[3] > 0`` (tasks that start with the
object in hand, peg insertion, hold it closed whatever the command), and runs
``EnvConfig.substeps`` physics steps (one control period). Rewards follow `core.reward`: 0 on
the success step (which terminates), ``-1 + 0.8 * progress`` (shaped) or -1 (sparse) otherwise.

Frames and units: the robot base (``link0``) is the world origin, so base frame = world frame;
the floor (z = 0) is the table. Quaternions here are MuJoCo order (w, x, y, z); ROS messages
and `core.safety` use (x, y, z, w). Pointing down is (w, x, y, z) = (0, 1, 0, 0).
Robot state for a ROS node: `ee_pose`, `ee_velocity`, `joint_positions`, `joint_velocities`,
`joint_torques`, `gripper_width`, `external_wrench`, `sim_time`.

Cameras: "front" (fixed, in front of the robot, looking at the workspace) and "wrist" (on the
gripper mount, looking along the fingers). One `mujoco.Renderer` per env (both cameras share
its size); shadows, reflections, skybox and multisampling are off; by default the robot is
drawn with its collision meshes (``EnvConfig.robot_meshes``), which is ~2x cheaper on llvmpipe.

Proprioception (``PROPRIO_DIM = 7``, float32): end-effector position xyz [m] (base frame),
gripper opening [m], end-effector linear velocity xyz [m/s].

``Observation.state`` (privileged, float32): the task's object and target positions, see
`tasks.py` (``env.state_labels`` names the entries).
"""

from __future__ import annotations

import importlib.util
import os
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np
from worldsample_common.core.env_protocol import ACTION_DIM, Observation, StepResult

from ..reward import step_reward
from .config import SIM_HOME_QPOS, TASKS, EnvConfig
from .tasks import TASK_CLASSES, Task

os.environ.setdefault("MUJOCO_GL", "egl")
import mujoco  # noqa: E402

ObjectShift = Callable[[np.ndarray, np.ndarray], np.ndarray]  # `FrankaTaskEnv.step`'s object_shift

PROPRIO_DIM = 7
PROPRIO_LABELS = ("ee_x", "ee_y", "ee_z", "gripper_width", "ee_vx", "ee_vy", "ee_vz")
HOME_QPOS = np.array(SIM_HOME_QPOS)
# Pinch site pointing down, fingers closing along the base y axis (w, x, y, z).
DOWN_QUAT_WXYZ = np.array([0.0, 1.0, 0.0, 0.0])
GRIPPER_MAX_WIDTH = 0.085
_KP = (1500.0, 1500.0, 1500.0, 1500.0, 600.0, 600.0, 300.0)
_FORCE = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)
_ROBOT_ROOT = "link0"
_GRIPPER_ROOT = "base_mount"


def panda_xml_path() -> Path:
    """Path of gym-hil's ``panda.xml`` in the installed package (the package is not imported)."""
    spec = importlib.util.find_spec("gym_hil")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the gym-hil package (Franka Panda MJCF assets) is not installed; "
            "install it with `pip install --no-deps gym-hil==0.1.14`"
        )
    path = Path(spec.submodule_search_locations[0]) / "assets" / "panda.xml"
    if not path.is_file():
        raise FileNotFoundError(f"gym-hil is installed but {path} is missing")
    return path


def build_spec(cfg: EnvConfig, task: Task) -> mujoco.MjSpec:
    spec = mujoco.MjSpec.from_file(str(panda_xml_path()))
    spec.modelname = f"worldsample_{task.name}"
    spec.option.timestep = cfg.timestep
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.noslip_iterations = 3
    arm_actuators = [a for a in spec.actuators if a.name.startswith("actuator")]
    if len(arm_actuators) != 7:
        raise RuntimeError(f"{panda_xml_path()}: expected 7 arm actuators, found {len(arm_actuators)}")
    for a, kp, f in zip(arm_actuators, _KP, _FORCE, strict=True):
        a.set_to_position(kp=kp, dampratio=1.0)
        a.ctrllimited = False
        a.forcerange = [-f, f]
        a.forcelimited = True
    for b in spec.bodies:
        if b.name != "world":
            b.gravcomp = 1.0
    # rendering: cheap lighting, no shadows or reflections, off-screen buffer big enough
    vis = spec.visual
    vis.global_.offwidth = max(cfg.image_size, 64)
    vis.global_.offheight = max(cfg.image_size, 64)
    vis.quality.offsamples = 0
    vis.quality.shadowsize = 0
    vis.headlight.ambient = [0.4, 0.4, 0.4]
    vis.headlight.diffuse = [0.4, 0.4, 0.4]
    wb = spec.worldbody
    wb.add_light(pos=[0.4, 0.0, 1.5], dir=[0, 0, -1], diffuse=[0.45, 0.45, 0.45], castshadow=False)
    spec.add_material(name="floor_mat", rgba=[0.78, 0.72, 0.62, 1.0], specular=0.05, shininess=0.1)
    wb.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[1.5, 1.5, 0.01],
                material="floor_mat", friction=[0.5, 0.005, 0.0001])
    # front camera: in front of the robot looking back at the workspace
    front = wb.add_camera(name="front", pos=[1.05, 0.0, 0.55], fovy=48.0)
    front.mode = mujoco.mjtCamLight.mjCAMLIGHT_TARGETBODY
    front.targetbody = "workspace_anchor"
    wb.add_body(name="workspace_anchor", pos=[0.5, 0.0, 0.08])
    # wrist camera on the gripper mount, looking along the fingers
    attachment = spec.body("attachment")
    attachment.add_camera(name="wrist", pos=[-0.07, 0.0, 0.02], quat=[0.0, 1.0, -1.0, 0.0], fovy=75.0)
    task.build(spec)
    return spec


class FrankaTaskEnv:
    """One task of the suite; implements `worldsample_common.core.env_protocol.Env`."""

    action_dim = ACTION_DIM
    proprio_dim = PROPRIO_DIM

    def __init__(self, task: str, cfg: EnvConfig | None = None):
        cfg = cfg if cfg is not None else EnvConfig()
        cfg.validate(task)
        self.task = task
        self.cfg = cfg
        self.control_hz = float(cfg.control_hz)
        self.max_episode_steps = cfg.max_steps_for(task)
        self._task: Task = TASK_CLASSES[task]()
        self.state_dim = self._task.state_dim
        self.state_labels = self._task.state_labels
        self.model = build_spec(cfg, self._task).compile()
        self.data = mujoco.MjData(self.model)
        self._ik = mujoco.MjData(self.model)
        m = self.model
        self._site = m.site("pinch").id
        self._arm_qadr = np.array([m.jnt_qposadr[m.joint(f"joint{i}").id] for i in range(1, 8)])
        self._arm_vadr = np.array([m.jnt_dofadr[m.joint(f"joint{i}").id] for i in range(1, 8)])
        self._arm_range = np.array([m.jnt_range[m.joint(f"joint{i}").id] for i in range(1, 8)])
        # qpos indices (J, 3) of the free-jointed bodies' positions (the task's loose objects)
        self._loose_pos_idx = np.array([m.jnt_qposadr[j] for j in range(m.njnt)
                                        if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE], dtype=int)[:, None] + np.arange(3)
        self._arm_act = np.array([m.actuator(f"actuator{i}").id for i in range(1, 8)])
        self._grip_act = m.actuator("fingers_actuator").id
        self._pads = (m.geom("left_pad1").id, m.geom("right_pad1").id)
        gripper_root = m.body(_GRIPPER_ROOT).id
        self._gripper_bodies = {b for b in range(m.nbody) if self._is_descendant(b, gripper_root)}
        self._jacp = np.zeros((3, m.nv))
        self._jacr = np.zeros((3, m.nv))
        self._renderer = None
        self._scene_option = mujoco.MjvOption()
        if cfg.robot_meshes == "collision":
            # draw the robot with its (coarser) collision meshes: ~2.5x cheaper on llvmpipe, and
            # at 64 px nearly the same picture; arm off-white, gripper dark as in the visual model
            self._scene_option.geomgroup[2] = 0
            self._scene_option.geomgroup[3] = 1
            for g in range(m.ngeom):
                if m.geom_group[g] == 3 and m.geom_bodyid[g] != 0:
                    grip = int(m.geom_bodyid[g]) in self._gripper_bodies
                    if not (grip and m.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX):  # pads keep their grey
                        m.geom_rgba[g] = (0.16, 0.16, 0.16, 1.0) if grip else (0.92, 0.92, 0.92, 1.0)
        self.camera_names: tuple[str, ...] = tuple(cfg.cameras) if cfg.render else ()
        self._rng = np.random.default_rng(cfg.seed)
        self._target_pos = np.zeros(3)
        self._target_quat = DOWN_QUAT_WXYZ.copy()
        self._q_target = HOME_QPOS.copy()
        self._steps = 0
        self._task.bind(self)

    # ------------------------------------------------------------------ model helpers
    def _is_descendant(self, body: int, root: int) -> bool:
        while body > 0:
            if body == root:
                return True
            body = int(self.model.body_parentid[body])
        return False

    def set_free_body(self, name: str, pos, quat) -> None:
        j = self.model.joint(name)
        adr, vadr = self.model.jnt_qposadr[j.id], self.model.jnt_dofadr[j.id]
        self.data.qpos[adr:adr + 3] = pos
        self.data.qpos[adr + 3:adr + 7] = np.asarray(quat) / np.linalg.norm(quat)
        self.data.qvel[vadr:vadr + 6] = 0.0

    def loose_object_positions(self) -> np.ndarray:
        """(J, 3) positions of the free-jointed bodies (the task's loose objects), in joint order."""
        return self.data.qpos[self._loose_pos_idx].copy()

    def set_mocap(self, name: str, pos) -> None:
        self.data.mocap_pos[self.model.body(name).mocapid[0]] = pos

    def mocap_pos(self, name: str) -> np.ndarray:
        return self.data.mocap_pos[self.model.body(name).mocapid[0]].copy()

    def body_pos(self, name: str) -> np.ndarray:
        return self.data.xpos[self.model.body(name).id].copy()

    # ------------------------------------------------------------------ robot state
    def ee_pos(self) -> np.ndarray:
        return self.data.site_xpos[self._site].copy()

    @property
    def sim_time(self) -> float:
        """Simulated time [s] since the last reset."""
        return float(self.data.time)

    def ee_target(self) -> np.ndarray:
        """The commanded end-effector position (what `set_ee_target` last accepted)."""
        return self._target_pos.copy()

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """End-effector (pinch point) position xyz [m] and orientation quaternion (w, x, y, z), base frame."""
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, self.data.site_xmat[self._site])
        return self.ee_pos(), quat

    def ee_velocity(self) -> np.ndarray:
        """Linear (3) and angular (3) velocity of the end-effector in the base frame."""
        vel = np.zeros(6)
        mujoco.mj_objectVelocity(self.model, self.data, mujoco.mjtObj.mjOBJ_SITE, self._site, vel, 0)
        return np.concatenate([vel[3:], vel[:3]])

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self._arm_qadr].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self._arm_vadr].copy()

    def ee_pos_at(self, q) -> np.ndarray:
        """End-effector (pinch point) position [m] the arm would have at joints ``q`` (joint1..7)."""
        d = self._ik
        d.qpos[self._arm_qadr] = np.clip(np.asarray(q, float), self._arm_range[:, 0], self._arm_range[:, 1])
        mujoco.mj_kinematics(self.model, d)
        return d.site_xpos[self._site].copy()

    def joint_targets(self) -> np.ndarray:
        """The arm's joint servo set-points (joint1..7 [rad])."""
        return self._q_target.copy()

    def joint_torques(self) -> np.ndarray:
        return self.data.actuator_force[self._arm_act].copy()

    def gripper_width(self) -> float:
        """Opening between the finger pads [m] (0 = closed, about 0.085 = fully open)."""
        a, b = self._pads
        d = float(np.linalg.norm(self.data.geom_xpos[a] - self.data.geom_xpos[b]))
        return max(0.0, d - 2 * float(self.model.geom_size[a][1]))

    def external_wrench(self) -> np.ndarray:
        """Force (3) [N] and torque (3) [Nm] that contacts with the world exert on the gripper,
        base frame, torque about the end-effector point."""
        m, d = self.model, self.data
        wrench = np.zeros(6)
        f6 = np.zeros(6)
        ee = d.site_xpos[self._site]
        for i in range(d.ncon):
            c = d.contact[i]
            b1, b2 = m.geom_bodyid[c.geom1], m.geom_bodyid[c.geom2]
            in1, in2 = b1 in self._gripper_bodies, b2 in self._gripper_bodies
            if in1 == in2:
                continue
            mujoco.mj_contactForce(m, d, i, f6)
            frame = c.frame.reshape(3, 3)
            force = frame.T @ f6[:3]  # force on geom2 from geom1, world frame
            if in1:
                force = -force
            wrench[:3] += force
            wrench[3:] += np.cross(c.pos - ee, force)
        return wrench

    # ------------------------------------------------------------------ control
    def _solve_ik(self, pos: np.ndarray, quat: np.ndarray, q0: np.ndarray, iters: int = 4) -> np.ndarray:
        m, d = self.model, self._ik
        q = q0.copy()
        cur = np.zeros(4)
        err_r = np.zeros(3)
        for _ in range(iters):
            d.qpos[self._arm_qadr] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            err_p = pos - d.site_xpos[self._site]
            mujoco.mju_mat2Quat(cur, d.site_xmat[self._site])
            mujoco.mju_subQuat(err_r, quat, cur)  # in the current site frame
            err_w = d.site_xmat[self._site].reshape(3, 3) @ err_r
            err = np.concatenate([err_p, 0.5 * err_w])
            if float(np.abs(err).max()) < 1e-5:
                break
            mujoco.mj_jacSite(m, d, self._jacp, self._jacr, self._site)
            jac = np.vstack([self._jacp[:, self._arm_vadr], 0.5 * self._jacr[:, self._arm_vadr]])
            jjt = jac @ jac.T + 1e-4 * np.eye(6)
            dq = jac.T @ np.linalg.solve(jjt, err)
            # null-space pull towards home keeps the redundant elbow where it belongs
            pinv = jac.T @ np.linalg.inv(jjt)
            dq += (np.eye(7) - pinv @ jac) @ (0.1 * (HOME_QPOS - q))
            q = np.clip(q + dq, self._arm_range[:, 0], self._arm_range[:, 1])
        return q

    def _gripper_ctrl(self, width: float) -> float:
        if self._task.gripper_held_closed:  # e.g. peg insertion: no command can open the hand
            return 255.0
        return float(255.0 * (1.0 - np.clip(width / GRIPPER_MAX_WIDTH, 0.0, 1.0)))

    def set_ee_target(self, pos, quat=None, gripper_width: float | None = None) -> None:
        """Absolute end-effector target (base frame; quaternion w, x, y, z) for the joint servos.

        The position is clipped to the workspace box; ``quat=None`` keeps pointing down;
        ``gripper_width=None`` leaves the gripper command unchanged (0 closes, 0.085 opens fully).
        """
        pos = np.asarray(pos, dtype=float)
        if pos.shape != (3,) or not np.isfinite(pos).all():
            raise ValueError(f"set_ee_target: pos must be 3 finite values, got {pos!r}")
        if quat is None:
            quat = DOWN_QUAT_WXYZ
        quat = np.asarray(quat, dtype=float)
        if quat.shape != (4,) or not np.isfinite(quat).all() or np.linalg.norm(quat) < 1e-6:
            raise ValueError(f"set_ee_target: quat must be 4 finite values (w, x, y, z), got {quat!r}")
        if gripper_width is not None and not np.isfinite(gripper_width):
            raise ValueError(f"set_ee_target: gripper_width must be finite, got {gripper_width!r}")
        pos = np.clip(pos, self.cfg.workspace_min, self.cfg.workspace_max)
        quat = quat / np.linalg.norm(quat)
        self._target_pos, self._target_quat = pos, quat
        self._q_target = self._solve_ik(pos, quat, self._q_target)
        self.data.ctrl[self._arm_act] = self._q_target
        if gripper_width is not None:
            self.data.ctrl[self._grip_act] = self._gripper_ctrl(float(gripper_width))

    # ------------------------------------------------------------------ full state (the oracle world model)
    def __getstate__(self) -> dict:
        """For a pickled run snapshot (the oracle and the audit hold an env): the task, the config and everything
        the next step and reset depend on; MuJoCo's model, data and renderer are rebuilt, not pickled."""
        return {"task": self.task, "cfg": self.cfg, "sim_state": self.sim_state(), "rng": self._rng}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["task"], state["cfg"])
        self.set_sim_state(state["sim_state"])
        self._rng = state["rng"]

    def sim_state(self) -> np.ndarray:
        """Everything the next `step` depends on, as one float64 vector: MuJoCo's integration state
        (time, qpos, qvel, actuator activations, warm start, ctrl, mocap poses, applied forces) and the
        env's own controller state (end-effector target, joint targets, step count). `set_sim_state`
        of it makes the next steps exactly those of the run it was taken from (a perfect world model,
        `core.sim.oracle`). The first entry names the task (its index in `TASKS`)."""
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        s = np.empty(mujoco.mj_stateSize(self.model, spec))
        mujoco.mj_getState(self.model, self.data, s, spec)
        return np.concatenate([[float(TASKS.index(self.task))], s, self._target_pos, self._target_quat,
                               self._q_target, [float(self._steps)]])

    def set_sim_state(self, state) -> None:
        """Restore a `sim_state` vector of this task (a clear error for one of another task or size)."""
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        n = mujoco.mj_stateSize(self.model, spec)
        s = np.asarray(state, dtype=np.float64)
        want = 1 + n + 3 + 4 + 7 + 1
        if s.shape != (want,) or not np.isfinite(s).all():
            raise ValueError(f"set_sim_state: {self.task} needs a finite state of shape ({want},) (see sim_state), "
                             f"got {s.dtype} {s.shape}")
        if s[0] != TASKS.index(self.task):
            other = TASKS[int(s[0])] if float(s[0]).is_integer() and 0 <= s[0] < len(TASKS) else repr(s[0])
            raise ValueError(f"set_sim_state: {self.task} needs a state of its own task, got one of {other}")
        s = s[1:]
        mujoco.mj_setState(self.model, self.data, s[:n], spec)
        mujoco.mj_forward(self.model, self.data)
        self._target_pos = s[n:n + 3].copy()
        self._target_quat = s[n + 3:n + 7].copy()
        self._q_target = s[n + 7:n + 14].copy()
        self._steps = int(s[n + 14])

    def set_gripper_width(self, width: float) -> None:
        """Gripper command alone (0 closes, 0.085 opens fully); the arm target is unchanged."""
        if not np.isfinite(width):
            raise ValueError(f"set_gripper_width: width must be finite, got {width!r}")
        self.data.ctrl[self._grip_act] = self._gripper_ctrl(float(width))

    def step_physics(self, n: int | None = None) -> None:
        """Advance the physics ``n`` substeps (default: one control period)."""
        n = self.cfg.substeps if n is None else int(n)
        if n < 0:
            raise ValueError(f"step_physics: n must be >= 0, got {n}")
        if n:
            mujoco.mj_step(self.model, self.data, nstep=n)
        mujoco.mj_forward(self.model, self.data)

    def settle_grasp(self, seconds: float = 0.4) -> None:
        """Close the gripper with gravity off (used by resets that start with an object in hand)."""
        g = self.model.opt.gravity.copy()
        self.model.opt.gravity[:] = 0.0
        self.data.ctrl[self._grip_act] = 255.0
        self.step_physics(int(round(seconds / self.model.opt.timestep)))
        self.model.opt.gravity[:] = g

    # ------------------------------------------------------------------ Env protocol
    def reset(self, seed: int | None = None) -> Observation:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        rng = self._rng
        mujoco.mj_resetData(self.model, self.data)
        start = self._task.start_ee(rng)
        q = self._solve_ik(start, DOWN_QUAT_WXYZ, HOME_QPOS, iters=60)
        self.data.qpos[self._arm_qadr] = q
        self.data.ctrl[self._arm_act] = q
        self._q_target = q.copy()
        mujoco.mj_forward(self.model, self.data)
        self._target_pos = self.ee_pos()
        self._target_quat = DOWN_QUAT_WXYZ.copy()
        self._task.reset(self, rng)
        mujoco.mj_forward(self.model, self.data)
        self._steps = 0
        return self._observe()

    def step(self, action, object_shift: ObjectShift | None = None) -> StepResult:
        """One control period towards ``action`` (dx, dy, dz, gripper). ``object_shift`` (the degraded oracle,
        `core.sim.oracle`): a function ``(before, after) -> positions`` of the loose objects' positions (J, 3)
        before and after the physics step; the objects are put there before the step is observed and judged."""
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (ACTION_DIM,):
            raise ValueError(f"action must have shape ({ACTION_DIM},) (dx, dy, dz, gripper), got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"action must be finite, got {a.tolist()}")
        a = np.clip(a, -1.0, 1.0)
        # A task that holds the hand closed ignores a[3]; it stays in the recorded action as commanded.
        # (Recording a constant 1.0 instead left the critic without data on any other value, and the
        # bootstrapped targets then queried it where it only extrapolates: peg RL-only stuck at 0.1.)
        ee = self.ee_pos()
        lead = self.cfg.max_target_lead
        target = np.clip(self._target_pos + a[:3] * self.cfg.action_scale, ee - lead, ee + lead)
        self.set_ee_target(target, DOWN_QUAT_WXYZ, 0.0 if a[3] > 0 else GRIPPER_MAX_WIDTH)
        return self._advance({"clipped_action": a.astype(np.float32)}, object_shift)

    def step_joint_targets(self, q, gripper_width: float) -> StepResult:
        """One control period towards joint set-points ``q`` (joint1..7 [rad]) - what a
        JointTrajectoryController's target does - with the gripper commanded to ``gripper_width``
        (0 closes, 0.085 opens fully). Reward, success and truncation as in `step`. ``q`` is clipped
        to the model's joint ranges; the commanded end-effector (`ee_target`) becomes the pinch
        point at ``q``, so `step` can follow on."""
        q = np.asarray(q, dtype=float)
        if q.shape != (7,) or not np.isfinite(q).all():
            raise ValueError(f"step_joint_targets: q must be 7 finite joint positions, got {q!r}")
        if not np.isfinite(gripper_width):
            raise ValueError(f"step_joint_targets: gripper_width must be finite, got {gripper_width!r}")
        q = np.clip(q, self._arm_range[:, 0], self._arm_range[:, 1])
        self._q_target = q.copy()
        self.data.ctrl[self._arm_act] = q
        self.data.ctrl[self._grip_act] = self._gripper_ctrl(float(gripper_width))
        self._target_pos = self.ee_pos_at(q)
        return self._advance({"joint_targets": q.copy()})

    def _advance(self, extra: dict, object_shift: ObjectShift | None = None) -> StepResult:
        before = self.loose_object_positions() if object_shift is not None else None
        self.step_physics()
        if object_shift is not None:
            after = self.loose_object_positions()
            to = np.asarray(object_shift(before, after), np.float64)
            if to.shape != after.shape or not np.isfinite(to).all():
                raise ValueError(f"object_shift must return finite positions of shape {after.shape}, got {to.shape}")
            self.data.qpos[self._loose_pos_idx] = to
            mujoco.mj_forward(self.model, self.data)
        self._steps += 1
        success, progress = self._task.evaluate(self)
        truncated = self._steps >= self.max_episode_steps and not success
        info = {
            "success": success, "progress": progress, "sparse_reward": step_reward(success, progress, "sparse"),
            "shaped_reward": step_reward(success, progress, "shaped"), "step": self._steps, **extra,
        }
        reward = info[f"{self.cfg.reward}_reward"]
        return StepResult(self._observe(), float(reward), bool(success), bool(truncated), bool(success), info)

    def close(self) -> None:
        """Release the renderer (also done automatically at garbage collection or exit)."""
        if self._renderer is not None:
            self._finalizer()
            self._renderer = None

    def __enter__(self) -> FrankaTaskEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ observations
    def proprio(self) -> np.ndarray:
        v = self.ee_velocity()
        return np.concatenate([self.ee_pos(), [self.gripper_width()], v[:3]]).astype(np.float32)

    def privileged_state(self) -> np.ndarray:
        return self._task.state(self).astype(np.float32)

    def success(self) -> bool:
        return self._task.evaluate(self)[0]

    def evaluate_task(self) -> tuple[bool, float]:
        """(success, reward under `core.reward`'s convention and ``cfg.reward``) of the current state,
        e.g. for a node driving `step_physics`."""
        success, progress = self._task.evaluate(self)
        return bool(success), step_reward(success, progress, self.cfg.reward)

    def render(self, camera: str) -> np.ndarray:
        """One uint8 (H, W, 3) RGB frame from ``camera`` ("front" or "wrist")."""
        if camera not in ("front", "wrist"):
            raise ValueError(f"camera must be 'front' or 'wrist', got {camera!r}")
        if self._renderer is None:
            size = self.cfg.image_size
            try:
                self._renderer = mujoco.Renderer(self.model, size, size)
            except Exception as exc:  # mujoco.FatalError and GL platform errors
                from . import MUJOCO_IMPORTED_BEFORE_GL_SET

                early = (" mujoco was imported before MUJOCO_GL was set: import worldsample_control.core.sim "
                         "first or export MUJOCO_GL=egl." if MUJOCO_IMPORTED_BEFORE_GL_SET else "")
                raise RuntimeError(
                    f"cannot create a MuJoCo renderer (MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}): {exc}. "
                    "Headless rendering needs MUJOCO_GL=egl (or osmesa) set before mujoco is first imported; "
                    "use EnvConfig(render=False) for state-only runs." + early
                ) from exc
            # closes the GL context before interpreter teardown (avoids EGL errors at exit)
            self._finalizer = weakref.finalize(self, self._renderer.close)
            flags = self._renderer.scene.flags
            flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
            flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = False
        self._renderer.update_scene(self.data, camera=camera, scene_option=self._scene_option)
        return self._renderer.render()

    def _observe(self) -> Observation:
        images = {c: self.render(c) for c in self.camera_names}
        return Observation(images=images, proprio=self.proprio(), state=self.privileged_state())
