"""Tests of the world-model core on the tiny 'moving square' world (16x16, small nets)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from worldsample_common.core.episode import Episode, Source
from worldsample_worldmodel.core.config import WorldModelConfig
from worldsample_worldmodel.core.data import filter_episodes
from worldsample_worldmodel.core.fidelity import evaluate_fidelity, frame_metrics, save_comparison_strip
from worldsample_worldmodel.core.generate import RandomPolicy, generate_branches
from worldsample_worldmodel.core.model import WorldModel, build_model
from worldsample_worldmodel.core.store import WorldModelStore
from worldsample_worldmodel.core.toy import toy_episode, toy_episodes
from worldsample_worldmodel.core.train import TRAIN_STATE, compute_loss, train_world_model

torch.set_num_threads(1)


def small_cfg(**kw) -> WorldModelConfig:
    base = dict(image_size=16, latent_channels=8, base_channels=8, hidden_dim=48, ensemble_size=3,
                batch_size=16, rollout_steps=3, lr=3e-3, log_every=5, train_state_every=10, device="cpu")
    base.update(kw)
    return WorldModelConfig(**base)


@pytest.fixture(scope="module")
def demos() -> list[Episode]:
    return toy_episodes(8, seed0=0, steps=16)


@pytest.fixture(scope="module")
def trained(demos):
    model, metrics = train_world_model(demos, small_cfg(), steps=120, progress=False)
    return model, metrics


def test_loss_falls(demos):
    cfg = small_cfg()
    model, metrics = train_world_model(demos, cfg, steps=60, progress=False)
    # the loss of a fresh model and of the trained one on the same fixed batches
    from worldsample_worldmodel.core.data import WindowSampler

    sampler = WindowSampler(demos, cfg.cameras, cfg.history, cfg.rollout_steps)
    batches = [sampler.sample(32, np.random.default_rng(i)) for i in range(3)]
    fresh = build_model(cfg, demos[0].proprio.shape[1])
    fresh.set_proprio_stats(np.concatenate([e.proprio for e in demos]))

    def mean_loss(m):  # the sum of the component errors (all >= 0; the total objective is a log for pixels)
        with torch.no_grad():
            return float(np.mean([sum(float(v) for k, v in compute_loss(m, b, torch.Generator().manual_seed(0)).items()
                                      if k != "loss") for b in batches]))

    assert mean_loss(model) < 0.7 * mean_loss(fresh)
    assert metrics["steps"] == 60 and metrics["finished"]


def test_save_load_round_trip_identical_predictions(trained, tmp_path, demos):
    model, metrics = trained
    store = WorldModelStore(tmp_path / "run")
    v = store.save_version(model, {"metrics": metrics})
    assert v == "wm-000001" and store.latest() == v
    loaded = store.load(v)
    assert loaded.version == v
    assert float(loaded.uncertainty_ref) == pytest.approx(float(model.uncertainty_ref))
    hist_frames = {c: np.stack([demos[0].images[c][:2]]) for c in model.cameras}
    p = torch.as_tensor(demos[0].proprio[:1])
    a = demos[0].actions[:1]
    outs = []
    for m in (model, loaded):
        h = m.encode_history(hist_frames, p)
        r = m.step(h, p, a)
        outs.append((r["proprio"].numpy(), r["uncertainty"].numpy(), m.render(r["hist"])["front"]))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    np.testing.assert_array_equal(outs[0][2], outs[1][2])
    manifest = json.loads((tmp_path / "run" / "versions" / v / "manifest.json").read_text())
    assert manifest["version"] == v


def test_generation_well_formed(trained, demos):
    model, _ = trained
    model.version = "wm-000007"
    starts = toy_episodes(3, seed0=50, steps=12, source=Source.REAL, noise=0.5)
    eps = generate_branches(model, starts, RandomPolicy(1), num_branches=10, horizon=6, action_noise=0.2,
                            rng=np.random.default_rng(0), policy_version="p-3")
    assert len(eps) == 10
    for e in eps:
        e.validate()
        assert e.source == Source.SYNTHETIC
        assert 1 <= e.length <= 6
        assert e.uncertainty.shape == (e.length,) and np.isfinite(e.uncertainty).all()
        assert (e.uncertainty >= 0).all()
        assert e.world_model_version == "wm-000007" and e.policy_version == "p-3"
        assert set(e.images) == {"front", "wrist"}
        assert e.images["front"].dtype == np.uint8 and e.images["front"].shape[1:] == (16, 16, 3)
        assert np.abs(e.actions).max() <= 1.0
        assert e.extras["start_episode"].startswith("toy-real-")
        # step 0 is the real start frame (grounding)
        src = next(s for s in starts if s.episode_id == e.extras["start_episode"])
        np.testing.assert_array_equal(e.images["front"][0], src.images["front"][int(e.extras["start_step"])])


def test_ended_branches_leave_the_batch_without_changing_the_others(trained, demos):
    """Generation drops a branch from the batch at its predicted termination; every branch's frames,
    proprio and uncertainties equal those of the same branch stepped in the full batch to the end."""
    import copy

    from worldsample_worldmodel.core.data import WindowSampler

    m = copy.deepcopy(trained[0])

    class Steady:
        def act_batch(self, images, proprio, noise_std=0.0, rng=None):
            return np.tile(np.array([[0.5, -0.3, 0.2, 0.0]], np.float32), (len(proprio), 1))

    sampler = WindowSampler(demos, m.cameras, m.cfg.history, 1)
    pick = np.random.default_rng(3).integers(0, sampler.num_transitions, size=12)
    win = sampler.window(sampler.anchor_ep[pick], sampler.anchor_t[pick])
    hist = m.encode_history({c: win.frames[c][:, : m.cfg.history] for c in m.cameras}, win.proprio[:, 0])
    p = torch.as_tensor(win.proprio[:, 0])
    a = Steady().act_batch(None, win.proprio[:, 0])
    ref = []  # the full batch, never compacted
    for _ in range(4):
        r = m.step(hist, p, a)
        hist, p = r["hist"], r["proprio"]
        ref.append((m.render(hist)["front"], p.numpy(), r["uncertainty"].numpy(), r["terminated_prob"].numpy()))
    # a threshold that ends some branches at step 1 and some later, so the batch shrinks more than once
    m.cfg.done_threshold = float(np.clip(np.median(ref[0][3]), 1e-4, 1 - 1e-4))
    eps = generate_branches(m, demos, Steady(), 12, 4, 0.0, np.random.default_rng(3))
    lengths = [e.length for e in eps]
    assert min(lengths) < 4 and len(set(lengths)) > 1, lengths
    for b, e in enumerate(eps):
        ends = np.flatnonzero([ref[k][3][b] > m.cfg.done_threshold for k in range(4)])
        assert e.length == (ends[0] + 1 if len(ends) else 4) and e.terminated[-1] == bool(len(ends))
        for k in range(e.length):
            assert np.abs(e.images["front"][k + 1].astype(int) - ref[k][0][b].astype(int)).max() <= 1
            np.testing.assert_allclose(e.proprio[k + 1], ref[k][1][b], rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(e.uncertainty[k], ref[k][2][b], rtol=1e-3, atol=1e-6)


def test_uncertainty_higher_out_of_distribution(trained, demos):
    model, _ = trained
    rng = np.random.default_rng(0)
    n = 64
    # in distribution: real training states with their real actions
    idx = rng.integers(0, len(demos), n)
    ts = [rng.integers(1, demos[i].length) for i in idx]
    frames_in = {c: np.stack([demos[i].images[c][t - 1: t + 1] for i, t in zip(idx, ts, strict=True)])
                 for c in model.cameras}
    p_in = np.stack([demos[i].proprio[t] for i, t in zip(idx, ts, strict=True)])
    a_in = np.stack([demos[i].actions[t] for i, t in zip(idx, ts, strict=True)])
    # out of distribution: noise images, far-away proprio
    frames_out = {c: rng.integers(0, 256, (n, 2, 16, 16, 3), dtype=np.uint8) for c in model.cameras}
    p_out = p_in + 5.0
    u = []
    for f, p, a in ((frames_in, p_in, a_in), (frames_out, p_out, a_in)):
        r = model.step(model.encode_history(f, p), torch.as_tensor(p), a)
        u.append(float(r["uncertainty"].mean()))
    assert u[1] > 2.0 * u[0]
    # normalised by the median disagreement on (here: training) real data, so in-distribution is ~1
    assert 0.3 < u[0] < 3.0


def test_fidelity_metrics_perfect_and_noise():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    psnr, ssim = frame_metrics(real, real.copy())
    assert ssim == pytest.approx(1.0)
    one_off = real.copy()
    one_off[0, 0, 0] ^= 1  # the smallest error two different frames can have
    assert np.isfinite(psnr) and psnr == pytest.approx(frame_metrics(real, one_off)[0]) == pytest.approx(
        10 * np.log10(255 ** 2 * real.size))
    close = np.clip(real.astype(int) + rng.integers(-2, 3, real.shape), 0, 255).astype(np.uint8)
    p_close, s_close = frame_metrics(real, close)
    noise = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    p_noise, s_noise = frame_metrics(real, noise)
    assert p_close > 40 and s_close > 0.95
    assert p_noise < 12 and s_noise < 0.2
    with pytest.raises(ValueError, match="frames must both be"):
        frame_metrics(real, real[:16])


def test_evaluate_fidelity_and_strip(trained, tmp_path):
    model, _ = trained
    held = toy_episodes(3, seed0=100, steps=16, noise=0.3)
    f = evaluate_fidelity(model, held, horizons=(1, 4), max_starts=16)
    assert f["horizons"] == [1, 4] and len(f["psnr"]) == 2 and len(f["ssim"]) == 2
    assert all(np.isfinite(f["psnr"])) and all(-1 <= s <= 1 for s in f["ssim"])
    # copy-last-frame on the same starts is reported beside it; a fresh model (no flow, no mask) *is* that
    # baseline, and training beats it
    fresh = build_model(model.cfg, model.proprio_dim)
    f0 = evaluate_fidelity(fresh, held, horizons=(1, 4), max_starts=16)
    assert f0["copy"] == f["copy"] and len(f["copy"]["psnr"]) == 2
    assert abs(f0["gain"]["psnr"][0]) < 0.5
    assert f["gain"]["psnr"][0] > 1.0 and f["psnr"][0] > f0["psnr"][0] + 1.0
    assert len(f["spearman"]) == 2 and all(-1 <= r <= 1 for r in f["spearman"])
    png = save_comparison_strip(model, held, tmp_path / "strip.png", horizons=(1, 4), num_examples=2)
    assert png.stat().st_size > 1000


def test_feature_skill_reads_predicted_frames_with_the_policy_s_featurizer(trained):
    """1 - error of the predicted frames / error of copy-last-frame, in what a featurizer reads of them."""
    from worldsample_worldmodel.core.fidelity import feature_skill

    rng = np.random.default_rng(0)
    real = {"front": rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)}
    copy = {"front": rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)}

    def mean_colour(frames):  # stands for a pixel encoder: any function of the frames
        return frames["front"].reshape(len(frames["front"]), -1, 3).mean(1)

    assert feature_skill(mean_colour, real, {"front": real["front"].copy()}, copy) == 1.0
    assert feature_skill(mean_colour, real, copy, copy) == 0.0
    worse = {"front": np.zeros_like(real["front"])}
    assert feature_skill(mean_colour, real, worse, copy) < 0.0
    assert feature_skill(lambda frames: None, real, copy, copy) is None  # a policy with nothing to read them with
    # in the fidelity: one value per horizon, beside the whole-frame metrics; absent without a featurizer
    model, _ = trained
    held = toy_episodes(3, seed0=100, steps=16, noise=0.3)
    cams = model.cameras
    f = evaluate_fidelity(model, held, horizons=(1, 4), max_starts=16,
                          featurizer=lambda fr: np.concatenate([fr[c].reshape(len(fr[c]), -1, 3).mean(1) for c in cams], 1))
    assert len(f["feature_skill"]) == 2 and all(np.isfinite(f["feature_skill"]))
    assert "feature_skill" not in evaluate_fidelity(model, held, horizons=(1, 4), max_starts=16)
    assert "feature_skill" not in evaluate_fidelity(model, held, horizons=(1, 4), max_starts=16, featurizer=lambda fr: None)


def test_store_never_overwrites_and_crash_leaves_nothing(trained, tmp_path):
    model, _ = trained
    store = WorldModelStore(tmp_path / "run")
    with pytest.raises(RuntimeError, match="simulated crash"):
        store.save_version(model, {"n": 0}, _fail_after_model=True)
    assert store.versions() == [] and store.latest() is None
    assert not list((tmp_path / "run" / "versions").iterdir())  # tmp dir removed too
    v1 = store.save_version(model, {"n": 1})
    before = (store.path(v1) / "model.pt").read_bytes()
    v2 = store.save_version(model, {"n": 2})
    assert (v1, v2) == ("wm-000001", "wm-000002")
    assert (store.path(v1) / "model.pt").read_bytes() == before
    assert store.manifest(v1)["n"] == 1 and store.manifest(v2)["n"] == 2
    # a leftover tmp dir from a killed process is invisible and cleaned up
    leftover = tmp_path / "run" / "versions" / ".tmp-dead"
    leftover.mkdir()
    (leftover / "model.pt").write_bytes(b"partial")
    assert store.versions() == [v1, v2]
    store.cleanup()
    assert not leftover.exists()
    with pytest.raises(FileNotFoundError, match="wm-000009 not found"):
        store.load("wm-000009")
    with pytest.raises(ValueError, match="wm-NNNNNN"):
        store.load("latest-please")


def test_resume_after_crash(demos, tmp_path):
    cfg = small_cfg(train_state_every=10)
    run = tmp_path / "run"
    _, m1 = train_world_model(demos, cfg, steps=30, progress=False, run_dir=run, stop_after=20)
    assert not m1["finished"] and (run / TRAIN_STATE).exists()
    model, m2 = train_world_model(demos, cfg, steps=30, progress=False, run_dir=run)
    assert m2["resumed_from"] == 20 and m2["steps_this_call"] == 10 and m2["finished"]
    assert (run / "logs" / "train_metrics.csv").read_text().count("\n") == 1 + 30 // cfg.log_every
    assert (run / "logs" / "train_loss.png").exists()
    # a different job ignores the state of this one
    _, m3 = train_world_model(demos[:4], cfg, steps=5, progress=False, run_dir=run)
    assert m3["resumed_from"] == 0


def test_stop_request_saves_state_publishes_nothing_and_resumes(demos, tmp_path):
    from worldsample_worldmodel.core.train import TrainingStopped

    cfg = small_cfg(train_state_every=1000)  # no periodic checkpoint: the stop itself must save the state
    run = tmp_path / "run"
    calls = iter(range(1000))
    with pytest.raises(TrainingStopped, match="stopped at step 12/30"):
        train_world_model(demos, cfg, steps=30, progress=False, run_dir=run, should_stop=lambda: next(calls) >= 12)
    assert (run / TRAIN_STATE).exists()
    _, m = train_world_model(demos, cfg, steps=30, progress=False, run_dir=run)
    assert m["resumed_from"] == 12 and m["steps_this_call"] == 18 and m["finished"]


def test_post_training_continues_from_init(trained, demos):
    model, _ = trained
    real = toy_episodes(4, seed0=200, steps=16, source=Source.REAL, policy="random")
    post, metrics = train_world_model(demos + real, None, init=model, steps=10, progress=False)
    assert metrics["num_real_episodes"] == 4 and metrics["num_demo_episodes"] == len(demos)
    assert post is not model and post.cfg.latent_channels == model.cfg.latent_channels
    # the original is untouched
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), post.state_dict().values(),
                                                   strict=True))


def test_bad_episodes_rejected_with_names(demos):
    good = demos[0]
    no_wrist = toy_episode(1, steps=5)
    del no_wrist.images["wrist"]
    no_wrist.extras["bag"] = "/bags/no_wrist"
    big = toy_episode(2, steps=5, size=32)
    kept, rejected = filter_episodes([good, no_wrist, big], ("front", "wrist"), 16)
    assert kept == [good]
    reasons = dict(rejected)
    assert "missing camera(s) ['wrist']" in reasons["bag /bags/no_wrist (episode 'toy-demo-1')"]
    assert "32x32" in reasons["episode 'toy-demo-2'"] and "16x16" in reasons["episode 'toy-demo-2'"]
    with pytest.raises(ValueError, match="no usable episodes.*32x32"):
        train_world_model([big], small_cfg(), steps=1, progress=False)
    with pytest.raises(ValueError, match="WorldModelConfig.image_size"):
        small_cfg(image_size=24).validate()
    with pytest.raises(ValueError, match="not a WorldSample world-model checkpoint"):
        WorldModel.from_checkpoint({"format": "something else"})


def test_generation_rejects_bad_policy_and_inputs(trained, demos):
    model, _ = trained

    class BadPolicy:
        def act_batch(self, images, proprio, noise_std=0.0, rng=None):
            return np.zeros((len(proprio), 3), np.float32)

    with pytest.raises(ValueError, match=r"act_batch returned \(4, 3\)"):
        generate_branches(model, demos, BadPolicy(), 4, 2, 0.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="policy must have act_batch"):
        generate_branches(model, demos, object(), 4, 2, 0.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="horizon must be a positive int"):
        generate_branches(model, demos, RandomPolicy(), 4, 0, 0.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="no usable start episodes.*32x32"):
        generate_branches(model, [toy_episode(3, steps=4, size=32)], RandomPolicy(), 4, 2, 0.0)
    from worldsample_worldmodel.core.generate import load_any_policy

    with pytest.raises(FileNotFoundError, match="expected 'random' or the path"):
        load_any_policy("/no/such/ckpt.pt")


def test_random_member_rollout_mode(trained, demos):
    model, _ = trained
    import copy

    m = copy.deepcopy(model)
    m.cfg.rollout_mode = "random_member"
    eps = generate_branches(m, demos, RandomPolicy(2), 6, 3, 0.0, np.random.default_rng(1))
    assert len(eps) == 6 and all(np.isfinite(e.uncertainty).all() for e in eps)


def test_generation_with_a_learner_policy_checkpoint(trained, demos, tmp_path):
    """The learner's pixels policy, loaded from its checkpoint, drives the rollouts on predicted frames."""
    learner = pytest.importorskip("worldsample_learner.core.agent")
    from worldsample_learner.core.config import AgentConfig
    from worldsample_learner.core.policy import save_policy
    from worldsample_worldmodel.core.generate import load_any_policy

    model, _ = trained
    cfg = AgentConfig(obs_mode="pixels", cameras=("front", "wrist"), image_size=16, proprio_dim=4, hidden_dim=32,
                      feature_dim=16, encoder_channels=8, num_critics=2, device="cpu")
    path = save_policy(learner.SACAgent(cfg), tmp_path, 5)
    policy = load_any_policy(str(path))
    eps = generate_branches(model, demos, policy, 4, 3, 0.1, np.random.default_rng(0))
    assert len(eps) == 4 and all(e.policy_version == "policy-000005" for e in eps)
    assert all(np.abs(e.actions).max() <= 1.0 for e in eps)


