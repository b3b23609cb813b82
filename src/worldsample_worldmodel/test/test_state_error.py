"""The state-error evaluation (`core.state_error`) and MBPO's MLP dynamics ensemble (`core.mlp_dynamics`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from worldsample_common.core.episode import Episode, Source
from worldsample_worldmodel.core.config import WorldModelConfig
from worldsample_worldmodel.core.mlp_dynamics import (
    MLPDynamicsConfig,
    Transitions,
    held_out,
    rollout_starts,
    train_mlp_dynamics,
    transitions_from_episodes,
)
from worldsample_worldmodel.core.model import build_model
from worldsample_worldmodel.core.state_error import (
    CopyState,
    MLPPredictor,
    OpenLoop,
    VideoModelPredictor,
    evaluate_state_error,
    real_future,
    state_error_table,
    state_groups,
    state_skill,
    success_reward_floor,
    success_scores,
    termination_metrics,
)
from worldsample_worldmodel.core.toy import GOAL, toy_episode

torch.set_num_threads(1)

# the toy world's proprio is (x, y, z, gripper); its "state": the point as the object, the goal as the target
TOY_LABELS = ("block_x", "block_y", "block_z", "target_x", "target_y", "block_to_target_x", "block_to_target_y")
TOY_PROPRIO = {"ee_position": (0, 1, 2), "gripper": (3,)}


def with_states(ep: Episode) -> Episode:
    p = ep.proprio[:, :3]
    goal = np.broadcast_to(GOAL[:2], (len(p), 2))
    return replace(ep, states=np.concatenate([p, goal, goal - p[:, :2]], 1).astype(np.float32))


def toy(n: int, seed0: int, **kw) -> list[Episode]:
    return [with_states(toy_episode(seed0 + i, **kw)) for i in range(n)]


class Offset:
    """Copies the real future and adds known errors: +d on the object's x, +r on the reward, a fixed probability."""

    name = "offset"

    def __init__(self, d: float, r: float, prob: float) -> None:
        self.d, self.r, self.prob = d, r, prob

    def predict(self, episodes, ep_idx, t, actions) -> OpenLoop:
        b, h = actions.shape[:2]
        real = real_future(episodes, ep_idx, t, h)
        s = real.state.copy()
        s[..., 0] += self.d
        return OpenLoop(real.proprio, s, real.reward + self.r, np.full((b, h), self.prob, np.float32))


def test_known_errors_are_measured():
    held = toy(4, 100, steps=12, noise=0.5)
    res = evaluate_state_error([Offset(0.02, -0.5, 0.25)], held, TOY_LABELS, (1, 3), proprio_groups=TOY_PROPRIO)
    for h in (1, 3):
        r = res["predictors"]["offset"][f"h={h}"]
        assert r["rmse"]["object"] == pytest.approx(0.02 / np.sqrt(3), rel=1e-5)  # one of three dims is off
        assert r["rmse"]["target"] == 0.0 and r["rmse"]["ee_position"] == 0.0 and r["rmse"]["gripper"] == 0.0
        assert r["reward_mae"] == pytest.approx(0.5, rel=1e-5)
        term = r["termination"]
        real_rate = term["positives"] / res["num_starts"][(1, 3).index(h)]
        assert term["brier"] == pytest.approx(real_rate * 0.75 ** 2 + (1 - real_rate) * 0.25 ** 2, rel=1e-5)
        assert term["predicted"] == 0 and term["accuracy"] == pytest.approx(1 - real_rate)
    starts = sum(e.length - 1 for e in held)  # every step from 1
    assert res["num_starts"][0] == starts
    assert res["num_starts"][1] == sum(max(0, e.length - 3) for e in held)  # t + 3 <= T
    assert res["groups"]["object"] == ["block_x", "block_y", "block_z"]
    table = state_error_table([("toy", res)])
    assert "| toy | 1 | offset | 11.5 |" in table  # 20 mm / sqrt(3) on the object


def test_state_skill_is_one_for_the_real_future_zero_for_copy_and_negative_when_worse():
    held = toy(4, 100, steps=12, noise=0.5)
    assert state_skill(Offset(0.0, 0.0, 0.0), held, (1, 3)) == [1.0, 1.0]
    assert state_skill(CopyState(), held, (1, 3)) == [0.0, 0.0]
    off = state_skill(Offset(5.0, 0.0, 0.0), held, (1, 3))  # metres off on the object: worse than no motion
    assert all(v < 0.0 for v in off)
    small = state_skill(Offset(0.002, 0.0, 0.0), held, (1, 3))
    assert all(0.0 < v < 1.0 for v in small)


