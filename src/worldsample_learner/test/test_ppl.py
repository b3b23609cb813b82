import numpy as np
import pytest
from helpers import make_episode
from worldsample_common.core.episode import Source
from worldsample_learner.core.config import AgentConfig, PPLConfig
from worldsample_learner.core.learner import Learner
from worldsample_learner.core.ppl import PPLController


def _ctl(mode="ppl", **kw):
    return PPLController(PPLConfig(mode=mode, **kw))


def test_trust_combines_uncertainty_and_value_risk():
    c = _ctl()
    c.q_scale = 1.0
    q_agree = np.full((4, 3), 1.0)
    s = c.score(np.array([0.0, 0.5, 2.0]), q_agree, q_real_max=5.0)
    np.testing.assert_allclose(s.trust, np.exp(-np.array([0.0, 0.5, 2.0]) / c.cfg.uncertainty_scale), rtol=1e-6)
    q = np.array([[1.0, 0.0, 9.0], [1.0, 2.0, 9.0], [1.0, 0.0, 9.0], [1.0, 2.0, 9.0]])
    s = c.score(np.zeros(3), q, q_real_max=5.0)
    # agreement and below the real max: full trust; disagreement (std 1); inflated above real max (9 - 5)
    np.testing.assert_allclose(s.trust, [1.0, np.exp(-1.0), np.exp(-4.0)], rtol=1e-6)


def test_admission_threshold_admits_and_rejects_with_reasons():
    c = _ctl(uncertainty_scale=2.0)  # no progress, no fidelity: threshold = threshold_max = 0.8
    assert c.admission_threshold() == pytest.approx(0.8)
    c.q_scale = 1.0
    unc = np.array([0.0, 0.05, 1.0, 0.0, np.nan])
    q = np.ones((4, 5))
    q[:, 3] = [0.0, 3.0, 0.0, 3.0]  # disagreement 1.5 -> value factor exp(-1.5)
    mask, reasons = c.admit(c.score(unc, q, q_real_max=2.0))
    # trust: 1, exp(-0.1)=0.905 (>= 0.8), exp(-2)=0.135, 0.22, invalid
    assert mask.tolist() == [True, True, False, False, False]
    assert reasons == {"uncertainty": 1, "value_inflation": 1, "invalid": 1}
    st = c.status(7)
    assert st["admitted"] == 2 and st["rejected"] == 3 and st["learner_step"] == 7
    assert dict(zip(st["rejection_reasons"], st["rejection_counts"], strict=True)) == reasons


def test_schedule_grows_with_progress_and_fidelity_and_shrinks_with_overestimation():
    c = _ctl()
    share0, hor0, thr0 = c.synthetic_share(), c.rollout_horizon(), c.admission_threshold()
    for s in [0, 0, 0, 0, 1, 1, 1, 1]:
        c.observe_real_episode(bool(s))
    share1, hor1, thr1 = c.synthetic_share(), c.rollout_horizon(), c.admission_threshold()
    assert share1 > share0 and hor1 > hor0 and thr1 < thr0
    c.observe_fidelity(0.9)
    share2, hor2, thr2 = c.synthetic_share(), c.rollout_horizon(), c.admission_threshold()
    assert share2 > share1 and hor2 >= hor1 and thr2 < thr1
    # a rising trend counts more than the same rate falling
    rising, falling = _ctl(), _ctl()
    for s in [0, 0, 1, 1]:
        rising.observe_real_episode(bool(s))
    for s in [1, 1, 0, 0]:
        falling.observe_real_episode(bool(s))
    assert rising.synthetic_share() > falling.synthetic_share()
    # overestimation: Q on synthetic above Q on real shrinks the share, horizon; raises the threshold
    c.observe_q(q_real=1.0, q_synthetic=1.0, q_scale=1.0)
    assert c.synthetic_share() == pytest.approx(share2)
    c.observe_q(q_real=1.0, q_synthetic=1.25, q_scale=1.0)
    share3 = c.synthetic_share()
    assert share3 < share2 and c.admission_threshold() > thr2 and c.overestimation() == pytest.approx(0.25)
    c.observe_q(q_real=1.0, q_synthetic=3.0, q_scale=1.0)
    assert c.synthetic_share() == 0.0 and c.rollout_horizon() == c.cfg.horizon_min


