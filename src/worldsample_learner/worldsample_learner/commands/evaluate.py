"""`worldsample eval`: a saved policy's success rate on a sim task, with its standard error.

    worldsample eval --policy runs/learn/checkpoints/policy-000007.pt --task push --episodes 40 [--blocks 3]

Runs ``--episodes`` deterministic episodes (the policy's mean action) in each of ``--blocks`` blocks of
seeds: block 0 is the seeds `worldsample learn` evaluates on (1,000,000 + 1000 x the run's seed, the first
``--eval-episodes`` of them), the others are placements that no learning run evaluates on. The environment
(cameras, image size) is the policy's own. Prints the success rate per block and over all, each with its
standard error, and writes them as JSON with ``--out``.

Why: a learning run evaluates 10 episodes on one fixed block of placements; one such point moves by
+-0.15 (its standard error at 0.5) and a block can be harder than the task (docs/results.md, "Pixels").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

LEARN_EVAL_SEED0 = 1_000_000  # `drivers.learn.train_in_process`: evaluate(..., seed0=1_000_000 + seed * 1000)
OTHER_SEED0 = 7_000_000  # further blocks: 7,000,000 + 100,000 x block, seeds no driver uses


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, type=Path, help="policy checkpoint (policy-*.pt)")
    parser.add_argument("--task", required=True, help="sim task: peg_insertion, push, sort, pick_place")
    parser.add_argument("--episodes", type=int, default=40, help="episodes per block of seeds (default 40)")
    parser.add_argument("--blocks", type=int, default=3,
                        help="blocks of seeds; block 0 is the learning run's own evaluation seeds (default 3)")
    parser.add_argument("--run-seed", type=int, default=None,
                        help="the learning run's --seed, for block 0 (default: the seed saved in the checkpoint)")
    parser.add_argument("--out", type=Path, default=None, help="also write the numbers as JSON here")


def seed_blocks(run_seed: int, blocks: int) -> list[int]:
    """First seed of each block: the learning run's evaluation seeds, then seeds no driver uses."""
    return [LEARN_EVAL_SEED0 + 1000 * run_seed] + [OTHER_SEED0 + 100_000 * b for b in range(1, blocks)]


def rate(successes: list[bool]) -> tuple[float, float]:
    """Success rate and its standard error (binomial)."""
    import numpy as np

    p = float(np.mean(successes))
    return p, float(np.sqrt(p * (1 - p) / len(successes)))


def evaluate_policy(policy_path: Path, task: str, episodes: int, blocks: int,
                    run_seed: int | None = None) -> dict[str, Any]:
    from worldsample_control.core.rollout import evaluate
    from worldsample_control.core.sim import TASKS, EnvConfig, make_env

    from worldsample_learner.core.policy import load_policy

    if task not in TASKS:
        raise ValueError(f"--task must be one of {TASKS}, got {task!r}")
    if episodes < 1 or blocks < 1:
        raise ValueError(f"--episodes and --blocks must be >= 1, got {episodes} and {blocks}")
    pol = load_policy(policy_path)
    pixels = pol.obs_mode == "pixels"
    seed = pol.cfg.seed if run_seed is None else run_seed
    env = make_env(task, EnvConfig(image_size=pol.cfg.image_size, cameras=tuple(pol.cfg.cameras), render=pixels))
    try:
        if pol.spec.state_dim and env.reset(seed=0).state is None:
            raise ValueError(f"policy {policy_path} is state-based but task {task!r} gives no privileged state")
        rows = []
        for b, seed0 in enumerate(seed_blocks(seed, blocks)):
            r = evaluate(env, pol, episodes, seed0=seed0)
            p, se = rate(r["successes"])
            rows.append({"block": b, "seed0": seed0, "success_rate": p, "stderr": se,
                         "mean_return": r["mean_return"], "successes": [bool(s) for s in r["successes"]]})
    finally:
        env.close()
    p, se = rate([s for row in rows for s in row["successes"]])
    return {"policy": str(policy_path), "task": task, "obs_mode": pol.obs_mode, "episodes_per_block": episodes,
            "blocks": rows, "success_rate": p, "stderr": se}


def run(args: argparse.Namespace) -> int:
    try:
        r = evaluate_policy(args.policy, args.task, args.episodes, args.blocks, args.run_seed)
    except (ValueError, FileNotFoundError) as exc:
        print(f"eval: {exc}", file=sys.stderr)
        return 2
    print(f"eval: {r['policy']} on {r['task']} ({r['obs_mode']}), {r['episodes_per_block']} deterministic episodes "
          f"per block of seeds")
    for row in r["blocks"]:
        what = "the learning run's evaluation seeds" if row["block"] == 0 else "other placements"
        print(f"  block {row['block']} (seeds {row['seed0']}.., {what}): success {row['success_rate']:.2f} "
              f"+- {row['stderr']:.2f}, return {row['mean_return']:.1f}")
    print(f"  all {len(r['blocks']) * r['episodes_per_block']} episodes: success {r['success_rate']:.2f} "
          f"+- {r['stderr']:.2f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(r, indent=2))
    return 0