def test_copy_state_is_exact_on_a_static_episode():
    ep = with_states(toy_episode(3, steps=10, policy="random"))
    n = ep.length
    assert n == 10
    still = replace(ep, proprio=np.repeat(ep.proprio[:1], n + 1, 0), states=np.repeat(ep.states[:1], n + 1, 0),
                    images={c: np.repeat(v[:1], n + 1, 0) for c, v in ep.images.items()},
                    rewards=np.full(n, ep.rewards[0]), terminated=np.zeros(n, bool),
                    truncated=np.eye(1, n, n - 1, dtype=bool)[0], successes=np.zeros(n, bool))
    res = evaluate_state_error([CopyState()], [still], TOY_LABELS, (1, 4, 8), proprio_groups=TOY_PROPRIO)
    for h in (1, 4, 8):
        r = res["predictors"]["copy-state"][f"h={h}"]
        assert all(v == 0.0 for k, v in r["rmse"].items() if k != "object_moving"), r["rmse"]
        assert np.isnan(r["rmse"]["object_moving"]) and r["object_moving_starts"] == 0
        assert r["reward_mae"] == 0.0
        assert r["termination"]["brier"] == 0.0 and r["termination"]["accuracy"] == 1.0
    # on a moving episode copy-state is off by the real motion
    moving = evaluate_state_error([CopyState()], [ep], TOY_LABELS, (1,), proprio_groups=TOY_PROPRIO)
    assert moving["predictors"]["copy-state"]["h=1"]["rmse"]["object"] > 0.01
    assert moving["predictors"]["copy-state"]["h=1"]["object_motion_gain"] == 0.0  # nothing moves in its world


def test_motion_gain_and_reward_bias():
    """The real future moves the object in full (gain 1, calibration 1); half of it gives gain 0.5 and calibration 2
    (the real object moves twice what is predicted); a reward offset is its bias."""

    class Scaled:
        def __init__(self, f, r):
            self.f, self.r, self.name = f, r, f"scaled {f}"

        def predict(self, episodes, ep_idx, t, actions):
            real = real_future(episodes, ep_idx, t, actions.shape[1])
            start = np.stack([episodes[i].states[s] for i, s in zip(ep_idx, t, strict=True)])[:, None]
            return replace(real, state=start + self.f * (real.state - start), reward=real.reward + self.r)

    held = toy(4, 100, steps=12, noise=0.5)
    res = evaluate_state_error([Scaled(1.0, 0.0), Scaled(0.5, -0.25)], held, TOY_LABELS, (1, 4),
                               proprio_groups=TOY_PROPRIO, moving_threshold=0.001)
    for h in (1, 4):
        full, half = res["predictors"]["scaled 1.0"][f"h={h}"], res["predictors"]["scaled 0.5"][f"h={h}"]
        assert full["object_moving_starts"] > 0
        assert full["object_motion_gain"] == pytest.approx(1.0) and full["reward_bias"] == pytest.approx(0.0, abs=1e-6)
        assert half["object_motion_gain"] == pytest.approx(0.5) and half["reward_bias"] == pytest.approx(-0.25)
        assert full["object_motion_calibration"] == pytest.approx(1.0)
        assert half["object_motion_calibration"] == pytest.approx(2.0)
    assert "| 0.50 | 2.00 | -0.250 |" in state_error_table([("toy", res)])


def test_uncertainty_rank_per_step_and_accumulated():
    """A predictor whose per-step errors are random kicks that accumulate along the branch: the per-step
    uncertainty of step k (the size of its own kick) ranks the error at k only in part, the accumulated one exactly
    whenever the kicks add up in one direction; and a predictor without an uncertainty reports none."""

    class Kicks:
        name = "kicks"

        def predict(self, episodes, ep_idx, t, actions):
            b, h = actions.shape[:2]
            real = real_future(episodes, ep_idx, t, h)
            kick = np.random.default_rng(0).uniform(0.001, 0.02, (b, h))
            s = real.state.copy()
            s[..., 0] += np.cumsum(kick, 1)  # the object drifts along x by the sum of the kicks so far
            return replace(real, state=s, uncertainty=kick)

    held = toy(6, 100, steps=12, noise=0.5)
    res = evaluate_state_error([Kicks(), Offset(0.01, 0.0, 0.0)], held, TOY_LABELS, (1, 4),
                               proprio_groups=TOY_PROPRIO)
    k1, k4 = (res["predictors"]["kicks"][f"h={h}"]["uncertainty_spearman"] for h in (1, 4))
    for what in ("object", "state"):  # the error is all on the object: the same ranks in metres or standardised
        assert k1[what]["step"] == pytest.approx(1.0) and k1[what]["accumulated"] == pytest.approx(1.0)
        assert k4[what]["accumulated"] == pytest.approx(1.0) and k4[what]["step"] < 0.8
        assert 0.0 < k4[what]["step_se"] < 0.5  # resampling the 6 episodes moves the per-step rank
    assert res["predictors"]["offset"]["h=1"]["uncertainty_spearman"] == {}
    table = state_error_table([("toy", res)])
    assert "| 1.00 (+-0.00) / 1.00 (+-0.00) |" in table and "| - |" in table


