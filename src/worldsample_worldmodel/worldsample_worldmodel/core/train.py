"""Training and post-training of the world model, with crash-resume checkpoints and metrics.

Loss of one batch of windows (see `data.WindowSampler`), with H history frames and a K-step
open-loop rollout driven by the real actions; the anchor of every decoded frame is the last
history frame (see `model`):

- ``pred``: pixel MSE of the frames decoded from the *rolled-out* latents (ensemble mean) at steps 1..K,
  plus the MSE at 1/4 resolution (wide gradients for the warp);
- ``recon``: pixel MSE of the frame decoded from the *encoded real* latent and real proprio at one
  random step of the K (teacher forced: trains encoder and decoder directly);

  both are reported as MSEs; with ``pixel_loss="log"`` (default) the objective is
  ``LOG_PIXEL_SCALE * log(MSE + LOG_PIXEL_EPS)`` per frame (the mean PSNR the model is judged by is a
  mean of per-frame log MSEs), so the logged ``loss`` total can be negative;
- ``latent``: MSE of every member's predicted latent grid against the encoded real frame
  (stop-gradient targets), each sample weighted into a random half of the members (bootstrap),
  so the members stay diverse;
- ``proprio``: MSE of every member's predicted next (normalised) proprioception (same bootstrap);
- ``reward`` (MSE), ``success`` and ``terminated`` (BCE) from the outcome head;
- ``error``: the error head's predicted log pixel MSE against the actual (detached) one;
- ``ssim``: 1 - SSIM of the rolled-out frames (the structure that blending blurs; `ssim`);
- ``ego``: the anchor warped by the ego-motion homography alone (from the real proprio) against the target
  frame at 1/4 and 1/8 resolution: a direct signal for the camera's own motion (a wrist camera).

Steps past an episode's end are masked. Pre-training = train on demos from scratch;
post-training = continue from the previous version (``init``) on real episodes with demos kept
in the mix (``WorldModelConfig.real_fraction`` of each batch is real).
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from worldsample_common.core.episode import Episode, Source

from .config import WorldModelConfig
from .data import Batch, WindowSampler, filter_episodes

LOG = logging.getLogger(__name__)

TRAIN_STATE = "train_state.pt"


class TrainingStopped(RuntimeError):
    """`train_world_model` was asked to stop (shutdown); its train state is saved, no model is returned."""


class TrainingDiverged(RuntimeError):
    """`train_world_model` met ``MAX_NONFINITE_IN_A_ROW`` steps in a row whose loss or gradient was not finite; no
    model is returned (the caller keeps its previous version)."""


# A step whose loss or gradient norm is not finite is skipped (no backward for a non-finite loss, no optimizer
# step for a non-finite gradient, so one inf gradient cannot turn the weights into NaN through the clipping) and
# counted (metrics "nonfinite_steps"); this many in a row raise TrainingDiverged. Found as a worker that died
# without a traceback at 8-9k steps of push PPL runs: PyTorch's CPU grid_sample backward reads out of bounds and
# kills the process when its sampling grid holds NaN (its forward returns finite values, so the loss does not
# show it); the model's warps therefore sample at `model._finite` grids.
MAX_NONFINITE_IN_A_ROW = 10


# pixel_loss "log": LOG_PIXEL_SCALE * log(MSE + LOG_PIXEL_EPS) per frame, MSE of frames in [-1, 1]; the eps is
# MSE at ~46 dB PSNR (the floor that counts), the scale keeps its gradient near the MSE loss's on typical frames
LOG_PIXEL_SCALE = 0.02
LOG_PIXEL_EPS = 1e-4

LOSS_KEYS = ("loss", "recon", "pred", "latent", "proprio", "reward", "success", "terminated", "error", "ego", "ssim")


def ssim(a, b, win: int = 7):
    """Per-frame SSIM (B,) of frames (B, 3, S, S) in [-1, 1], as `fidelity.frame_metrics` measures it (scikit-image:
    uniform ``win`` x ``win`` window, sample covariance, K1 = 0.01, K2 = 0.03, channel mean, borders of win // 2
    cropped), differentiable."""
    import torch
    from torch.nn import functional as F

    c1, c2 = 0.01 ** 2, 0.03 ** 2  # on [0, 1] (the luminance term is not shift invariant: not on [-1, 1])
    n = win * win
    cov = n / (n - 1.0)
    a, b = (a + 1.0) / 2.0, (b + 1.0) / 2.0

    # the five window means in one separable box filter ('valid' windows = the cropped border)
    x = torch.cat([a, b, a * a, b * b, a * b], dim=1)
    ma, mb, maa, mbb, mab = F.avg_pool2d(F.avg_pool2d(x, (win, 1), stride=1), (1, win), stride=1).chunk(5, dim=1)
    va = cov * (maa - ma * ma)
    vb = cov * (mbb - mb * mb)
    vab = cov * (mab - ma * mb)
    s = ((2 * ma * mb + c1) * (2 * vab + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return s.mean(dim=(1, 2, 3))


def compute_loss(model, batch: Batch, gen) -> dict[str, Any]:
    """Losses of one batch (tensors; ``loss`` is the weighted total)."""
    import torch
    from torch.nn import functional as F

    cfg = model.cfg
    dev = model.device
    h, k, n = cfg.history, cfg.rollout_steps, cfg.ensemble_size
    ncam = len(model.cameras)
    mask = torch.as_tensor(batch.mask, device=dev)  # (B, K)
    msum = mask.sum().clamp_min(1.0)
    x = {c: model.frames_to_tensor(batch.frames[c]) for c in model.cameras}  # (B, H+K, 3, S, S)
    z = {c: model.encode(c, x[c]) for c in model.cameras}  # (B, H+K, C, g, g)
    prop = model.norm_proprio(torch.as_tensor(batch.proprio, device=dev))
    acts = torch.as_tensor(batch.actions, device=dev).clamp(-1, 1)
    rew = torch.as_tensor(batch.rewards, device=dev)
    suc = torch.as_tensor(batch.successes, device=dev)
    term = torch.as_tensor(batch.terminated, device=dev)
    b = mask.shape[0]
    # bootstrap: every sample trains a random half of the members (at least one), so members stay diverse
    boot = (torch.rand(n, b, generator=gen) < 0.5).float()
    boot[torch.randint(0, n, (b,), generator=gen), torch.arange(b)] = 1.0
    boot = boot.to(dev)
    bsum = boot.sum(0)
    hist = {c: z[c][:, :h] for c in model.cameras}
    anchor = {c: x[c][:, h - 1] for c in model.cameras}
    anchor_z = {c: z[c][:, h - 1] for c in model.cameras}
    p = anchor_p = prop[:, 0]
    recon_step = int(torch.randint(0, k, (1,), generator=gen))  # teacher-forced decode at one step per batch
    zero = torch.zeros((), device=dev)
    pred = recon = pred_obj = recon_obj = ego_l = ssim_l = latent = prop_l = rew_l = suc_l = term_l = err_l = zero
    if cfg.pixel_loss == "log":  # per-frame log MSE (= PSNR up to scale): small errors on near-static frames count
        def pixel(e):
            return LOG_PIXEL_SCALE * torch.log(e + LOG_PIXEL_EPS)
    else:
        def pixel(e):
            return e
    for i in range(k):
        m = mask[:, i]
        a = acts[:, i]
        tr = model.transition(hist, p, a)
        new_hist = {}
        p1 = tr["p"].mean(0)
        dcond = model.decoder_cond(anchor_p, p1)
        dcond_real = model.decoder_cond(anchor_p, prop[:, i + 1]) if cfg.ego_weight > 0 else None
        for j, c in enumerate(model.cameras):
            net = model.nets[c]
            target = x[c][:, h + i]
            zl = ((tr["z"][c] - z[c][:, h + i].detach()) ** 2).mean(dim=(2, 3, 4))  # (N, B)
            latent = latent + (((zl * boot).sum(0) / bsum) * m).sum() / msum / ncam
            z1 = tr["z_mean"][c]
            frame, dec_feat = net.decode(z1, anchor_z[c], anchor[c], dcond)
            err = ((frame - target) ** 2).mean(dim=(1, 2, 3))
            # plus the same error at 1/4 resolution: wide gradients for the warp when things moved several pixels
            coarse = ((F.avg_pool2d(frame, 4) - F.avg_pool2d(target, 4)) ** 2).mean(dim=(1, 2, 3))
            pred = pred + ((err + coarse) * m).sum() / msum / ncam
            pred_obj = pred_obj + (pixel(err + coarse) * m).sum() / msum / ncam
            if cfg.ssim_weight > 0:
                ssim_l = ssim_l + ((1.0 - ssim(frame, target)) * m).sum() / msum / ncam
            if cfg.ego_weight > 0:
                # the homography alone against the target at 1/4 and 1/8 resolution (real proprio): a direct, wide
                # signal for the camera's ego-motion, which the blend above only sees through object edges
                ew = net.ego_warp(anchor[c], dcond_real)
                eg = sum(((F.avg_pool2d(ew, f) - F.avg_pool2d(target, f)) ** 2).mean(dim=(1, 2, 3)) for f in (4, 8))
                ego_l = ego_l + (eg * m).sum() / msum / ncam
            if i == recon_step:
                tf, _ = net.decode(z[c][:, h + i], anchor_z[c], anchor[c], model.decoder_cond(anchor_p, prop[:, i + 1]))
                terr = ((tf - target) ** 2).mean(dim=(1, 2, 3))
                recon = recon + (terr * m).sum() / m.sum().clamp_min(1.0) / ncam
                recon_obj = recon_obj + (pixel(terr) * m).sum() / m.sum().clamp_min(1.0) / ncam
            logit = model.error_logit(tr["feat"][j], dec_feat, p, a, tr["cam_disagreement"][j], i + 1)
            err_l = err_l + (((logit - torch.log(err.detach() + 1e-6)) ** 2) * m).sum() / msum / ncam
            new_hist[c] = torch.cat([hist[c][:, 1:], z1[:, None]], dim=1)
        # in units of the per-step spread (`WorldModel.set_delta_stats`): small motions count
        pl = (((tr["p"] - prop[:, i + 1]) / model.proprio_delta_std) ** 2).mean(dim=-1)  # (N, B)
        prop_l = prop_l + (((pl * boot).sum(0) / bsum) * m).sum() / msum
        out = tr["outcome"]
        rew_l = rew_l + (((out[:, 0] - rew[:, i]) ** 2) * m).sum() / msum
        suc_l = suc_l + (F.binary_cross_entropy_with_logits(out[:, 1], suc[:, i], reduction="none") * m).sum() / msum
        term_l = term_l + (F.binary_cross_entropy_with_logits(out[:, 2], term[:, i], reduction="none") * m).sum() / msum
        hist = new_hist
        p = p1
    loss = (cfg.recon_weight * recon_obj + cfg.pred_weight * pred_obj + cfg.latent_weight * latent
            + cfg.proprio_weight * prop_l + cfg.reward_weight * rew_l + cfg.done_weight * (suc_l + term_l)
            + cfg.error_weight * err_l + cfg.ego_weight * ego_l + cfg.ssim_weight * ssim_l)
    return {"loss": loss, "recon": recon, "pred": pred, "latent": latent, "proprio": prop_l,
            "reward": rew_l, "success": suc_l, "terminated": term_l, "error": err_l, "ego": ego_l,
            "ssim": ssim_l}


def _signature(episodes: list[Episode], cfg: WorldModelConfig, steps: int, init_version: str) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"cfg": cfg.to_dict(), "steps": steps, "init": init_version}, sort_keys=True).encode())
    for e in episodes:
        h.update(f"{e.episode_id}:{e.length};".encode())
    return h.hexdigest()[:16]


def _save_atomic(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    torch.save(obj, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def calibrate_uncertainty(model, episodes: list[Episode], max_samples: int = 512, seed: int = 0) -> float:
    """Set ``model.uncertainty_ref`` to the median raw one-step ensemble disagreement on ``episodes``.

    Use real (ideally held-out) episodes; returns the reference value.
    """
    import torch

    sampler = WindowSampler(episodes, model.cameras, model.cfg.history, 1)
    rng = np.random.default_rng(seed)
    n = min(max_samples, sampler.num_transitions)
    idx = rng.choice(sampler.num_transitions, size=n, replace=False)
    raws = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for s in range(0, n, 128):
            sl = idx[s: s + 128]
            b = sampler.window(sampler.anchor_ep[sl], sampler.anchor_t[sl])
            hist = model.encode_history({c: b.frames[c][:, : model.cfg.history] for c in model.cameras}, b.proprio[:, 0])
            p = torch.as_tensor(b.proprio[:, 0], device=model.device)
            out = model.step(hist, p, b.actions[:, 0])
            raws.append(out["raw_uncertainty"].cpu().numpy())
    model.train(was_training)
    ref = float(np.median(np.concatenate(raws)))
    ref = ref if ref > 0 else 1.0
    model.uncertainty_ref.fill_(ref)
    return ref


def _plot(rows: list[dict[str, float]], png: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [r["step"] for r in rows]
    for key in ("recon", "pred", "latent", "proprio"):  # MSEs (the total can be negative with the log pixel loss)
        ax.plot(steps, [max(r[key], 1e-8) for r in rows], label=key)
    ax.set_yscale("log")
    ax.set_xlabel("gradient step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    tmp = png.with_name(png.stem + ".tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, png)


def _write_csv(rows: list[dict[str, float]], path: Path) -> None:
    if not rows:
        return
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def train_world_model(
    episodes: list[Episode],
    cfg: WorldModelConfig | None = None,
    init=None,
    steps: int = 1000,
    progress: bool = True,
    run_dir: Path | str | None = None,
    tag: str = "train",
    calibration_episodes: list[Episode] | None = None,
    stop_after: int | None = None,
    should_stop: Any = None,
) -> tuple[Any, dict[str, Any]]:
    """Train a world model on ``episodes`` for ``steps`` gradient steps; returns ``(model, metrics)``.

    ``init`` (a `WorldModel`) continues from that model (post-training; its config wins, and
    ``cfg`` only overrides training settings when given); otherwise a new model is built
    from ``cfg``. Episodes that do not fit the model (cameras, image size, proprio size,
    malformed) are skipped with a warning naming them; if none are left, ValueError.

    With ``run_dir``: writes ``{run_dir}/logs/{tag}_metrics.csv`` and ``{tag}_loss.png``, and
    every ``cfg.train_state_every`` steps ``{run_dir}/train_state.pt``; a later call with the same
    episodes, config, steps and init resumes from it (a different job starts afresh). The
    caller deletes the train state once the version is saved (`clear_train_state`).
    ``stop_after`` ends early after that many steps of this call (used to simulate a crash).
    ``should_stop()`` (checked every step) true: the train state is saved (with ``run_dir``) and
    `TrainingStopped` is raised, so a shutting-down node stops within one step and resumes later.

    After training, ``uncertainty_ref`` is calibrated on ``calibration_episodes`` (default: the
    REAL training episodes, or all when there are none).
    """
    import torch

    from .model import WorldModel, build_model

    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    if init is not None:
        if not isinstance(init, WorldModel):
            raise ValueError(f"init must be a WorldModel, got {type(init).__name__}")
        base = init.cfg
        if cfg is not None:
            keep = ("image_size", "cameras", "history", "latent_channels", "base_channels", "ensemble_size",
                    "hidden_dim", "rollout_steps")
            cfg = WorldModelConfig.from_dict({**cfg.to_dict(), **{k: getattr(base, k) for k in keep},
                                              "cameras": list(base.cameras)})
        else:
            cfg = copy.deepcopy(base)
        proprio_dim: int | None = init.proprio_dim
    else:
        cfg = cfg or WorldModelConfig()
        proprio_dim = None
    cfg.validate()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    kept, rejected = filter_episodes(list(episodes), tuple(cfg.cameras), cfg.image_size, proprio_dim)
    if not kept:
        detail = "; ".join(f"{n}: {r}" for n, r in rejected[:5]) or "the list is empty"
        raise ValueError(f"no usable episodes to train the world model on ({detail})")
    if init is not None:
        model = copy.deepcopy(init)
        model.cfg = cfg
        init_version = init.version
    else:
        model = build_model(cfg, kept[0].proprio.shape[1])
        model.set_proprio_stats(np.concatenate([e.proprio for e in kept]))
        model.set_delta_stats([e.proprio for e in kept])
        init_version = ""
    model.train()
    sampler = WindowSampler(kept, tuple(cfg.cameras), cfg.history, cfg.rollout_steps, cfg.real_fraction)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rows: list[dict[str, float]] = []
    start = 0
    sig = _signature(kept, cfg, steps, init_version)
    run = Path(run_dir) if run_dir is not None else None
    state_path = run / TRAIN_STATE if run is not None else None
    if run is not None:
        (run / "logs").mkdir(parents=True, exist_ok=True)
        if state_path.exists():
            try:
                st = torch.load(state_path, map_location="cpu", weights_only=False)
            except Exception as exc:  # noqa: BLE001 - a damaged state file is reported and ignored
                LOG.warning("world model: ignoring unreadable %s (%s); starting afresh", state_path, exc)
                st = None
            if st is not None and st.get("signature") == sig:
                model.load_state_dict(st["model"])
                opt.load_state_dict(st["optimizer"])
                start = int(st["step"])
                rows = list(st["rows"])
                rng.bit_generator.state = st["np_rng"]
                gen.set_state(st["torch_rng"])
                LOG.info("world model: resuming %s from step %d", tag, start)
                if progress:
                    print(f"[wm] resuming from {state_path} at step {start}/{steps}", flush=True)
            elif st is not None:
                LOG.warning("world model: %s belongs to another training job; starting afresh", state_path)
    t0 = time.time()
    done_here = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, initial=start, desc=f"wm {tag}", unit="step", dynamic_ncols=True)
    acc: dict[str, float] = {k: 0.0 for k in LOSS_KEYS}
    nacc = 0
    nonfinite = in_a_row = 0
    def save_state(n: int) -> None:
        """The train state after ``n`` steps (what a rerun of the same job resumes from)."""
        _save_atomic({"signature": sig, "model": model.state_dict(), "optimizer": opt.state_dict(), "step": n,
                      "rows": rows, "np_rng": rng.bit_generator.state, "torch_rng": gen.get_state()}, state_path)

    for step in range(start, steps):
        if stop_after is not None and done_here >= stop_after:
            break
        if should_stop is not None and should_stop():
            if state_path is not None and step > start:
                save_state(step)
            if bar is not None:
                bar.close()
            raise TrainingStopped(f"world-model training {tag} stopped at step {step}/{steps}"
                                  + (f"; {state_path} resumes it" if state_path is not None else ""))
        frac = cfg.lr_final_fraction + (1.0 - cfg.lr_final_fraction) * 0.5 * (1.0 + math.cos(math.pi * step / max(steps, 1)))
        for group in opt.param_groups:
            group["lr"] = cfg.lr * frac
        batch = sampler.sample(cfg.batch_size, rng)
        losses = compute_loss(model, batch, gen)
        opt.zero_grad(set_to_none=True)
        finite = bool(torch.isfinite(losses["loss"]))
        if finite:
            losses["loss"].backward()
            finite = bool(torch.isfinite(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)))
        done_here += 1
        if finite:
            in_a_row = 0
            opt.step()
            for key in LOSS_KEYS:
                acc[key] += float(losses[key].detach())
            nacc += 1
        else:  # skipped; the schedule, the log rows and the saved train state go on as for any step
            nonfinite += 1
            in_a_row += 1
            bad = [k for k in LOSS_KEYS if not bool(torch.isfinite(losses[k]))] or ["gradient"]
            LOG.warning("world model %s: step %d skipped, not finite: %s", tag, step, ", ".join(bad))
            opt.zero_grad(set_to_none=True)
            if in_a_row >= MAX_NONFINITE_IN_A_ROW:
                raise TrainingDiverged(f"world-model training {tag}: {in_a_row} steps in a row with a non-finite "
                                       f"loss or gradient (last: {', '.join(bad)}) at step {step}/{steps}")
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{float(losses['loss'].detach()):.4f}", refresh=False)
        n = step + 1
        if nacc and (n % cfg.log_every == 0 or n == steps):
            rows.append({"step": n, **{k: v / nacc for k, v in acc.items()}, "wall_s": time.time() - t0})
            acc = {k: 0.0 for k in LOSS_KEYS}
            nacc = 0
            if run is not None:
                _write_csv(rows, run / "logs" / f"{tag}_metrics.csv")
        if state_path is not None and (n % cfg.train_state_every == 0) and n < steps:
            save_state(n)
    if bar is not None:
        bar.close()
    elapsed = time.time() - t0
    finished = stop_after is None or done_here < stop_after or start + done_here >= steps
    model.eval()
    if run is not None:
        _write_csv(rows, run / "logs" / f"{tag}_metrics.csv")
        _plot(rows, run / "logs" / f"{tag}_loss.png", f"world model {tag}")
    calib = calibration_episodes
    if calib is None:
        calib = [e for e in kept if e.source == Source.REAL] or kept
    else:
        calib, _ = filter_episodes(list(calib), tuple(cfg.cameras), cfg.image_size, model.proprio_dim)
        calib = calib or kept
    ref = calibrate_uncertainty(model, calib, seed=cfg.seed) if finished else float(model.uncertainty_ref)
    n_real = sum(e.source == Source.REAL for e in kept)
    metrics = {
        "steps": int(start + done_here),
        "steps_this_call": done_here,
        "resumed_from": start,
        "finished": bool(finished and start + done_here >= steps),
        "seconds": elapsed,
        "samples_per_s": done_here * cfg.batch_size / elapsed if elapsed > 0 and done_here else 0.0,
        "num_episodes": len(kept),
        "num_real_episodes": int(n_real),
        "num_demo_episodes": int(sum(e.source == Source.DEMO for e in kept)),
        "num_transitions": int(sampler.num_transitions),
        "rejected": [{"episode": n, "reason": r} for n, r in rejected],
        "uncertainty_ref": ref,
        "nonfinite_steps": nonfinite,
        "init_version": init_version,
        "final": rows[-1] if rows else {},
    }
    return model, metrics


def clear_train_state(run_dir: Path | str) -> None:
    p = Path(run_dir) / TRAIN_STATE
    if p.exists():
        p.unlink()
