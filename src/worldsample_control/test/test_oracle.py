"""The oracle world model: a restored simulator state reproduces the recorded run exactly."""

from __future__ import annotations

import numpy as np
import pytest
from worldsample_common.core.episode import Source
from worldsample_control.core.rollout import run_episode
from worldsample_control.core.sim import EnvConfig, make_env
from worldsample_control.core.sim.oracle import ORACLE_VERSION, OracleConfig, OracleSyntheticSource


def _recorded_episode(task: str, steps: int, seed: int = 3):
    """A random-action episode with the full simulator state kept at every observation."""
    env = make_env(task, EnvConfig(render=False, max_episode_steps=steps))
    rng = np.random.default_rng(seed)
    sims = []

    def policy(obs):
        sims.append(env.sim_state())
        return rng.uniform(-1, 1, 4).astype(np.float32)

    ep = run_episode(env, policy, seed=seed, source=Source.REAL)
    sims.append(env.sim_state())
    ep.sim_states = np.stack(sims)
    ep.validate()
    return env, ep


class ReplayPolicy:
    """Acts as the recorded episode did at the recorded observation it is shown (matched on proprio)."""

    version = "replay"

    def __init__(self, ep) -> None:
        self.ep = ep

    def act_batch(self, images, proprio, noise_std=0.0, rng=None, state=None):
        out = []
        for p in np.asarray(proprio):
            t = int(np.argmin(np.abs(self.ep.proprio[:-1] - p).sum(1)))
            out.append(self.ep.actions[t])
        return np.stack(out).astype(np.float32)


@pytest.mark.parametrize("task", ["push", "peg_insertion", "sort"])
def test_restored_state_reproduces_the_recorded_next_state(task):
    env, ep = _recorded_episode(task, 12)
    other = make_env(task, EnvConfig(render=False, max_episode_steps=12))
    other.reset(seed=99)  # a different episode, then restored
    for t in (0, 5, ep.length - 1):
        other.set_sim_state(ep.sim_states[t])
        np.testing.assert_array_equal(other.proprio(), ep.proprio[t])
        res = other.step(ep.actions[t])
        np.testing.assert_array_equal(res.observation.proprio, ep.proprio[t + 1])
        np.testing.assert_array_equal(res.observation.state, ep.states[t + 1])
        assert np.float32(res.reward) == ep.rewards[t]  # episodes hold float32 rewards
        np.testing.assert_array_equal(other.sim_state(), ep.sim_states[t + 1])


def test_set_sim_state_refuses_another_tasks_state():
    _, ep = _recorded_episode("push", 3)
    peg = make_env("peg_insertion", EnvConfig(render=False))
    with pytest.raises(ValueError, match="set_sim_state: peg_insertion needs a state of its own task, got one of push"):
        peg.set_sim_state(ep.sim_states[0])  # the same size as push's
    sort = make_env("sort", EnvConfig(render=False))
    with pytest.raises(ValueError, match="set_sim_state: sort needs a finite state of shape"):
        sort.set_sim_state(ep.sim_states[0])
    push = make_env("push", EnvConfig(render=False))
    bad = ep.sim_states[0].copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        push.set_sim_state(bad)


def test_oracle_branches_replay_the_recorded_rollout_exactly():
    env, ep = _recorded_episode("push", 20)
    src = OracleSyntheticSource(make_env("push", EnvConfig(render=False, max_episode_steps=20)),
                                OracleConfig(action_noise=0.0), seed=1)
    src.observe_real(ep)
    branches = src.generate(ReplayPolicy(ep), num_branches=6, horizon=5)
    assert len(branches) == 6
    for b in branches:
        t = int(b.extras["start_step"])
        n = b.length
        assert b.source == Source.SYNTHETIC and b.world_model_version == ORACLE_VERSION
        assert n == min(5, ep.length - t)  # random actions never succeed: only the step limit ends a branch early
        np.testing.assert_array_equal(b.proprio, ep.proprio[t:t + n + 1])
        np.testing.assert_array_equal(b.states, ep.states[t:t + n + 1])
        np.testing.assert_array_equal(b.actions, ep.actions[t:t + n])
        np.testing.assert_allclose(b.rewards, ep.rewards[t:t + n], rtol=0, atol=0)
        assert b.truncated[-1] == (t + n == ep.length)
        assert not b.uncertainty.any()