def test_termination_metrics():
    m = termination_metrics(np.array([1, 0, 0, 1], bool), np.array([0.9, 0.6, 0.1, 0.2]))
    assert m["accuracy"] == 0.5 and m["precision"] == 0.5 and m["recall"] == 0.5 and m["f1"] == 0.5
    assert m["brier"] == pytest.approx((0.01 + 0.36 + 0.01 + 0.64) / 4)
    assert np.isnan(termination_metrics(np.zeros(3, bool), np.zeros(3))["f1"])


def test_state_groups_cover_every_task():
    from worldsample_control.core.sim.tasks import TASK_CLASSES

    for name, cls in TASK_CLASSES.items():
        g = state_groups(cls.state_labels)
        assert sorted(i for idx in g.values() for i in idx) == list(range(len(cls.state_labels))), name
        assert {"object", "target", "object_to_target"} <= set(g), (name, g)
    g = state_groups(TASK_CLASSES["sort"].state_labels)
    assert [TASK_CLASSES["sort"].state_labels[i] for i in g["target"]] == ["red_bin_x", "red_bin_y", "blue_bin_x",
                                                                             "blue_bin_y"]
    assert len(g["ee_to_object"]) == 6 and len(g["object"]) == 6
    peg = TASK_CLASSES["peg_insertion"].state_labels
    assert [peg[i] for i in state_groups(peg)["object_to_target"]] == ["peg_to_hole_x", "peg_to_hole_y",
                                                                       "peg_bottom_above_rim"]


def test_bad_input_is_named():
    held = toy(1, 0, steps=6)
    with pytest.raises(ValueError, match="labels name"):
        evaluate_state_error([CopyState()], held, TOY_LABELS[:3], (1,), proprio_groups=TOY_PROPRIO)
    with pytest.raises(ValueError, match="no privileged states"):
        evaluate_state_error([CopyState()], [replace(held[0], states=None)], TOY_LABELS, (1,))
    with pytest.raises(ValueError, match="horizons"):
        evaluate_state_error([CopyState()], held, TOY_LABELS, (0,), proprio_groups=TOY_PROPRIO)


def known_transitions(n: int, seed: int) -> Transitions:
    """A known system: o[:3] moves by 0.1 * a, o[3] drifts by 0.05 * o[0], o[4] stays; reward = -|o'[:3]|,
    termination when o'[0] > 0.8."""
    rng = np.random.default_rng(seed)
    o = rng.uniform(-1, 1, (n, 5)).astype(np.float32)
    a = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
    nxt = o.copy()
    nxt[:, :3] += 0.1 * a
    nxt[:, 3] += 0.05 * o[:, 0]
    return Transitions(o, a, nxt, -np.linalg.norm(nxt[:, :3], axis=1).astype(np.float32),
                       (nxt[:, 0] > 0.8).astype(np.float32))


def test_mlp_ensemble_fits_known_dynamics():
    train, test = known_transitions(2000, 0), known_transitions(500, 1)
    cfg = MLPDynamicsConfig(ensemble_size=3, hidden_dim=64, num_layers=2, steps=600, batch_size=128, lr=3e-3)
    model, met = train_mlp_dynamics(train, cfg)
    assert met["num_holdout"] == 200 and met["holdout_loss"] < 0.1, met
    pred = model.predict(test.obs, test.actions)
    motion = np.sqrt(np.mean((test.next_obs - test.obs)[:, :4] ** 2, 0))
    err = np.sqrt(np.mean((pred["next_obs"] - test.next_obs) ** 2, 0))
    assert (err[:4] < 0.1 * motion).all() and err[4] < 1e-3, (err, motion)
    assert np.abs(pred["reward"] - test.rewards).mean() < 0.1 * np.abs(test.rewards).mean()
    term = termination_metrics(test.terminated > 0, pred["terminated_prob"])
    assert term["positives"] >= 20 and term["f1"] >= 0.8, term
    assert pred["disagreement"].shape == (500,) and (pred["disagreement"] >= 0).all()
    with pytest.raises(ValueError, match="obs must be"):
        model.predict(test.obs[:, :4], test.actions)


