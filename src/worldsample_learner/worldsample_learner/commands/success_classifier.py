"""Train the success classifier on labelled episode bags and report its held-out accuracy.

  python -m worldsample_learner.commands.success_classifier --bags DIR [--bags DIR2 ...] --out CLF.pt
      [--task T] [--image-size 64] [--epochs 15] [--holdout 0.25]

Labels come from the episodes themselves (demos and recorded real episodes with their success
flags, e.g. `worldsample demos --keep-failures --action-noise S`): frames just after the first
success step of successful episodes are positives, failed episodes and the early frames of
successful ones negatives. The split is by episode. Prints train / held-out accuracy and the
held-out balanced accuracy; writes CLF.pt and CLF.json (the numbers). success_node loads CLF.pt.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bags", action="append", required=True, help="directory of episode bags (repeatable)")
    parser.add_argument("--out", required=True, help="classifier checkpoint to write (.pt)")
    parser.add_argument("--task", default=None, help="only episodes of this task")
    parser.add_argument("--cameras", default="front,wrist")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--holdout", type=float, default=0.25, help="fraction of episodes held out (default 0.25)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")


def run(args: argparse.Namespace) -> int:
    from worldsample_common.core.bag_io import load_episodes_report

    from worldsample_learner.core.success_classifier import SuccessClassifier, SuccessClassifierConfig

    if not 0.0 < args.holdout < 1.0:
        print(f"success_classifier: --holdout must be in (0, 1), got {args.holdout}", file=sys.stderr)
        return 2
    episodes = []
    for d in args.bags:
        if not Path(d).is_dir():
            print(f"success_classifier: --bags {d!r} is not a directory", file=sys.stderr)
            return 2
        rep = load_episodes_report(d)
        for bag, reason in rep.skipped:
            print(f"success_classifier: skipping bag {bag}: {reason}", file=sys.stderr)
        episodes += [e for e in rep.episodes if args.task is None or e.task == args.task]
    n_ok = sum(e.success for e in episodes)
    print(f"success_classifier: {len(episodes)} episodes ({n_ok} successful, {len(episodes) - n_ok} failed)")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    cfg = SuccessClassifierConfig(cameras=tuple(c for c in args.cameras.split(",") if c), image_size=args.image_size,
                                  epochs=args.epochs, holdout_fraction=args.holdout, seed=args.seed)
    clf = SuccessClassifier(cfg)
    t0 = time.time()
    try:
        r = clf.fit(episodes)
    except ValueError as exc:
        print(f"success_classifier: error: {exc}", file=sys.stderr)
        return 2
    out = clf.save(args.out)
    r.update(episodes=len(episodes), successful_episodes=n_ok, fit_s=round(time.time() - t0, 1),
             bags=[str(Path(d).resolve()) for d in args.bags])
    from worldsample_common.core.files import json_dumps

    out.with_suffix(".json").write_text(json_dumps(r, indent=2))
    print(f"  train accuracy              {r['train_accuracy']:.3f}  ({r['n_train']} frames)")
    print(f"  held-out accuracy           {r['heldout_accuracy']:.3f}  ({r['n_heldout']} frames of "
          f"{r['heldout_episodes']} held-out episodes)")
    print(f"  held-out balanced accuracy  {r['heldout_balanced_accuracy']:.3f}")
    print(f"  -> {out} ({r['fit_s']} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    from worldsample_control.commands import standalone_main

    return standalone_main("success_classifier", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