def test_generation_without_members_gives_the_members_mean_and_spread():
    """`transition(members=False)` (generation) must equal the member mean and variance of the full ensemble."""
    import torch
    from worldsample_worldmodel.core.model import build_model

    torch.manual_seed(0)
    cfg = small_cfg(ensemble_size=4)
    model = build_model(cfg, proprio_dim=7).eval()
    with torch.no_grad():
        for net in model.nets.values():  # a trained model's members differ
            net.dyn_heads.weight.normal_(std=0.05)
            net.dyn_heads.bias.normal_(std=0.05)
        g = cfg.image_size // 4
        z = {c: torch.randn(5, cfg.history, cfg.latent_channels, g, g) for c in cfg.cameras}
        p, a = torch.randn(5, 7), torch.rand(5, 4) * 2 - 1
        full, fast = model.transition(z, p, a, members=True), model.transition(z, p, a, members=False)
    assert fast["z"] is None
    for i, c in enumerate(cfg.cameras):
        torch.testing.assert_close(fast["z_mean"][c], full["z"][c].mean(0), rtol=1e-5, atol=1e-6)
        want = full["z"][c].var(dim=0, unbiased=False).mean(dim=(1, 2, 3))
        torch.testing.assert_close(fast["cam_disagreement"][i], want, rtol=1e-4, atol=1e-9)
        assert float(want.min()) > 0


