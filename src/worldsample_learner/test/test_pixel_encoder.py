"""The frozen pixel encoder (``AgentConfig.pixel_encoder="frozen"``): pre-training, feature cache, frozen under SAC."""

import numpy as np
import pytest
import torch
from worldsample_common.core.episode import Episode, Source
from worldsample_learner.core.agent import SACAgent
from worldsample_learner.core.config import AgentConfig
from worldsample_learner.core.learner import Learner
from worldsample_learner.core.policy import load_policy, policy_from_agent, save_policy
from worldsample_learner.core.replay import ReplayStore

SIZE = 16
CAMS = ("front", "wrist")


def _cfg(**kw) -> AgentConfig:
    base = dict(obs_mode="pixels", cameras=CAMS, image_size=SIZE, proprio_dim=3, action_dim=2, hidden_dim=32,
                batch_size=16, utd_ratio=2, frozen_channels=8, frozen_keypoints=4, frozen_pretrain_steps=30,
                frozen_pretrain_batch=16, device="cpu", seed=0)
    base.update(kw)
    return AgentConfig(**base)


def _square_frames(xy: np.ndarray) -> np.ndarray:
    """uint8 (N, SIZE, SIZE, 3): a bright 3x3 square at integer pixel ``xy`` (N, 2) on a dark background."""
    n = len(xy)
    f = np.full((n, SIZE, SIZE, 3), 20, np.uint8)
    for i, (x, y) in enumerate(xy):
        f[i, y:y + 3, x:x + 3] = (250, 60, 30)
    return f


def _episode(i: int, length: int, rng: np.random.Generator, source: Source = Source.REAL) -> Episode:
    xy = rng.integers(0, SIZE - 3, (length + 1, 2))
    return Episode(
        episode_id=f"ep{i}", task="t", source=source,
        images={"front": _square_frames(xy), "wrist": _square_frames(xy[:, ::-1])},
        proprio=rng.normal(size=(length + 1, 3)).astype(np.float32),
        actions=rng.uniform(-1, 1, (length, 2)).astype(np.float32), rewards=rng.normal(size=length).astype(np.float32),
        terminated=np.r_[np.zeros(length - 1, bool), True], truncated=np.zeros(length, bool),
        successes=np.r_[np.zeros(length - 1, bool), True])


def _learner(cfg: AgentConfig, episodes: int = 6, length: int = 10) -> Learner:
    learner = Learner(cfg)
    rng = np.random.default_rng(1)
    for i in range(episodes):
        src = Source.DEMO if i % 2 else Source.REAL
        (learner.add_demo_episode if src == Source.DEMO else learner.add_real_episode)(_episode(i, length, rng, src))
    return learner


def test_shapes_and_config():
    cfg = _cfg()
    agent = SACAgent(cfg)
    assert agent.encoder.frozen and agent.encoder_version == 0
    per_camera = 2 * cfg.frozen_keypoints + 3 * cfg.frozen_color_blobs
    assert cfg.frozen_color_blobs > 0 and agent.encoder.out_dim == per_camera * len(CAMS) + 3
    frames = {c: _square_frames(np.full((5, 2), 4)) for c in CAMS}
    assert agent.features(frames).shape == (5, per_camera * len(CAMS)) and agent.features(frames).dtype == np.float32
    parts = agent.encoder.keypoints.parts()
    assert sorted(parts["keypoints"] + parts["color blobs"]) == list(range(per_camera * len(CAMS)))
    assert parts["color blobs"][0] == 2 * cfg.frozen_keypoints  # per camera: keypoints, then blobs
    # no trainable encoder weight reaches an optimiser
    opt_params = {id(p) for g in agent.critic_opt.param_groups for p in g["params"]}
    assert not any(id(p) in opt_params for p in agent.encoder.parameters())
    assert all(not p.requires_grad for p in agent.encoder.parameters())
    with pytest.raises(ValueError, match="pixel_encoder"):
        _cfg(pixel_encoder="resnet").validate()
    with pytest.raises(ValueError, match="frozen_keypoints"):
        _cfg(frozen_keypoints=0).validate()
    with pytest.raises(ValueError, match="frozen_color_blobs"):
        _cfg(frozen_color_blobs=-1).validate()
    assert SACAgent(_cfg(frozen_color_blobs=0)).encoder.out_dim == 2 * 4 * len(CAMS) + 3
    with pytest.raises(ValueError, match="no frozen encoder"):
        SACAgent(_cfg(pixel_encoder="conv", feature_dim=8, encoder_channels=4)).pretrain_encoder(frames)


