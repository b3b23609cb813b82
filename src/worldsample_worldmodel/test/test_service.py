"""The ROS-free world-model service: ingest bags, pre-/post-train into versions, generate bags."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from worldsample_common.core.bag_io import read_bag_episodes, write_episode_bag
from worldsample_common.core.episode import Source
from worldsample_worldmodel.core.config import WorldModelConfig
from worldsample_worldmodel.core.generate import RandomPolicy
from worldsample_worldmodel.core.service import WorldModelService, WorldModelServiceConfig
from worldsample_worldmodel.core.toy import toy_episode

torch.set_num_threads(1)


def small_model_cfg() -> WorldModelConfig:
    return WorldModelConfig(image_size=16, latent_channels=8, base_channels=8, hidden_dim=32,
                            ensemble_size=3, batch_size=8, rollout_steps=2, log_every=5, device="cpu")


def service_cfg(tmp_path, pretrain_steps: int) -> WorldModelServiceConfig:
    """Three toy demo bags and a small service over them (post-train every 2 real episodes, 4 steps)."""
    for i in range(3):
        write_episode_bag(toy_episode(i, steps=10), tmp_path / "demos" / f"demo_{i}")
    return WorldModelServiceConfig(run_dir=str(tmp_path / "run"), demos_dir=str(tmp_path / "demos"),
                                   min_new_episodes=2, pretrain_steps=pretrain_steps, posttrain_steps=4,
                                   heldout_every=3, fidelity_horizons=(1, 2), device="cpu", model=small_model_cfg())


def test_service_pretrain_posttrain_generate(tmp_path):
    cfg = service_cfg(tmp_path, pretrain_steps=6)
    svc = WorldModelService(cfg)
    assert svc.should_train()  # demos and no version yet
    assert svc.train() == "wm-000001"
    assert not svc.should_train()
    # real episodes arrive as bags; a corrupt one and a wrong-size one are rejected by name
    bags = []
    for i in range(3):
        bags.append(write_episode_bag(toy_episode(10 + i, steps=10, source=Source.REAL, policy="random"),
                                      tmp_path / "real" / f"real_{i}"))
    (tmp_path / "real" / "broken").mkdir()
    (tmp_path / "real" / "broken" / "metadata.yaml").write_text("not: a bag")
    reason = svc.add_bag(str(tmp_path / "real" / "broken"))
    assert reason and "broken" in reason
    big = write_episode_bag(toy_episode(20, steps=5, size=32, source=Source.REAL), tmp_path / "real" / "big")
    reason = svc.add_bag(str(big))
    assert reason and "32x32" in reason
    for b in bags:
        assert svc.add_bag(str(b)) is None
    assert svc.add_bag(str(bags[0])) is None  # duplicate: ignored
    assert len(svc.train_pool) == 2 and len(svc.heldout) == 1 and svc.should_train()
    assert svc.train() == "wm-000002"
    st = svc.status()
    assert st["version"] == "wm-000002" and st["num_real_episodes"] == 2 and st["num_demo_episodes"] == 3
    assert st["horizons"] == [1, 2] and len(st["psnr"]) == 2 and np.isfinite(st["psnr"]).all()
    man = svc.store.manifest("wm-000002")
    assert man["parent"] == "wm-000001" and man["mode"] == "posttrain-real"
    eps, bag = svc.generate(RandomPolicy(0), num_branches=4, horizon=3, action_noise=0.1, policy_version="rand", seed=0)
    back = read_bag_episodes(bag)
    assert len(back) == 4 and all(e.source == Source.SYNTHETIC for e in back)
    assert all(e.world_model_version == "wm-000002" and e.policy_version == "rand" for e in back)
    # a restarted service picks up the latest version
    again = WorldModelService(cfg)
    assert again.model.version == "wm-000002"


def test_video_source_for_the_learner(tmp_path):
    from worldsample_worldmodel.core.source import VideoSourceConfig, VideoWorldModelSource

    scfg = WorldModelServiceConfig(run_dir=str(tmp_path / "run"), min_new_episodes=2, pretrain_steps=5,
                                   posttrain_steps=3, heldout_every=3, fidelity_horizons=(1, 2), device="cpu",
                                   model=small_model_cfg())
    src = VideoWorldModelSource(VideoSourceConfig(service=scfg))
    assert src.generate(RandomPolicy(0), 2, 2) == [] and src.fidelity() is None  # no model yet
    for i in range(3):
        src.observe_real(toy_episode(30 + i, steps=8, source=Source.REAL, policy="random"))
    assert src.version == "wm-000001"  # pre-trained from the first real episodes
    f = src.fidelity()
    assert f is not None and 0.0 <= f <= 1.0
    fid = src.service.fidelity  # PPL's fidelity is how far the model gets past copy-last-frame, not its SSIM
    ssim_gain = (np.array(fid["ssim"]) - fid["copy"]["ssim"]) / (1 - np.array(fid["copy"]["ssim"]))
    mse_gain = 1 - 10 ** ((np.array(fid["copy"]["psnr"]) - fid["psnr"]) / 10)
    assert f == pytest.approx(float(np.mean(np.minimum(np.clip(ssim_gain, 0, 1), np.clip(mse_gain, 0, 1)))))
    # with a pixel policy's encoder, how it reads the predicted frames counts too (the smallest of the three skills)
    src.service.set_featurizer(lambda fr: np.concatenate([fr[c].reshape(len(fr[c]), -1, 3).mean(1) for c in fr], 1))
    fid = src.service.refresh_fidelity()
    feat = np.clip(fid["feature_skill"], 0, 1)
    assert len(feat) == 2
    assert src.fidelity() == pytest.approx(float(np.mean(np.minimum.reduce(
        [np.clip(ssim_gain, 0, 1), np.clip(mse_gain, 0, 1), feat]))))
    src.service.fidelity = {**fid, "feature_skill": [-0.7, -2.0]}  # frames the encoder reads worse than a copy's
    assert src.fidelity() == 0.0
    eps = src.generate(RandomPolicy(0), 3, 2)
    assert len(eps) == 3 and all(e.source == Source.SYNTHETIC and e.length <= 2 for e in eps)
    assert not (tmp_path / "run" / "synthetic").exists()  # no bags unless asked
    src.observe_real(toy_episode(40, steps=8, source=Source.DEMO))
    assert src.rejected and "REAL" in src.rejected[-1]


def test_video_source_carries_sim_state_for_a_state_based_policy(tmp_path):
    from dataclasses import replace

    from worldsample_worldmodel.core.source import VideoSourceConfig, VideoWorldModelSource

    class StatePolicy:  # a state-based learner policy: needs proprio (4 in the toy) and state (3) separately
        version = "policy-000001"

        def __init__(self) -> None:
            self.seen: list[tuple] = []

        def act_batch(self, images, proprio, noise_std=0.0, rng=None, state=None):
            assert proprio.shape[1] == 4 and state is not None and state.shape[1] == 3
            self.seen.append((proprio.shape, state.shape))
            return np.tile(np.float32([0.5, 0.0, 0.0, 0.0]), (len(proprio), 1))

    def with_state(ep):
        return replace(ep, states=np.tile(np.arange(3, dtype=np.float32), (ep.length + 1, 1)))

    scfg = WorldModelServiceConfig(run_dir=str(tmp_path / "run"), min_new_episodes=2, pretrain_steps=5,
                                   posttrain_steps=3, heldout_every=3, fidelity_horizons=(1,), device="cpu",
                                   model=small_model_cfg())
    src = VideoWorldModelSource(VideoSourceConfig(service=scfg, state_in_proprio=True))
    src.add_demos([with_state(toy_episode(50 + i, steps=8)) for i in range(2)])
    for i in range(2):
        src.observe_real(with_state(toy_episode(60 + i, steps=8, source=Source.REAL, policy="random")))
    assert src.version and src.service.model.proprio_dim == 7  # proprio 4 + state 3 through the model
    policy = StatePolicy()
    eps = src.generate(policy, 4, 3)
    assert policy.seen and len(eps) == 4
    for e in eps:
        assert e.proprio.shape == (e.length + 1, 4) and e.states.shape == (e.length + 1, 3)
        assert np.isfinite(e.states).all() and np.isfinite(e.uncertainty).all()
    try:
        src.observe_real(toy_episode(70, steps=8, source=Source.REAL, policy="random"))  # no states: named
    except ValueError as exc:
        assert "carries no privileged states" in str(exc)
    else:
        raise AssertionError("an episode without states must be refused in state_in_proprio mode")


def test_video_source_with_the_mlp_state_model_rolls_the_state_with_it(tmp_path):
    """state_model "mlp": every branch's [proprio, state] is the MLP ensemble's open-loop prediction from the
    real start under the branch's own actions; the ensemble is re-fitted (warm) before a generation once
    state_model_every new real episodes have arrived, and not otherwise."""
    from dataclasses import replace

    from worldsample_worldmodel.core.mlp_dynamics import MLPDynamicsConfig
    from worldsample_worldmodel.core.source import VideoSourceConfig, VideoWorldModelSource

    class StatePolicy:
        version = "policy-000001"

        def act_batch(self, images, proprio, noise_std=0.0, rng=None, state=None):
            return np.tile(np.float32([0.5, -0.2, 0.0, 0.0]), (len(proprio), 1))

    def with_state(ep):  # a state that moves with the proprio
        return replace(ep, states=(2.0 * ep.proprio[:, :3]).astype(np.float32))

    scfg = WorldModelServiceConfig(run_dir=str(tmp_path / "run"), min_new_episodes=2, pretrain_steps=5,
                                   posttrain_steps=3, heldout_every=3, fidelity_horizons=(1,), device="cpu",
                                   model=small_model_cfg())
    src = VideoWorldModelSource(VideoSourceConfig(service=scfg, state_in_proprio=True, state_model="mlp",
                                                  mlp=MLPDynamicsConfig(steps=30, eval_every=10), state_model_every=2))
    src.add_demos([with_state(toy_episode(50 + i, steps=8)) for i in range(2)])
    real = [with_state(toy_episode(60 + i, steps=8, source=Source.REAL, policy="random")) for i in range(4)]
    src.observe_real(real[0])
    assert src.version and src.mlp is None  # nothing fitted before a generation asks for it
    assert len(src.generate(StatePolicy(), 2, 3)) == 2
    first = src.mlp
    src.observe_real(real[1])
    src.generate(StatePolicy(), 2, 3)  # one new episode (< 2): the same ensemble
    assert src.mlp is first
    src.observe_real(real[2])
    src.observe_real(real[3])
    eps = src.generate(StatePolicy(), 4, 3)  # two new ones: re-fitted on all 2 demos + 4 real episodes
    # a state learner's PPL fidelity: how far the MLP's [proprio, state] gets past copy-state on the held-out
    # episodes (what it eats), not the frames' PSNR/SSIM
    from worldsample_worldmodel.core.state_error import MLPPredictor, state_skill

    held = [replace(e, proprio=e.proprio[:, :4], states=e.proprio[:, 4:]) for e in src.service.heldout]
    assert held and src.service.fidelity
    want = state_skill(MLPPredictor(src.mlp, 4), held, (1,))
    assert src.fidelity() == pytest.approx(float(np.clip(want[0], 0.0, 1.0)))
    assert src.mlp is not first and [m["episodes"] for m in src.mlp_metrics] == [3, 6]
    assert len(eps) == 4
    for e in eps:
        o = np.concatenate([e.proprio[:1], e.states[:1]], 1)
        for k in range(e.length):
            out = src.mlp.predict(o, e.actions[k:k + 1])
            o = out["next_obs"]
            np.testing.assert_allclose(np.concatenate([e.proprio[k + 1], e.states[k + 1]]), o[0], rtol=1e-5, atol=1e-5)
            assert e.uncertainty[k] == pytest.approx(out["disagreement"][0] / src.mlp_uncertainty_ref, rel=1e-4)
    # uncertainty_over "branch_mean": a step's uncertainty is the mean of its branch's steps up to it
    src.cfg.uncertainty_over = "branch_mean"
    varied = 0
    for e in src.generate(StatePolicy(), 8, 5):
        o, per_step = np.concatenate([e.proprio[:1], e.states[:1]], 1), []
        for k in range(e.length):
            out = src.mlp.predict(o, e.actions[k:k + 1])
            o = out["next_obs"]
            per_step.append(out["disagreement"][0] / src.mlp_uncertainty_ref)
        varied += np.ptp(per_step) > 0  # a branch where the mean differs from the step's own
        np.testing.assert_allclose(e.uncertainty, np.cumsum(per_step) / np.arange(1, e.length + 1), rtol=1e-4)
    assert varied
    # success_agreement: a branch ends in success only where every member's own step from the branch's state and
    # action is a success too; where the mean state alone would have ended it, the lowest member reward is paid
    from worldsample_worldmodel.core.source import agreed_success

    def judge(task, states):
        ok = states[:, 0] > level
        return ok, np.where(ok, 1.0, -1.0).astype(np.float32)

    src.cfg.uncertainty_over = "step"
    src.rng = np.random.default_rng(3)
    plain = src.generate(StatePolicy(), 16, 6)
    level = float(np.median([e.states[1:, 0].max() for e in plain]))  # about half the branches reach it
    src.judge, src.rng = judge, np.random.default_rng(3)
    mean_judged = src.generate(StatePolicy(), 16, 6)
    src.cfg.success_agreement, src.rng = 1.0, np.random.default_rng(3)
    agreed = src.generate(StatePolicy(), 16, 6)
    refused = 0
    for m, a in zip(mean_judged, agreed, strict=True):
        assert a.length >= m.length  # refusing a success can only make a branch longer
        o = np.concatenate([a.proprio[:-1], a.states[:-1]], 1)
        member_states = src.mlp.predict(o, a.actions, members=True)["member_next_obs"][..., 4:]
        ok, rew = agreed_success(judge, a.task, a.states[1:], member_states, 1.0)
        assert a.successes.tolist() == ok.tolist() and a.terminated[-1] == ok[-1]
        np.testing.assert_allclose(a.rewards, rew, atol=1e-6)
        if a.successes.any():
            assert (member_states[:, -1, 0] > level).all()
        refused += int(m.successes.any() and not (a.length == m.length and a.successes.any()))
    assert any(e.successes.any() for e in mean_judged) and refused, "the members should disagree somewhere"
    # imagined_success "bootstrap": the same branches, each success only truncated (the learner bootstraps there)
    src.cfg.success_agreement, src.cfg.imagined_success, src.rng = 0.0, "bootstrap", np.random.default_rng(3)
    boot = src.generate(StatePolicy(), 16, 6)
    for m, b in zip(mean_judged, boot, strict=True):
        assert b.length == m.length and b.successes.tolist() == m.successes.tolist()
        assert not b.terminated.any() and b.truncated[-1]
        np.testing.assert_allclose(b.rewards, m.rewards)
    # stop_at_contact: the same branches, each ending at its first state in the contact zone (truncated), and those
    # that start in it dropped
    zone_level = float(np.median(np.concatenate([b.states[:, 0] for b in boot])))

    def contact(task, states):
        return states[:, 0] > zone_level

    with pytest.raises(ValueError, match="stop_at_contact needs a contact function"):
        VideoWorldModelSource(VideoSourceConfig(service=scfg, state_in_proprio=True, state_model="mlp",
                                                stop_at_contact=True), judge=judge)
    src.cfg.stop_at_contact, src.contact, src.dropped_at_contact = True, contact, 0
    src.rng = np.random.default_rng(3)
    stopped = src.generate(StatePolicy(), 16, 6)
    kept = [b for b in boot if not contact(b.task, b.states)[0]]
    assert src.dropped_at_contact == len(boot) - len(kept) > 0 and len(stopped) == len(kept)
    cut = 0
    for b, s in zip(kept, stopped, strict=True):
        zone = contact(b.task, b.states)
        n = int(np.argmax(zone)) if zone.any() else b.length
        assert s.length == n and not contact(s.task, s.states[:-1]).any()
        np.testing.assert_allclose(s.states, b.states[:n + 1])
        assert s.truncated[-1] and not s.terminated.any()
        assert s.successes.tolist() == (s.states[1:, 0] > level).tolist()
        cut += n < b.length
    assert cut, "some branch should step into the zone after its start"
    src.cfg.stop_at_contact = False
    # imagined_success "precision": terminal with the held-out precision of the judged successes (Laplace's prior)
    from worldsample_worldmodel.core.state_error import MLPPredictor, success_counts

    held_split = [replace(e, proprio=e.proprio[:, :4], states=e.proprio[:, 4:]) for e in src.service.heldout]
    held_level = float(np.median(np.concatenate([e.states[1:, 0] for e in held_split])))

    def held_judge(task, states):  # about half the held-out states count as success
        ok = states[:, 0] > held_level
        return ok, np.where(ok, 1.0, -1.0).astype(np.float32)

    hit, total = success_counts(MLPPredictor(src.mlp, 4), held_judge, held_split, (1,))
    assert total > 0 and 0 <= hit <= total
    src.judge, src._trust = held_judge, None
    assert src.success_trust() == pytest.approx((hit + 1) / (total + 2))
    assert src.success_trust_log[-1]["imagined"] == total
    src.judge = judge
    src.cfg.imagined_success, src.rng = "precision", np.random.default_rng(3)
    for trust, want in ((0.0, False), (1.0, True)):  # the measured trust decides each branch's success
        src._trust = ((src.version, len(src.mlp_metrics), len(src.service.heldout)), trust)
        eps = src.generate(StatePolicy(), 16, 6)
        ends = [bool(e.terminated[-1]) for e in eps if e.successes.any()]
        assert ends and all(end == want for end in ends)
    src.cfg.imagined_success = "terminal"
    with pytest.raises(ValueError, match="success_agreement must be in"):
        VideoSourceConfig(state_in_proprio=True, state_model="mlp", success_agreement=1.5).validate()
    with pytest.raises(ValueError, match="needs state_model 'mlp'"):
        VideoSourceConfig(state_in_proprio=True, success_agreement=0.5).validate()
    with pytest.raises(ValueError, match="needs a judge"):
        VideoWorldModelSource(VideoSourceConfig(service=scfg, state_in_proprio=True, state_model="mlp",
                                                success_agreement=0.5))
    with pytest.raises(ValueError, match="uncertainty_over must be one of"):
        VideoSourceConfig(uncertainty_over="sum").validate()
    with pytest.raises(ValueError, match="state_model must be one of"):
        VideoSourceConfig(state_model="lstm").validate()
    with pytest.raises(ValueError, match="needs state_in_proprio"):
        VideoWorldModelSource(VideoSourceConfig(service=scfg, state_model="mlp"))


def test_source_without_frames_rolls_the_state_model_alone(tmp_path):
    """``frames=False``: no video model is trained or rolled; every branch is the MLP ensemble's rollout from a real
    [proprio, state] under the policy, judged on its predicted states like the video model's branches."""
    from dataclasses import replace

    from worldsample_worldmodel.core.mlp_dynamics import MLPDynamicsConfig
    from worldsample_worldmodel.core.source import VideoSourceConfig, VideoWorldModelSource

    class StatePolicy:
        version = "policy-000007"

        def act_batch(self, images, proprio, noise_std=0.0, rng=None, state=None):
            assert images == {} and state is not None and state.shape == (len(proprio), 3)
            return np.tile(np.float32([0.5, -0.2, 0.0, 0.0]), (len(proprio), 1))

    def with_state(ep):
        return replace(ep, states=(2.0 * ep.proprio[:, :3]).astype(np.float32))

    def judge(task, states):
        ok = states[:, 0] > level
        return ok, np.where(ok, 1.0, -1.0).astype(np.float32)

    level = np.inf
    scfg = WorldModelServiceConfig(run_dir=str(tmp_path / "run"), min_new_episodes=2, pretrain_steps=5,
                                   posttrain_steps=3, heldout_every=3, fidelity_horizons=(1,), device="cpu",
                                   model=small_model_cfg())
    src = VideoWorldModelSource(VideoSourceConfig(service=scfg, state_in_proprio=True, state_model="mlp", frames=False,
                                                  mlp=MLPDynamicsConfig(steps=30, eval_every=10), state_model_every=2),
                                judge=judge)
    demos = [with_state(toy_episode(50 + i, steps=8)) for i in range(2)]
    src.add_demos(demos)
    assert src.generate(StatePolicy(), 2, 3) and src.version == "mlp-001"  # from the demos before any real episode
    for i in range(6):
        src.observe_real(with_state(toy_episode(60 + i, steps=8, source=Source.REAL, policy="random")))
    assert src.service.model is None and not (tmp_path / "run" / "versions").exists()  # the video model: never
    eps = src.generate(StatePolicy(), 6, 4)
    assert src.version == "mlp-002" and [m["episodes"] for m in src.mlp_metrics] == [2, 8]
    starts = {e.episode_id: e for e in src.service.train_pool + src.service.heldout}
    for e in eps:
        assert e.images == {} and e.length == 4 and e.truncated[-1] and not e.terminated.any()
        assert e.source == Source.SYNTHETIC and e.world_model_version == "mlp-002" and e.policy_version == "policy-000007"
        real = starts[e.extras["start_episode"]]
        t = int(e.extras["start_step"])
        np.testing.assert_allclose(e.proprio[0], real.proprio[t, :4])
        np.testing.assert_allclose(e.states[0], real.proprio[t, 4:])  # the start is a real [proprio, state]
        o = real.proprio[t:t + 1]
        for k in range(e.length):
            np.testing.assert_allclose(e.actions[k], np.clip(e.actions[k], -1, 1))
            out = src.mlp.predict(o, e.actions[k:k + 1])
            o = out["next_obs"]
            np.testing.assert_allclose(np.concatenate([e.proprio[k + 1], e.states[k + 1]]), o[0], rtol=1e-5, atol=1e-5)
            assert e.uncertainty[k] == pytest.approx(out["disagreement"][0] / src.mlp_uncertainty_ref, rel=1e-4)
        np.testing.assert_allclose(e.rewards, -1.0)  # judged: no state reached the level
    # the policy's noise: actions differ from its constant output
    assert np.ptp(np.concatenate([e.actions for e in eps])[:, 0]) > 0
    # judged like the video model's branches: cut and terminated at the first successful predicted state
    level = float(np.median(np.concatenate([e.states[1:, 0] for e in eps])))
    cut = src.generate(StatePolicy(), 16, 4)
    assert any(e.terminated[-1] and e.successes[-1] and e.rewards[-1] == 1.0 for e in cut)
    assert all(e.successes.sum() == e.terminated.sum() for e in cut)
    # PPL's fidelity: the state model's skill over copy-state on the held-out episodes
    from worldsample_worldmodel.core.state_error import MLPPredictor, state_skill

    held = [replace(e, proprio=e.proprio[:, :4], states=e.proprio[:, 4:]) for e in src.service.heldout]
    want = state_skill(MLPPredictor(src.mlp, 4), held, (1,))
    assert src.fidelity() == pytest.approx(float(np.clip(want[0], 0.0, 1.0)))
    with pytest.raises(ValueError, match="frames=False needs state_model 'mlp'"):
        VideoSourceConfig(state_in_proprio=True, frames=False).validate()
    with pytest.raises(ValueError, match="write_bags has none"):
        VideoSourceConfig(state_in_proprio=True, state_model="mlp", frames=False, write_bags=True).validate()
    with pytest.raises(ValueError, match="frames=False needs a judge"):
        VideoWorldModelSource(VideoSourceConfig(service=scfg, state_in_proprio=True, state_model="mlp", frames=False))


