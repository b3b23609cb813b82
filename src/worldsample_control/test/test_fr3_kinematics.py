"""FR3 kinematics / IK (core.fr3_kinematics) and the Cartesian -> joint command layer (core.joint_command),
checked against the MuJoCo arm and driving it through the joint-target path the real arm uses (issue 14)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from worldsample_control.core import fr3_kinematics as k
from worldsample_control.core.joint_command import JointCommandConfig, JointCommander, joints_from_state
from worldsample_control.core.safety import DOWN_QUAT_XYZW, ActionFilter, SafetyConfig
from worldsample_control.core.sim.config import SIM_HOME_QPOS, SIM_TCP_OFFSET


def _sim_ik_config(**kw) -> k.IKConfig:
    return k.IKConfig(tcp_xyz=SIM_TCP_OFFSET[0], tcp_quat=SIM_TCP_OFFSET[1], rest_posture=SIM_HOME_QPOS, **kw)


@pytest.fixture(scope="module")
def env():
    from worldsample_control.core.sim import EnvConfig, make_env

    e = make_env("push", EnvConfig(render=False))
    yield e
    e.close()


def test_dh_model_matches_the_mujoco_arm_and_its_tcp(env):
    """Franka's published DH table reproduces the MuJoCo model's link7 frame, and DH + SIM_TCP_OFFSET its
    end-effector site, over random joint configurations (both arms share the FR3/Panda kinematics)."""
    import mujoco

    m, d = env.model, mujoco.MjData(env.model)
    ik = k.FR3IK(_sim_ik_config())
    lo = np.maximum(env._arm_range[:, 0], k.FR3_Q_MIN)
    hi = np.minimum(env._arm_range[:, 1], k.FR3_Q_MAX)
    rng = np.random.default_rng(0)
    link7, site = m.body("link7").id, m.site("pinch").id
    for _ in range(25):
        q = rng.uniform(lo, hi)
        d.qpos[env._arm_qadr] = q
        mujoco.mj_kinematics(m, d)
        frames = k.joint_frames(q)
        np.testing.assert_allclose(frames[6][:3, 3], d.xpos[link7], atol=1e-9)
        np.testing.assert_allclose(frames[6][:3, :3], d.xmat[link7].reshape(3, 3), atol=1e-9)
        t = ik.forward(q)
        np.testing.assert_allclose(t[:3, 3], d.site_xpos[site], atol=1e-6)
        np.testing.assert_allclose(t[:3, :3], d.site_xmat[site].reshape(3, 3), atol=1e-6)  # MJCF quaternions are rounded


def test_jacobian_matches_finite_differences():
    q = np.array(k.FR3_READY) + 0.1
    jac, ee = k.jacobian(q)
    eps = 1e-6
    for i in range(7):
        dq = np.zeros(7)
        dq[i] = eps
        t2 = k.forward(q + dq)
        np.testing.assert_allclose((t2[:3, 3] - ee[:3, 3]) / eps, jac[:3, i], atol=1e-5)
        w = k.rotation_error(t2[:3, :3], ee[:3, :3]) / eps
        np.testing.assert_allclose(w, jac[3:, i], atol=1e-5)


def test_quaternion_round_trip_and_rotation_error():
    rng = np.random.default_rng(1)
    for _ in range(20):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        q = q if q[3] >= 0 else -q
        np.testing.assert_allclose(k.matrix_to_quat(k.quat_to_matrix(q)), q, atol=1e-12)
    r = k.quat_to_matrix(DOWN_QUAT_XYZW)  # 180 deg about x
    np.testing.assert_allclose(np.linalg.norm(k.rotation_error(r, np.eye(3))), math.pi, atol=1e-9)


def test_ik_reaches_tabletop_targets_pointing_down_within_a_tenth_of_a_millimetre():
    ik = k.FR3IK()  # the real arm: Franka Hand TCP, FR3 limits
    rng = np.random.default_rng(2)
    errors = []
    for _ in range(100):
        target = rng.uniform((0.3, -0.3, 0.02), (0.65, 0.3, 0.4))
        res = ik.solve(target, DOWN_QUAT_XYZW, k.FR3_READY)
        assert res.converged, (target, res)
        assert (res.q >= np.array(k.FR3_Q_MIN)).all() and (res.q <= np.array(k.FR3_Q_MAX)).all()
        pos, quat = ik.pose(res.q)
        errors.append(np.linalg.norm(pos - target))
        assert abs(abs(float(np.dot(quat, DOWN_QUAT_XYZW))) - 1.0) < 1e-5
    assert max(errors) < 1e-4, max(errors)


def test_ik_keeps_joint_limits_and_the_workspace_box():
    cfg = k.IKConfig(q_max=(2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 0.2))  # joint 7 capped at 0.2 rad
    ik = k.FR3IK(cfg)
    res = ik.solve((0.5, 0.0, 0.2), DOWN_QUAT_XYZW, k.FR3_READY)  # from ready the down pose wants ~0.785 there
    assert res.q[6] <= 0.2 - cfg.joint_margin + 1e-12
    assert res.converged and res.position_error < 1e-3  # the redundant arm found another configuration
    # joints boxed in around the ready pose: a target 0.2 m away cannot be reached; limits still hold
    ready = np.array(k.FR3_READY)
    ik = k.FR3IK(k.IKConfig(q_min=tuple(ready - 0.05), q_max=tuple(ready + 0.05), joint_margin=0.0))
    start = ik.pose(ready)[0]
    res = ik.solve(start + (0.0, 0.2, 0.0), ik.pose(ready)[1], ready)
    assert not res.converged and res.position_error > 0.1
    assert (np.abs(res.q - ready) <= 0.05 + 1e-12).all()
    res = k.FR3IK().solve((1.5, 0.0, -0.3), DOWN_QUAT_XYZW, k.FR3_READY)
    assert res.clipped_to_workspace
    np.testing.assert_allclose(res.target, (0.75, 0.0, 0.012))
    np.testing.assert_allclose(k.FR3IK().pose(res.q)[0], res.target, atol=1e-3)
    with pytest.raises(ValueError, match="position must be 3 finite"):
        k.FR3IK().solve((np.nan, 0.0, 0.2), DOWN_QUAT_XYZW, k.FR3_READY)
    with pytest.raises(ValueError, match="seed must be 7 finite"):
        k.FR3IK().solve((0.5, 0.0, 0.2), DOWN_QUAT_XYZW, [0.0] * 6)
    with pytest.raises(ValueError, match="workspace_min"):
        k.FR3IK(k.IKConfig(workspace_min=(1.0, 0.0, 0.0), workspace_max=(0.5, 1.0, 1.0)))


def test_joint_commander_holds_on_unreachable_targets_and_scales_duration():
    jc = JointCommander(JointCommandConfig(min_duration=0.1))
    with pytest.raises(RuntimeError, match="joint_states"):
        jc.command((0.5, 0.0, 0.2), DOWN_QUAT_XYZW)
    jc.update_joints(k.FR3_READY)
    start = jc.ik.pose(k.FR3_READY)[0]
    ok = jc.command(start + (0.03, 0.0, -0.03), DOWN_QUAT_XYZW)  # a safety-filter-sized step
    assert not ok.hold and ok.position_error < 1e-4
    # the duration keeps every joint within velocity_scale of its limit
    speed = np.abs(ok.positions - np.array(k.FR3_READY)) / ok.duration
    assert (speed <= np.array(k.FR3_DQ_MAX) * jc.config.velocity_scale + 1e-9).all()
    # pointing up needs a reconfiguration of the arm: refused, the last target holds
    bad = jc.command(start + (0.03, 0.0, -0.03), k.matrix_to_quat(k.quat_to_matrix(DOWN_QUAT_XYZW) @ np.diag([1, -1, -1])))
    assert bad.hold and "ik_joint_jump" in bad.reason
    np.testing.assert_array_equal(bad.positions, ok.positions)
    # out of reach (a box wider than the arm): refused as unreachable
    far = JointCommander(JointCommandConfig(ik=k.IKConfig(workspace_max=(2.0, 2.0, 2.0))))
    far.update_joints(k.FR3_READY)
    out = far.command((1.5, 0.0, 0.3), DOWN_QUAT_XYZW)
    assert out.hold and "ik_unreachable" in out.reason and out.position_error > 0.3
    np.testing.assert_array_equal(out.positions, k.FR3_READY)
    assert joints_from_state(["fr3_finger_joint1"], [0.01]) is None
    names = [f"fr3_joint{i}" for i in (7, 6, 5, 4, 3, 2, 1)]
    np.testing.assert_array_equal(joints_from_state(names, list(range(7))), [6, 5, 4, 3, 2, 1, 0])


def test_cartesian_targets_reach_the_mujoco_end_effector_through_joint_targets(env):
    """Safety filter -> IK -> joint set-points -> MuJoCo servos: the end effector ends where it was sent."""
    env.reset(seed=3)
    filt = ActionFilter(SafetyConfig())
    jc = JointCommander(JointCommandConfig(ik=_sim_ik_config()))
    worst = 0.0
    for target in [(0.5, 0.1, 0.2), (0.6, -0.2, 0.1), (0.4, 0.0, 0.05), (0.65, 0.25, 0.3)]:
        for _ in range(25):  # the filter moves at most 3.5 cm per step; then the arm settles
            pos, quat_wxyz = env.ee_pose()
            filt.update_state(pos, np.roll(quat_wxyz, -1), env.gripper_width())
            cmd = filt.filter_target(target, DOWN_QUAT_XYZW, gripper_width=0.08)
            jc.update_joints(env.joint_positions())
            jt = jc.command(cmd.position, cmd.quaternion)
            assert not jt.hold
            env.step_joint_targets(jt.positions, cmd.gripper_width)
        pos, quat_wxyz = env.ee_pose()
        err = float(np.linalg.norm(pos - np.asarray(target)))
        worst = max(worst, err)
        assert err < 0.002, (target, pos)
        assert abs(float(np.dot(np.roll(quat_wxyz, -1), DOWN_QUAT_XYZW))) > 0.999
    print(f"worst end-effector error {worst * 1000:.3f} mm")