def test_pretraining_learns_where_the_object_is():
    """The spatial autoencoder's keypoints locate a moving square: a linear read-out of its position
    from the features of held-out frames leaves a small fraction of the error it leaves before
    pre-training (random conv keypoints already follow a lone bright square roughly)."""
    rng = np.random.default_rng(0)
    xy = rng.integers(0, SIZE - 3, (600, 2))
    frames = {"front": _square_frames(xy), "wrist": _square_frames(xy[:, ::-1])}
    cfg = _cfg(frozen_pretrain_steps=400, frozen_pretrain_lr=3e-3, frozen_color_blobs=0)  # the learned keypoints
    agent = SACAgent(cfg)

    def r2() -> float:
        f = agent.features(frames)
        x = np.c_[f, np.ones(len(f))]
        tr, te = slice(0, 400), slice(400, 600)
        w = np.linalg.lstsq(x[tr], xy[tr].astype(float), rcond=None)[0]
        res = xy[te] - x[te] @ w
        return float(1 - res.var(0).mean() / xy[te].var(0).mean())

    before = r2()
    info = agent.pretrain_encoder({c: v[:400] for c, v in frames.items()})
    assert info["version"] == agent.encoder_version == 1 and info["frames"] == 400
    assert np.mean(info["losses"][-20:]) < 0.5 * np.mean(info["losses"][:20])
    after = r2()
    assert after > 0.95 and (1 - after) < 0.2 * (1 - before), (before, after)
    # the target encoder holds the same keypoint weights
    for k, v in agent.encoder.keypoints.state_dict().items():
        torch.testing.assert_close(agent.target_encoder.keypoints.state_dict()[k], v)


def test_color_blobs_place_a_small_object_beside_a_big_one():
    """Colour blobs fitted on frames with a big pale square and a small green one on a textured grey
    background: one prototype follows the green square's centre to a fraction of a pixel on frames it was
    not fitted on, another the big square's, and the green one's mass is 0 on a frame without it."""
    from worldsample_learner.core.pixel_encoder import ColorBlobs, frames_to_float

    size, rng = 32, np.random.default_rng(1)
    bg = rng.integers(90, 110, (size, size, 3)).astype(np.uint8)

    def frames(n):
        big, small = rng.integers(0, size - 8, (n, 2)), rng.integers(0, size - 2, (n, 2))
        f = np.repeat(bg[None], n, 0)
        for i in range(n):
            f[i, big[i, 1]:big[i, 1] + 8, big[i, 0]:big[i, 0] + 8] = (235, 235, 235)
            f[i, small[i, 1]:small[i, 1] + 2, small[i, 0]:small[i, 0] + 2] = (40, 200, 60)  # drawn last: on top
        return f, big + 3.5, small + 0.5

    blobs = ColorBlobs(size, size, 4)
    blobs.fit(frames_to_float(torch.as_tensor(frames(300)[0])))
    f, big_c, small_c = frames(50)
    out = blobs(frames_to_float(torch.as_tensor(f))).reshape(50, 4, 3).numpy()
    protos = (blobs.prototypes.numpy() + 0.5) * 255
    green, pale = (int(((protos - rgb) ** 2).sum(-1).argmin()) for rgb in ((40, 200, 60), (235, 235, 235)))
    assert green != pale
    for j, centre in ((green, small_c), (pale, big_c)):
        mass = np.expm1(out[:, j, 2:])
        px = (out[:, j, :2] * (mass + 1) / mass + 1) * (size - 1) / 2  # undo the +1 in the normaliser; in pixels
        assert np.abs(px - centre).max() < 0.5
    assert blobs(frames_to_float(torch.as_tensor(bg[None]))).reshape(4, 3)[green, 2] < 0.05


def test_feature_cache_holds_the_encoders_features_of_obs_and_nstep_next_obs():
    cfg = _cfg()
    learner = _learner(cfg)
    learner.pretrain_encoder()
    agent = learner.agent
    store = learner.real
    plain = ReplayStore("plain", agent.spec, capacity=store.capacity)  # the same rows, no cache
    rng = np.random.default_rng(1)
    for i in range(6):
        ep = _episode(i, 10, rng, Source.DEMO if i % 2 else Source.REAL)
        if ep.source == Source.REAL:
            plain.add_episode(ep)
    assert store.feature_version == 1 and len(plain) == len(store)
    idx = np.arange(len(store))
    cached = store.gather(idx, n_step=3, discount=0.9)
    raw = plain.gather(idx, n_step=3, discount=0.9)
    assert cached["obs"]["images"] == {} and "features" not in raw["obs"]  # batches carry features, not frames
    np.testing.assert_allclose(cached["obs"]["features"], agent.features(raw["obs"]["images"]), atol=1e-5)
    np.testing.assert_allclose(cached["next_obs"]["features"], agent.features(raw["next_obs"]["images"]), atol=1e-5)
    np.testing.assert_array_equal(cached["discount"], raw["discount"])
    # a transition added later is encoded as it arrives
    learner.add_real_episode(_episode(99, 4, np.random.default_rng(5)))
    new = store.gather(np.arange(len(store) - 4, len(store)))
    np.testing.assert_allclose(new["obs"]["features"],
                               agent.features(store.frames(np.arange(len(store) - 4, len(store)))), atol=1e-5)