class _StopAfter:
    """A stop flag that turns true after ``n`` looks: training finishes, then the node is stopping."""

    def __init__(self, n: int) -> None:
        self.n, self.looks = n, 0

    def is_set(self) -> bool:
        self.looks += 1
        return self.looks > self.n

    def set(self) -> None:
        self.n = -1


def test_version_saved_while_stopping_gets_its_fidelity_at_the_next_start(tmp_path):
    cfg = service_cfg(tmp_path, pretrain_steps=4)
    svc = WorldModelService(cfg)
    assert svc.train() == "wm-000001"
    bags = [write_episode_bag(toy_episode(10 + i, steps=10, source=Source.REAL, policy="random"),
                              tmp_path / "real" / f"real_{i}") for i in range(3)]
    for b in bags:
        assert svc.add_bag(str(b)) is None
    svc.stop_event = _StopAfter(4)  # the 4 post-training steps run; the stop arrives before the fidelity check
    assert svc.train() == "wm-000002"
    man = svc.store.manifest("wm-000002")
    assert man["fidelity"] is None and man["fidelity_pending"] is True
    # the next start evaluates it on the held-out episodes and records it beside the (untouched) manifest
    again = WorldModelService(cfg)
    for b in bags:
        again.add_bag(str(b))
    man = again.store.manifest("wm-000002")
    assert man["fidelity_pending"] is False and np.isfinite(man["fidelity"]["psnr"]).all()
    assert len(man["fidelity"]["copy"]["psnr"]) == 2
    assert (tmp_path / "run" / "versions" / "wm-000002" / "fidelity.json").is_file()