def test_probabilistic_ensemble_learns_where_the_dynamics_are_noisy():
    """The known system with noise on o[:3]'s step where o[4] > 0 only: the probabilistic members predict that
    variance, so its uncertainty ranks the noisy half's (irreducible) error, which the members' spread cannot see."""
    data = known_transitions(4000, 0)
    noisy = data.obs[:, 4] > 0
    rng = np.random.default_rng(1)
    data.next_obs[noisy, :3] += rng.normal(0, 0.05, (int(noisy.sum()), 3)).astype(np.float32)
    cfg = MLPDynamicsConfig(ensemble_size=3, hidden_dim=64, num_layers=2, steps=800, batch_size=256, lr=3e-3)
    test = known_transitions(1000, 2)
    errs = {}
    for prob in (False, True):
        model, met = train_mlp_dynamics(data, replace(cfg, probabilistic=prob))
        u = model.predict(test.obs, test.actions)["disagreement"]
        errs[prob] = float(np.median(u[test.obs[:, 4] > 0]) / np.median(u[test.obs[:, 4] <= 0]))
        assert np.isfinite(met["holdout_loss"]) and (u >= 0).all()
    assert errs[True] > 3.0 and errs[True] > 2 * errs[False], errs  # noisy half reads as more uncertain
    with pytest.raises(ValueError, match="init is a"):
        train_mlp_dynamics(data, cfg, init=train_mlp_dynamics(data, replace(cfg, steps=1, probabilistic=True))[0])
    with pytest.raises(ValueError, match="min_logvar"):
        replace(cfg, min_logvar=2.0).validate()


def test_mlp_fit_stops_early_and_continues_from_a_previous_ensemble():
    """Early stopping: no held-out improvement for `patience` checks ends the fit and the best checkpoint is kept.
    Warm start: a 1-step fit from a trained ensemble keeps its accuracy, a 1-step fit from scratch has none."""
    train = known_transitions(2000, 0)
    cfg = MLPDynamicsConfig(ensemble_size=3, hidden_dim=64, num_layers=2, steps=600, batch_size=128, lr=3e-3)
    model, met = train_mlp_dynamics(train, cfg)
    slow = replace(cfg, steps=20_000, eval_every=10, patience=2, lr=3e-2)  # overshoots soon: the check must stop it
    _, early = train_mlp_dynamics(train, slow, init=model)
    assert early["steps"] < 20_000 and early["steps"] - early["best_step"] == 2 * slow.eval_every, early
    one = replace(cfg, steps=1, eval_every=1)
    _, warm = train_mlp_dynamics(known_transitions(2200, 3), one, init=model)
    _, cold = train_mlp_dynamics(known_transitions(2200, 3), one)
    assert warm["holdout_loss"] < 0.2 * cold["holdout_loss"] and cold["holdout_loss"] > 0.5, (warm, cold)
    # the held-out transitions stay held out as the data grows, and the fit reports its disagreement there
    small, big = held_out(1000, 0.1), held_out(1500, 0.1)
    assert (big[:1000] == small).all() and 70 < small.sum() < 130
    assert met["holdout_disagreement"] > 0 and np.isfinite(met["holdout_disagreement"])
    with pytest.raises(ValueError, match="init is a"):
        train_mlp_dynamics(train, replace(cfg, hidden_dim=32), init=model)
    with pytest.raises(ValueError, match="patience"):
        replace(cfg, patience=-1).validate()


def known_runs(runs: int, length: int, seed: int) -> Transitions:
    """`known_transitions`' system rolled forward: ``runs`` runs of ``length`` consecutive transitions, one after the
    other (each run's last next observation is not the next run's first observation)."""
    rng = np.random.default_rng(seed)
    obs, act, nxt = [], [], []
    for _ in range(runs):
        o = rng.uniform(-0.5, 0.5, 5).astype(np.float32)
        for _ in range(length):
            a = rng.uniform(-1, 1, 3).astype(np.float32)
            n = o.copy()
            n[:3] += 0.1 * a
            n[3] += 0.05 * o[0]
            obs.append(o), act.append(a), nxt.append(n)
            o = n
    nxt_a = np.stack(nxt)
    return Transitions(np.stack(obs), np.stack(act), nxt_a, -np.linalg.norm(nxt_a[:, :3], axis=1).astype(np.float32),
                       np.zeros(len(nxt_a), np.float32))