def test_an_update_on_cached_features_equals_one_on_frames():
    cfg = _cfg()
    learner = _learner(cfg)
    learner.pretrain_encoder()
    twin = SACAgent(cfg)
    twin.load_state_dict(learner.agent.state_dict())
    learner.fit_normalizer()
    twin.encoder.load_state_dict(learner.agent.encoder.state_dict())
    twin.target_encoder.load_state_dict(learner.agent.target_encoder.state_dict())
    plain = ReplayStore("plain", twin.spec, capacity=learner.real.capacity)
    rng = np.random.default_rng(1)
    for i in range(6):
        ep = _episode(i, 10, rng, Source.DEMO if i % 2 else Source.REAL)
        if ep.source == Source.REAL:
            plain.add_episode(ep)
    idx = [np.random.default_rng(k).integers(0, len(plain), cfg.batch_size) for k in range(cfg.utd_ratio)]
    torch.manual_seed(7)
    a = learner.agent.update([learner.real.gather(i, cfg.n_step, cfg.discount) for i in idx])
    torch.manual_seed(7)
    b = twin.update([plain.gather(i, cfg.n_step, cfg.discount) for i in idx])
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5, err_msg=k)
    for p, q in zip(learner.agent.critic.parameters(), twin.critic.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_sac_updates_leave_the_frozen_encoder_alone():
    learner = _learner(_cfg())
    before_critic = [p.detach().clone() for p in learner.agent.critic.parameters()]
    for _ in range(3):
        learner.train_step()  # pre-trains on its first call
    assert learner.agent.encoder_version == 1 and learner.pretrain_s > 0
    enc = {k: v.clone() for k, v in learner.agent.encoder.state_dict().items()}
    tgt = {k: v.clone() for k, v in learner.agent.target_encoder.state_dict().items()}
    for _ in range(5):
        learner.train_step()
    for k, v in learner.agent.encoder.state_dict().items():
        torch.testing.assert_close(v, enc[k], rtol=0, atol=0)
    for k, v in learner.agent.target_encoder.state_dict().items():
        torch.testing.assert_close(v, tgt[k], rtol=0, atol=0)
    assert any(not torch.equal(p, q) for p, q in zip(learner.agent.critic.parameters(), before_critic, strict=True))
    assert learner.agent.encoder_version == 1  # pre-trained once, not again


def test_a_retrained_encoder_refreshes_every_cached_feature():
    learner = _learner(_cfg())
    learner.train_step()
    store = learner.demo
    idx = np.arange(len(store))
    old = store.gather(idx)["obs"]["features"].copy()
    # re-training outside the learner (e.g. a resumed agent): the next train_step sees stale caches
    learner.agent.pretrain_encoder({c: store.frames(idx)[c] for c in CAMS})
    assert learner.agent.encoder_version == 2 and store.feature_version == 1
    learner.train_step()
    assert all(s.feature_version == 2 for s in (learner.demo, learner.real, learner.synthetic))
    new = store.gather(idx)["obs"]["features"]
    assert not np.allclose(new, old)
    np.testing.assert_allclose(new, learner.agent.features(store.frames(idx)), atol=1e-5)
    # Learner.pretrain_encoder re-trains on the stores' frames and re-encodes at once
    learner.pretrain_encoder()
    assert learner.agent.encoder_version == 3 and learner.real.feature_version == 3
    np.testing.assert_allclose(learner.real.gather(np.arange(len(learner.real)))["obs"]["features"],
                               learner.agent.features(learner.real.frames(np.arange(len(learner.real)))), atol=1e-5)


def test_policy_checkpoint_carries_the_pretrained_encoder(tmp_path):
    learner = _learner(_cfg())
    learner.train_step()
    rng = np.random.default_rng(3)
    images = {c: rng.integers(0, 256, (4, SIZE, SIZE, 3), dtype=np.uint8) for c in CAMS}
    proprio = rng.normal(size=(4, 3)).astype(np.float32)
    live = policy_from_agent(learner.agent).act_batch(images, proprio)
    pol = load_policy(save_policy(learner.agent, tmp_path, 1))
    np.testing.assert_array_equal(pol.act_batch(images, proprio), live)
    assert int(pol.encoder.keypoints.version) == 1


def test_a_frozen_policy_checkpoint_from_before_the_colour_blobs_still_loads(tmp_path):
    """Checkpoints written before `frozen_color_blobs` existed hold learned keypoints only and no such key."""
    learner = _learner(_cfg(frozen_color_blobs=0))
    learner.train_step()
    path = save_policy(learner.agent, tmp_path, 1)
    payload = torch.load(path, weights_only=False)
    del payload["agent_config"]["frozen_color_blobs"]
    torch.save(payload, path)
    pol = load_policy(path)
    assert pol.cfg.frozen_color_blobs == 0 and pol.encoder.keypoints.blobs is None
    rng = np.random.default_rng(3)
    images = {c: rng.integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8) for c in CAMS}
    proprio = rng.normal(size=(2, 3)).astype(np.float32)
    np.testing.assert_array_equal(pol.act_batch(images, proprio),
                                  policy_from_agent(learner.agent).act_batch(images, proprio))


