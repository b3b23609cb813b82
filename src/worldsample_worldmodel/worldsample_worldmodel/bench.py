"""World-model benchmark: post-training time per loop iteration and generation rate vs the simulator.

  worldsample bench wm [--task push] [--posttrain-steps N] [--branches 256] [--horizon 8] [--device auto]

Measured side by side in one run: (1) the MuJoCo task's real step rate with rendering (random
actions), which is also used to collect the episodes the model trains on; (2) one loop
iteration's post-training as the world-model node runs it (``--posttrain-steps``, default the
node's ``posttrain_steps``, plus the uncertainty calibration and the held-out fidelity check),
in seconds and windows/s; (3) synthetic transitions/s of batched grounded generation under a
random policy, printed as a ratio to (1), as it runs (a branch leaves the batch at its predicted
termination) and with every branch running the full horizon. The copy-last-frame baseline costs
nothing (it is the start frame). Peak memory: process max RSS, plus CUDA max allocated on a GPU. Without MuJoCo the
toy world stands in for the simulator (said so in the output).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="push", help="sim task for the real step rate and data (default push)")
    parser.add_argument("--episodes", type=int, default=6, help="episodes to collect for training data")
    parser.add_argument("--sim-steps", type=int, default=200, help="steps to time the simulator over")
    parser.add_argument("--pretrain-steps", type=int, default=20, help="steps of the (untimed) starting model")
    parser.add_argument("--posttrain-steps", type=int, default=None,
                        help="post-training steps of one loop iteration (default: the world-model node's posttrain_steps)")
    parser.add_argument("--branches", type=int, default=256, help="synthetic branches to generate")
    parser.add_argument("--horizon", type=int, default=8, help="steps per branch")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")


def _sim(task: str, image_size: int, sim_steps: int, episodes: int):
    import numpy as np
    from worldsample_common.core.episode import Source
    from worldsample_control.core.demos import ExpertPolicy
    from worldsample_control.core.rollout import run_episode
    from worldsample_control.core.sim import EnvConfig, make_env

    env = make_env(task, EnvConfig(image_size=image_size))
    try:
        rng = np.random.default_rng(0)
        env.reset(seed=0)
        n = 0
        t0 = time.perf_counter()
        while n < sim_steps:
            res = env.step(rng.uniform(-1, 1, env.action_dim).astype(np.float32))
            n += 1
            if res.terminated or res.truncated:
                env.reset(seed=n)
        rate = n / (time.perf_counter() - t0)
        expert = ExpertPolicy(task, env)
        eps = [run_episode(env, expert, seed=100 + i, source=Source.DEMO) for i in range(episodes)]
    finally:
        env.close()
    return rate, eps, f"MuJoCo {task} with rendering ({image_size}x{image_size}, cameras {list(eps[0].images)})"


def _toy(image_size: int, sim_steps: int, episodes: int):
    from worldsample_worldmodel.core.toy import toy_episode

    t0 = time.perf_counter()
    eps = []
    n = 0
    while n < sim_steps:
        e = toy_episode(len(eps), steps=30, size=image_size)
        eps.append(e)
        n += e.length
    rate = n / (time.perf_counter() - t0)
    return rate, eps[: max(episodes, 1)], "toy world (MuJoCo unavailable)"


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from worldsample_worldmodel.core.config import WorldModelConfig
    from worldsample_worldmodel.core.fidelity import evaluate_fidelity
    from worldsample_worldmodel.core.generate import RandomPolicy, generate_branches
    from worldsample_worldmodel.core.service import WorldModelServiceConfig
    from worldsample_worldmodel.core.train import train_world_model

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        sim_rate, eps, sim_label = _sim(args.task, args.image_size, args.sim_steps, args.episodes)
    except Exception as exc:  # noqa: BLE001 - any sim failure falls back to the toy world, reported
        print(f"[bench wm] simulator unavailable ({type(exc).__name__}: {exc}); using the toy world", file=sys.stderr)
        sim_rate, eps, sim_label = _toy(args.image_size, args.sim_steps, args.episodes)
    post_steps = args.posttrain_steps if args.posttrain_steps is not None else WorldModelServiceConfig().posttrain_steps
    cfg = WorldModelConfig(image_size=args.image_size, cameras=tuple(eps[0].images), device=args.device,
                           log_every=max(1, post_steps))
    if args.batch_size:
        cfg.batch_size = args.batch_size
    # a starting model (not timed), then one loop iteration's post-training as the node runs it
    held = eps[-1:]
    model, _ = train_world_model(eps[:-1], cfg, steps=max(1, args.pretrain_steps), progress=False)
    t0 = time.perf_counter()
    model, metrics = train_world_model(eps[:-1], None, init=model, steps=post_steps, progress=False,
                                       calibration_episodes=held)
    evaluate_fidelity(model, held, (1,), max_starts=16)
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    post_s = time.perf_counter() - t0
    train_rate = metrics["samples_per_s"]
    generate_branches(model, eps, RandomPolicy(0), min(8, args.branches), 2, 0.1, rng=np.random.default_rng(0))

    def generation() -> tuple[int, float]:
        """(transitions, transitions/s) of one timed batch of branches."""
        t = time.perf_counter()
        syn = generate_branches(model, eps, RandomPolicy(0), args.branches, args.horizon, 0.1,
                                rng=np.random.default_rng(1))
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        n = sum(e.length for e in syn)
        return n, n / (time.perf_counter() - t)

    n_syn, gen_rate = generation()
    # the same with no branch ending early (a branch leaves the batch at its predicted termination, so the
    # rate above depends on how many end): every branch runs the full horizon
    threshold = model.cfg.done_threshold
    model.cfg.done_threshold = 1.0 - 1e-9
    try:
        n_full, full_rate = generation()
    finally:
        model.cfg.done_threshold = threshold
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"world-model benchmark on {model.device} (torch threads {torch.get_num_threads()}), image {args.image_size}px, "
          f"cameras {list(model.cameras)}, ensemble {cfg.ensemble_size}, batch {cfg.batch_size}")
    print(f"  baseline: simulator real step rate           {sim_rate:10.1f} steps/s   [{sim_label}]")
    print(f"  post-training, one loop iteration            {post_s:10.1f} s         "
          f"({post_steps} steps x {cfg.batch_size} windows of {cfg.history}+{cfg.rollout_steps} frames/camera, "
          f"{train_rate:.1f} windows/s; with calibration and the fidelity check)")
    print(f"  generation throughput                        {gen_rate:10.1f} transitions/s "
          f"({args.branches} branches x <= {args.horizon} steps, random policy; {n_syn} transitions, branches "
          f"end at predicted termination)")
    print(f"  generation / simulator                       {gen_rate / sim_rate:10.2f} x")
    print(f"  generation, no branch ending early           {full_rate:10.1f} transitions/s "
          f"({n_full} transitions) = {full_rate / sim_rate:.2f} x the simulator")
    print("  copy-last-frame baseline                              0 s      (no model: the start frame)")
    print(f"  peak memory (max RSS)                        {maxrss_mb:10.0f} MiB")
    if model.device.type == "cuda":
        print(f"  peak CUDA memory allocated                   {torch.cuda.max_memory_allocated() / 2**20:10.0f} MiB")
    return 0


def main(argv: list[str] | None = None) -> int:
    from worldsample_control.commands import standalone_main

    return standalone_main("worldsample bench wm", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
