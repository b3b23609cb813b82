"""Visual fidelity of the world model: open-loop PSNR / SSIM on held-out real episodes, beside copy-last-frame.

From a real start state (frame history + proprio at step t) the model is rolled out open loop
with the episode's *real* actions; the frame it predicts ``h`` steps ahead is compared with
the real frame t+h for every camera, with scikit-image's `peak_signal_noise_ratio` (data
range 255) and `structural_similarity` (``channel_axis=-1``, data range 255). Numbers are
averaged over start states, cameras and episodes. Start states are every ``stride``-th step
that has the largest horizon inside the episode.

Baseline on the very same starts and horizons: **copy-last-frame** (the prediction for t+h is
the real frame t). A model that does not beat it adds nothing a frozen image would not.
Uncertainty check: per horizon, the Spearman rank correlation between each predicted step's
uncertainty and its actual pixel MSE (mean over cameras) across the start states.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from worldsample_common.core.episode import Episode
from worldsample_common.core.stats import skill_past_baseline, spearman

from .data import WindowSampler, filter_episodes


def identical_frames_psnr(num_values: int) -> float:
    """PSNR [dB] given to two identical uint8 frames of ``num_values`` numbers: that of the smallest error two
    different frames can have (one value off by one), ``10 log10(255^2 * num_values)`` (89.0 dB at 64x64x3).
    Finite, so that a mean over start states stays a number when copy-last-frame is exact on a few of them
    (the arm holding still) instead of reading infinite for the whole set."""
    return float(10.0 * np.log10(255.0 ** 2 * num_values))


def frame_metrics(real: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """PSNR [dB] and SSIM between two uint8 (H, W, 3) frames (identical frames: `identical_frames_psnr`)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    if real.shape != pred.shape or real.ndim != 3 or real.shape[-1] != 3:
        raise ValueError(f"frames must both be (H, W, 3), got {real.shape} and {pred.shape}")
    real = np.asarray(real, np.uint8)
    pred = np.asarray(pred, np.uint8)
    if np.array_equal(real, pred):
        psnr = identical_frames_psnr(real.size)  # skimage divides by a zero MSE
    else:
        psnr = float(peak_signal_noise_ratio(real, pred, data_range=255))
    win = min(7, min(real.shape[:2]) // 2 * 2 - 1)
    ssim = float(structural_similarity(real, pred, channel_axis=-1, data_range=255, win_size=win))
    return psnr, ssim


def open_loop_predictions(model, episodes: list[Episode], horizons=(1, 4, 8), stride: int = 4,
                          max_starts: int = 64, seed: int = 0) -> dict[str, Any]:
    """Real and predicted frames per horizon: ``{"real": {h: {cam: (N,S,S,3)}}, "pred": ...}``."""
    import torch

    horizons = tuple(sorted({int(h) for h in horizons}))
    if not horizons or horizons[0] < 1:
        raise ValueError(f"horizons must be positive ints, got {horizons}")
    hmax = horizons[-1]
    cfg = model.cfg
    kept, rejected = filter_episodes(list(episodes), model.cameras, cfg.image_size, model.proprio_dim)
    usable = [e for e in kept if e.length >= hmax]
    if not usable:
        why = "; ".join(f"{n}: {r}" for n, r in rejected[:3])
        raise ValueError(f"no held-out episode is usable for fidelity at horizon {hmax} "
                         f"(need >= {hmax} steps; {len(kept)} well-formed{', rejected: ' + why if why else ''})")
    sampler = WindowSampler(usable, model.cameras, cfg.history, hmax)
    ep_idx, ts = [], []
    for i, e in enumerate(usable):
        for t in range(0, e.length - hmax + 1, stride):
            ep_idx.append(i)
            ts.append(t)
    ep_idx_a, ts_a = np.array(ep_idx), np.array(ts)
    if len(ts_a) > max_starts:
        sel = np.sort(np.random.default_rng(seed).choice(len(ts_a), max_starts, replace=False))
        ep_idx_a, ts_a = ep_idx_a[sel], ts_a[sel]
    win = sampler.window(ep_idx_a, ts_a)
    h = cfg.history
    model.eval()
    real: dict[int, dict[str, np.ndarray]] = {}
    pred: dict[int, dict[str, np.ndarray]] = {}
    unc: dict[int, np.ndarray] = {}
    dis: dict[int, np.ndarray] = {}
    with torch.no_grad():
        hist = model.encode_history({c: win.frames[c][:, :h] for c in model.cameras}, win.proprio[:, 0])
        proprio = torch.as_tensor(win.proprio[:, 0], device=model.device)
        for k in range(1, hmax + 1):
            res = model.step(hist, proprio, win.actions[:, k - 1])
            hist, proprio = res["hist"], res["proprio"]
            if k in horizons:
                pred[k] = model.render(hist)
                real[k] = {c: win.frames[c][:, h - 1 + k] for c in model.cameras}
                unc[k] = res["uncertainty"].cpu().numpy()
                dis[k] = res["disagreement"].cpu().numpy()
    copy = {c: win.frames[c][:, h - 1] for c in model.cameras}  # copy-last-frame: the real frame t, every horizon
    return {"horizons": horizons, "real": real, "pred": pred, "copy": copy, "uncertainty": unc,
            "disagreement": dis, "num_starts": len(ts_a), "num_episodes": len(usable), "rejected": rejected}


def feature_skill(featurizer, real: dict[str, np.ndarray], pred: dict[str, np.ndarray],
                  copy: dict[str, np.ndarray]) -> float | None:
    """``1 - RMSE(features(pred) - features(real)) / RMSE(features(copy) - features(real))`` over all starts and
    features: 1 = the predicted frames read as the real ones, 0 = no better than copy-last-frame, < 0 = worse.
    ``featurizer``: uint8 frames (N, S, S, 3) per camera -> (N, F) array, or None (nothing to read them with)."""
    f_real, f_pred, f_copy = featurizer(real), featurizer(pred), featurizer(copy)
    if f_real is None or f_pred is None or f_copy is None:
        return None
    f_real, f_pred, f_copy = (np.asarray(f, np.float64) for f in (f_real, f_pred, f_copy))
    err_model = float(np.sqrt(((f_pred - f_real) ** 2).mean()))
    err_copy = float(np.sqrt(((f_copy - f_real) ** 2).mean()))
    if err_copy == 0.0 and err_model == 0.0:  # nothing moved and the model moved nothing either
        return 1.0
    return skill_past_baseline(err_model, err_copy)


def evaluate_fidelity(model, heldout_episodes: list[Episode], horizons=(1, 4, 8), stride: int = 4,
                      max_starts: int = 64, seed: int = 0, featurizer=None) -> dict[str, Any]:
    """Mean PSNR / SSIM per horizon of open-loop predictions on held-out real episodes, and the baseline.

    Returns ``{"horizons": [..], "psnr": [..], "ssim": [..], "per_camera": {cam: {"psnr", "ssim",
    "copy_psnr", "copy_ssim"}}, "copy": {"psnr": [..], "ssim": [..]}, "gain": {"psnr": [..], "ssim": [..]},
    "spearman": [..], "spearman_disagreement": [..], "num_starts": n, "num_episodes": m,
    "version": model.version}``: ``copy`` is copy-last-frame on the same starts, ``gain`` the model
    minus it, ``spearman`` the rank correlation of the step's uncertainty with its pixel MSE.

    ``featurizer`` (the policy's pixel encoder, `feature_skill`): also ``"feature_skill"``, per horizon, how the
    predicted frames read to that encoder against copy-last-frame; absent without one.
    """
    pr = open_loop_predictions(model, heldout_episodes, horizons, stride, max_starts, seed)
    out: dict[str, Any] = {"horizons": list(pr["horizons"]), "psnr": [], "ssim": [],
                           "per_camera": {c: {"psnr": [], "ssim": [], "copy_psnr": [], "copy_ssim": []}
                                          for c in model.cameras},
                           "copy": {"psnr": [], "ssim": []}, "gain": {"psnr": [], "ssim": []},
                           "spearman": [], "spearman_disagreement": [],
                           "num_starts": pr["num_starts"], "num_episodes": pr["num_episodes"],
                           "version": model.version}
    for k in pr["horizons"]:
        sums = {"psnr": [], "ssim": [], "copy_psnr": [], "copy_ssim": []}
        mse = np.zeros(pr["num_starts"])
        for c in model.cameras:
            real, pred, copy = pr["real"][k][c], pr["pred"][k][c], pr["copy"][c]
            vals = [frame_metrics(r, p) for r, p in zip(real, pred, strict=True)]
            base = [frame_metrics(r, p) for r, p in zip(real, copy, strict=True)]
            for key, v in (("psnr", [v[0] for v in vals]), ("ssim", [v[1] for v in vals]),
                           ("copy_psnr", [v[0] for v in base]), ("copy_ssim", [v[1] for v in base])):
                mean = float(np.mean(v))
                out["per_camera"][c][key].append(mean)
                sums[key].append(mean)
            mse += ((real.astype(np.float32) - pred.astype(np.float32)) ** 2).mean(axis=(1, 2, 3)) / len(model.cameras)
        out["psnr"].append(float(np.mean(sums["psnr"])))
        out["ssim"].append(float(np.mean(sums["ssim"])))
        out["copy"]["psnr"].append(float(np.mean(sums["copy_psnr"])))
        out["copy"]["ssim"].append(float(np.mean(sums["copy_ssim"])))
        out["gain"]["psnr"].append(out["psnr"][-1] - out["copy"]["psnr"][-1])
        out["gain"]["ssim"].append(out["ssim"][-1] - out["copy"]["ssim"][-1])
        out["spearman"].append(spearman(pr["uncertainty"][k], mse))
        out["spearman_disagreement"].append(spearman(pr["disagreement"][k], mse))
        if featurizer is not None:
            fs = feature_skill(featurizer, pr["real"][k], pr["pred"][k], pr["copy"])
            if fs is not None:
                out.setdefault("feature_skill", []).append(fs)
    if len(out.get("feature_skill", [])) != len(out["horizons"]):
        out.pop("feature_skill", None)
    return out


def save_comparison_strip(model, heldout_episodes: list[Episode], path: Path | str, horizons=(1, 4, 8),
                          num_examples: int = 4, seed: int = 0) -> Path:
    """PNG: for a few start states, real (top) vs predicted (bottom) frames per horizon and camera."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pr = open_loop_predictions(model, heldout_episodes, horizons, stride=8, max_starts=num_examples, seed=seed)
    hs = pr["horizons"]
    cams = model.cameras
    n = pr["num_starts"]
    cols = len(hs) * len(cams)
    fig, axes = plt.subplots(2 * n, cols, figsize=(1.4 * cols, 1.4 * 2 * n), squeeze=False)
    for i in range(n):
        for j, k in enumerate(hs):
            for ci, c in enumerate(cams):
                col = j * len(cams) + ci
                for row, (label, src) in enumerate((("real", pr["real"]), ("pred", pr["pred"]))):
                    ax = axes[2 * i + row, col]
                    ax.imshow(src[k][c][i])
                    ax.set_xticks([])
                    ax.set_yticks([])
                    if i == 0 and row == 0:
                        ax.set_title(f"{c} t+{k}", fontsize=7)
                    if col == 0:
                        ax.set_ylabel(label, fontsize=7)
    fig.suptitle(f"world model {model.version or ''}: real vs predicted (open loop)", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def compare_versions(model_a, model_b, heldout: list[Episode], horizons=(1, 4, 8), **kw) -> dict[str, Any]:
    """Fidelity of two models on the same held-out starts, and the gain of b over a per horizon."""
    fa = evaluate_fidelity(model_a, heldout, horizons, **kw)
    fb = evaluate_fidelity(model_b, heldout, horizons, **kw)
    return {"a": fa, "b": fb, "horizons": fa["horizons"],
            "psnr_gain": [b - a for a, b in zip(fa["psnr"], fb["psnr"], strict=True)],
            "ssim_gain": [b - a for a, b in zip(fa["ssim"], fb["ssim"], strict=True)]}


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """Plain-text table: per (model label, horizon) the model, copy-last-frame on the same starts, the gain,
    and the uncertainty-error rank correlation."""
    lines = [f"{'model':<28} {'version':<10} {'h':>3} {'PSNR':>7} {'SSIM':>6} | {'copy PSNR':>9} {'SSIM':>6} | "
             f"{'gain dB':>7} {'SSIM':>7} | {'rho(unc,err)':>12}"]
    for label, r in results.items():
        for i, k in enumerate(r["horizons"]):
            lines.append(f"{label:<28} {r.get('version', ''):<10} {k:>3} {r['psnr'][i]:>7.2f} {r['ssim'][i]:>6.3f} | "
                         f"{r['copy']['psnr'][i]:>9.2f} {r['copy']['ssim'][i]:>6.3f} | "
                         f"{r['gain']['psnr'][i]:>+7.2f} {r['gain']['ssim'][i]:>+7.3f} | {r['spearman'][i]:>12.2f}")
    return "\n".join(lines)
