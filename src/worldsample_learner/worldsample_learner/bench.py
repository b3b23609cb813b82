"""`worldsample bench learner`: learner updates/s and actor inference latency (64x64, two cameras).

Each number is also printed as a ratio to the control period of a 10 Hz and a 30 Hz loop
(inference latency / period: below 1 fits in the loop; updates per period: how many gradient
updates the learner does while the arm takes one step). Both measured in this run.

    worldsample bench learner [--updates 10] [--batch-size 256] [--latency-calls 200] [--device auto]
"""

from __future__ import annotations

import argparse
import sys
import time

PERIODS = {"10 Hz": 0.1, "30 Hz": 1.0 / 30.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--updates", type=int, default=10, help="timed critic+actor updates per mode (default 10)")
    parser.add_argument("--batch-size", type=int, default=256, help="training batch size (default 256)")
    parser.add_argument("--latency-calls", type=int, default=200, help="timed single-observation actions")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")


def _fake_store(spec, n: int, rng):
    import numpy as np
    from worldsample_control.core.episode import Source

    from worldsample_learner.core.replay import ReplayStore, Transition

    store = ReplayStore("bench", spec, capacity=n)
    s = spec.image_size
    for i in range(n):
        store.add_transition(Transition(
            episode_id="bench", step=i, source=Source.REAL, proprio=rng.normal(size=spec.proprio_dim).astype(np.float32),
            action=rng.uniform(-1, 1, spec.action_dim).astype(np.float32), reward=float(rng.normal()),
            next_proprio=rng.normal(size=spec.proprio_dim).astype(np.float32),
            images={c: rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for c in spec.cameras},
            next_images={c: rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for c in spec.cameras},
            state=rng.normal(size=spec.state_dim).astype(np.float32) if spec.state_dim else None,
            next_state=rng.normal(size=spec.state_dim).astype(np.float32) if spec.state_dim else None))
    return store


def measure(mode: str, args: argparse.Namespace) -> dict[str, float]:
    import numpy as np
    from worldsample_control.core.env_protocol import Observation

    from worldsample_learner.core.agent import SACAgent
    from worldsample_learner.core.config import AgentConfig
    from worldsample_learner.core.policy import policy_from_agent

    cfg = AgentConfig(obs_mode=mode, image_size=args.image_size, state_dim=6 if mode == "state" else 0,
                      batch_size=args.batch_size, utd_ratio=1, device=args.device)
    agent = SACAgent(cfg)
    rng = np.random.default_rng(0)
    store = _fake_store(agent.spec, max(args.batch_size, 512), rng)
    batch = store.sample(args.batch_size, rng)
    agent.update([batch])  # warm-up
    t0 = time.perf_counter()
    for _ in range(args.updates):
        agent.update([store.sample(args.batch_size, rng)])
    if agent.device.type == "cuda":
        import torch

        torch.cuda.synchronize()
    ups = args.updates / (time.perf_counter() - t0)
    pol = policy_from_agent(agent)
    s = args.image_size
    obs = Observation({c: rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for c in ("front", "wrist")},
                      rng.normal(size=7).astype(np.float32), rng.normal(size=6).astype(np.float32))
    for _ in range(10):
        pol.act(obs)
    lat = []
    for _ in range(args.latency_calls):
        t = time.perf_counter()
        pol.act(obs)
        lat.append(time.perf_counter() - t)
    return {"updates_per_s": ups, "latency_median_s": float(np.median(lat)), "latency_p99_s": float(np.percentile(lat, 99)),
            "device": str(agent.device)}


def run(args: argparse.Namespace) -> int:
    for name in ("updates", "batch_size", "latency_calls"):
        if getattr(args, name) < 1:
            print(f"bench learner: --{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(f"bench learner: batch {args.batch_size}, {args.image_size}x{args.image_size} x 2 cameras (pixels), "
          f"torch threads {torch.get_num_threads()}")
    for mode in ("pixels", "state"):
        r = measure(mode, args)
        print(f"[{mode}] device {r['device']}")
        print(f"  learner updates/s: {r['updates_per_s']:.2f}  (batch {args.batch_size}, UTD 1 update = 1 critic + 1 actor step)")
        for name, p in PERIODS.items():
            print(f"    updates per {name} control period ({p * 1e3:.1f} ms): {r['updates_per_s'] * p:.3f}")
        print(f"  actor inference latency: median {r['latency_median_s'] * 1e3:.2f} ms, p99 {r['latency_p99_s'] * 1e3:.2f} ms")
        for name, p in PERIODS.items():
            print(f"    / {name} period: median {r['latency_median_s'] / p:.3f}, p99 {r['latency_p99_s'] / p:.3f}")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    add_arguments(p)
    raise SystemExit(run(p.parse_args()))