def test_multi_step_loss_rolls_only_through_consecutive_training_rows():
    data = known_runs(30, 10, 0)
    held = held_out(len(data), 0.1)
    starts = rollout_starts(data, held, 4)
    assert len(starts) > 0
    for i in starts:  # four training rows of one run
        assert not held[i:i + 4].any() and i % 10 <= 6, i
    # every such row is found: one-step starts are the training rows, and a run's last 3 rows start no 4-step rollout
    want = [i for i in range(len(data)) if i % 10 <= 6 and not held[i:i + 4].any()]
    assert list(starts) == want and list(rollout_starts(data, held, 1)) == list(np.flatnonzero(~held))
    cfg = MLPDynamicsConfig(ensemble_size=3, hidden_dim=64, num_layers=2, steps=600, batch_size=128, lr=3e-3,
                            rollout_steps=4)
    model, met = train_mlp_dynamics(data, cfg)
    assert met["num_train"] == len(starts) and np.isfinite(met["holdout_loss"]), met
    test = known_transitions(500, 1)
    pred = model.predict(test.obs, test.actions)
    motion = np.sqrt(np.mean((test.next_obs - test.obs)[:, :4] ** 2, 0))
    err = np.sqrt(np.mean((pred["next_obs"] - test.next_obs) ** 2, 0))
    assert (err[:4] < 0.2 * motion).all(), (err, motion)
    with pytest.raises(ValueError, match="consecutive"):  # shuffled transitions carry no runs
        train_mlp_dynamics(known_transitions(500, 0), cfg)
    with pytest.raises(ValueError, match="rollout_steps"):
        replace(cfg, rollout_steps=0).validate()


def test_ignored_inputs_are_unseen_but_still_predicted():
    """The known system's motion depends on o[0] and the action only: hiding o[1], o[2], o[4] keeps the fit, and the
    change predicted is the same wherever those sit; hiding o[0] loses o[3]'s drift (0.05 * o[0])."""
    train, test = known_transitions(2000, 0), known_transitions(500, 1)
    cfg = MLPDynamicsConfig(ensemble_size=3, hidden_dim=64, num_layers=2, steps=600, batch_size=128, lr=3e-3,
                            ignore_inputs=(1, 2, 4))
    model, _ = train_mlp_dynamics(train, cfg)
    pred = model.predict(test.obs, test.actions)["next_obs"]
    drift = np.sqrt(np.mean((test.next_obs - test.obs)[:, 3] ** 2))
    assert np.sqrt(np.mean((pred - test.next_obs)[:, 3] ** 2)) < 0.2 * drift
    moved = test.obs.copy()
    moved[:, [1, 2, 4]] = np.random.default_rng(2).uniform(-1, 1, (len(moved), 3))
    np.testing.assert_allclose(model.predict(moved, test.actions)["next_obs"] - moved, pred - test.obs, atol=1e-5)
    blind, _ = train_mlp_dynamics(train, replace(cfg, ignore_inputs=(0,)))
    err3 = np.sqrt(np.mean((blind.predict(test.obs, test.actions)["next_obs"] - test.next_obs)[:, 3] ** 2))
    assert err3 > 0.8 * drift, (err3, drift)
    with pytest.raises(ValueError, match="ignore_inputs"):
        replace(cfg, ignore_inputs=(-1,)).validate()
    with pytest.raises(ValueError, match="reaches past"):
        train_mlp_dynamics(train, replace(cfg, ignore_inputs=(5,)))


def test_a_zero_reward_weight_leaves_the_reward_unfitted_and_the_dynamics_fitted():
    train, test = known_transitions(2000, 0), known_transitions(500, 1)
    cfg = MLPDynamicsConfig(ensemble_size=3, hidden_dim=64, num_layers=2, steps=600, batch_size=128, lr=3e-3,
                            reward_weight=0.0, done_weight=0.0)
    model, _ = train_mlp_dynamics(train, cfg)
    pred = model.predict(test.obs, test.actions)
    motion = np.sqrt(np.mean((test.next_obs - test.obs)[:, :4] ** 2, 0))
    assert (np.sqrt(np.mean((pred["next_obs"] - test.next_obs) ** 2, 0))[:4] < 0.1 * motion).all()
    fitted, _ = train_mlp_dynamics(train, replace(cfg, reward_weight=1.0))
    err = {m: np.abs(r.predict(test.obs, test.actions)["reward"] - test.rewards).mean() for m, r in
           (("unweighted", model), ("weighted", fitted))}
    assert err["unweighted"] > 5 * err["weighted"], err
    with pytest.raises(ValueError, match="reward_weight"):
        replace(cfg, reward_weight=-1.0).validate()


def test_mlp_predictor_beats_copy_state_open_loop():
    """On the toy world (the point moves by 0.08 * action, clipped to the unit cube), rolled open loop."""
    train = toy(24, 0, steps=20, policy="random")
    held = toy(4, 500, steps=20, policy="random")
    cfg = MLPDynamicsConfig(ensemble_size=3, hidden_dim=64, num_layers=2, steps=600, batch_size=128, lr=3e-3)
    model, _ = train_mlp_dynamics(transitions_from_episodes(train), cfg)
    res = evaluate_state_error([CopyState(), MLPPredictor(model, 4)], held, TOY_LABELS, (1, 4),
                               proprio_groups=TOY_PROPRIO)
    for h in (1, 4):
        mlp, copy = (res["predictors"][n][f"h={h}"]["rmse"]["object"] for n in ("MLP ensemble", "copy-state"))
        assert mlp < 0.5 * copy, (h, mlp, copy)