def test_training_ssim_equals_the_reported_ssim():
    """The SSIM the loss trains on is the one `frame_metrics` reports (scikit-image), frame by frame."""
    from worldsample_worldmodel.core.train import ssim

    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (3, 32, 32, 3)).astype(np.uint8)
    real[0] = 90  # a flat frame: the luminance term alone
    pred = np.clip(real.astype(int) + rng.integers(-40, 40, real.shape) + np.array([25, 0, -10])[:, None, None, None],
                   0, 255).astype(np.uint8)

    def t(x):
        return torch.as_tensor(x).permute(0, 3, 1, 2).float() / 127.5 - 1.0

    ours = ssim(t(pred), t(real)).numpy()
    ref = np.array([frame_metrics(r, p)[1] for r, p in zip(real, pred, strict=True)])
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    assert ref.min() < 0.9  # the frames differ: the check is not between two ones


def test_proprio_step_scale_and_old_checkpoints(demos):
    """`proprio_step_scaled`: the proprio head's step scale is the per-step spread of the normalised proprio
    (floored for dimensions that never change); off, it stays 1 (the older parameterisation), which is also
    what a checkpoint saved before the buffer existed loads with."""
    from worldsample_worldmodel.core.model import DELTA_STD_FLOOR

    props = [e.proprio for e in demos]
    scaled = build_model(small_cfg(proprio_step_scaled=True), demos[0].proprio.shape[1])
    scaled.set_proprio_stats(np.concatenate(props))
    scaled.set_delta_stats(props)
    steps = np.concatenate([np.diff(p, axis=0) for p in props]).std(0) / scaled.proprio_std.numpy()
    np.testing.assert_allclose(scaled.proprio_delta_std.numpy(), np.maximum(steps, DELTA_STD_FLOOR), rtol=1e-5)
    assert (scaled.proprio_delta_std != 1).all()
    plain = build_model(small_cfg(proprio_step_scaled=False), demos[0].proprio.shape[1])
    plain.set_proprio_stats(np.concatenate(props))
    plain.set_delta_stats(props)
    assert (plain.proprio_delta_std == 1).all()
    ckpt = scaled.to_checkpoint()
    del ckpt["state_dict"]["proprio_delta_std"]  # as saved before the standardised step
    old = WorldModel.from_checkpoint(ckpt)
    assert (old.proprio_delta_std == 1).all()


