import numpy as np
import pytest
from worldsample_common.core.stats import average_ranks, motion_gains, spearman


def test_spearman_matches_scipy_with_ties_and_skips_non_finite_pairs():
    spearmanr = pytest.importorskip("scipy.stats").spearmanr  # scipy comes in with the other dependencies
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, 200).astype(float)  # many ties
    y = x + rng.normal(0, 2, 200)
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [2.5, 0.0, 2.5, 1.0]
    x2, y2 = np.append(x, [np.nan, 1.0]), np.append(y, [0.0, np.inf])
    assert spearman(x2, y2) == pytest.approx(spearman(x, y))
    assert spearman(-x, y) == pytest.approx(-spearman(x, y))
    assert np.isnan(spearman([1.0, 2.0], [1.0, 2.0]))  # too few pairs
    assert np.isnan(spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))  # no spread


def test_motion_gains():
    real = np.array([[1.0, 0.0], [0.0, 2.0]])
    half = 0.5 * real
    dot, r2, p2 = float((half * real).sum()), float((real * real).sum()), float((half * half).sum())
    gain, calib = motion_gains(dot, r2, p2)
    assert gain == pytest.approx(0.5) and calib == pytest.approx(2.0)  # moves half: gain 0.5, what it moves is real
    assert all(np.isnan(v) for v in motion_gains(0.0, 0.0, 0.0))


def test_fidelity_skill_is_the_way_from_copy_last_frame_to_exact():
    from worldsample_common.core.stats import fidelity_skill

    # the loop's model at wm-000009 (docs/results.md): SSIM 0.922 against copy's 0.897 reads 0.24, not 0.92
    assert fidelity_skill([0.922], [0.897]) == pytest.approx(0.025 / 0.103)
    assert fidelity_skill([0.90, 0.80], [0.95, 0.60]) == pytest.approx((0.0 + 0.5) / 2)  # worse than copy: 0
    assert fidelity_skill([1.0], [0.7]) == 1.0
    # a copy that is exact, or a horizon not measured, says nothing about the model: left out
    assert fidelity_skill([0.8, 0.9], [1.0, 0.8]) == pytest.approx(0.5)
    assert fidelity_skill([float("nan")], [0.8]) is None and fidelity_skill([], []) is None
    # with PSNR the smaller skill counts: 3 dB over copy removes half its pixel error
    assert fidelity_skill([0.95], [0.90], [28.0], [25.0]) == pytest.approx(1 - 10 ** -0.3)
    assert fidelity_skill([0.922], [0.897], [29.0], [25.0]) == pytest.approx(0.025 / 0.103)
    # wm-000005: SSIM over copy's (0.923 vs 0.905) but PSNR under it (26.4 vs 26.6 dB): no better than copying
    assert fidelity_skill([0.923], [0.905], [26.4], [26.6]) == 0.0
    # the frames as the policy's pixel encoder reads them (issue 23): the smallest of the three counts, < 0 is 0
    assert fidelity_skill([0.95], [0.90], [28.0], [25.0], [0.2]) == pytest.approx(0.2)
    assert fidelity_skill([0.95, 0.95], [0.90, 0.90], [28.0, 28.0], [25.0, 25.0], [-2.6, 0.9]) == pytest.approx(
        (0.0 + 1 - 10 ** -0.3) / 2)
    with pytest.raises(ValueError, match="feature-skill"):
        fidelity_skill([0.95], [0.90], feature_skill=[0.1, 0.2])
    with pytest.raises(ValueError, match="copy-last-frame"):
        fidelity_skill([0.9, 0.9], [0.8])
    with pytest.raises(ValueError, match="PSNR"):
        fidelity_skill([0.9], [0.8], [25.0, 26.0], [24.0])