def test_ablation_modes_behave_as_named():
    unc = np.array([0.0, 8.0])  # one trusted, one very uncertain (8x typical)
    progress = [1, 1, 1, 1]

    def run(mode):
        c = _ctl(mode)
        before = (c.synthetic_share(), c.rollout_horizon())
        for s in progress:
            c.observe_real_episode(bool(s))
        after = (c.synthetic_share(), c.rollout_horizon())
        mask, reasons = c.admit(c.score(unc, None, np.inf))
        return before, after, mask.tolist(), reasons

    b, a, m, r = run("rl-only")
    assert b == a == (0.0, 0) and m == [False, False] and r == {"disabled": 2}
    b, a, m, r = run("naive")
    assert b == a == (0.5, 10) and m == [True, True]
    b, a, m, r = run("selection")
    assert b == a == (0.5, 10) and m == [True, False] and r == {"uncertainty": 1}
    b, a, m, r = run("schedule")
    assert a[0] > b[0] and a[1] > b[1] and m == [True, True]
    b, a, m, r = run("ppl")
    assert a[0] > b[0] and m == [True, False]
    # invalid data is never admitted, whatever the mode
    for mode in ("naive", "schedule"):
        c = _ctl(mode)
        assert c.admit(c.score(np.array([np.inf]), None, np.inf))[0].tolist() == [False]


def test_bad_config_and_fidelity_named():
    with pytest.raises(ValueError, match="PPLConfig.mode"):
        PPLController(PPLConfig(mode="magic"))
    with pytest.raises(ValueError, match="threshold_min"):
        PPLController(PPLConfig(threshold_min=0.9, threshold_max=0.5))
    with pytest.raises(ValueError, match="fidelity"):
        _ctl().observe_fidelity(1.5)


def _learner(mode):
    cfg = AgentConfig(obs_mode="state", state_dim=2, hidden_dim=32, num_critics=4, batch_size=40, utd_ratio=1)
    return Learner(cfg, PPLConfig(mode=mode))


def test_share_by_fidelity_is_zero_for_a_model_no_better_than_copying_and_ignores_progress():
    c = _ctl(share_by="fidelity")
    for _ in range(4):
        c.observe_real_episode(True)
    assert c.synthetic_share() == 0.0  # no fidelity reported yet: no synthetic rows, whatever the progress
    thr_no_model = c.admission_threshold()
    c.observe_fidelity(0.6)
    assert c.synthetic_share() == pytest.approx(0.6 * c.cfg.share_max)
    assert c.admission_threshold() < thr_no_model  # progress and fidelity still pace the threshold and horizon
    c.observe_q(q_real=0.0, q_synthetic=c.cfg.overestimation_tolerance, q_scale=1.0)  # full penalty
    assert c.synthetic_share() == 0.0
    with pytest.raises(ValueError, match="share_by"):
        PPLConfig(share_by="progress").validate()


