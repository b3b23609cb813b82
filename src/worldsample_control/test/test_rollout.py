"""In-process rollouts produce valid Episodes; demos are written as DEMO bags that read back."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from worldsample_common.core.episode import Episode, Source
from worldsample_control.commands import demos as demos_cmd
from worldsample_control.core.demos import ExpertPolicy, record_demos
from worldsample_control.core.rollout import evaluate, run_episode
from worldsample_control.core.sim import EnvConfig, make_env


@pytest.fixture(scope="module")
def push_env():
    env = make_env("push", EnvConfig(image_size=24))
    yield env
    env.close()


def test_expert_episode_is_valid(push_env):
    ep = run_episode(push_env, ExpertPolicy("push", push_env), seed=5, source=Source.DEMO,
                     episode_id="e5", policy_version="v1")
    assert isinstance(ep, Episode) and ep.episode_id == "e5" and ep.source == Source.DEMO
    t = ep.length
    assert 0 < t < push_env.max_episode_steps
    assert set(ep.images) == {"front", "wrist"}
    assert ep.images["front"].shape == (t + 1, 24, 24, 3) and ep.images["front"].dtype == np.uint8
    assert ep.proprio.shape == (t + 1, 7) and ep.actions.shape == (t, 4)
    assert np.abs(ep.actions).max() <= 1.0
    assert ep.success and ep.terminated[-1] and not ep.terminated[:-1].any() and not ep.truncated.any()
    assert ep.successes[-1] and ep.rewards[-1] == 0.0 and (ep.rewards[:-1] < 0).all()  # core.reward
    assert ep.seed == 5 and ep.policy_version == "v1" and ep.task == "push"
    assert np.all(np.diff(ep.stamps_ns) > 0)
    assert ep.states.shape == (t + 1, push_env.state_dim)
    np.testing.assert_allclose(ep.states[-1], push_env.privileged_state())
    # the final observation is the post-step state: its proprio matches the env now
    np.testing.assert_allclose(ep.proprio[-1], push_env.proprio())


def test_truncated_random_episode(push_env):
    rng = np.random.default_rng(0)
    ep = run_episode(push_env, lambda obs: rng.uniform(-3, 3, 4), seed=1, max_steps=6)
    assert ep.length == 6 and ep.truncated[-1] and not ep.truncated[:-1].any()
    assert not ep.terminated.any() and ep.source == Source.REAL
    assert np.abs(ep.actions).max() <= 1.0, "stored actions are the executed (clipped) ones"


def test_nan_policy_raises(push_env):
    with pytest.raises(ValueError, match="action"):
        run_episode(push_env, lambda obs: np.full(4, np.nan), seed=0)


def test_evaluate_counts_successes():
    env = make_env("push", EnvConfig(render=False, max_episode_steps=40))
    expert = evaluate(env, ExpertPolicy("push", env), episodes=2, seed0=0)
    idle = evaluate(env, lambda obs: np.zeros(4), episodes=2, seed0=0)
    assert expert["success_rate"] == 1.0 and idle["success_rate"] == 0.0
    assert expert["mean_return"] > idle["mean_return"]
    with pytest.raises(ValueError, match="episodes"):
        evaluate(env, lambda obs: np.zeros(4), episodes=0)


def test_record_demos_writes_bags_that_read_back(tmp_path):
    from worldsample_common.core.bag_io import load_episodes

    cfg = EnvConfig(image_size=16)
    rep = record_demos("push", 2, tmp_path / "demos", cfg=cfg, seed0=3, log=None)
    assert rep.success_rate == 1.0 and rep.n_written == 2 and len(rep.bag_dirs) == 2
    eps = sorted(load_episodes(tmp_path / "demos"), key=lambda e: e.seed)
    assert [e.seed for e in eps] == [3, 4] and all(e.source == Source.DEMO for e in eps)
    # the bag holds exactly what the expert did: re-run seed 3 and compare
    env = make_env("push", cfg)
    try:
        again = run_episode(env, ExpertPolicy("push", env), seed=3)
    finally:
        env.close()
    np.testing.assert_allclose(eps[0].actions, again.actions, atol=1e-6)
    np.testing.assert_array_equal(eps[0].images["wrist"], again.images["wrist"])
    np.testing.assert_allclose(eps[0].states, again.states, atol=1e-6)
    with pytest.raises(FileExistsError, match="never overwritten"):
        record_demos("push", 1, tmp_path / "demos", cfg=cfg, seed0=3, log=None)


def test_noisy_demos_differ_from_clean_ones():
    env = make_env("pick_place", EnvConfig(render=False))
    clean = run_episode(env, ExpertPolicy("pick_place", env), seed=4)
    noisy = run_episode(env, ExpertPolicy("pick_place", env, action_noise=0.2, seed=1), seed=4)
    assert clean.success and noisy.success
    n = min(clean.length, noisy.length)
    assert np.abs(clean.actions[:n, :3] - noisy.actions[:n, :3]).mean() > 0.05
    with pytest.raises(ValueError, match="action_noise"):
        ExpertPolicy("push", env, action_noise=float("nan"))


def test_demos_command(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    demos_cmd.add_arguments(parser)
    assert demos_cmd.run(parser.parse_args(["--check", "--task", "peg_insertion", "--episodes", "2"])) == 0
    assert "peg_insertion: expert success 1.000 over 2 episodes" in capsys.readouterr().out
    assert demos_cmd.run(parser.parse_args(["--check", "--task", "push", "--episodes", "1",
                                            "--action-noise", "-1"])) == 2
    assert "--action-noise" in capsys.readouterr().err
    assert demos_cmd.run(parser.parse_args(["--task", "push", "--episodes", "1"])) == 2  # no --out
    assert "--out" in capsys.readouterr().err
    assert demos_cmd.run(parser.parse_args(["--task", "push", "--episodes", "1", "--image-size", "2",
                                            "--out", str(tmp_path)])) == 2
    assert "image_size" in capsys.readouterr().err
