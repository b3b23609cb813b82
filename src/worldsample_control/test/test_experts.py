"""Scripted experts reach success on randomised episodes (state-only for speed)."""

from __future__ import annotations

import numpy as np
import pytest
from worldsample_control.core.demos import ExpertPolicy, check_expert
from worldsample_control.core.experts import make_expert
from worldsample_control.core.rollout import evaluate
from worldsample_control.core.sim import TASKS, EnvConfig, make_env


@pytest.mark.parametrize("task", TASKS)
def test_expert_succeeds(task):
    env = make_env(task, EnvConfig(render=False))
    res = evaluate(env, ExpertPolicy(task, env), episodes=2, seed0=100)
    assert res["successes"] == [True, True], f"{task}: expert failed on seeds 100..101: {res}"
    assert res["mean_length"] < env.max_episode_steps
    # sparse (core.reward): -1 per step until the success step, which pays 0
    sparse_env = make_env(task, EnvConfig(render=False, reward="sparse"))
    sparse = evaluate(sparse_env, ExpertPolicy(task, sparse_env), episodes=1, seed0=100)
    assert sparse["mean_return"] == -(sparse["mean_length"] - 1)


@pytest.mark.parametrize("task", ["push", "peg_insertion"])
def test_check_expert_rate_over_twenty_episodes(task):
    res = check_expert(task, 20, seed0=500)
    assert res["success_rate"] >= 0.95, res


def test_expert_actions_are_valid():
    env = make_env("pick_place", EnvConfig(render=False))
    expert = make_expert("pick_place")
    obs = env.reset(seed=7)
    expert.reset()
    for _ in range(30):
        a = expert.act(obs, env)
        assert a.shape == (4,) and np.isfinite(a).all() and np.abs(a).max() <= 1.0 + 1e-6
        obs = env.step(a).observation


def test_unknown_expert_task():
    with pytest.raises(ValueError, match="task 'stack' has no expert"):
        make_expert("stack")


def test_expert_episodes_noise_source_and_successes_only():
    from worldsample_common.core.episode import Source
    from worldsample_control.core.demos import expert_episodes

    clean = expert_episodes("push", 2, seed0=7)
    assert [e.source for e in clean] == [Source.DEMO] * 2 and all(e.success for e in clean)
    noisy = expert_episodes("push", 2, seed0=7, action_noise=0.5, source=Source.REAL)
    again = expert_episodes("push", 2, seed0=7, action_noise=0.5, source=Source.REAL)
    assert [e.source for e in noisy] == [Source.REAL] * 2
    np.testing.assert_array_equal(noisy[0].actions, again[0].actions)  # the noise is seeded by the episode's seed
    assert not np.allclose(noisy[0].actions[: len(clean[0].actions)][:3], clean[0].actions[:3])
    # a noise no expert survives: successes_only tries 5x the seeds, then says so
    with pytest.raises(RuntimeError, match="succeeded only"):
        expert_episodes("push", 1, seed0=7, action_noise=50.0, env_cfg=EnvConfig(max_episode_steps=3),
                        successes_only=True)
