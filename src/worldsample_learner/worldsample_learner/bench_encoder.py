"""`worldsample bench encoder`: what the frozen pixel encoder tells the policy, in millimetres, in minutes.

    worldsample bench encoder [--task push] [--train-episodes 16] [--readout-episodes 50] [--heldout-episodes 20]
                              [--keypoints 16] [--channels 16] [--color-blobs 8] [--pretrain-steps 1500] [--seed 0]
                              [--out FILE]

A pixel learning run takes an hour here (docs/results.md, "Pixels"); this answers the question before it
in ~5 minutes: do the frozen encoder's features locate what the task is decided by? It

1. renders episodes of the task at the learner's pixel defaults (`AgentConfig`: 64 px, front + wrist):
   ``--train-episodes`` for the encoder's pre-training, as `worldsample learn --obs pixels` has them at its
   first update (10 scripted demos, the rest noisy-expert episodes standing for the warm-up); ``--readout-
   episodes`` and ``--heldout-episodes`` of the noisy expert from other seeds (other object and target
   placements);
2. pre-trains the frozen keypoint encoder on the training frames (`pixel_encoder.pretrain_keypoints`, the
   learner's own code and defaults unless overridden);
3. fits a small MLP read-out (2 x 256, standardised inputs and outputs) from the features to each group of the
   privileged state (`Task.state_labels`: object, target and the relative vectors, x and y) on the read-out
   episodes, and prints its root-mean-square error on the held-out episodes in mm, beside two baselines read
   out the same way in the same run: predicting the mean (no information) and proprio alone (what the policy
   knows without the cameras), and each part of the features alone (learned keypoints, colour blobs). The
   privileged state is used only to score; the encoder never sees it.

A feature set that cannot place the target within the task's success radius (push: 30 mm) on placements it
was not fitted on cannot teach a policy to push there; that is what the table is for. The read-out is trained
on ``--readout-episodes`` placements only, as the critic of a 10k-step run sees ~125 episodes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

READOUT_STEPS = 3000  # Adam steps of each MLP read-out (batch 256)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="push", help="sim task (default push)")
    parser.add_argument("--train-episodes", type=int, default=16,
                        help="episodes the encoder is pre-trained on: 10 demos, the rest noisy expert (default 16)")
    parser.add_argument("--readout-episodes", type=int, default=50, help="episodes the read-out is fitted on")
    parser.add_argument("--heldout-episodes", type=int, default=20, help="episodes the read-out is scored on")
    parser.add_argument("--keypoints", type=int, default=None, help="keypoints per camera (default: AgentConfig)")
    parser.add_argument("--channels", type=int, default=None, help="encoder conv channels (default: AgentConfig)")
    parser.add_argument("--color-blobs", type=int, default=None,
                        help="colour-blob keypoints per camera (default: AgentConfig; 0 = learned keypoints only)")
    parser.add_argument("--pretrain-steps", type=int, default=None, help="pre-training Adam steps (default: AgentConfig)")
    parser.add_argument("--readout-steps", type=int, default=READOUT_STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the numbers as JSON here")


def state_groups(labels: tuple[str, ...]) -> dict[str, list[int]]:
    """The x and y entries of each named quantity: ("block_x", "block_y", "block_z", ...) -> {"block": [0, 1]}."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(labels):
        base, _, axis = name.rpartition("_")
        if base and axis in ("x", "y"):
            groups.setdefault(base, []).append(i)
    return {k: v for k, v in groups.items() if len(v) == 2}


