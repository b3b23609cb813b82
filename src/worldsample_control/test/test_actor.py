"""Actor core: episodes, NaN safe stop, checkpoint hot-swap between episodes, against the real MuJoCo env."""

from __future__ import annotations

import numpy as np
import pytest
from worldsample_common.core.env_protocol import Observation
from worldsample_common.core.episode import Source
from worldsample_control.core.actor import (
    Actor,
    ActorConfig,
    RandomPolicy,
    SuggestionPolicy,
    TeleopPolicy,
    load_policy,
)


class _Const:
    def __init__(self, value) -> None:
        self.value = np.asarray(value, np.float32)

    def act(self, obs: Observation) -> np.ndarray:
        return self.value


def _obs(v: float = 0.0) -> Observation:
    return Observation(images={"front": np.full((8, 8, 3), int(v * 10) % 255, np.uint8)},
                       proprio=np.full(7, v, np.float32))


def test_episode_with_the_simulator_and_expert_suggestions():
    from worldsample_control.core.experts import make_expert
    from worldsample_control.core.sim import EnvConfig, make_env

    env = make_env("push", EnvConfig(max_episode_steps=6, image_size=16, cameras=("front",)))
    expert = make_expert("push")
    policy = SuggestionPolicy()
    actor = Actor(ActorConfig(task="push", policy="scripted", max_steps=6, cameras=("front",), source="demo"),
                  policy=policy)
    actor.keep_records = True
    obs = env.reset(seed=3)
    expert.reset()
    actor.begin_episode(obs, 0, seed=3)
    done, k = False, 0
    while not done:
        policy.set_suggestion(expert.act(obs, env))
        a = actor.act(obs)
        res = env.step(a)
        obs = res.observation
        k += 1
        _, done = actor.observe(obs, res.reward, res.terminated, res.truncated, res.success, k)
    ep = actor.episode_from_records()
    summary = actor.end_episode()
    assert ep.length == summary.length == 6 and ep.source == Source.DEMO and ep.truncated[-1]
    assert summary.actions == ep.actions.tolist()
    assert actor.episode_index == 1 and not actor.in_episode
    env.close()


@pytest.mark.parametrize("bad", [[np.nan, 0, 0, 0], [0, np.inf, 0, 0], [1, 2, 3]])
def test_bad_policy_output_stops_the_episode(bad):
    actor = Actor(ActorConfig(task="push", max_steps=5, cameras=("front",)), policy=_Const(bad))
    actor.begin_episode(_obs(), 0)
    assert actor.act() is None
    assert actor.stop_reason.startswith("safe_stop")
    summary = actor.end_episode()
    assert summary.reason.startswith("safe_stop") and summary.length == 0 and not summary.success


def test_checkpoint_swap_happens_between_episodes_only():
    loaded = []

    def loader(uri: str):
        loaded.append(uri)
        return _Const([0.5, 0, 0, -1])

    actor = Actor(ActorConfig(task="push", max_steps=2, cameras=("front",)), policy=RandomPolicy(0),
                  policy_loader=loader)
    actor.begin_episode(_obs(), 0)
    actor.request_swap("/ckpt/policy-000001.pt", "policy-000001")
    a = actor.act()
    assert loaded == [] and actor.policy_version == ""  # not in the middle of an episode
    _, done = actor.observe(_obs(1), 0.0, False, False, False, 1)
    assert not done and actor.act() is not None
    _, done = actor.observe(_obs(2), 1.0, False, False, True, 2)
    assert done  # max_steps reached: truncated
    s = actor.end_episode()
    assert s.success and s.episode_return == 1.0 and s.policy_version == ""
    actor.begin_episode(_obs(), 3)
    assert loaded == ["/ckpt/policy-000001.pt"] and actor.policy_version == "policy-000001"
    np.testing.assert_array_equal(actor.act(), [0.5, 0, 0, -1])
    assert a.shape == (4,)


def test_iteration_pacing_waits_for_a_newer_checkpoint():
    actor = Actor(ActorConfig(task="push", max_steps=1, cameras=("front",)), policy=RandomPolicy(0),
                  policy_loader=lambda uri: _Const([0, 0, 0, 0]))
    assert not actor.waits_for_policy(2)
    for k in range(2):
        actor.begin_episode(_obs(), k)
        actor.end_episode()
    assert actor.waits_for_policy(2) and not actor.waits_for_policy(3) and not actor.waits_for_policy(0)
    actor.request_swap("/ckpt/policy-000002.pt", "policy-000002")
    assert not actor.waits_for_policy(2)  # a newer checkpoint is waiting: go on
    actor.begin_episode(_obs(), 5)
    assert actor.policy_version == "policy-000002" and actor.episodes_with_policy == 1
    actor.end_episode()
    assert not actor.waits_for_policy(2)


def test_bad_observations_and_config_are_named():
    actor = Actor(ActorConfig(task="push", max_steps=2, cameras=("front", "wrist")), policy=RandomPolicy(0))
    with pytest.raises(ValueError, match="wrist"):
        actor.begin_episode(_obs(), 0)
    with pytest.raises(ValueError, match="source"):
        Actor(ActorConfig(task="push", source="synthetic"), policy=RandomPolicy(0))
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        Actor(ActorConfig(task="push", policy="/nope.pt"))
    with pytest.raises(RuntimeError, match="expert"):
        SuggestionPolicy().act(_obs())


def test_teleop_forwards_fresh_commands_and_stays_when_the_device_is_quiet():
    now = [0.0]
    teleop = TeleopPolicy(timeout_s=0.5, clock=lambda: now[0])
    assert not teleop.ready
    np.testing.assert_array_equal(teleop.act(_obs()), [0, 0, 0, -1])  # nothing yet: stay, gripper open
    assert teleop.set_command([0.3, -2.0, 0.1, 1.0]) is None
    assert teleop.ready
    np.testing.assert_allclose(teleop.act(_obs()), [0.3, -1.0, 0.1, 1.0])  # clipped like a policy's action
    for bad in ([np.nan, 0, 0, 0], [0, np.inf, 0, 1], [1, 2, 3], None):
        assert teleop.set_command(bad) is not None  # rejected, the last good command stays
    now[0] = 0.4
    np.testing.assert_allclose(teleop.act(_obs()), [0.3, -1.0, 0.1, 1.0])
    now[0] = 0.6  # the device went quiet: stay, and keep the gripper closed (never drop the object)
    np.testing.assert_array_equal(teleop.act(_obs()), [0, 0, 0, 1])
    assert teleop.stale_steps == 2 and not teleop.ready
    with pytest.raises(ValueError, match="timeout_s"):
        TeleopPolicy(timeout_s=0)


def test_teleop_demonstration_episode_records_the_operator_commands():
    commands = [[1, 0, 0, -1], [0, 1, 0, -1], [0, 0, -1, 1]]
    actor = Actor(ActorConfig(task="push", policy="teleop", source="demo", max_steps=3, cameras=("front",)),
                  policy=load_policy("teleop"))
    assert isinstance(actor.policy, TeleopPolicy) and actor.policy_version == "" and actor.source == Source.DEMO
    actor.begin_episode(_obs(0), 0)
    done = False
    for t, cmd in enumerate(commands):
        actor.policy.set_command(cmd)
        np.testing.assert_array_equal(actor.act(), cmd)
        rec, done = actor.observe(_obs(t + 1), 0.0, False, False, False, t + 1)
        assert rec.action.tolist() == cmd
    assert done
    assert actor.end_episode().length == 3