def test_mlp_config_and_data_checks():
    with pytest.raises(ValueError, match="hidden_dim"):
        MLPDynamicsConfig(hidden_dim=0).validate()
    with pytest.raises(ValueError, match="no privileged states"):
        transitions_from_episodes([toy_episode(0, steps=4)])
    data = transitions_from_episodes(toy(2, 0, steps=5))
    with pytest.raises(ValueError, match="rewards has"):
        train_mlp_dynamics(replace(data, rewards=data.rewards[:-1]))


def test_video_predictor_splits_the_state_from_the_proprio():
    """The video model with the state appended to its proprio: the predictor's proprio and state at h = 1 are the
    two parts of the model's own step from the real history (untrained model: the wiring, not the quality)."""
    held = [replace(e, source=Source.REAL) for e in toy(2, 10, steps=8)]
    cfg = WorldModelConfig(image_size=16, latent_channels=8, base_channels=8, hidden_dim=32, ensemble_size=2,
                           history=2, device="cpu")
    model = build_model(cfg, proprio_dim=4 + len(TOY_LABELS))
    model.set_proprio_stats(np.concatenate([np.concatenate([e.proprio, e.states], 1) for e in held]))
    pred = VideoModelPredictor(model, 4)
    ep_idx, t = np.array([0, 1]), np.array([3, 5])
    actions = np.stack([held[0].actions[3:5], held[1].actions[5:7]])
    ol = pred.predict(held, ep_idx, t, actions)
    assert ol.proprio.shape == (2, 2, 4) and ol.state.shape == (2, 2, len(TOY_LABELS))
    vec = np.stack([np.concatenate([held[i].proprio[s], held[i].states[s]]) for i, s in zip(ep_idx, t, strict=True)])
    frames = {c: np.stack([held[i].images[c][s - 1: s + 1] for i, s in zip(ep_idx, t, strict=True)])
              for c in model.cameras}
    with torch.no_grad():
        res = model.step(model.encode_history(frames, vec), torch.as_tensor(vec), actions[:, 0])
    p = res["proprio"].numpy()
    np.testing.assert_allclose(ol.proprio[:, 0], p[:, :4], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ol.state[:, 0], p[:, 4:], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ol.reward[:, 0], res["reward"].numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="state_in_proprio"):
        VideoModelPredictor(build_model(cfg, proprio_dim=4), 4).predict(held, ep_idx, t, actions)


def test_static_state_dims_are_carried_over_from_the_start():
    """A dimension constant within every episode (a goal set at reset) is static even when episodes differ in it;
    carry_static replaces the model's value of such a dimension by the start's, along a branch or a batch."""
    from worldsample_common.core.episode import Episode, Source
    from worldsample_worldmodel.core.source import carry_static, static_state_dims

    def ep(goal: float, moving: np.ndarray) -> Episode:
        t = len(moving) - 1
        states = np.stack([moving, np.full_like(moving, goal)], 1).astype(np.float32)
        return Episode(f"e{goal}", "push", Source.REAL, {}, np.zeros((t + 1, 7)), np.zeros((t, 4)), np.zeros(t),
                       np.zeros(t, bool), np.zeros(t, bool), np.zeros(t, bool), states=states)

    eps = [ep(0.3, np.linspace(0, 1, 5)), ep(-0.2, np.linspace(1, 0, 4))]
    static = static_state_dims(eps)
    assert static.tolist() == [False, True]
    assert static_state_dims([]) is None
    assert static_state_dims([ep(0.1, np.zeros(3))], static).tolist() == [False, True]  # once moving, always moving
    branch = np.array([[0.5, 0.3], [0.6, 0.31], [0.7, 0.29]])  # the model lets the goal drift
    np.testing.assert_allclose(carry_static(branch, branch[0], static), [[0.5, 0.3], [0.6, 0.3], [0.7, 0.3]])
    batch = np.stack([branch, branch + 1])  # (B, H, S) with starts (B, S)
    out = carry_static(batch, np.array([[0.0, 0.3], [1.0, 1.3]]), static)
    np.testing.assert_allclose(out[:, :, 1], [[0.3] * 3, [1.3] * 3])
    np.testing.assert_allclose(out[:, :, 0], batch[:, :, 0])
    assert carry_static(branch, branch[0], None) is branch


