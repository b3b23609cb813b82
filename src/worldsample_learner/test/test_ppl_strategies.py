"""PPL modes are strategy objects registered by name; each decides exactly as the mode table says."""

from __future__ import annotations

import numpy as np
import pytest
from worldsample_learner.core import ppl as ppl_mod
from worldsample_learner.core.config import PPLConfig
from worldsample_learner.core.ppl import (
    PPL_MODES,
    STRATEGIES,
    PPLController,
    PPLStrategy,
    register_strategy,
    strategy_for,
    uses_synthetic,
)


def _table(mode: str, c: PPLConfig, pace: float, penalty: float) -> tuple[float, int, float]:
    """The mode table of the ppl.py docstring, written out (share, horizon, threshold)."""
    paced = pace * (1.0 - penalty)
    share = {"rl-only": 0.0, "naive": c.naive_share, "selection": c.naive_share}.get(
        mode, (c.share_min + (c.share_max - c.share_min) * pace) * (1.0 - penalty))
    horizon = {"rl-only": 0, "naive": c.naive_horizon, "selection": c.naive_horizon}.get(
        mode, c.horizon_min + round((c.horizon_max - c.horizon_min) * paced))
    threshold = {"rl-only": 1.0, "naive": 0.0, "schedule": 0.0, "selection": c.fixed_threshold}.get(
        mode, c.threshold_max - (c.threshold_max - c.threshold_min) * paced)
    return share, horizon, threshold


def test_the_registry_holds_the_ablation_ladder_in_order():
    assert PPL_MODES == ("rl-only", "naive", "selection", "schedule", "ppl")
    assert [m for m in PPL_MODES if not uses_synthetic(m)] == ["rl-only"]
    with pytest.raises(ValueError, match="not registered"):
        strategy_for("nope")
    with pytest.raises(ValueError, match="must be one of"):
        PPLConfig(mode="nope").validate()


@pytest.mark.parametrize("mode", PPL_MODES)
def test_each_strategy_decides_as_the_table_says(mode):
    rng = np.random.default_rng(0)
    ctl = PPLController(PPLConfig(mode=mode))
    for _ in range(30):
        ctl.observe_real_episode(bool(rng.random() < 0.6))
        ctl.observe_fidelity(float(rng.random()))
        ctl.observe_q(float(rng.normal()), float(rng.normal()), float(rng.uniform(0.1, 2.0)))
        share, horizon, threshold = _table(mode, ctl.cfg, ctl.pace(), ctl.penalty())
        assert ctl.synthetic_share() == pytest.approx(share)
        assert ctl.rollout_horizon() == horizon
        assert ctl.admission_threshold() == pytest.approx(threshold)


def test_the_controller_owns_its_counters():
    ctl = PPLController(PPLConfig(mode="naive"))
    scores = ctl.score(np.zeros(4), None, float("inf"))
    mask, _ = ctl.admit(scores)
    assert mask.all() and ctl.admitted == 4
    ctl.withdraw(1)
    ctl.reject_invalid(2)
    ctl.observe_q_scale(np.array([0.0, 2.0]))
    assert ctl.admitted == 3 and ctl.rejected["invalid"] == 2 and ctl.q_scale == pytest.approx(1.0)
    off = PPLController(PPLConfig(mode="rl-only"))
    mask, reasons = off.admit(scores)
    assert not mask.any() and reasons == {"disabled": 4} and not off.uses_synthetic


def test_a_new_mode_is_one_registered_class(monkeypatch):
    monkeypatch.setattr(ppl_mod, "STRATEGIES", dict(STRATEGIES))

    @register_strategy
    class Half(ppl_mod.AdmitValid, ppl_mod.FixedVolume):
        name = "half"

        def synthetic_share(self, ppl: PPLController) -> float:
            return 0.5 * ppl.cfg.naive_share

    assert isinstance(strategy_for("half"), PPLStrategy) and uses_synthetic("half")
    with pytest.raises(ValueError, match="registered twice"):
        register_strategy(Half)
