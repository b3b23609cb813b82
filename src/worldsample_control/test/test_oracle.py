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
