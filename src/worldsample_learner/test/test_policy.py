import dataclasses

import numpy as np
import pytest
import torch
from worldsample_common.core.env_protocol import Observation
from worldsample_learner.core.agent import SACAgent
from worldsample_learner.core.config import AgentConfig
from worldsample_learner.core.policy import (
    checkpoint_path,
    latest_checkpoint,
    load_policy,
    policy_from_agent,
    save_policy,
)

PIX = AgentConfig(obs_mode="pixels", cameras=("front", "wrist"), image_size=32, hidden_dim=32, feature_dim=16,
                  encoder_channels=8, num_critics=2)


def _batch(b=5, size=32, seed=0):
    rng = np.random.default_rng(seed)
    images = {c: rng.integers(0, 256, (b, size, size, 3), dtype=np.uint8) for c in ("front", "wrist")}
    return images, rng.normal(size=(b, 7)).astype(np.float32)


def test_save_load_gives_identical_actions(tmp_path):
    agent = SACAgent(PIX)
    images, proprio = _batch()
    live = policy_from_agent(agent).act_batch(images, proprio)
    path = save_policy(agent, tmp_path, 3, {"env_steps": 123})
    assert path == checkpoint_path(tmp_path, 3) and path.name == "policy-000003.pt"
    assert not list(tmp_path.glob(".*tmp*"))  # atomic: no temporary left behind
    # loadable with only the file: no agent, optimiser or replay
    del agent
    pol = load_policy(path)
    assert pol.version == "policy-000003" and pol.meta == {"env_steps": 123}
    out = pol.act_batch(images, proprio)
    assert out.dtype == np.float32 and out.shape == (5, 4)
    np.testing.assert_array_equal(out, live)
    np.testing.assert_array_equal(out, pol.act_batch(images, proprio))  # deterministic at noise 0
    single = pol.act(Observation({c: v[1] for c, v in images.items()}, proprio[1]))
    np.testing.assert_allclose(single, out[1], atol=1e-6)
    noisy = pol.act_batch(images, proprio, noise_std=0.5, rng=np.random.default_rng(0))
    assert np.all(np.abs(noisy) <= 1.0) and not np.allclose(noisy, out)
    assert latest_checkpoint(tmp_path) == path


def test_a_frozen_encoder_policy_gives_the_features_its_actor_reads(tmp_path):
    """`Policy.features` (the world model scores its imagined frames with it): the frozen encoder's features of the
    frames, from the checkpoint alone; None for a policy that has no frozen encoder."""
    cfg = AgentConfig(obs_mode="pixels", cameras=("front", "wrist"), image_size=32, hidden_dim=32, num_critics=2,
                      pixel_encoder="frozen", frozen_keypoints=2, frozen_channels=4, frozen_color_blobs=2,
                      frozen_pretrain_steps=5)
    agent = SACAgent(cfg)
    images, _ = _batch()
    agent.pretrain_encoder(images)
    pol = load_policy(save_policy(agent, tmp_path, 1))
    assert pol.reads_pixel_features
    feats = pol.features(images)
    assert feats.shape == (5, agent.encoder.keypoints.out_dim)
    np.testing.assert_allclose(feats, agent.features(images), rtol=1e-6)
    others = {"end-to-end conv": dataclasses.replace(PIX, pixel_encoder="conv"), "frozen, never pre-trained": cfg,
              "state": AgentConfig(obs_mode="state", state_dim=3, hidden_dim=32, num_critics=2)}
    for i, (name, other) in enumerate(others.items()):
        pol = load_policy(save_policy(SACAgent(other), tmp_path, 2 + i))
        assert not pol.reads_pixel_features and pol.features(images) is None, name


def test_state_policy_round_trip_and_needs_state(tmp_path):
    cfg = AgentConfig(obs_mode="state", state_dim=3, hidden_dim=32, num_critics=2)
    agent = SACAgent(cfg)
    with torch.no_grad():
        for p in agent.actor.parameters():
            p.add_(0.3)
    path = save_policy(agent, tmp_path / "custom.pt", 1)
    pol = load_policy(path)
    proprio = np.zeros((2, 7), np.float32)
    state = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(pol.act_batch({}, proprio, state=state),
                                  policy_from_agent(agent).act_batch({}, proprio, state=state))
    with pytest.raises(ValueError, match="privileged sim state"):
        pol.act_batch({}, proprio)


def test_bad_inputs_are_named(tmp_path):
    pol = load_policy(save_policy(SACAgent(PIX), tmp_path, 0))
    images, proprio = _batch()
    with pytest.raises(ValueError, match="'wrist' missing"):
        pol.act_batch({"front": images["front"]}, proprio)
    with pytest.raises(ValueError, match="uint8"):
        pol.act_batch({c: v.astype(np.float32) for c, v in images.items()}, proprio)
    with pytest.raises(ValueError, match="proprio must be"):
        pol.act_batch(images, proprio[:, :3])
    with pytest.raises(FileNotFoundError):
        load_policy(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pt"):
        load_policy(tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="policy version"):
        save_policy(SACAgent(PIX), tmp_path, -1)
