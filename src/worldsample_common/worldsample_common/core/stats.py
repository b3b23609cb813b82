"""Small statistics shared by the world model's fidelity, its state-error table and the oracle's audit.

`spearman`: the rank correlation PPL's selection is judged by (a model's uncertainty against its error).
`motion_gains`: how much of the real object motion a model predicts (least-squares gain of the predicted
displacement on the real one) and how much of the predicted motion is real (the gain the other way round).
`episode_bootstrap_se`: the standard error of such a statistic over correlated starts, resampling whole episodes.
`fidelity_skill`: the world-model fidelity PPL paces by, how far a model gets from copy-last-frame towards an
exact prediction (SSIM and PSNR; the smaller counts).
"""

from __future__ import annotations

import numpy as np


def average_ranks(v: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of ``v``, ties sharing the mean of their ranks (as scipy.stats.rankdata, minus 1)."""
    _, inverse, counts = np.unique(np.asarray(v), return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts
    return (first + (counts - 1) / 2.0)[inverse.reshape(-1)].astype(float)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation of the finite pairs of ``x`` and ``y`` (average ranks for ties); NaN with
    fewer than 3 such pairs or when either has no spread."""
    x, y = np.asarray(x, float).reshape(-1), np.asarray(y, float).reshape(-1)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(average_ranks(x[ok]), average_ranks(y[ok]))[0, 1])


def motion_gains(dot: float, real2: float, pred2: float) -> tuple[float, float]:
    """(gain, calibration) from sums over displacements: ``dot`` = sum of predicted . real, ``real2`` = sum of
    |real|^2, ``pred2`` = sum of |predicted|^2. gain = dot / real2 (1 = the real motion happens in full in the
    prediction; a model of the conditional mean of an uncertain motion has gain = its R^2 < 1), calibration =
    dot / pred2 (1 = the predicted motion is real on average; < 1 = the model moves what does not move). NaN
    where the denominator is 0."""
    gain = float(dot / real2) if real2 > 0 else float("nan")
    calibration = float(dot / pred2) if pred2 > 0 else float("nan")
    return gain, calibration


def episode_bootstrap_se(stat, x: np.ndarray, y: np.ndarray, groups: np.ndarray, n: int = 200,
                         seed: int = 0) -> float:
    """Standard error of ``stat(x, y)`` by resampling whole episodes (``groups``: each pair's episode) with
    replacement: the starts of one episode are correlated, so resampling pairs would understate it. NaN with
    fewer than 2 episodes."""
    ids = np.unique(groups)
    if len(ids) < 2:
        return float("nan")
    rows = {g: np.flatnonzero(groups == g) for g in ids}
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        pick = np.concatenate([rows[g] for g in rng.choice(ids, len(ids), replace=True)])
        vals.append(stat(x[pick], y[pick]))
    vals = np.asarray(vals, float)
    vals = vals[np.isfinite(vals)]
    return float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")


def skill_past_baseline(err: float, baseline_err: float) -> float:
    """``1 - err / baseline_err``: 1 = exact, 0 = no better than the baseline (copy-last-frame, copy-state), < 0 =
    worse; NaN when the baseline is exact itself (nothing to be better than)."""
    return 1.0 - err / baseline_err if baseline_err > 0 else float("nan")


def fidelity_skill(ssim, copy_ssim, psnr=None, copy_psnr=None, feature_skill=None) -> float | None:
    """World-model fidelity in [0, 1] for PPL's pace: how far the model goes from copy-last-frame (the baseline on
    the same held-out starts) towards an exact prediction, per horizon, averaged over the horizons.

    SSIM: ``(ssim - copy) / (1 - copy)``; PSNR (when given): the share of copy's pixel error the model removes,
    ``1 - 10^((copy_psnr - psnr) / 10)``; each clipped to [0, 1], and the smaller of the two counts. 0: no better
    than copying the last frame on either measure (whatever the absolute SSIM: near-static scenes give any model
    ~0.9); 1: exact. Horizons where a value is not finite, or the copy is already exact, are left out; None when
    none is left (nothing measured).

    ``feature_skill`` (per horizon, when the world model could read its frames with the policy's own pixel encoder,
    `worldsample_worldmodel.core.fidelity.evaluate_fidelity`): ``1 - RMSE(model's features) / RMSE(copy's)``,
    clipped to [0, 1] and counted like the other two. A pixel policy reads the objects through those features, and
    frames that beat copy-last-frame on the whole image can misplace them (docs/results.md, "Why PPL's imagined
    frames hurt the pixel learner")."""
    m, c = np.asarray(ssim, float).reshape(-1), np.asarray(copy_ssim, float).reshape(-1)
    if m.shape != c.shape:
        raise ValueError(f"fidelity_skill: {m.size} model values against {c.size} copy-last-frame values")
    with np.errstate(divide="ignore", invalid="ignore"):
        skill = np.clip((m - c) / (1.0 - c), 0.0, 1.0)
    ok = np.isfinite(m) & np.isfinite(c) & (c < 1.0)
    if psnr is not None:
        p, pc = np.asarray(psnr, float).reshape(-1), np.asarray(copy_psnr, float).reshape(-1)
        if p.shape != m.shape or pc.shape != m.shape:
            raise ValueError(f"fidelity_skill: PSNR values ({p.size}, copy {pc.size}) against {m.size} SSIM values")
        ok &= np.isfinite(p) & np.isfinite(pc)
        with np.errstate(invalid="ignore", over="ignore"):
            skill = np.minimum(skill, np.clip(1.0 - 10.0 ** ((pc - p) / 10.0), 0.0, 1.0))
    if feature_skill is not None:
        f = np.asarray(feature_skill, float).reshape(-1)
        if f.shape != m.shape:
            raise ValueError(f"fidelity_skill: {f.size} feature-skill values against {m.size} SSIM values")
        ok &= np.isfinite(f)
        skill = np.minimum(skill, np.clip(f, 0.0, 1.0))
    if not ok.any():
        return None
    return float(np.mean(skill[ok]))