def test_progress_by_return_paces_a_task_with_no_real_success_by_the_rewards_way_towards_the_demos():
    """Sort's case: no real success at all. "success" leaves the pace at fidelity's weight; "return" moves it with
    the real episodes' reward per step, measured from the first episodes' towards the demos'."""
    by_success, by_return = _ctl(), _ctl(progress_by="return", return_baseline_episodes=2)
    for c in (by_success, by_return):
        c.observe_fidelity(1.0)
        for r in (-0.9, -0.6):  # demos: mean -0.75
            c.observe_demo_episode(r)
    share0 = by_return.synthetic_share()
    for c in (by_success, by_return):
        for r in (-0.95, -0.95):  # the first two episodes: r_first = -0.95
            c.observe_real_episode(False, r)
    assert by_return.return_progress() == pytest.approx(0.0) and by_return.synthetic_share() == pytest.approx(share0)
    for c in (by_success, by_return):
        for r in (-0.85, -0.85, -0.85, -0.85):  # window of 6: mean -0.8833
            c.observe_real_episode(False, r)
    assert by_return.return_progress() == pytest.approx((-0.8833333 + 0.95) / (-0.75 + 0.95))
    assert by_return.synthetic_share() > share0 and by_return.rollout_horizon() > by_success.rollout_horizon()
    assert by_success.synthetic_share() == pytest.approx(share0)  # the default reads success only
    # success still counts: progress is the larger of the two
    for _ in range(6):
        by_return.observe_real_episode(True, -0.95)
    assert by_return.progress() == pytest.approx(1.0)
    # a resumed controller goes on with the same signals; a snapshot taken before "return" existed loads too
    state = by_return.state_dict()
    again = _ctl(progress_by="return", return_baseline_episodes=2)
    again.load_state_dict(state)
    assert again.progress() == by_return.progress() and again.return_progress() == by_return.return_progress()
    old = {k: v for k, v in state.items() if k not in ("returns", "first_returns", "demo_returns")}
    again.load_state_dict(old)
    assert again.return_progress() == 0.0


def test_return_progress_is_zero_until_it_can_be_measured():
    c = _ctl(progress_by="return", return_baseline_episodes=1)
    c.observe_real_episode(False, -0.9)
    c.observe_real_episode(False, -0.5)
    assert c.return_progress() == 0.0  # no demos: nothing to measure towards
    c.observe_demo_episode(-0.95)
    assert c.return_progress() == 0.0  # the first episodes already did as well as the demos
    c.observe_real_episode(False, float("nan"))  # an unreadable return is left out
    assert len(c.state_dict()["returns"]) == 2
    with pytest.raises(ValueError, match="progress_by"):
        PPLConfig(progress_by="reward").validate()


def test_learner_hands_ppl_the_rewards_per_step_of_demos_and_real_episodes():
    ln = _learner("ppl")
    ln.ppl.cfg.progress_by, ln.ppl.cfg.return_baseline_episodes = "return", 1
    demo = make_episode("d", t=4, source=Source.DEMO, cams=())
    demo.rewards[:] = -0.5
    real = make_episode("r", t=5, cams=())
    real.rewards[:] = -1.0
    ln.add_demo_episode(demo)
    ln.add_real_episode(real)
    st = ln.ppl.state_dict()
    assert st["demo_returns"] == [pytest.approx(-0.5)] and st["first_returns"] == [pytest.approx(-1.0)]


def test_learner_selects_synthetic_and_mixes_batches_by_share():
    for mode, expect_admitted in (("naive", 10), ("ppl", 5), ("rl-only", 0)):
        lr = _learner(mode)
        lr.add_demo_episode(make_episode("d", t=20, source=Source.DEMO, cams=()))
        lr.add_real_episode(make_episode("r", t=20, cams=(), seed=1))
        unc = np.array([0.0] * 5 + [5.0] * 5, np.float32)
        syn = make_episode("s", t=10, source=Source.SYNTHETIC, cams=(), seed=2, uncertainty=unc)
        bad = make_episode("s-bad", t=3, source=Source.SYNTHETIC, cams=(), seed=3)
        bad.actions[0, 0] = 2.0
        rep = lr.add_synthetic_episodes([syn, bad])
        assert len(lr.synthetic) == expect_admitted + (2 if mode != "rl-only" else 0), mode
        assert rep.rejected.get("action_range") == 1
        batch = lr.sample_batch()
        n_syn = int((batch["source"] == Source.SYNTHETIC).sum())
        assert n_syn == round(40 * lr.ppl.synthetic_share()), mode
        n_demo = int((batch["source"] == Source.DEMO).sum())
        assert n_demo == round((40 - n_syn) * 0.5)
        info = lr.train_step()
        assert np.isfinite(info["critic_loss"])
        st = lr.close_window()
        assert st["mode"] == mode and st["learner_step"] == 1


