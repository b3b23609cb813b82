"""`worldsample learn`: train a policy in-process against a sim task, with or without synthetic data.

    worldsample learn --task push --mode rl-only --demos runs/demos --out runs/learn_rl
    worldsample learn --task push --mode ppl --demos runs/demos --synthetic runs/synthetic --out runs/learn_ppl \\
        --env-steps 20000 --seed 0 --obs state

--synthetic DIR is a static pool of synthetic (world-model) bags, handed out in branches cut to
the horizon PPL asks for; --synthetic oracle is a perfect world model (`worldsample_control.core.sim.oracle`:
branches rolled in the simulator from the exact recorded states of real steps), the bound that splits a
gap into "recipe" and "model"; the live video-world-model source is wired by the experiment driver.
Writes metrics.csv, eval.csv, ppl.csv, ppl_decisions.csv, plots.png, results.json and checkpoints/ under --out.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worldsample_common.core.env_protocol import Env

    from worldsample_learner.core.config import LearnConfig

ORACLE = "oracle"  # --synthetic oracle: the perfect world model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, help="sim task: peg_insertion, push, sort, pick_place")
    from worldsample_learner.core.ppl import PPL_MODES

    parser.add_argument("--mode", default="ppl", choices=PPL_MODES, help="how synthetic data is used (default ppl)")
    parser.add_argument("--demos", default=None, help="directory of demonstration bags (optional)")
    parser.add_argument("--expert-demos", type=int, default=0,
                        help="also record N scripted-expert demos in-process (seeds 500..; no bags written)")
    parser.add_argument("--synthetic", default=None,
                        help="directory of synthetic bags (a static pool), or 'oracle': a perfect world model rolled "
                             "in the simulator from exact real states (`worldsample experiment policy` runs the "
                             "learner with the live video world model)")
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument("--resume", action="store_true",
                        help="go on from --out's last snapshot (snapshot.pt, written every "
                             "LearnConfig.snapshot_every_env_steps env steps) with the stopped run's other flags")
    parser.add_argument("--env-steps", type=int, default=20_000, help="real environment steps (default 20000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--obs", default="state", choices=("state", "pixels"), help="observation mode (default state)")
    from worldsample_learner.core.config import PIXEL_ENCODERS

    parser.add_argument("--pixel-encoder", default=None, choices=PIXEL_ENCODERS,
                        help="with --obs pixels: 'frozen' = keypoints pre-trained on the frames before the first update, "
                             "then fixed and cached in the replay; 'conv' = a conv encoder trained end-to-end by the "
                             "critic (default: AgentConfig, frozen)")
    parser.add_argument("--pretrain-steps", type=int, default=None,
                        help="frozen pixel encoder: pre-training steps (default: AgentConfig)")
    parser.add_argument("--utd", type=int, default=None, help="critic updates per env step (default: AgentConfig)")
    parser.add_argument("--hidden", type=int, default=None, help="MLP width (default: AgentConfig, 256)")
    parser.add_argument("--critics", type=int, default=None, help="critic ensemble size (default: AgentConfig, 2)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default: AgentConfig, 256)")
    parser.add_argument("--bc-weight", type=float, default=None,
                        help="Q-filtered behaviour cloning on demo rows (default: AgentConfig)")
    parser.add_argument("--bc-q-filter", default=None, choices=("on", "off"),
                        help="behaviour cloning only where the critic prefers the demo action (default: AgentConfig)")
    parser.add_argument("--n-step", type=int, default=None, help="n-step returns (default: AgentConfig, 3)")
    parser.add_argument("--hidden-dtype", choices=("float32", "bfloat16"), default=None,
                        help="dtype of the actor's and critics' hidden layers (default: AgentConfig, float32)")
    parser.add_argument("--target-entropy", type=float, default=None,
                        help="SAC's entropy target (default: AgentConfig, -action_dim)")
    parser.add_argument("--synthetic-every", type=int, default=None,
                        help="env steps between synthetic requests (default: LearnConfig)")
    parser.add_argument("--synthetic-branches", type=int, default=None,
                        help="branches per synthetic request (default: LearnConfig)")
    parser.add_argument("--eval-every", type=int, default=2_000, help="env steps between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")


def make_task_env(task: str, cfg: LearnConfig) -> Env:
    """The MuJoCo sim task ``task`` with the cameras, image size and seed of ``cfg``."""
    from worldsample_control.core.sim import EnvConfig, make_env

    a = cfg.agent
    pixels = a.obs_mode == "pixels"
    return make_env(task, EnvConfig(image_size=a.image_size, cameras=tuple(a.cameras), render=pixels,
                                    seed=cfg.seed))


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from worldsample_control.core.sim import TASKS

    if args.task not in TASKS:
        print(f"learn: --task must be one of {TASKS}, got {args.task!r}", file=sys.stderr)
        return 2
    if args.env_steps < 1:
        print(f"learn: --env-steps must be >= 1, got {args.env_steps}", file=sys.stderr)
        return 2
    oracle = args.synthetic == ORACLE
    for flag, d in (("--demos", args.demos), ("--synthetic", None if oracle else args.synthetic)):
        if d is not None and not Path(d).is_dir():
            print(f"learn: {flag} {d!r} is not a directory", file=sys.stderr)
            return 2
    from worldsample_learner.core.ppl import uses_synthetic

    if args.synthetic and not uses_synthetic(args.mode):
        print(f"learn: --synthetic is ignored in --mode {args.mode}", file=sys.stderr)

    import torch
    from worldsample_common.core.bag_io import load_episodes
    from worldsample_common.core.episode import Source
    from worldsample_common.core.files import prepare_out_dir

    from worldsample_learner.core.config import AgentConfig, LearnConfig, PPLConfig
    from worldsample_learner.drivers.learn import StaticSyntheticSource, train_in_process
    from worldsample_learner.drivers.snapshot import SNAPSHOT, SnapshotMismatch

    if not torch.cuda.is_available():
        torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    demos = load_episodes(args.demos) if args.demos else []
    demos = [d for d in demos if d.task == args.task]
    if args.demos and not demos:
        print(f"learn: no readable {args.task!r} episodes in --demos {args.demos!r}", file=sys.stderr)
        return 2
    stopped = (Path(args.out) / SNAPSHOT).exists()
    resuming = args.resume and stopped
    if args.resume and not stopped:
        print(f"learn: --resume: no {SNAPSHOT} in {args.out}; starting the run at step 1", file=sys.stderr)
    elif stopped and not args.resume:
        print(f"learn: {args.out} holds a stopped run's {SNAPSHOT}; starting over (--resume goes on from it)",
              file=sys.stderr)
    if args.expert_demos > 0 and not resuming:  # a resumed run's demos are in its snapshot's replay
        from worldsample_control.core.demos import expert_episodes

        demos += expert_episodes(args.task, args.expert_demos, render=args.obs == "pixels")
        print(f"learn: {args.expert_demos} expert demos, {sum(d.success for d in demos[-args.expert_demos:])} successful")
    source = None
    if oracle and uses_synthetic(args.mode):
        from worldsample_control.core.sim import EnvConfig, make_env
        from worldsample_control.core.sim.oracle import OracleConfig, OracleSyntheticSource

        source = OracleSyntheticSource(make_env(args.task, EnvConfig(render=False, seed=args.seed)),
                                       OracleConfig(action_noise=LearnConfig.synthetic_noise), seed=args.seed)
    elif args.synthetic and uses_synthetic(args.mode):
        pool = [e for e in load_episodes(args.synthetic, sources=[Source.SYNTHETIC]) if e.task == args.task]
        if not pool:
            print(f"learn: no readable synthetic {args.task!r} episodes in --synthetic {args.synthetic!r}",
                  file=sys.stderr)
            return 2
        source = StaticSyntheticSource(pool)
    agent = AgentConfig(obs_mode=args.obs, device=args.device, seed=args.seed)
    for flag, field in (("utd", "utd_ratio"), ("hidden", "hidden_dim"), ("critics", "num_critics"),
                        ("batch_size", "batch_size"), ("bc_weight", "bc_weight"), ("n_step", "n_step"),
                        ("target_entropy", "target_entropy"), ("pixel_encoder", "pixel_encoder"),
                        ("pretrain_steps", "frozen_pretrain_steps"), ("hidden_dtype", "hidden_dtype")):
        if getattr(args, flag) is not None:
            setattr(agent, field, getattr(args, flag))
    if args.bc_q_filter is not None:
        agent.bc_q_filter = args.bc_q_filter == "on"
    cfg = LearnConfig(agent=agent, ppl=PPLConfig(mode=args.mode), env_steps=args.env_steps, seed=args.seed,
                      eval_every=min(args.eval_every, args.env_steps), eval_episodes=args.eval_episodes,
                      **{k: v for k, v in (("synthetic_every", args.synthetic_every),
                                           ("synthetic_branches", args.synthetic_branches)) if v is not None},
                      log_every=min(500, args.env_steps), warmup_steps=min(500, args.env_steps // 4))
    try:
        cfg.validate()
        prepare_out_dir(args.out)
    except ValueError as e:
        print(f"learn: {e}", file=sys.stderr)
        return 2
    try:
        r = train_in_process(make_task_env(args.task, cfg), cfg, demos, source, args.out,
                             eval_env=make_task_env(args.task, cfg), resume=resuming)
    except SnapshotMismatch as e:
        print(f"learn: --resume: {e}", file=sys.stderr)
        return 2
    print(f"learn: mode={r['mode']} final success={r['final_success_rate']:.2f} best={r['best_success_rate']:.2f} "
          f"updates={r['updates']} wall={r['wall_s']:.0f}s -> {args.out}/plots.png, {r['checkpoint']}")
    return 0
