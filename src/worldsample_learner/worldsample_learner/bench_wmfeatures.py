"""`worldsample bench wmfeatures`: the world model's imagined frames as the pixel policy reads them, in millimetres.

    worldsample bench wmfeatures --run RUN [--version wm-000012] [--policy RUN/learner/checkpoints/policy-....pt]
                                 [--horizons 1,4,8] [--max-starts 256] [--readout-episodes 100] [--out FILE]

A pixel learner never sees a PSNR: it sees the frozen encoder's features (`core/pixel_encoder.py`: learned
keypoints and colour blobs) of every frame, the synthetic ones included. A world model 2 dB past
copy-last-frame on the whole frame may still put a 12-pixel block in the wrong place, and that is what PPL's
synthetic transitions then teach (docs/results.md, "The main loop with the new defaults": PPL at a share of
0.12-0.24 learned at a third of RL-only's rate). This is the pixel counterpart of issue 22's state-error
table. On a finished or running loop directory (`worldsample loop --out RUN`) it

1. loads a world-model version (default the newest) and the episodes it held out for its fidelity (its
   manifest's ``heldout``), and a policy checkpoint with the frozen encoder (default the newest);
2. rolls the model open loop from real starts of those episodes under their recorded actions
   (`worldsample_worldmodel.core.fidelity.open_loop_predictions`, the same starts as the loop's PSNR/SSIM)
   and encodes the real frame at t+h, the imagined one and the real frame at t (copy-last-frame) with the
   policy's encoder;
3. reads each set of features out to the task's object positions (`Task.state_labels` groups: block, target,
   block-to-target, ...) with a small MLP fitted on the real frames of the run's other episodes (the
   privileged state in the simulator's bags only scores; the policy never sees it), and prints per horizon
   how far the imagined frame moves that read-out from the real frame's, in mm, beside copy-last-frame's;
4. prints the same in the features themselves, in their own units (keypoint and blob positions in pixels,
   blob masses in log(1 + pixels)): RMSE per number over starts, and the feature skill ``1 - RMSE(model) / RMSE(copy)`` (1: the model's frames read as the real ones; 0: no better
   than a frame that does not move; < 0: worse), for the learned keypoints, the colour blobs' positions and
   their masses apart;
5. the Spearman rank correlation of the model's per-start uncertainty with its feature error: whether PPL's
   selection by uncertainty would keep the imagined frames that read right.

The read-out's own error on the held-out real frames is printed beside, as its floor.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from .bench_encoder import READOUT_STEPS, fit_readout, state_groups, vector_rmse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", type=Path, required=True, help="a `worldsample loop --out` directory")
    parser.add_argument("--version", default=None, help="world-model version (default: the newest)")
    parser.add_argument("--policy", type=Path, default=None,
                        help="policy checkpoint with the frozen pixel encoder (default: RUN/learner/checkpoints' newest)")
    parser.add_argument("--horizons", default="1,4,8", help="comma-separated open-loop horizons (default 1,4,8)")
    parser.add_argument("--max-starts", type=int, default=256, help="start states drawn from the held-out episodes")
    parser.add_argument("--stride", type=int, default=2, help="steps between candidate start states")
    parser.add_argument("--readout-episodes", type=int, default=100,
                        help="the run's newest non-held-out episodes the read-out is fitted on")
    parser.add_argument("--readout-steps", type=int, default=READOUT_STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the numbers as JSON here")


def feature_parts(enc, image_size: int) -> tuple[dict[str, list[int]], Any]:
    """The encoder's feature entries by kind (learned keypoints, colour-blob positions, blob masses) and the unit
    factor that turns each raw number into px (positions: image coordinates in [-1, 1] x half the image size;
    masses stay log(1 + pixels))."""
    import numpy as np

    half = image_size / 2.0
    unit = np.full(enc.out_dim, half, np.float32)
    parts = {k: v for k, v in enc.parts().items() if v}
    if parts.get("color blobs"):  # per blob (x, y, log(1 + mass)), camera after camera: where apart from how much
        blobs = parts.pop("color blobs")
        parts["blob positions"] = [i for j, i in enumerate(blobs) if j % 3 != 2]
        parts["blob masses"] = [i for j, i in enumerate(blobs) if j % 3 == 2]
        unit[parts["blob masses"]] = 1.0
    return parts, unit


def score_predictions(pr: dict[str, Any], enc, readout, pos: dict[str, list[int]], image_size: int,
                      fit_features) -> dict[int, dict[str, Any]]:
    """Per horizon of ``pr`` (`open_loop_predictions`: real, predicted and copy-last-frame frames): the read-out's
    positions in the predicted and the copied frame against those in the real frame (mm, per group of ``pos``),
    the encoder's features per kind (RMSE per number in px / log-mass units, model and copy, and the skill
    ``1 - model / copy``), and the Spearman correlation of the model's uncertainty with its feature error (each
    feature divided by its spread over ``fit_features``, the real frames the read-out was fitted on)."""
    import numpy as np
    from worldsample_common.core.stats import skill_past_baseline, spearman

    parts, unit = feature_parts(enc, image_size)
    # `features` are standardised by the encoder (what the policy's MLP reads); back to its raw numbers
    fmean, fstd = (b.detach().cpu().numpy() for b in (enc.feat_mean, enc.feat_std))

    def raw(f):
        return (f * fstd + fmean) * unit

    sd = raw(fit_features).std(0) + 1e-3
    f_copy = enc.features(pr["copy"])
    rows: dict[int, dict[str, Any]] = {}
    for h in pr["horizons"]:
        f_real, f_pred = enc.features(pr["real"][h]), enc.features(pr["pred"][h])
        r_real, r_pred, r_copy = readout(f_real), readout(f_pred), readout(f_copy)
        z = [raw(f) for f in (f_real, f_pred, f_copy)]
        err_model = np.sqrt((((z[1] - z[0]) / sd) ** 2).mean(-1))  # per start
        row: dict[str, Any] = {
            "mm": {g: {"model": 1e3 * vector_rmse(r_pred[:, j], r_real[:, j]), "copy": 1e3 * vector_rmse(r_copy[:, j], r_real[:, j])}
                   for g, j in pos.items()},
            "features": {},
            "spearman_uncertainty": spearman(pr["uncertainty"][h], err_model) if "uncertainty" in pr else float("nan")}
        for name, idx in parts.items():
            m, c = (float(np.sqrt(((z[k][:, idx] - z[0][:, idx]) ** 2).mean())) for k in (1, 2))  # per number
            row["features"][name] = {"model": m, "copy": c, "skill": skill_past_baseline(m, c)}
        rows[h] = row
    return rows


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch
    from worldsample_common.core.bag_io import load_episodes
    from worldsample_control.core.sim.tasks import TASK_CLASSES
    from worldsample_worldmodel.core.fidelity import open_loop_predictions
    from worldsample_worldmodel.core.store import WorldModelStore

    from .core.policy import latest_checkpoint, load_policy

    t0 = time.perf_counter()
    torch.set_num_threads(1)
    try:
        horizons = tuple(sorted({int(h) for h in str(args.horizons).split(",") if h.strip()}))
    except ValueError as e:
        raise ValueError(f"--horizons must be comma-separated ints, got {args.horizons!r}") from e
    if not horizons or horizons[0] < 1:
        raise ValueError(f"--horizons must be positive, got {args.horizons!r}")
    for name in ("max_starts", "stride", "readout_episodes"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    run = Path(args.run)
    store = WorldModelStore(run / "world_model")
    version = args.version or store.latest()
    if version is None:
        raise ValueError(f"{run / 'world_model'} holds no world-model version")
    manifest = store.manifest(version)
    held_ids = set(manifest.get("heldout") or [])
    if not held_ids:
        raise ValueError(f"world model {version} names no held-out episodes in its manifest")
    ckpt = Path(args.policy) if args.policy else latest_checkpoint(run / "learner" / "checkpoints")
    if ckpt is None:
        raise ValueError(f"{run / 'learner' / 'checkpoints'} holds no policy checkpoint (give --policy)")
    policy = load_policy(ckpt)
    if not policy.reads_pixel_features:
        raise ValueError(f"{ckpt}: the policy has no pre-trained frozen pixel encoder (obs_mode={policy.cfg.obs_mode!r}, "
                         f"pixel_encoder={policy.cfg.pixel_encoder!r})")
    enc = policy.encoder.keypoints
    model = store.load(version, device="cpu")
    episodes = [e for e in load_episodes(run / "bags") if e.states is not None and len(e.states)]
    if not episodes:
        raise ValueError(f"{run / 'bags'}: no episode with the simulator's state (a real arm's bags have none)")
    task = episodes[0].task
    held = [e for e in episodes if e.episode_id in held_ids]
    fit = [e for e in episodes if e.episode_id not in held_ids][-args.readout_episodes:]
    if not held or not fit:
        raise ValueError(f"{run / 'bags'}: {len(held)} of the model's held-out episodes found, {len(fit)} others")
    groups = state_groups(TASK_CLASSES[task].state_labels)
    cols = [i for idx in groups.values() for i in idx]
    cams = tuple(enc.cameras)

    def frames_states(eps):
        n = [min(len(e.images[cams[0]]), len(e.states)) for e in eps]
        return ({c: np.concatenate([e.images[c][:k] for e, k in zip(eps, n, strict=True)]) for c in cams},
                np.concatenate([e.states[:k, cols] for e, k in zip(eps, n, strict=True)]))

    im_f, s_f = frames_states(fit)
    im_h, s_h = frames_states(held)
    f_f, f_h = enc.features(im_f), enc.features(im_h)
    readout = fit_readout(f_f, s_f, args.readout_steps, args.seed)
    pos = {g: [cols.index(i) for i in idx] for g, idx in groups.items()}
    floor = {g: 1e3 * vector_rmse(readout(f_h)[:, j], s_h[:, j]) for g, j in pos.items()}

    pr = open_loop_predictions(model, held, horizons, args.stride, args.max_starts, args.seed)
    rows = score_predictions(pr, enc, readout, pos, policy.cfg.image_size, fit_features=f_f)
    return {"run": str(run), "task": task, "version": version, "policy": str(ckpt), "horizons": list(pr["horizons"]),
            "num_starts": pr["num_starts"], "heldout_episodes": pr["num_episodes"], "readout_episodes": len(fit),
            "readout_floor_mm": floor, "rows": {str(h): r for h, r in rows.items()}, "groups": list(groups),
            "wall_s": time.perf_counter() - t0}


def run(args: argparse.Namespace) -> int:
    try:
        r = measure(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"bench wmfeatures: {exc}", file=sys.stderr)
        return 2
    print(f"bench wmfeatures: {r['run']}, task {r['task']}, world model {r['version']}, encoder of {r['policy']}; "
          f"{r['num_starts']} open-loop starts on {r['heldout_episodes']} held-out episodes; read-out fitted on "
          f"{r['readout_episodes']} other episodes")
    groups = r["groups"]
    print("where the read-out puts things in the imagined frame vs in the real frame at t+h, RMSE mm "
          "(model / copy-last-frame):")
    print(f"  {'h':>3}" + "".join(f"{g:>24}" for g in groups))
    for h in r["horizons"]:
        row = r["rows"][str(h)]["mm"]
        print(f"  {h:>3}" + "".join(f"{row[g]['model']:>12.1f} / {row[g]['copy']:<9.1f}" for g in groups))
    print("  the read-out's own error on the held-out real frames (its floor), mm: "
          + ", ".join(f"{g} {v:.1f}" for g, v in r["readout_floor_mm"].items()))
    print("the encoder's features of the imagined vs the real frame at t+h, RMSE per number, model / copy (positions "
          "in px, masses in log(1 + px)), skill 1 - model/copy; Spearman(uncertainty, standardised feature error):")
    for h in r["horizons"]:
        row = r["rows"][str(h)]
        print(f"  h={h:<3}" + "; ".join(f"{k} {v['model']:.3f} / {v['copy']:.3f}, skill {v['skill']:+.2f}"
                                      for k, v in row["features"].items())
              + f"; Spearman {row['spearman_uncertainty']:+.2f}")
    print(f"in all {r['wall_s']:.0f} s")
    if args.out:  # strict JSON: a Spearman of a constant error is NaN
        from worldsample_common.core.files import json_dumps

        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json_dumps(r, indent=2))
    return 0

