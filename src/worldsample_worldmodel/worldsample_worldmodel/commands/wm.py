"""World model: pre-train on demos, post-train by replaying bags, generate synthetic bags, fidelity.

  worldsample wm train    --demos DIR --out RUN [--steps N]        demo-only pre-training -> RUN/versions/wm-000001
                          [--init RUN0[:wm-NNNNNN]]                 (continue RUN0 on demos: demo-only baseline)
  worldsample wm replay   BAGDIR --model RUN [--steps N]           post-train on real bags (demos kept) -> next version
  worldsample wm generate --model RUN --from BAGDIR --policy {random,CKPT} --out DIR
                          [--branches N --horizon K --noise S]     synthetic rollouts -> rosbag2 (MCAP)
  worldsample wm fidelity --model RUN [--vs RUN2] --on BAGDIR [--horizons 1,4,8]
                                                                   open-loop PSNR/SSIM beside copy-last-frame,
                                                                   uncertainty-error rank correlation, PNG strips

A crashed `train`/`replay` resumes from RUN/train_state.pt when rerun with the same arguments.
Metrics CSVs and loss plots are written under RUN/logs/.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def _add_model_options(p: argparse.ArgumentParser, pretrain: bool) -> None:
    p.add_argument("--steps", type=int, default=None, help="gradient steps (default 1500 for train, 800 for replay)")
    p.add_argument("--batch-size", type=int, default=None, help="windows per batch (default from WorldModelConfig)")
    p.add_argument("--lr", type=float, default=None, help="learning rate")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-state-every", type=int, default=None,
                   help="training steps between train_state.pt saves, to resume after a kill "
                        "(default: WorldModelConfig.train_state_every)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    if pretrain:
        p.add_argument("--cameras", default="front,wrist", help="comma-separated camera names (default front,wrist)")
        p.add_argument("--image-size", type=int, default=64, help="frame size the model is built for (default 64)")
        p.add_argument("--ensemble", type=int, default=None, help="number of dynamics ensemble members")
        p.add_argument("--latent-channels", type=int, default=None,
                       help="channels of each camera's latent grid (image_size/4 square)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="wm_command", metavar="ACTION")
    p = sub.add_parser("train", help="demo-only pre-training: bags of demonstrations -> first model version")
    p.add_argument("--demos", required=True, help="directory of demonstration bags")
    p.add_argument("--out", required=True, help="run directory (versions are written to OUT/versions/)")
    p.add_argument("--init", default=None,
                   help="continue from this model (RUN, RUN:wm-NNNNNN or a version dir) on the demos only: the "
                        "paper's demo-only post-training baseline (architecture options then come from it)")
    _add_model_options(p, pretrain=True)

    p = sub.add_parser("replay", help="post-train the latest version on a directory of real-episode bags")
    p.add_argument("bagdir", help="directory of real-episode bags to replay into the world model")
    p.add_argument("--model", required=True, help="run directory with at least one version")
    p.add_argument("--demos", default=None,
                   help="demo bags to keep in the mix (default: the demo dirs recorded in the manifests); "
                        "real bags of earlier replays (manifest real_dirs) are kept in the mix too")
    _add_model_options(p, pretrain=False)

    p = sub.add_parser("generate", help="synthetic rollouts branched from real states -> rosbag2")
    p.add_argument("--model", required=True, help="run directory (latest version used) or a version directory")
    p.add_argument("--version", default=None, help="version to use (default latest)")
    p.add_argument("--from", dest="from_dir", required=True, help="directory of real bags to branch from")
    p.add_argument("--policy", default="random", help="'random' or a policy checkpoint path")
    p.add_argument("--out", required=True, help="directory the synthetic bag is written into")
    p.add_argument("--branches", type=int, default=64)
    p.add_argument("--horizon", type=int, default=8)
    p.add_argument("--noise", type=float, default=0.1, help="std of Gaussian action noise")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)

    p = sub.add_parser("fidelity", help="open-loop PSNR/SSIM on held-out bags (table + PNG strips)")
    p.add_argument("--model", required=True, help="run directory (latest version) ")
    p.add_argument("--version", default=None, help="version of --model (default latest)")
    p.add_argument("--vs", default=None, help="second run directory (or RUN:wm-NNNNNN) to compare against")
    p.add_argument("--on", required=True, help="directory of held-out real bags")
    p.add_argument("--horizons", default="1,4,8", help="comma-separated horizons (default 1,4,8)")
    p.add_argument("--out", default=None, help="where to write PNG strips and fidelity.json (default RUN/fidelity)")
    p.add_argument("--max-starts", type=int, default=64)
    p.add_argument("--device", default=None)
    parser.set_defaults(wm_parser=parser)


def run(args: argparse.Namespace) -> int:
    cmd = getattr(args, "wm_command", None)
    if cmd is None:
        args.wm_parser.print_help()
        return 2
    try:
        return {"train": _train, "replay": _replay, "generate": _generate, "fidelity": _fidelity}[cmd](args)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"worldsample wm {cmd}: error: {exc}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------------------- helpers
def _load_bags(directory: str, what: str, sources=None) -> tuple[list, list]:
    from worldsample_common.core.bag_io import BagError, load_episodes_report

    if not Path(directory).is_dir():
        raise FileNotFoundError(f"{what} directory {directory} does not exist")
    try:
        rep = load_episodes_report(directory, sources)
    except BagError as exc:
        raise ValueError(str(exc)) from exc
    for bag, reason in rep.skipped:
        print(f"[wm] skipping bag {bag}: {reason}", file=sys.stderr)
    if not rep.episodes:
        raise ValueError(f"{what} directory {directory}: no readable episodes "
                         f"({len(rep.skipped)} bag(s) skipped)")
    return rep.episodes, rep.skipped


def _report_rejected(metrics: dict[str, Any]) -> None:
    for r in metrics.get("rejected", []):
        print(f"[wm] skipped {r['episode']}: {r['reason']}", file=sys.stderr)


def _episode_list(eps) -> list[dict[str, Any]]:
    return [{"episode_id": e.episode_id, "source": e.source.name, "length": e.length,
             "bag": e.extras.get("bag", "")} for e in eps]


def _cfg_overrides(args, base=None):
    from worldsample_worldmodel.core.config import WorldModelConfig

    d = (base or WorldModelConfig()).to_dict()
    for key, attr in (("batch_size", "batch_size"), ("lr", "lr"), ("device", "device"), ("ensemble_size", "ensemble"),
                      ("latent_channels", "latent_channels"), ("train_state_every", "train_state_every")):
        v = getattr(args, attr, None)
        if v is not None:
            d[key] = v
    d["seed"] = args.seed
    d["num_threads"] = args.threads
    if hasattr(args, "cameras"):
        d["cameras"] = [c for c in args.cameras.split(",") if c]
        d["image_size"] = args.image_size
    return WorldModelConfig.from_dict(d)


def _save(store, model, metrics, trained_on, extra) -> str:
    from worldsample_worldmodel.core.data import episode_name
    from worldsample_worldmodel.core.train import clear_train_state

    # the data manifest lists what the version was trained on: episodes the trainer rejected are not in it
    skipped = {r["episode"] for r in metrics.get("rejected", [])}
    trained_on = [e for e in trained_on if episode_name(e) not in skipped]
    manifest = {"trained_on": _episode_list(trained_on), "steps": metrics["steps"],
                "metrics": {k: v for k, v in metrics.items()}, **extra}
    version = store.save_version(model, manifest)
    clear_train_state(store.run_dir)
    return version


# ---------------------------------------------------------------------------- actions
def _train(args) -> int:
    from worldsample_common.core.episode import Source
    from worldsample_common.core.files import prepare_out_dir

    from worldsample_worldmodel.core.store import WorldModelStore, version_name
    from worldsample_worldmodel.core.train import train_world_model

    steps = args.steps if args.steps is not None else 1500
    cfg = _cfg_overrides(args)
    prepare_out_dir(args.out)  # a file or an unwritable --out: one line (ValueError), before any work
    demos, _ = _load_bags(args.demos, "--demos")
    demos = [e for e in demos if e.source == Source.DEMO] or demos
    store = WorldModelStore(args.out)
    store.cleanup()
    tag = version_name(len(store.versions()) + 1)
    t0 = time.time()
    init = _load_model(args.init, None, args.device) if args.init else None
    model, metrics = train_world_model(demos, cfg, init=init, steps=steps, progress=not args.no_progress,
                                       run_dir=args.out, tag=tag)
    _report_rejected(metrics)
    version = _save(store, model, metrics, demos, {
        "mode": "posttrain-demos" if init is not None else "pretrain-demos",
        "demo_dirs": [str(Path(args.demos).resolve())], "real_dirs": [],
        "parent": f"{args.init} ({init.version})" if init is not None else None})
    print(f"[wm] {version}: {metrics['steps']} steps on {metrics['num_episodes']} demo episodes "
          f"({metrics['num_transitions']} transitions), {metrics['samples_per_s']:.1f} samples/s, "
          f"{time.time() - t0:.0f} s -> {store.path(version)}")
    return 0


def _replay(args) -> int:
    from worldsample_common.core.episode import Source

    from worldsample_worldmodel.core.data import filter_episodes
    from worldsample_worldmodel.core.store import WorldModelStore, version_name
    from worldsample_worldmodel.core.train import train_world_model

    steps = args.steps if args.steps is not None else 800
    store = WorldModelStore(args.model)
    store.cleanup()
    parent = store.latest()
    if parent is None:
        raise FileNotFoundError(f"--model {args.model}: no world-model version yet; run `worldsample wm train` first")
    init = store.load(parent, device=args.device)
    man = store.manifest(parent)
    real, _ = _load_bags(args.bagdir, "BAGDIR")
    real = [e for e in real if e.source == Source.REAL]
    if not real:
        raise ValueError(f"BAGDIR {args.bagdir}: no REAL episodes in its bags")
    # no version "post-trained on real data" that saw none: every real episode unusable -> error, nothing saved
    usable, rejected = filter_episodes(real, init.cameras, init.cfg.image_size, init.proprio_dim)
    if not usable:
        why = "; ".join(f"{name}: {reason}" for name, reason in rejected)
        raise ValueError(f"BAGDIR {args.bagdir}: none of its {len(real)} REAL episode(s) fits {parent} ({why})")
    demo_dirs = [args.demos] if args.demos else list(man.get("demo_dirs", []))
    demos = []
    for d in demo_dirs:
        if Path(d).is_dir():
            eps, _ = _load_bags(d, "demo", sources=[Source.DEMO])
            demos.extend(eps)
        else:
            print(f"[wm] demo directory {d} (from the manifest of {parent}) is gone; post-training on real only",
                  file=sys.stderr)
    real_dirs = sorted(set(man.get("real_dirs", [])) | {str(Path(args.bagdir).resolve())})
    # earlier real bags (recorded in the parent's manifest) stay in the mix: no forgetting
    seen = {e.episode_id for e in real}
    for d in real_dirs:
        if Path(d) == Path(args.bagdir).resolve():
            continue
        if not Path(d).is_dir():
            print(f"[wm] real-bag directory {d} (from the manifest of {parent}) is gone; skipped", file=sys.stderr)
            continue
        eps, _ = _load_bags(d, "earlier real", sources=[Source.REAL])
        real.extend(e for e in eps if e.episode_id not in seen)
        seen.update(e.episode_id for e in eps)
    cfg = _cfg_overrides(args, base=init.cfg)
    model, metrics = train_world_model(demos + real, cfg, init=init, steps=steps, progress=not args.no_progress,
                                       run_dir=args.model, tag=version_name(len(store.versions()) + 1))
    _report_rejected(metrics)
    version = _save(store, model, metrics, demos + real, {"mode": "posttrain-real", "parent": parent,
                                                          "demo_dirs": demo_dirs, "real_dirs": real_dirs})
    print(f"[wm] {version} (from {parent}): {metrics['steps']} steps on {metrics['num_real_episodes']} real + "
          f"{metrics['num_demo_episodes']} demo episodes, {metrics['samples_per_s']:.1f} samples/s -> {store.path(version)}")
    return 0


def _load_model(spec: str, version: str | None, device: str | None):
    from worldsample_worldmodel.core.store import WorldModelStore

    if ":" in spec and not Path(spec).exists():
        spec, version = spec.rsplit(":", 1)
    p = Path(spec)
    if (p / "model.pt").is_file() and (p / "manifest.json").is_file():  # a version directory
        return WorldModelStore(p.parent.parent).load(p.name, device=device)
    if not p.is_dir():
        raise FileNotFoundError(f"world-model run {spec} does not exist")
    return WorldModelStore(p).load(version, device=device)


def _generate(args) -> int:
    import numpy as np
    from worldsample_common.core.episode import Source

    from worldsample_worldmodel.core.generate import generate_branches, load_any_policy, write_synthetic_bags

    model = _load_model(args.model, args.version, args.device)
    starts, _ = _load_bags(args.from_dir, "--from")
    starts = [e for e in starts if e.source == Source.REAL] or starts
    policy = load_any_policy(args.policy, seed=args.seed)
    t0 = time.time()
    eps = generate_branches(model, starts, policy, args.branches, args.horizon, args.noise,
                            rng=np.random.default_rng(args.seed))
    dt = time.time() - t0
    bag = write_synthetic_bags(eps, args.out)
    n = sum(e.length for e in eps)
    unc = np.concatenate([e.uncertainty for e in eps])
    print(f"[wm] {len(eps)} branches, {n} synthetic transitions from {model.version} in {dt:.1f} s "
          f"({n / dt:.0f} transitions/s); uncertainty median {np.median(unc):.2f} max {unc.max():.2f} -> {bag}")
    return 0


def _fidelity(args) -> int:
    from worldsample_worldmodel.core.fidelity import evaluate_fidelity, format_table, save_comparison_strip

    try:
        horizons = tuple(int(h) for h in args.horizons.split(",") if h.strip())
    except ValueError as exc:
        raise ValueError(f"--horizons {args.horizons!r}: expected comma-separated positive ints like 1,4,8") from exc
    if not horizons or min(horizons) < 1:
        raise ValueError(f"--horizons {args.horizons!r}: expected comma-separated positive ints like 1,4,8")
    held, _ = _load_bags(args.on, "--on")
    models = {args.model: _load_model(args.model, args.version, args.device)}
    if args.vs:
        models[args.vs] = _load_model(args.vs, None, args.device)
    out = Path(args.out) if args.out else Path(args.model.split(":")[0]) / "fidelity"
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for label, m in models.items():
        results[label] = evaluate_fidelity(m, held, horizons, max_starts=args.max_starts)
        safe = Path(label.rstrip("/")).name.replace(":", "_")
        strip = save_comparison_strip(m, held, out / f"strip_{safe}_{m.version}.png", horizons)
        print(f"[wm] comparison strip: {strip}")
    print("copy = copy-last-frame (the real frame at the start, every horizon) on the same held-out starts; "
          "gain = model - copy; rho(unc,err) = Spearman rank correlation of each step's uncertainty with its pixel MSE")
    print(format_table(results))
    if args.vs:
        a, b = results[args.vs], results[args.model]
        for k, pa, pb, sa, sb in zip(a["horizons"], a["psnr"], b["psnr"], a["ssim"], b["ssim"], strict=True):
            print(f"gain of {args.model} over {args.vs} at horizon {k}: PSNR {pb - pa:+.2f} dB, SSIM {sb - sa:+.3f}")
    from worldsample_common.core.files import json_dumps

    (out / "fidelity.json").write_text(json_dumps(results, indent=2))
    return 0