def test_a_diverged_model_is_refused_not_crashed_on(demos, trained):
    """A model whose decoder warp samples at NaN (here: a NaN ego-motion weight) gives a NaN loss. Its backward would
    segfault in PyTorch's CPU grid_sample, so such steps are skipped, and ten in a row raise TrainingDiverged."""
    import copy

    from worldsample_worldmodel.core.train import MAX_NONFINITE_IN_A_ROW, TrainingDiverged

    model = copy.deepcopy(trained[0])
    ego = next(m for name, m in model.named_modules() if name.endswith("ego"))
    with torch.no_grad():
        ego.bias[0] = float("nan")
    with pytest.raises(TrainingDiverged, match=f"{MAX_NONFINITE_IN_A_ROW} steps in a row"):
        train_world_model(demos, None, init=model, steps=30, progress=False)


def test_a_dimension_constant_in_the_stats_data_is_standardised_by_at_least_a_centimetre():
    """A pushed block's height never varies in the demos; standardised by its spread alone (~1 mm), a later
    value 0.5 m off read as ~470 standard deviations and made every training loss non-finite
    (docs/results.md). The floor keeps it at <= 50, and leaves dimensions that do vary as they were."""
    from worldsample_worldmodel.core.model import PROPRIO_STD_FLOOR

    rng = np.random.default_rng(0)
    proprio = np.c_[rng.normal(0.5, 0.1, (200, 3)), np.full((200, 1), 0.025)].astype(np.float32)
    model = build_model(small_cfg(), 4)
    model.set_proprio_stats(proprio)
    std = model.proprio_std.numpy()
    assert std[3] == pytest.approx(PROPRIO_STD_FLOOR) and PROPRIO_STD_FLOOR == pytest.approx(1e-2)
    assert std[:3] == pytest.approx(proprio[:, :3].std(0) + 1e-3, rel=1e-5)
    far = torch.as_tensor([[0.5, 0.5, 0.5, 0.025 - 0.5]])
    assert float(model.norm_proprio(far)[0, 3].abs()) == pytest.approx(50.0, rel=1e-4)