def test_oracle_refuses_episodes_without_sim_states():
    env, ep = _recorded_episode("push", 4)
    ep.sim_states = None
    src = OracleSyntheticSource(make_env("push", EnvConfig(render=False)))
    with pytest.raises(ValueError, match="no sim_states"):
        src.observe_real(ep)
    assert src.generate(ReplayPolicy(ep), 3, 3) == []  # nothing observed: nothing to branch from


def test_object_shift_moves_the_objects_before_the_step_is_observed_and_judged():
    from worldsample_control.core.sim.tasks import judge_states

    env = make_env("push", EnvConfig(render=False))
    env.reset(seed=4)
    start = env.loose_object_positions()
    assert start.shape == (1, 3)  # push: the block
    res = env.step(np.zeros(4), object_shift=lambda before, after: before + [0.01, 0.0, 0.0])
    np.testing.assert_allclose(env.loose_object_positions(), start + [0.01, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(res.observation.state[:3], start[0] + [0.01, 0.0, 0.0], atol=1e-9)
    success, reward = judge_states("push", res.observation.state[None], reward=env.cfg.reward)
    assert res.success == bool(success[0]) and res.reward == pytest.approx(float(reward[0]), abs=1e-6)
    with pytest.raises(ValueError, match="object_shift must return finite positions"):
        env.step(np.zeros(4), object_shift=lambda before, after: np.full((2, 3), np.nan))


def test_degraded_oracle_branches_drift_and_are_judged_on_the_drifted_state():
    from worldsample_control.core.sim.tasks import judge_states

    env, ep = _recorded_episode("push", 20)
    src = OracleSyntheticSource(make_env("push", EnvConfig(render=False, max_episode_steps=20)),
                                OracleConfig(action_noise=0.0, object_noise=0.005), seed=1)
    src.observe_real(ep)
    drift = []
    for b in src.generate(ReplayPolicy(ep), num_branches=6, horizon=5):
        t, n = int(b.extras["start_step"]), b.length
        np.testing.assert_array_equal(b.states[0], ep.states[t])  # the start is the real state
        drift.append(np.abs(b.states[1:, :2] - ep.states[t + 1:t + n + 1, :2]).max())
        _, reward = judge_states("push", b.states[1:], reward="shaped")
        np.testing.assert_allclose(b.rewards, reward, atol=1e-6)
    assert min(drift) > 0  # every branch's block left the recorded path
    for bad in ({"object_noise": -0.1}, {"object_motion_scale": float("nan")}):
        with pytest.raises(ValueError, match="OracleConfig"):
            OracleConfig(**bad).validate()


def test_audit_finds_no_error_in_exact_branches_and_the_drift_of_degraded_ones(tmp_path):
    from worldsample_control.core.sim.oracle import AUDIT_FIELDS, SyntheticAudit

    env, ep = _recorded_episode("push", 20)
    for noise, path in ((0.0, tmp_path / "exact.csv"), (0.01, tmp_path / "noisy.csv")):
        inner = OracleSyntheticSource(make_env("push", EnvConfig(render=False, max_episode_steps=20)),
                                      OracleConfig(action_noise=0.0, object_noise=noise), seed=1)
        audit = SyntheticAudit(inner, make_env("push", EnvConfig(render=False, max_episode_steps=20)), path)
        assert audit.needs_sim_state and audit.version == ORACLE_VERSION  # the inner source's
        audit.observe_real(ep)
        branches = audit.generate(ReplayPolicy(ep), num_branches=4, horizon=3)
        assert len(branches) == 4 and len(audit.rows) == sum(b.length for b in branches)
        assert path.read_text().splitlines()[0] == ",".join(AUDIT_FIELDS)
        s = audit.summary(horizons=(1, 3))
        if noise == 0:
            assert s["k=1"]["object_rmse"] == 0 and s["k=1"]["reward_mae"] < 1e-6 and s["k=1"]["ee_rmse"] == 0
            assert all(r["object_rise_predicted"] == r["object_rise_real"] for r in audit.rows)
            assert s["k=3"]["lifted_predicted"] == s["k=3"]["lifted_real"] == s["k=3"]["lifted_both"]
        else:  # the block drifts by ~1 cm a step in imagination; the arm is exact
            assert s["k=1"]["object_rmse"] > 0.003 and s["k=3"]["object_rmse"] > s["k=1"]["object_rmse"]
            assert s["k=1"]["ee_rmse"] < 1e-6


class _Liar:
    """The exact oracle with wrong labels: every reward +5, and (``cut``) each branch cut after its first step as
    a terminated success."""

    def __init__(self, inner, cut: bool) -> None:
        self.inner, self.cut, self.version = inner, cut, inner.version

    def observe_real(self, episode) -> None:
        self.inner.observe_real(episode)

    def generate(self, policy, num_branches, horizon):
        from dataclasses import replace

        out = []
        for e in self.inner.generate(policy, num_branches, horizon):
            e = replace(e, rewards=e.rewards + 5.0)
            if self.cut:
                e = replace(e, images={}, proprio=e.proprio[:2], states=e.states[:2], actions=e.actions[:1],
                            rewards=e.rewards[:1], terminated=[True], truncated=[False], successes=[True],
                            uncertainty=e.uncertainty[:1], trust=e.trust[:1], sim_states=e.sim_states[:2])
            out.append(e)
        return out


@pytest.mark.parametrize("cut", [False, True])
def test_relabelling_audit_gives_the_model_branches_the_replays_labels(tmp_path, cut):
    from worldsample_control.core.sim.oracle import SyntheticAudit

    env, ep = _recorded_episode("push", 20)
    exact = OracleSyntheticSource(make_env("push", EnvConfig(render=False, max_episode_steps=20)),
                                  OracleConfig(action_noise=0.0), seed=1)
    exact.observe_real(ep)
    truth = exact.generate(ReplayPolicy(ep), num_branches=4, horizon=3)
    liar = _Liar(OracleSyntheticSource(make_env("push", EnvConfig(render=False, max_episode_steps=20)),
                                       OracleConfig(action_noise=0.0), seed=1), cut)
    audit = SyntheticAudit(liar, make_env("push", EnvConfig(render=False, max_episode_steps=20)),
                           tmp_path / "audit.csv", relabel=True)
    audit.observe_real(ep)
    got = audit.generate(ReplayPolicy(ep), num_branches=4, horizon=3)
    assert len(got) == 4 and audit.unlabelled == 0
    for g, t in zip(got, truth, strict=True):  # same seed: the same starts and actions
        n = 1 if cut else t.length
        assert g.length == n
        np.testing.assert_array_equal(g.states, t.states[: n + 1])  # the model's states are kept
        np.testing.assert_allclose(g.rewards, t.rewards[:n])  # the replay's reward, not the model's +5
        assert not g.successes.any() and not g.terminated.any() and g.truncated[-1]  # no false success
    s = audit.summary(horizons=(1,))
    assert s["k=1"]["reward_bias"] == pytest.approx(5.0) and s["k=1"]["success_predicted"] == (4 if cut else 0)
    with pytest.raises(ValueError, match="max_branches"):
        SyntheticAudit(liar, env, tmp_path / "x.csv", max_branches=2, relabel=True)
    # a branch whose start the audit does not keep cannot be relabelled: dropped and counted
    blind = SyntheticAudit(liar, make_env("push", EnvConfig(render=False, max_episode_steps=20)),
                           tmp_path / "blind.csv", relabel=True)
    liar.observe_real(ep)  # the inner source sees the episode, the audit does not
    assert blind.generate(ReplayPolicy(ep), num_branches=3, horizon=2) == [] and blind.unlabelled == 3
    # the audit keeps the keep_episodes most recent real episodes (None: all): older starts are dropped
    _, other = _recorded_episode("push", 20, seed=4)
    for keep, dropped in ((1, True), (None, False)):
        audit = SyntheticAudit(liar, make_env("push", EnvConfig(render=False, max_episode_steps=20)),
                               tmp_path / f"keep{keep}.csv", keep_episodes=keep, relabel=True)
        audit.observe_real(ep)
        audit.observe_real(other)  # ep is now the older one; the liar branches from ep (and other)
        got = audit.generate(ReplayPolicy(ep), num_branches=8, horizon=2)
        starts = {g.extras["start_episode"] for g in got}
        assert (ep.episode_id not in starts) == dropped and (audit.unlabelled > 0) == dropped
