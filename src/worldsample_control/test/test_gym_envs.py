"""The tasks as Gymnasium environments: ids, spaces, the API checker, same dynamics as the core env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import worldsample_control.envs as wenvs
from gymnasium.utils.env_checker import check_env
from worldsample_control.core.sim import TASKS, EnvConfig, make_env


def test_every_task_is_registered_in_both_variants():
    assert set(wenvs.ENV_IDS) == {wenvs.env_id(t, o) for t in TASKS for o in ("state", "pixels")}
    assert wenvs.env_id("peg_insertion", "pixels") == "WorldSample/PegInsertionPixels-v0"
    assert all(i in gym.registry for i in wenvs.ENV_IDS)
    with pytest.raises(ValueError, match="unknown"):
        wenvs.env_id("stack")


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("obs", ["state", "pixels"])
def test_passes_the_gymnasium_checker(obs):
    env = gym.make(wenvs.env_id("push", obs), image_size=32)
    check_env(env.unwrapped, skip_render_check=True)
    o, info = env.reset(seed=3)
    assert env.observation_space.contains(o) and info == {"is_success": False}
    env.close()


def test_state_variant_matches_the_core_env_and_the_module_prefixed_id():
    env = gym.make("worldsample_control.envs:WorldSample/Push-v0")
    core = make_env("push", EnvConfig(render=False))
    o, _ = env.reset(seed=7)
    c = core.reset(seed=7)
    np.testing.assert_allclose(o, np.concatenate([c.proprio, c.state]))
    a = np.array([0.3, -0.2, 0.1, 1.0], np.float32)
    o2, r, term, trunc, info = env.step(a)
    res = core.step(a)
    np.testing.assert_allclose(o2, np.concatenate([res.observation.proprio, res.observation.state]), atol=1e-6)
    assert r == res.reward and term == res.terminated and trunc == res.truncated
    assert info["is_success"] is False and -1.0 <= r < 0.0
    assert env.observation_space.shape == (7 + len(env.unwrapped.state_labels),)
    env.close()
