"""Visual fidelity of the world model: open-loop PSNR / SSIM on held-out real episodes.

From a real start state (frame history + proprio at step t) the model is rolled out open loop
with the episode's *real* actions; the frame it predicts ``h`` steps ahead is compared with
the real frame t+h for every camera, with scikit-image's `peak_signal_noise_ratio` (data
range 255) and `structural_similarity` (``channel_axis=-1``, data range 255). Numbers are
averaged over start states, cameras and episodes. Start states are every ``stride``-th step
that has the largest horizon inside the episode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from worldsample_control.core.episode import Episode

from .data import WindowSampler, filter_episodes


def frame_metrics(real: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """PSNR [dB] and SSIM between two uint8 (H, W, 3) frames (PSNR is inf when identical)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    if real.shape != pred.shape or real.ndim != 3 or real.shape[-1] != 3:
        raise ValueError(f"frames must both be (H, W, 3), got {real.shape} and {pred.shape}")
    real = np.asarray(real, np.uint8)
    pred = np.asarray(pred, np.uint8)
    if np.array_equal(real, pred):
        psnr = float("inf")  # skimage divides by a zero MSE; the limit is +inf
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
    with torch.no_grad():
        hist = model.encode_history({c: win.frames[c][:, :h] for c in model.cameras})
        proprio = torch.as_tensor(win.proprio[:, 0], device=model.device)
        for k in range(1, hmax + 1):
            res = model.step(hist, proprio, win.actions[:, k - 1])
            hist, proprio = res["hist"], res["proprio"]
            if k in horizons:
                pred[k] = model.render(hist)
                real[k] = {c: win.frames[c][:, h - 1 + k] for c in model.cameras}
    return {"horizons": horizons, "real": real, "pred": pred, "num_starts": len(ts_a),
            "num_episodes": len(usable), "rejected": rejected}


def evaluate_fidelity(model, heldout_episodes: list[Episode], horizons=(1, 4, 8), stride: int = 4,
                      max_starts: int = 64, seed: int = 0) -> dict[str, Any]:
    """Mean PSNR / SSIM per horizon of open-loop predictions on held-out real episodes.

    Returns ``{"horizons": [..], "psnr": [..], "ssim": [..], "per_camera": {cam: {"psnr": [..],
    "ssim": [..]}}, "num_starts": n, "num_episodes": m, "version": model.version}``.
    """
    pr = open_loop_predictions(model, heldout_episodes, horizons, stride, max_starts, seed)
    out: dict[str, Any] = {"horizons": list(pr["horizons"]), "psnr": [], "ssim": [],
                           "per_camera": {c: {"psnr": [], "ssim": []} for c in model.cameras},
                           "num_starts": pr["num_starts"], "num_episodes": pr["num_episodes"],
                           "version": model.version}
    for k in pr["horizons"]:
        all_p, all_s = [], []
        for c in model.cameras:
            vals = [frame_metrics(r, p) for r, p in zip(pr["real"][k][c], pr["pred"][k][c], strict=True)]
            ps = float(np.mean([v[0] for v in vals]))
            ss = float(np.mean([v[1] for v in vals]))
            out["per_camera"][c]["psnr"].append(ps)
            out["per_camera"][c]["ssim"].append(ss)
            all_p.append(ps)
            all_s.append(ss)
        out["psnr"].append(float(np.mean(all_p)))
        out["ssim"].append(float(np.mean(all_s)))
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
    """Plain-text table: one row per (model label, horizon)."""
    lines = [f"{'model':<28} {'version':<10} {'horizon':>7} {'PSNR [dB]':>10} {'SSIM':>7}"]
    for label, r in results.items():
        for k, p, s in zip(r["horizons"], r["psnr"], r["ssim"], strict=True):
            lines.append(f"{label:<28} {r.get('version', ''):<10} {k:>7} {p:>10.2f} {s:>7.3f}")
    return "\n".join(lines)