def test_judged_branch_ends_at_its_first_successful_state():
    """`judged`: an imagined branch labelled by the task's success detector on its predicted states is cut
    after the first success (terminated, that step's reward), and only truncated when no state succeeds,
    whatever the model's own outcome head said."""
    from worldsample_common.core.episode import Episode, Source
    from worldsample_worldmodel.core.source import VideoSourceConfig, VideoWorldModelSource, judged

    t = 6
    rng = np.random.default_rng(0)

    def ep(states):
        head_term = np.zeros(t, bool)
        head_term[-1] = True  # the head "terminated" every branch at its end
        return Episode(episode_id="e", task="toy", source=Source.SYNTHETIC,
                       images={"front": np.zeros((t + 1, 8, 8, 3), np.uint8)},
                       proprio=rng.normal(size=(t + 1, 3)).astype(np.float32),
                       actions=np.zeros((t, 4), np.float32), rewards=np.full(t, 5.0, np.float32),
                       terminated=head_term, truncated=np.zeros(t, bool), successes=head_term.copy(),
                       uncertainty=np.arange(t, dtype=np.float32), states=states)

    def judge(task, states):  # success where the first state dimension passes 1
        assert task == "toy"
        ok = states[:, 0] > 1.0
        return ok, np.where(ok, 0.0, -1.0 + 0.1 * states[:, 0]).astype(np.float32)

    s = np.zeros((t + 1, 2), np.float32)
    s[:, 0] = [0.0, 0.2, 0.4, 1.5, 0.3, 2.0, 0.0]  # next states 1..6: first success at step index 2
    out = judged(ep(s), judge)
    assert out.length == 3 and out.terminated.tolist() == [False, False, True] and not out.truncated.any()
    assert out.successes.tolist() == [False, False, True]
    np.testing.assert_allclose(out.rewards, [-0.98, -0.96, 0.0], atol=1e-6)
    assert out.images["front"].shape[0] == 4 and out.states.shape[0] == 4 and out.proprio.shape[0] == 4
    np.testing.assert_array_equal(out.uncertainty, [0, 1, 2])
    out.validate()
    boot = judged(ep(s), judge, success_terminates=False)  # imagined_success "bootstrap": the same cut and reward,
    assert boot.length == 3 and not boot.terminated.any() and boot.truncated.tolist() == [False, False, True]
    assert boot.successes.tolist() == [False, False, True]  # truncated only: the learner bootstraps there
    np.testing.assert_allclose(boot.rewards, out.rewards)
    boot.validate()
    s[:, 0] = 0.5  # never a success: the head's termination is dropped, the branch is truncated (bootstrapped)
    out = judged(ep(s), judge)
    assert out.length == t and not out.terminated.any() and out.truncated[-1] and not out.successes.any()
    with pytest.raises(ValueError, match="state_in_proprio"):
        VideoWorldModelSource(VideoSourceConfig(state_in_proprio=False), judge=judge)
    with pytest.raises(ValueError, match="imagined_success must be one of"):
        VideoSourceConfig(imagined_success="never").validate()


def test_agreed_success_keeps_a_success_only_where_enough_members_predict_one():
    """`agreed_success`: the judge on the mean state, with each success checked against the members' own states;
    a refused step is no success and earns the lowest member reward; agreement 0 is the mean state alone."""
    from worldsample_worldmodel.core.source import agreed_success

    def judge(task, states):  # success where the first dimension passes 1; reward grows with it below that
        ok = states[:, 0] > 1.0
        return ok, np.where(ok, 1.0, 0.5 * states[:, 0]).astype(np.float32)

    mean = np.array([[0.4], [1.2], [1.5], [2.0]], np.float32)
    members = np.array([[[0.4], [1.1], [1.4], [2.0]],
                        [[0.2], [0.9], [1.6], [1.9]],
                        [[0.6], [0.6], [1.2], [2.1]],
                        [[0.4], [1.3], [0.8], [2.0]]], np.float32)  # (E=4, T=4, S=1)
    ok, rew = agreed_success(judge, "toy", mean)
    assert ok.tolist() == [False, True, True, True]
    for agreement, want_ok, want_rew in [(1.0, [False, False, False, True], [0.2, 0.3, 0.4, 1.0]),
                                         (0.75, [False, False, True, True], [0.2, 0.3, 1.0, 1.0]),
                                         (0.5, [False, True, True, True], [0.2, 1.0, 1.0, 1.0]),
                                         (0.0, [False, True, True, True], [0.2, 1.0, 1.0, 1.0])]:
        ok, rew = agreed_success(judge, "toy", mean, members, agreement)
        assert ok.tolist() == want_ok, agreement
        np.testing.assert_allclose(rew, want_rew, atol=1e-6)
    # no member states: the mean state alone, whatever the agreement asked
    assert agreed_success(judge, "toy", mean, None, 1.0)[0].tolist() == [False, True, True, True]


