"""`worldsample demos`: record scripted-expert demonstrations as DEMO bags, or check the expert.

    worldsample demos --task push --episodes 20 --out runs/demos [--seed 0] [--image-size 64] [--keep-failures]
    worldsample demos --check --task push --episodes 100      # success rate only, nothing written
    worldsample demos --check --task all --episodes 100
    worldsample demos --task pick_place --episodes 50 --out runs/demos_noisy --action-noise 0.2
"""

from __future__ import annotations

import argparse
import sys

TASK_CHOICES = ("peg_insertion", "push", "sort", "pick_place", "all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, choices=TASK_CHOICES, help="task ('all' only with --check)")
    parser.add_argument("--episodes", type=int, default=20, help="number of expert episodes (default 20)")
    parser.add_argument("--out", default=None, help="directory for the bags (required unless --check)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (default 0)")
    parser.add_argument("--image-size", type=int, default=64, help="square camera resolution (default 64)")
    parser.add_argument("--action-noise", type=float, default=0.0,
                        help="std of Gaussian noise added to the expert's dx, dy, dz (default 0: clean expert)")
    parser.add_argument("--keep-failures", action="store_true", help="also write unsuccessful episodes")
    parser.add_argument("--check", action="store_true",
                        help="only run the expert (no rendering) and print its success rate; write nothing")
    parser.add_argument("--min-success", type=float, default=0.0,
                        help="with --check: exit 1 if any task's success rate is below this")


def run(args: argparse.Namespace) -> int:
    from worldsample_control.core.demos import check_expert, record_demos
    from worldsample_control.core.sim import TASKS, EnvConfig

    if args.episodes < 1:
        print(f"demos: --episodes must be >= 1, got {args.episodes}", file=sys.stderr)
        return 2
    if not (args.action_noise >= 0.0 and args.action_noise < float("inf")):
        print(f"demos: --action-noise must be a finite value >= 0, got {args.action_noise}", file=sys.stderr)
        return 2
    if args.check:
        tasks = TASKS if args.task == "all" else (args.task,)
        worst = 1.0
        for task in tasks:
            res = check_expert(task, args.episodes, seed0=args.seed, action_noise=args.action_noise)
            worst = min(worst, res["success_rate"])
            print(f"{task}: expert success {res['success_rate']:.3f} over {args.episodes} episodes "
                  f"(seeds {args.seed}..{args.seed + args.episodes - 1}, action noise {args.action_noise}), mean length {res['mean_length']:.1f}, "
                  f"mean return {res['mean_return']:.2f}, {res['seconds']:.1f} s")
        return 1 if worst < args.min_success else 0
    if args.task == "all":
        print("demos: --task all is only allowed with --check", file=sys.stderr)
        return 2
    if not args.out:
        print("demos: --out DIR is required to record demonstrations (or use --check)", file=sys.stderr)
        return 2
    try:
        cfg = EnvConfig(image_size=args.image_size)
        cfg.validate(args.task)
        rep = record_demos(args.task, args.episodes, args.out, cfg=cfg, seed0=args.seed,
                           keep_failures=args.keep_failures, action_noise=args.action_noise)
    except (ValueError, FileExistsError) as exc:
        print(f"demos: {exc}", file=sys.stderr)
        return 2
    print(f"{args.task}: expert success {rep.success_rate:.3f} over {rep.episodes} episodes; "
          f"wrote {rep.n_written} DEMO bags to {args.out} in {rep.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="worldsample demos", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    sys.exit(run(p.parse_args()))
