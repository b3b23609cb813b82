"""ActionFilter: no input stream, however adversarial, yields a command outside the limits."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from worldsample_control.core.safety import ActionFilter, SafetyConfig, quat_angle

CFG = SafetyConfig(workspace_min=(0.3, -0.2, 0.05), workspace_max=(0.7, 0.2, 0.5),
                   max_translation_per_step=0.02, max_rotation_per_step=0.1, max_velocity=0.3,
                   control_hz=10.0, watchdog_timeout_s=0.5, action_scale=0.05, max_target_lead=0.0)


def _assert_safe(f: ActionFilter, cmd, base_pos, base_quat, dt_limit=None):
    lim = min(CFG.max_translation_per_step, CFG.max_velocity / CFG.control_hz) if dt_limit is None else dt_limit
    assert f.check_command(cmd, base_position=base_pos, step_limit=lim) == []
    assert quat_angle(cmd.quaternion, base_quat) <= CFG.max_rotation_per_step + 1e-6


def _rand_quat(rng):
    q = rng.normal(size=4)
    return q / np.linalg.norm(q)


def test_nan_inf_and_bad_shapes_hold_and_report():
    f = ActionFilter(CFG)
    f.update_state([0.5, 0.0, 0.2], [1, 0, 0, 0], 0.08)
    for bad in ([np.nan, 0, 0, 0], [0, np.inf, 0, 1], [0, 0, -np.inf, 0], [1, 2, 3], None, [[1, 2], [3, 4]]):
        cmd = f.filter_action(bad)
        assert cmd.hold
        np.testing.assert_allclose(cmd.position, [0.5, 0.0, 0.2])
        ev = f.drain_events()
        assert ev and ev[-1].reason in ("non_finite_action", "bad_shape")
        assert ev[-1].commanded == (0.5, 0.0, 0.2)
    cmd = f.filter_target([np.nan, 0.5, 0.2])
    assert cmd.hold and f.drain_events()[-1].reason == "non_finite_target"
    cmd = f.filter_target([0.5, 0.0, 0.2], [0, 0, 0, 0])
    assert cmd.hold


def test_huge_steps_are_clipped_and_reported():
    f = ActionFilter(CFG)
    f.update_state([0.5, 0.0, 0.2], [1, 0, 0, 0], 0.08)
    cmd = f.filter_action([1e6, -1e6, 50, 1])
    np.testing.assert_allclose(np.linalg.norm(cmd.position - [0.5, 0.0, 0.2]), 0.02, atol=1e-9)
    assert cmd.gripper_width == CFG.gripper_width_min
    reasons = [e.reason for e in f.drain_events()]
    assert "action_out_of_range" in reasons and "translation_step" in reasons
    # An absolute target far outside the box.
    cmd = f.filter_target([10.0, 10.0, -10.0], gripper_width=1.0)
    reasons = [e.reason for e in f.drain_events()]
    assert "translation_step" in reasons and "gripper_width" in reasons
    assert cmd.gripper_width == CFG.gripper_width_max


def test_out_of_box_state_projects_into_box():
    f = ActionFilter(CFG)
    f.update_state([2.0, 2.0, 2.0], [1, 0, 0, 0])
    cmd = f.filter_action([0, 0, 0, 0])
    np.testing.assert_allclose(cmd.position, [0.7, 0.2, 0.5])
    assert "state_outside_workspace" in [e.reason for e in f.drain_events()]


def test_rotation_limited():
    f = ActionFilter(CFG)
    f.update_state([0.5, 0.0, 0.2], [1, 0, 0, 0])
    # 90 deg about z relative to pointing down.
    target = np.array([math.sqrt(0.5), math.sqrt(0.5), 0, 0])
    cmd = f.filter_target([0.5, 0.0, 0.2], target)
    assert quat_angle(cmd.quaternion, np.array([1.0, 0, 0, 0])) == pytest.approx(0.1, abs=1e-6)
    assert [e.reason for e in f.drain_events()] == ["rotation_step"]


def test_velocity_limit_uses_time_between_commands():
    f = ActionFilter(CFG)
    f.update_state([0.5, 0.0, 0.2], [1, 0, 0, 0])
    f.filter_action([0, 0, 0, 0], stamp=0.0)
    cmd = f.filter_action([1, 0, 0, 0], stamp=0.01)  # 10 ms later: 0.3 m/s * 0.01 s = 3 mm
    assert np.linalg.norm(cmd.position - [0.5, 0, 0.2]) == pytest.approx(0.003, abs=1e-9)
    assert "velocity" in [e.reason for e in f.drain_events()]


def test_watchdog_holds_and_reports_once():
    f = ActionFilter(CFG)
    assert f.check_watchdog(0.0) is None  # no state: nothing to hold
    f.update_state([0.5, 0.0, 0.2], [1, 0, 0, 0], 0.04)
    f.filter_action([0.5, 0, 0, 1], stamp=0.0)
    assert f.check_watchdog(0.3) is None
    f.drain_events()
    f.update_state([0.51, 0.0, 0.2], [1, 0, 0, 0], 0.0)
    hold = f.check_watchdog(1.0)
    assert hold is not None and hold.hold
    np.testing.assert_allclose(hold.position, [0.51, 0.0, 0.2])
    assert hold.gripper_width == CFG.gripper_width_min  # keeps the last gripper command
    assert f.check_watchdog(1.2) is not None
    assert [e.reason for e in f.drain_events()] == ["watchdog"]
    f.filter_action([0, 0, 0, 0], stamp=1.3)
    assert f.check_watchdog(1.4) is None


def test_steps_integrate_from_the_target_within_lead_of_the_measured_pose():
    f = ActionFilter(dataclasses.replace(CFG, max_target_lead=0.03))
    f.update_state([0.5, 0.0, 0.2], [1, 0, 0, 0])
    for _ in range(5):  # the arm does not move (blocked): the target leads by at most 3 cm
        cmd = f.filter_action([0, 0, -1, 0])
    np.testing.assert_allclose(cmd.position, [0.5, 0.0, 0.2 - 0.03], atol=1e-12)
    f.update_state([0.5, 0.0, 0.15])
    cmd = f.filter_action([0.2, 0, 0, 0])  # steps integrate from the last target (within lead)
    np.testing.assert_allclose(cmd.position, [0.51, 0.0, 0.17], atol=1e-12)


@pytest.mark.parametrize("seed,lead", [(s, lead) for s in range(4) for lead in (0.0, 0.03)])
def test_random_adversarial_streams_stay_within_limits(seed, lead):
    rng = np.random.default_rng(seed)
    f = ActionFilter(dataclasses.replace(CFG, max_target_lead=lead))
    pos = rng.uniform(-1, 1.5, 3)
    quat = _rand_quat(rng)
    f.update_state(pos, quat, 0.04)
    specials = [np.nan, np.inf, -np.inf, 1e308, -1e308, 0.0, 1.0, -1.0, 1e-300]
    t = 0.0
    for _ in range(400):
        t += float(rng.choice([0.0, 0.001, 0.1, 0.5, 2.0]))
        # The measured pose wanders (sometimes garbage, sometimes outside the box).
        if rng.random() < 0.3:
            cand = rng.uniform(-1, 1.5, 3)
            if rng.random() < 0.1:
                cand[rng.integers(3)] = rng.choice(specials)
            f.update_state(cand, _rand_quat(rng), float(rng.uniform(-0.1, 0.2)), stamp=t)
        meas = f._measured.position
        last = None if f.last_command is None else f.last_command.position
        if last is not None and (lead > 0 or meas is None):
            base_pos = last
        else:
            base_pos = meas
        base_quat = f._measured.quaternion
        prev_t = f._last_cmd_time
        kind = rng.integers(4)
        if kind == 0:
            a = rng.uniform(-5, 5, 4)
        elif kind == 1:
            a = rng.normal(size=4)
            a[rng.integers(4)] = rng.choice(specials)
        elif kind == 2:
            a = rng.uniform(-1, 1, int(rng.integers(0, 7)))
        else:
            a = None
        if a is None:
            p = rng.uniform(-3, 3, 3)
            if rng.random() < 0.2:
                p[rng.integers(3)] = rng.choice(specials)
            cmd = f.filter_target(p, _rand_quat(rng) * rng.uniform(0.1, 10), float(rng.uniform(-1, 1)), stamp=t)
        else:
            cmd = f.filter_action(a, stamp=t)
        dt = CFG.control_hz ** -1 if prev_t is None else min(max(t - prev_t, 0.0), 1 / CFG.control_hz)
        lim = min(CFG.max_translation_per_step, CFG.max_velocity * dt)
        if cmd.hold:  # rejected input: hold near the measured pose (last target within lead of it)
            hold_base = base_pos if meas is None or last is None else (
                meas if lead == 0 else np.clip(last, meas - lead, meas + lead))
            _assert_safe(f, cmd, hold_base, base_quat, dt_limit=0.0)
        else:
            _assert_safe(f, cmd, base_pos, base_quat, dt_limit=lim)
        if rng.random() < 0.05:
            prev = f.last_command.position
            meas = f._measured.position
            expect = prev
            if meas is not None:
                expect = meas if lead == 0 else np.clip(prev, meas - lead, meas + lead)
            hold = f.check_watchdog(t + 1.0)
            assert hold is not None and f.check_command(hold, base_position=expect, step_limit=0.0) == []
    assert f.num_events > 0
    for e in f.drain_events():
        assert e.reason and isinstance(e.requested, tuple) and isinstance(e.commanded, tuple)


def test_config_validation_names_field():
    with pytest.raises(ValueError, match="workspace_min"):
        ActionFilter(SafetyConfig(workspace_min=(1, 0, 0), workspace_max=(0, 1, 1)))
    with pytest.raises(ValueError, match="max_velocity"):
        ActionFilter(SafetyConfig(max_velocity=float("nan")))