def test_judged_predictor_labels_by_the_predicted_state():
    """`JudgedPredictor`: reward and termination come from the judge on the predicted state; with the real
    future as the prediction and the toy's own success rule as the judge, termination is exact."""
    from worldsample_worldmodel.core.state_error import JudgedPredictor

    class RealFuture:
        name = "real future"

        def predict(self, episodes, ep_idx, t, actions):
            return real_future(episodes, ep_idx, t, actions.shape[1])

    held = toy(4, 100, steps=12, noise=0.2)
    seen = []

    final = {tuple(e.states[1:][k]) for e in held for k in np.flatnonzero(e.terminated)}

    def judge(task, states):  # "success" = exactly a recorded terminal state of a held-out episode
        seen.append(task)
        ok = np.array([tuple(x) in final for x in states])
        return ok, np.where(ok, 0.0, -1.0).astype(np.float32)

    res = evaluate_state_error([JudgedPredictor(RealFuture(), judge)], held, TOY_LABELS, (1,),
                               proprio_groups=TOY_PROPRIO)
    r = res["predictors"]["real future, judged"]["h=1"]
    assert seen and set(seen) == {held[0].task}
    assert r["rmse"]["object"] == 0.0
    assert r["termination"]["positives"] > 0, "the toy episodes should contain successes"
    assert r["termination"]["f1"] == 1.0 and r["termination"]["brier"] == 0.0


def test_success_reward_floor_recovers_the_successes_a_lagging_model_misses():
    """`success_scores` / `success_reward_floor`: a model that predicts the real future exactly needs no floor; one
    whose object lags behind the real one misses the real successes with the judge alone, and the floor chosen on
    the judged rewards of its misses recovers them without false ones."""

    class Lagging:
        name = "lagging"

        def __init__(self, lag: float) -> None:
            self.lag = lag

        def predict(self, episodes, ep_idx, t, actions):
            real = real_future(episodes, ep_idx, t, actions.shape[1])
            return replace(real, state=real.state - self.lag)  # every state entry a little short

    held = toy(6, 300, steps=12, noise=0.2)
    final = {e.episode_id: e.states[1:][np.flatnonzero(e.terminated)] for e in held}
    threshold = min(float(v[:, 0].min()) for v in final.values() if len(v))

    def judge(task, states):  # success from the lowest recorded terminal block_x on; the reward grows with it below
        ok = states[:, 0] >= threshold
        return ok, np.where(ok, 0.0, -1.0 + 0.5 * np.tanh(states[:, 0] - threshold + 1)).astype(np.float32)

    class RealFuture(Lagging):
        name = "real future"

    exact = success_scores(RealFuture(0.0), judge, held, (1, 2), stride=1, max_starts=4096)
    assert exact["real"].sum() > 0 and set(exact) >= {"imagined", "reward", "real", "real_reward"}
    assert exact["state"].shape == (len(exact["real"]), held[0].states.shape[1])
    assert sorted(set(exact["horizon"].tolist())) == [1, 2] and exact["episode"].max() < len(held)
    assert len(exact["real"]) == len(exact["reward"]) == len(exact["imagined"])
    chosen = success_reward_floor(exact, min_real=1)
    if chosen["judge"]["recall"] == 1.0 and chosen["judge"]["precision"] == 1.0:
        assert chosen["floor"] is None
    lag = success_scores(Lagging(10.0), judge, held, (1, 2), stride=1, max_starts=4096)
    assert not lag["imagined"].any() and lag["real"].sum() == exact["real"].sum()
    chosen = success_reward_floor(lag, min_real=1)
    assert chosen["floor"] is not None and chosen["judge"]["recall"] == 0.0
    assert chosen["with_floor"]["recall"] > 0 and chosen["with_floor"]["f1"] > 0
    assert chosen["success_reward"] == float(np.median(lag["real_reward"][lag["real"]]))
    assert success_reward_floor(lag, min_real=10 ** 6)["floor"] is None  # too few real successes to choose on
    # constructed scores: the floor that separates the misses from the rest, the highest of equal ones
    scores = {"imagined": np.array([1, 0, 0, 0, 0, 0], bool), "reward": np.array([0.0, -0.2, -0.3, -0.6, -0.7, -0.9]),
              "real": np.array([1, 1, 1, 0, 0, 0], bool), "real_reward": np.zeros(6)}
    chosen = success_reward_floor(scores, min_real=1)
    assert chosen["floor"] == pytest.approx(-0.3) and chosen["with_floor"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert chosen["judge"]["recall"] == pytest.approx(1 / 3)