def test_a_diverged_post_training_keeps_the_previous_version(tmp_path):
    """A post-training whose every step is non-finite (a NaN weight) fails as TrainingDiverged: the service keeps
    its version and waits for new episodes; the in-process source records the failure and goes on."""
    from worldsample_worldmodel.core.source import VideoSourceConfig, VideoWorldModelSource
    from worldsample_worldmodel.core.train import TrainingDiverged

    scfg = WorldModelServiceConfig(run_dir=str(tmp_path / "run"), min_new_episodes=2, pretrain_steps=4,
                                   posttrain_steps=12, heldout_every=100, fidelity_horizons=(1,), device="cpu",
                                   model=small_model_cfg())
    src = VideoWorldModelSource(VideoSourceConfig(service=scfg))
    src.add_demos([toy_episode(50 + i, steps=8) for i in range(2)])
    src.service.train()
    before = src.version
    ego = next(m for name, m in src.service.model.named_modules() if name.endswith("ego"))
    with torch.no_grad():
        ego.bias[0] = float("nan")
    for i in range(2):
        src.observe_real(toy_episode(60 + i, steps=8, source=Source.REAL, policy="random"))
    assert len(src.train_failures) == 1 and "in a row" in src.train_failures[0]
    assert src.version == before and src.service.state == "error" and not src.service.should_train()
    with pytest.raises(TrainingDiverged):
        src.service.train()