def fit_readout(x_fit, y_fit, steps: int = READOUT_STEPS, seed: int = 0):
    """A small MLP (2 x 256, standardised inputs and outputs) fitted on (x_fit, y_fit) by Adam; returns
    ``predict(x) -> y`` on numpy arrays."""
    import numpy as np
    import torch

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x, y = (torch.as_tensor(np.asarray(a, np.float32)) for a in (x_fit, y_fit))
    mx, sx = x.mean(0), x.std(0) + 1e-3
    my, sy = y.mean(0), y.std(0) + 1e-6
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                              torch.nn.ReLU(), torch.nn.Linear(256, y.shape[1]))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (min(256, len(x)),), generator=gen)
        loss = ((net((x[idx] - mx) / sx) - (y[idx] - my) / sy) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def predict(x_new) -> np.ndarray:
        with torch.no_grad():
            return (net((torch.as_tensor(np.asarray(x_new, np.float32)) - mx) / sx) * sy + my).numpy()

    return predict


def vector_rmse(pred, truth) -> float:
    """Root of the mean (over rows) squared length of ``pred - truth``: the error of an (x, y) position."""
    import numpy as np

    return float(np.sqrt(((np.asarray(pred) - np.asarray(truth)) ** 2).sum(-1).mean()))


def readout_rmse(x_fit, y_fit, x_test, y_test, steps: int = READOUT_STEPS, seed: int = 0) -> float:
    """RMSE on (x_test, y_test) of an MLP fitted on (x_fit, y_fit) (`fit_readout`); ``x_*`` None: the fit's mean
    (no input)."""
    import numpy as np

    y_fit, y_test = np.asarray(y_fit, np.float32), np.asarray(y_test, np.float32)
    if x_fit is None:
        return vector_rmse(y_fit.mean(0), y_test)
    return vector_rmse(fit_readout(x_fit, y_fit, steps, seed)(x_test), y_test)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch
    from worldsample_common.core.episode import Source
    from worldsample_control.core.demos import expert_episodes
    from worldsample_control.core.sim import TASKS, EnvConfig
    from worldsample_control.core.sim.tasks import TASK_CLASSES

    from .core.config import AgentConfig
    from .core.pixel_encoder import KeypointEncoder, pretrain_keypoints

    if args.task not in TASKS:
        raise ValueError(f"--task must be one of {TASKS}, got {args.task!r}")
    for name, most in (("train_episodes", 110), ("readout_episodes", 400), ("heldout_episodes", 100)):
        if not 1 <= getattr(args, name) <= most:  # the seed blocks below stay disjoint
            raise ValueError(f"--{name.replace('_', '-')} must be in 1..{most}")
    torch.set_num_threads(1)
    over = {k: v for k, v in (("frozen_keypoints", args.keypoints), ("frozen_channels", args.channels),
                              ("frozen_pretrain_steps", args.pretrain_steps), ("frozen_color_blobs", args.color_blobs))
            if v is not None}
    cfg = AgentConfig(obs_mode="pixels", seed=args.seed, **over)
    cfg.validate()
    t0 = time.perf_counter()
    env_cfg = EnvConfig(image_size=cfg.image_size, cameras=tuple(cfg.cameras), render=True)

    def episodes(n: int, seed0: int, noise: float) -> list:
        return expert_episodes(args.task, n, seed0=seed0, env_cfg=env_cfg, action_noise=noise,
                               source=Source.DEMO if noise == 0 else Source.REAL) if n else []

    demos = min(10, args.train_episodes)
    base = 1000 * (args.seed + 1)  # seed blocks: noisy training base.., read-out +100.., demos +500.., held-out +900..
    train = episodes(demos, base + 500, 0.0) + episodes(args.train_episodes - demos, base, 0.6)
    readout = episodes(args.readout_episodes, base + 100, 0.6)
    heldout = episodes(args.heldout_episodes, base + 900, 0.3)
    render_s = time.perf_counter() - t0

    def stack(eps):
        return ({c: np.concatenate([e.images[c] for e in eps]) for c in cfg.cameras},
                np.concatenate([e.proprio for e in eps]), np.concatenate([e.states for e in eps]))

    (im_t, _, _), (im_r, p_r, s_r), (im_h, p_h, s_h) = stack(train), stack(readout), stack(heldout)
    enc = KeypointEncoder(cfg)
    info = pretrain_keypoints(enc, im_t, cfg, seed=args.seed)
    f_r, f_h = enc.features(im_r), enc.features(im_h)
    groups = state_groups(TASK_CLASSES[args.task].state_labels)
    inputs = {"mean (no input)": (None, None), "proprio only": (p_r, p_h)}
    parts = {k: v for k, v in enc.parts().items() if v}
    if len(parts) > 1:
        inputs.update({f"{k} only": (f_r[:, v], f_h[:, v]) for k, v in parts.items()})
    inputs.update({"encoder features": (f_r, f_h), "features + proprio": (np.c_[f_r, p_r], np.c_[f_h, p_h])})
    table = {name: {g: 1e3 * readout_rmse(xr, s_r[:, idx], xh, s_h[:, idx], args.readout_steps, args.seed)
                    for g, idx in groups.items()} for name, (xr, xh) in inputs.items()}
    return {"task": args.task, "groups": groups, "rmse_mm": table, "frames": {"train": len(im_t[cfg.cameras[0]]),
            "readout": len(p_r), "heldout": len(p_h)}, "episodes": {"train": len(train), "readout": len(readout),
            "heldout": len(heldout)}, "encoder": {"keypoints": cfg.frozen_keypoints, "channels": cfg.frozen_channels,
            "color_blobs": cfg.frozen_color_blobs,
            "pretrain_steps": cfg.frozen_pretrain_steps, "final_loss": float(np.mean(info["losses"][-50:])),
            "pretrain_s": info["seconds"]}, "render_s": render_s, "wall_s": time.perf_counter() - t0}


def run(args: argparse.Namespace) -> int:
    try:
        r = measure(args)
    except ValueError as exc:
        print(f"bench encoder: {exc}", file=sys.stderr)
        return 2
    e, n = r["encoder"], r["episodes"]
    print(f"bench encoder: task {r['task']}; frozen keypoints ({e['keypoints']} per camera, {e['channels']} channels"
          f"{', + ' + str(e['color_blobs']) + ' colour blobs' if e['color_blobs'] else ''}) "
          f"pre-trained {e['pretrain_steps']} steps on {r['frames']['train']} frames of {n['train']} episodes "
          f"(loss {e['final_loss']:.4f}, {e['pretrain_s']:.0f} s); read-out fitted on {n['readout']} episodes, "
          f"scored on {n['heldout']} held-out episodes (other placements)")
    groups = list(r["groups"])
    print("held-out RMSE of the read-out, mm (x, y):")
    print(f"  {'input':<24}" + "".join(f"{g:>20}" for g in groups))
    for name, row in r["rmse_mm"].items():
        print(f"  {name:<24}" + "".join(f"{row[g]:>20.1f}" for g in groups))
    print(f"rendering {r['render_s']:.0f} s, in all {r['wall_s']:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(r, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