def test_overestimation_is_measured_against_the_branch_starts():
    """"branch_return" (default): per imagined step k of the newest admitted synthetic transitions, Q at its
    branch's (real) first step against the branch's discounted rewards to k plus discount^k Q at step k;
    "branch_start": the critic's Q at the first steps / at the imagined steps, both re-measured every window even
    at share 0; "batch": the mean Q on the real and synthetic rows of the training batches."""
    assert PPLConfig().overestimation_reference == "branch_return"
    for ref in ("branch_return", "branch_start", "batch"):
        cfg = AgentConfig(obs_mode="state", state_dim=2, hidden_dim=32, num_critics=2, batch_size=40, utd_ratio=1)
        lr = Learner(cfg, PPLConfig(mode="naive", overestimation_reference=ref, reference_window=12))
        lr.add_demo_episode(make_episode("d", t=20, source=Source.DEMO, cams=()))
        lr.add_real_episode(make_episode("r", t=30, cams=(), seed=1))
        lr.add_synthetic_episodes([make_episode(f"s{i}", t=4, source=Source.SYNTHETIC, cams=(), seed=2 + i,
                                                uncertainty=np.zeros(4, np.float32)) for i in range(5)])
        assert lr.branch_q() == (pytest.approx(np.nan, nan_ok=True), pytest.approx(np.nan, nan_ok=True))
        lr.train_step()
        batch_q = float(np.mean(lr._window["q_real"])), float(np.mean(lr._window["q_synthetic"]))
        st = lr.close_window()
        if ref == "batch":
            assert (st["q_real"], st["q_synthetic"]) == pytest.approx(batch_q)
            continue
        # the 12 newest synthetic rows are the last 3 branches of 4 steps: 3 starts, 9 imagined steps
        idx = lr.synthetic.recent_indices(12)
        b = lr.synthetic.gather(idx)
        q = lr.agent.q_values(b["obs"], b["action"]).mean(0)
        start = np.array([k % 4 == 0 for k in range(len(lr.synthetic))])[idx]
        assert start.sum() == 3
        if ref == "branch_return":
            # every stored row: Q and reward by slot; branch i holds slots 4i .. 4i+3 (steps 0..3)
            allb = lr.synthetic.gather(np.arange(len(lr.synthetic)))
            qa = lr.agent.q_values(allb["obs"], allb["action"]).mean(0)
            r, g = allb["reward"].astype(np.float64), cfg.discount
            pairs = [(qa[4 * (s // 4)], sum(g**j * r[4 * (s // 4) + j] for j in range(s % 4)) + g ** (s % 4) * qa[s])
                     for s in sorted(idx) if s % 4]
            assert len(pairs) == 9
            assert st["q_real"] == pytest.approx(np.mean([p[0] for p in pairs]), rel=1e-5)
            assert st["q_synthetic"] == pytest.approx(np.mean([p[1] for p in pairs]), rel=1e-5)
            # a chain with a missing step (its branch's start not admitted) is left out
            st_, ret, ok = lr.synthetic.branch_returns(np.array([len(lr.synthetic) - 1]), g)
            assert ok.all() and st_[0] == len(lr.synthetic) - 4
            lr.synthetic._data["step"][len(lr.synthetic) - 3] = 7
            assert not lr.synthetic.branch_returns(np.array([len(lr.synthetic) - 1]), g)[2].any()
            continue
        assert st["q_real"] == pytest.approx(float(q[start].mean()), rel=1e-5)
        assert st["q_synthetic"] == pytest.approx(float(q[~start].mean()), rel=1e-5)
        assert st["overestimation"] == pytest.approx((q[~start].mean() - q[start].mean()) / lr.ppl.q_scale, rel=1e-4)
    with pytest.raises(ValueError, match="overestimation_reference"):
        PPLController(PPLConfig(overestimation_reference="magic"))