def test_a_conv_policy_checkpoint_from_before_the_frozen_encoder_still_loads(tmp_path):
    """Checkpoints written before `pixel_encoder` existed hold a conv encoder and no `pixel_encoder` key."""
    agent = SACAgent(_cfg(pixel_encoder="conv", feature_dim=8, encoder_channels=4))
    path = save_policy(agent, tmp_path, 1)
    payload = torch.load(path, weights_only=False)
    del payload["agent_config"]["pixel_encoder"]
    torch.save(payload, path)
    pol = load_policy(path)
    assert not pol.encoder.frozen and pol.cfg.pixel_encoder == "conv"
    rng = np.random.default_rng(0)
    images = {c: rng.integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8) for c in CAMS}
    proprio = rng.normal(size=(2, 3)).astype(np.float32)
    np.testing.assert_array_equal(pol.act_batch(images, proprio), policy_from_agent(agent).act_batch(images, proprio))


def test_resumed_learner_re_encodes_its_reloaded_replay(tmp_path):
    cfg = _cfg()
    first = Learner(cfg, replay_dir=tmp_path / "replay")
    rng = np.random.default_rng(1)
    for i in range(4):
        first.add_real_episode(_episode(i, 10, rng))
    first.train_step()
    first.flush()
    state = first.state_dict()
    second = Learner(cfg, replay_dir=tmp_path / "replay")
    assert len(second.real) == len(first.real) and second.real.feature_version is None
    second.load_state_dict(state)
    second.train_step()  # no second pre-training: the restored encoder's features are cached
    assert second.agent.encoder_version == 1 and second.real.feature_version == 1
    idx = np.arange(len(second.real))
    np.testing.assert_allclose(second.real.gather(idx)["obs"]["features"],
                               first.real.gather(idx)["obs"]["features"], atol=1e-5)


def test_the_frozen_pixel_learner_solves_the_point_task_from_frames(tmp_path):
    """Where the goal is only in the frames (proprio has the point, not the goal), SAC on the frozen,
    pre-trained encoder (keypoints + colour blobs, the default) learns to reach it; the driver pre-trains
    once, before the first update. (With the learned keypoints alone, ``frozen_color_blobs=0``, this
    reaches 0.2-0.4: the point hides the goal near success, and the keypoints do not place the goal.)"""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from point_env import PointEnv
    from worldsample_learner.core.config import LearnConfig, PPLConfig
    from worldsample_learner.drivers.learn import train_in_process

    env = PointEnv(render=True, image_size=16)
    agent = AgentConfig(obs_mode="pixels", cameras=CAMS, hidden_dim=64, num_critics=2, batch_size=64, utd_ratio=1,
                        discount=0.9, frozen_channels=8, frozen_keypoints=4, frozen_pretrain_steps=300)
    cfg = LearnConfig(agent=agent, ppl=PPLConfig(mode="rl-only"), env_steps=3000, warmup_steps=300, eval_every=500,
                      eval_episodes=10, log_every=250, checkpoint_every_env_steps=0)
    r = train_in_process(env, cfg, [], None, tmp_path, progress=False)
    assert r["best_success_rate"] >= 0.8, r["success_curve"]
    assert r["encoder_pretrain"]["version"] == 1 and r["encoder_pretrain"]["frames_from"] == {"real": 300}
    assert r["time_s"]["encoder_pretrain"] > 0
    assert r["replay"]["real"]["feature_version"] == 1
    pol = load_policy(r["checkpoint"])
    assert pol.encoder.frozen and int(pol.encoder.keypoints.version) == 1
