"""`worldsample bench learner`: our SAC beside an independent SAC on the same task, and where the time goes.

    worldsample bench learner [--task push] [--steps 5000] [--eval-every 1000] [--demos 10] [--seed 0]
                              [--utd 2] [--critics 2] [--peer sb3|none] [--out DIR] [--device cpu]
    worldsample bench learner --obs pixels [--pixel-encoder frozen|conv] [--steps 300] [--eval-every 150] ...

``--obs pixels`` (issue 23): our pixel learner (64 px front + wrist camera + proprio, ``--pixel-encoder``,
default the frozen pre-trained keypoints), our state learner and stable-baselines3's SAC with its CNN
policy (``MultiInputPolicy``: a NatureCNN per camera + proprio, on ``WorldSample/<Task>Pixels-v0``),
the same env steps, demos and shared settings, one after the other in this run: success vs env steps,
ms per env step by phase for each, our pixels / state ratio (update alone and in all), and the cost of
one learner update per env step for the state, frozen-pixel and conv-pixel encoders side by side.

1. **Learning, side by side.** Our learner (`train_in_process`, RL-only, state observations,
   ``--demos`` scripted demos in its demo store, symmetric sampling) and stable-baselines3's SAC
   — written by nobody on this project — on the same Gymnasium environment
   (``WorldSample/<Task>-v0``, `worldsample_control.envs`), for the same number of env steps,
   with the same discount, batch size, network width, update-to-data ratio and the same
   demonstrations pre-loaded into its replay buffer. Both are evaluated with the deterministic
   policy on the same evaluation seeds every ``--eval-every`` steps; the table prints success
   vs. env steps and seconds per 1,000 env steps for each, measured in this run.
2. **Where the time goes** in our run: policy inference, simulator step, learner update,
   evaluation and the rest, in ms per env step (the peer's simulator time is measured too).
3. **How the update cost scales** with UTD and the critic-ensemble size: ms of learner update per
   env step for a few (UTD, critics) pairs, state observations, measured here, each beside the
   previous implementation of the update (issue 23; ``SACAgent(reference_update=True)``, the same
   math) timed in the same run, call by call in alternation so that the machine's load falls on
   both alike.
4. The actor's inference latency (pixels, 64x64, two cameras), as a fraction of a 10 Hz period.

Timing is printed, never asserted; the machine's other load shows in every number alike.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

PERIODS = {"10 Hz": 0.1, "30 Hz": 1.0 / 30.0}
# per --obs: pixels runs three learners with a rendering simulator; SB3's CNN policy alone costs ~2 s per env step
# on this 2-core machine under load (docs/results.md: 400 steps took 25 min in all at load 6-7), so the default
# fits ~15 min: a timing run (nothing learns in 300 steps; `worldsample learn --obs pixels` for learning curves)
DEFAULTS = {"state": {"steps": 5000, "eval_every": 1000, "eval_episodes": 10},
            "pixels": {"steps": 300, "eval_every": 150, "eval_episodes": 5}}
SCALING = ((1, 2), (2, 2), (4, 2), (2, 10), (4, 10))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="push", help="sim task (default push)")
    parser.add_argument("--obs", default="state", choices=("state", "pixels"),
                        help="state: ours vs SB3 on the state env; pixels: ours (pixels and state) vs SB3's CNN policy")
    parser.add_argument("--pixel-encoder", default=None, help="--obs pixels: frozen or conv (default: AgentConfig)")
    parser.add_argument("--pretrain-steps", type=int, default=None,
                        help="--obs pixels, frozen encoder: pre-training steps (default: AgentConfig)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"env steps per learner (default {DEFAULTS['state']['steps']}; "
                             f"{DEFAULTS['pixels']['steps']} with --obs pixels)")
    parser.add_argument("--eval-every", type=int, default=None,
                        help=f"env steps between evaluations (default {DEFAULTS['state']['eval_every']}; "
                             f"{DEFAULTS['pixels']['eval_every']} with --obs pixels)")
    parser.add_argument("--eval-episodes", type=int, default=None,
                        help=f"default {DEFAULTS['state']['eval_episodes']}; {DEFAULTS['pixels']['eval_episodes']} "
                             "with --obs pixels")
    parser.add_argument("--demos", type=int, default=10, help="scripted demos given to both learners (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--utd", type=int, default=None, help="critic updates per env step (default: AgentConfig)")
    parser.add_argument("--critics", type=int, default=None, help="our critic ensemble size (default: AgentConfig)")
    parser.add_argument("--peer", default="sb3", choices=("sb3", "none"), help="the independent SAC (default sb3)")
    parser.add_argument("--out", default=None, help="keep both runs' files here (default: a temporary directory)")
    parser.add_argument("--skip-learning", action="store_true", help="only the update-scaling and latency parts")
    parser.add_argument("--scaling-calls", type=int, default=20, help="timed learner steps per (UTD, critics) pair")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for both (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both learners)")


# --------------------------------------------------------------------------- ours
def run_ours(args, demos, out: Path, obs: str = "state") -> dict:
    from worldsample_learner.commands.learn import make_task_env
    from worldsample_learner.core.config import AgentConfig, LearnConfig, PPLConfig
    from worldsample_learner.drivers.learn import train_in_process

    agent = AgentConfig(obs_mode=obs, device=args.device, seed=args.seed)
    if obs == "pixels" and args.pixel_encoder is not None:
        agent.pixel_encoder = args.pixel_encoder
    if obs == "pixels" and args.pretrain_steps is not None:
        agent.frozen_pretrain_steps = args.pretrain_steps
    if args.utd is not None:
        agent.utd_ratio = args.utd
    if args.critics is not None:
        agent.num_critics = args.critics
        agent.num_min_critics = min(agent.num_min_critics, args.critics)
    cfg = LearnConfig(agent=agent, ppl=PPLConfig(mode="rl-only"), env_steps=args.steps, seed=args.seed,
                      eval_every=args.eval_every, eval_episodes=args.eval_episodes, log_every=min(500, args.steps),
                      warmup_steps=min(500, args.steps // 4), checkpoint_every_env_steps=0)
    r = train_in_process(make_task_env(args.task, cfg), cfg, demos, None, out,
                         eval_env=make_task_env(args.task, cfg), progress=False)
    return {"curve": r["success_curve"], "wall_s": r["wall_s"], "time_s": r["time_s"], "cfg": agent}


# --------------------------------------------------------------------------- the peer
def run_peer(args, demos, agent_cfg, out: Path, obs: str = "state") -> dict:
    """stable-baselines3 SAC on ``WorldSample/<Task>-v0`` (``obs="pixels"``: ``<Task>Pixels-v0`` with its CNN
    policy, ``MultiInputPolicy``) with our shared hyper-parameters and the demos."""
    import gymnasium as gym
    import numpy as np
    import torch
    import worldsample_control.envs as wenvs
    from stable_baselines3 import SAC

    class Timed(gym.Wrapper):
        """Accumulates the time spent inside the simulator's step."""

        def __init__(self, env):
            super().__init__(env)
            self.step_s = 0.0

        def step(self, action):
            t = time.perf_counter()
            r = self.env.step(action)
            self.step_s += time.perf_counter() - t
            return r

    env_id = wenvs.env_id(args.task, obs)
    env = Timed(gym.make(env_id))
    eval_env = gym.make(env_id)
    warmup = min(500, args.steps // 4)
    pixels = obs == "pixels"
    # pixels: the buffer holds every step (frames are 24 KB a transition; 100k would be 10 GB)
    buffer = args.steps + sum(ep.length for ep in demos) + 10 if pixels else max(100_000, args.steps + 10_000)
    model = SAC(
        "MultiInputPolicy" if pixels else "MlpPolicy", env, learning_rate=agent_cfg.critic_lr, buffer_size=buffer,
        learning_starts=warmup if not demos else 0, batch_size=agent_cfg.batch_size, tau=agent_cfg.tau,
        gamma=agent_cfg.discount, train_freq=1, gradient_steps=agent_cfg.utd_ratio, ent_coef="auto",
        policy_kwargs={"net_arch": [agent_cfg.hidden_dim] * agent_cfg.hidden_layers}, seed=args.seed,
        device=args.device, verbose=0,
    )
    space = model.observation_space
    for ep in demos:  # the same demonstrations, in its replay buffer (SB3 has no separate demo store)
        if pixels:  # as SB3 stores them: frames channel-first when it transposed the image spaces
            frames = {c: np.asarray(ep.images[c]) for c in space.spaces if c != "proprio"}
            frames = {c: (v.transpose(0, 3, 1, 2) if space[c].shape[0] == 3 else v) for c, v in frames.items()}

            def obs(t, frames=frames, ep=ep):
                return {**{c: v[t:t + 1] for c, v in frames.items()}, "proprio": ep.proprio[t:t + 1].astype(np.float32)}
        else:
            flat = np.concatenate([ep.proprio, ep.states], axis=1).astype(np.float32)

            def obs(t, flat=flat):
                return flat[t:t + 1]
        for t in range(ep.length):
            done = bool(ep.terminated[t] or ep.truncated[t])
            model.replay_buffer.add(obs(t), obs(t + 1), ep.actions[t:t + 1], np.array([ep.rewards[t]]),
                                    np.array([done]), [{"TimeLimit.truncated": bool(ep.truncated[t] and not ep.terminated[t])}])
    curve: list[tuple[int, float]] = []
    eval_s = 0.0
    seed0 = 1_000_000 + args.seed * 1000  # the evaluation seeds `train_in_process` uses

    def evaluate(step: int) -> None:
        nonlocal eval_s
        t = time.perf_counter()
        wins = 0
        for i in range(args.eval_episodes):
            o, _ = eval_env.reset(seed=seed0 + i)
            while True:
                a, _ = model.predict(o, deterministic=True)
                o, _, term, trunc, info = eval_env.step(a)
                if term or trunc:
                    wins += int(info["is_success"])
                    break
        curve.append((step, wins / args.eval_episodes))
        eval_s += time.perf_counter() - t

    from stable_baselines3.common.callbacks import BaseCallback

    class EvalEvery(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % args.eval_every == 0:
                evaluate(self.num_timesteps)
            return True

    torch.manual_seed(args.seed)
    t0 = time.time()
    model.learn(total_timesteps=args.steps, callback=EvalEvery())
    wall = time.time() - t0
    if not curve or curve[-1][0] != args.steps:
        evaluate(args.steps)
    model.save(str(out / "sb3_sac.zip"))
    env.close()
    eval_env.close()
    return {"curve": curve, "wall_s": wall, "time_s": {"env_step": env.step_s, "eval": eval_s,
                                                       "update+other": max(0.0, wall - env.step_s - eval_s)}}


# --------------------------------------------------------------------------- micro benchmarks
def _fake_store(spec, n: int, rng):
    import numpy as np
    from worldsample_common.core.episode import Source

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


def update_ms(obs_mode: str, utd: int, critics: int, device: str, calls: int = 20) -> dict[str, float]:
    """ms of one learner step (``utd`` critic updates + one actor update, batch 256, n-step sampling as
    in training) for this implementation ("float32"), the same with bfloat16 hidden layers ("bfloat16",
    `AgentConfig.hidden_dtype`) and the previous implementation ("previous", float32), timed in alternation,
    call by call."""
    import dataclasses

    import numpy as np

    from worldsample_learner.core.agent import SACAgent
    from worldsample_learner.core.config import AgentConfig

    cfg = AgentConfig(obs_mode=obs_mode, state_dim=6 if obs_mode == "state" else 0, num_critics=critics,
                      num_min_critics=min(2, critics), utd_ratio=utd, device=device)
    agents = {"float32": SACAgent(cfg), "bfloat16": SACAgent(dataclasses.replace(cfg, hidden_dtype="bfloat16")),
              "previous": SACAgent(cfg, reference_update=True)}
    rng = np.random.default_rng(0)
    store = _fake_store(agents["float32"].spec, 512, rng)
    spent = dict.fromkeys(agents, 0.0)
    for i in range(calls + 1):  # the first call of each is a warm-up
        for name, agent in agents.items():
            batches = [store.sample(cfg.batch_size, rng, cfg.n_step, cfg.discount) for _ in range(utd)]
            t0 = time.perf_counter()
            agent.update(batches)
            if i:
                spent[name] += time.perf_counter() - t0
    return {name: v / calls * 1e3 for name, v in spent.items()}


# the encoders whose update cost `encoder_update_ms` measures: name -> AgentConfig overrides
ENCODERS = {"state": {"obs_mode": "state", "state_dim": 10},
            "frozen": {"obs_mode": "pixels", "pixel_encoder": "frozen"},
            "conv": {"obs_mode": "pixels", "pixel_encoder": "conv"},
            "conv 8ch": {"obs_mode": "pixels", "pixel_encoder": "conv", "encoder_channels": 8}}


def encoder_update_ms(calls: int, device: str) -> dict[str, float]:
    """ms of one learner step (UTD critic updates + one actor update, batch 256, the defaults) per encoder of
    `ENCODERS`: state (proprio + 10 state numbers) and the pixel encoders at 64 px, front + wrist; the frozen
    encoder's features come from the replay's cache, as in training. Timed in alternation, call by call."""
    import numpy as np

    from worldsample_learner.core.agent import SACAgent
    from worldsample_learner.core.config import AgentConfig

    names = list(ENCODERS)
    agents, stores = [], []
    rng = np.random.default_rng(0)
    for name in names:
        cfg = AgentConfig(device=device, **ENCODERS[name])
        agent = SACAgent(cfg)
        store = _fake_store(agent.spec, 512, rng)
        if agent.encoder.frozen:
            store.set_featurizer(agent.features, agent.encoder_version)
        agents.append(agent)
        stores.append(store)
    spent = dict.fromkeys(names, 0.0)
    for i in range(calls + 1):  # the first call of each is a warm-up
        for name, agent, store in zip(names, agents, stores, strict=True):
            cfg = agent.cfg
            batches = [store.sample(cfg.batch_size, rng, cfg.n_step, cfg.discount) for _ in range(cfg.utd_ratio)]
            t0 = time.perf_counter()
            agent.update(batches)
            if i:
                spent[name] += time.perf_counter() - t0
    return {k: v / calls * 1e3 for k, v in spent.items()}


def latency_ms(device: str, calls: int = 100, pixel_encoder: str | None = None) -> tuple[float, float]:
    import numpy as np
    from worldsample_common.core.env_protocol import Observation

    from worldsample_learner.core.agent import SACAgent
    from worldsample_learner.core.config import AgentConfig
    from worldsample_learner.core.policy import policy_from_agent

    cfg = AgentConfig(obs_mode="pixels", device=device)
    if pixel_encoder is not None:
        cfg.pixel_encoder = pixel_encoder
    pol = policy_from_agent(SACAgent(cfg))
    rng = np.random.default_rng(0)
    obs = Observation({c: rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for c in ("front", "wrist")},
                      rng.normal(size=7).astype(np.float32))
    for _ in range(5):
        pol.act(obs)
    lat = []
    for _ in range(calls):
        t = time.perf_counter()
        pol.act(obs)
        lat.append(time.perf_counter() - t)
    return float(np.median(lat)) * 1e3, float(np.percentile(lat, 99)) * 1e3


# --------------------------------------------------------------------------- report
def _per_k(seconds: float, steps: int) -> float:
    return seconds / max(steps, 1) * 1000.0


def run(args: argparse.Namespace) -> int:
    from worldsample_control.core.sim import TASKS

    if args.task not in TASKS:
        print(f"bench learner: --task must be one of {TASKS}, got {args.task!r}", file=sys.stderr)
        return 2
    from worldsample_learner.core.config import PIXEL_ENCODERS

    if args.pixel_encoder is not None and args.pixel_encoder not in PIXEL_ENCODERS:
        print(f"bench learner: --pixel-encoder must be one of {PIXEL_ENCODERS}, got {args.pixel_encoder!r}",
              file=sys.stderr)
        return 2
    for name, value in DEFAULTS[args.obs].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("steps", "eval_every", "eval_episodes"):
        if getattr(args, name) < 1:
            print(f"bench learner: --{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    if args.demos < 0 or args.threads < 1 or args.scaling_calls < 1:
        print("bench learner: --demos must be >= 0, --threads and --scaling-calls >= 1", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    print(f"bench learner: task {args.task}, {args.steps} env steps, {args.demos} demos, seed {args.seed}, "
          f"torch threads {torch.get_num_threads()}, device {args.device}"
          + (", observations: pixels" if args.obs == "pixels" else ""), flush=True)
    if args.obs == "pixels":
        return run_pixels(args)
    if not args.skip_learning:
        from worldsample_control.core.demos import expert_episodes

        demos = expert_episodes(args.task, args.demos) if args.demos else []
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(args.out) if args.out else Path(tmp)
            root.mkdir(parents=True, exist_ok=True)
            print("  training ours (worldsample SAC) ...", flush=True)
            ours = run_ours(args, demos, root / "ours")
            peer = None
            if args.peer == "sb3":
                print("  training the peer (stable-baselines3 SAC) ...", flush=True)
                (root / "sb3").mkdir(exist_ok=True)
                peer = run_peer(args, demos, ours["cfg"], root / "sb3")
        c = ours["cfg"]
        print(f"\nsuccess rate vs env steps (deterministic policy, {args.eval_episodes} episodes, same seeds); "
              f"shared: discount {c.discount}, batch {c.batch_size}, {c.hidden_layers}x{c.hidden_dim} MLPs, "
              f"UTD {c.utd_ratio}; ours: {c.num_critics} critics, symmetric demo sampling")
        print(f"  {'env steps':>9}  {'worldsample':>11}  {'sb3 SAC':>8}")
        peer_curve = dict(peer["curve"]) if peer else {}
        for step, s in ours["curve"]:
            p = peer_curve.get(step)
            print(f"  {step:>9}  {s:>11.2f}  {'-' if p is None else f'{p:.2f}':>8}")
        print(f"\nseconds per 1,000 env steps (incl. evaluation): worldsample {_per_k(ours['wall_s'], args.steps):.1f}"
              + (f", sb3 SAC {_per_k(peer['wall_s'], args.steps):.1f}, ratio worldsample/sb3 "
                 f"{ours['wall_s'] / max(peer['wall_s'], 1e-9):.2f}" if peer else ""))
        print("where the time goes, ms per env step:")
        t = ours["time_s"]
        print("  worldsample: " + ", ".join(f"{k} {v / args.steps * 1e3:.2f}" for k, v in t.items())
              + f"  (total {ours['wall_s'] / args.steps * 1e3:.2f})")
        if peer:
            print("  sb3 SAC:     " + ", ".join(f"{k} {v / args.steps * 1e3:.2f}" for k, v in peer["time_s"].items())
                  + f"  (total {peer['wall_s'] / args.steps * 1e3:.2f})")
    print("\nlearner update per env step (UTD critic updates + 1 actor update, batch 256, state obs), ms; "
          "'previous': the update before issue 23 (same math, float32); 'bf16': this update with bfloat16 hidden "
          "layers (`--hidden-dtype bfloat16`); the three timed in alternation, call by call:")
    base = None
    for utd, critics in SCALING:
        t = update_ms("state", utd, critics, args.device, calls=args.scaling_calls)
        ms, bf, old = t["float32"], t["bfloat16"], t["previous"]
        base = base or ms
        print(f"  UTD {utd:>2}, {critics:>2} critics: {ms:7.2f} ms  ({ms / base:.2f}x UTD 1 / 2 critics)  "
              f"previous {old:7.2f} ms, this/previous {ms / old:.2f}; bf16 {bf:7.2f} ms, bf16/previous "
              f"{bf / old:.2f}", flush=True)
    med, p99 = latency_ms(args.device)
    print(f"actor inference latency (pixels 64x64 x 2 cameras): median {med:.2f} ms, p99 {p99:.2f} ms = "
          + ", ".join(f"{med / (p * 1e3):.3f} of a {n} period" for n, p in PERIODS.items()))
    return 0


def _phases(t: dict[str, float], steps: int, wall: float) -> str:
    return ", ".join(f"{k} {v / steps * 1e3:.2f}" for k, v in t.items()) + f"  (total {wall / steps * 1e3:.2f})"


def run_pixels(args: argparse.Namespace) -> int:
    """``--obs pixels``: ours from pixels, ours from state and SB3's CNN policy, one after the other."""
    from worldsample_control.core.demos import expert_episodes

    demos = expert_episodes(args.task, args.demos, render=True) if args.demos else []
    runs: dict[str, dict] = {}
    if not args.skip_learning:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(args.out) if args.out else Path(tmp)
            root.mkdir(parents=True, exist_ok=True)
            print("  training ours from pixels (worldsample SAC) ...", flush=True)
            runs["ours pixels"] = run_ours(args, demos, root / "ours_pixels", obs="pixels")
            print("  training ours from state (worldsample SAC), the same steps ...", flush=True)
            runs["ours state"] = run_ours(args, demos, root / "ours_state", obs="state")
            if args.peer == "sb3":
                print("  training the peer from pixels (stable-baselines3 SAC, MultiInputPolicy) ...", flush=True)
                (root / "sb3").mkdir(exist_ok=True)
                runs["sb3 pixels"] = run_peer(args, demos, runs["ours pixels"]["cfg"], root / "sb3", obs="pixels")
        c = runs["ours pixels"]["cfg"]
        enc = (f"frozen keypoints ({c.frozen_keypoints} per camera, pre-trained {c.frozen_pretrain_steps} steps on "
               "the demos' and the warm-up's frames)" if c.pixel_encoder == "frozen" else
               f"conv ({c.encoder_channels} channels, trained by the critic)")
        print(f"\nsuccess rate vs env steps (deterministic policy, {args.eval_episodes} episodes, same seeds); shared: "
              f"discount {c.discount}, batch {c.batch_size}, {c.hidden_layers}x{c.hidden_dim} MLPs, UTD {c.utd_ratio}, "
              f"{args.demos} demos; ours: {c.num_critics} critics, symmetric demo sampling; pixels: "
              f"{'+'.join(c.cameras)} at {c.image_size} px + proprio; our pixel encoder: {enc}; "
              "sb3: NatureCNN per camera")
        names = list(runs)
        print("  " + f"{'env steps':>9}" + "".join(f"  {n:>11}" for n in names))
        curves = {n: dict(r["curve"]) for n, r in runs.items()}
        for step, _ in runs["ours pixels"]["curve"]:
            cells = [curves[n].get(step) for n in names]
            print("  " + f"{step:>9}" + "".join(f"  {'-' if v is None else f'{v:.2f}':>11}" for v in cells))
        print("\nwhere the time goes, ms per env step (measured in this run, one after the other):")
        for n, r in runs.items():
            print(f"  {n + ':':<12} " + _phases(r["time_s"], args.steps, r["wall_s"]))
        pix, st = runs["ours pixels"], runs["ours state"]
        upd = {n: (r["time_s"].get("update", r["time_s"].get("update+other", 0.0))) / args.steps * 1e3
               for n, r in runs.items()}
        print(f"ours pixels / ours state, ms per env step: learner update {upd['ours pixels']:.2f} / "
              f"{upd['ours state']:.2f} = {upd['ours pixels'] / max(upd['ours state'], 1e-9):.2f}x; in all "
              f"{pix['wall_s'] / args.steps * 1e3:.2f} / {st['wall_s'] / args.steps * 1e3:.2f} = "
              f"{pix['wall_s'] / max(st['wall_s'], 1e-9):.2f}x (issue 23: <= 3x)")
        if "sb3 pixels" in runs:
            sb = runs["sb3 pixels"]
            print(f"ours pixels / sb3 pixels, ms per env step: update {upd['ours pixels']:.2f} / "
                  f"{upd['sb3 pixels']:.2f} (sb3: update+other) = {upd['ours pixels'] / max(upd['sb3 pixels'], 1e-9):.2f}x;"
                  f" in all {pix['wall_s'] / args.steps * 1e3:.2f} / {sb['wall_s'] / args.steps * 1e3:.2f} = "
                  f"{pix['wall_s'] / max(sb['wall_s'], 1e-9):.2f}x")
        if "encoder_pretrain" in pix["time_s"]:
            pre = pix["time_s"]["encoder_pretrain"]
            print(f"  ours pixels' total includes the frozen encoder's one pre-training, {pre:.1f} s (over a 30k-step "
                  f"run {pre / 30:.2f} ms per env step); without it: {(pix['wall_s'] - pre) / args.steps * 1e3:.2f} ms "
                  f"per env step = {(pix['wall_s'] - pre) / max(st['wall_s'], 1e-9):.2f}x ours state")
    print("\nlearner update per env step by encoder (UTD critic updates + 1 actor update, the defaults: batch 256, "
          "UTD 2, 2 critics; pixels 64 px front + wrist), ms, timed in alternation:", flush=True)
    ms = encoder_update_ms(args.scaling_calls, args.device)
    for name, v in ms.items():
        print(f"  {name:>8}: {v:8.2f} ms  ({v / ms['state']:.2f}x state)")
    med, p99 = latency_ms(args.device, pixel_encoder=args.pixel_encoder)
    print(f"actor inference latency (pixels 64x64 x 2 cameras, {args.pixel_encoder or 'default'} encoder): "
          f"median {med:.2f} ms, p99 {p99:.2f} ms = "
          + ", ".join(f"{med / (p * 1e3):.3f} of a {n} period" for n, p in PERIODS.items()))
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    add_arguments(p)
    raise SystemExit(run(p.parse_args()))
