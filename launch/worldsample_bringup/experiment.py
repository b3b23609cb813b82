"""The paper's two comparisons, reproduced in simulation with the in-process driver.

    worldsample experiment policy     --config small --out runs/exp    # PPL vs RL-only vs naive augmentation
    worldsample experiment worldmodel --config small --out runs/exp    # loop post-trained vs demo-only WM

Both call the same core components as the ROS graph (no second implementation): the MuJoCo
task env, the scripted experts for demonstrations, `worldsample_learner.core.train.train_in_process`
(SAC + replay + PPL), and the video world model through `VideoWorldModelSource` /
`WorldModelService` (pre-training on demos, post-training on real episodes, grounded
generation, held-out PSNR/SSIM).

*policy*: for every task x mode x seed, one run of ``env_steps`` real steps with the same
demonstrations; the synthetic modes get a video world model pre-trained on the demos that is
post-trained every few real episodes. The learner is state-based (privileged sim state, for CPU
speed); the world model models the camera frames and carries the state with the
proprioception (``VideoSourceConfig.state_in_proprio``). Reported: success rate vs real steps
(mean over seeds), final success, and the fraction of steps each mode needs to reach RL-only's
final success (the paper: +28% success, -59% steps).

*worldmodel*: the world model after the loop (post-trained on the PPL run's real rollouts) vs
one trained for the same total steps on demonstrations only, both scored on held-out rollouts
of a trained policy from another seed (the paper: +19.4 dB PSNR, +0.47 SSIM).

Each writes ``OUT/<experiment>/results.json``, plots (PNG) and its section of ``OUT/results.md``
(the tables of docs/results.md are copied from there, with the command that made them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

MODES = ("rl-only", "naive", "ppl")


@dataclass
class ExperimentConfig:
    """One configuration of both comparisons. ``small`` fits a 2-core CPU in < 30 min; ``full`` wants a GPU."""

    name: str = "small"
    tasks: tuple[str, ...] = ("push", "peg_insertion")
    modes: tuple[str, ...] = MODES
    seeds: tuple[int, ...] = (0, 1, 2)
    env_steps: int = 4000
    eval_every: int = 1000
    eval_episodes: int = 10
    demos: int = 10
    max_steps: int = 40  # episode length (0: the task default)
    image_size: int = 32
    cameras: tuple[str, ...] = ("front",)
    # learner (state-based SAC)
    batch_size: int = 128
    num_critics: int = 2
    utd_ratio: int = 2
    hidden_dim: int = 256
    synthetic_every: int = 250
    synthetic_branches: int = 32
    # world model
    wm_pretrain_steps: int = 400
    wm_posttrain_steps: int = 150
    wm_min_new_episodes: int = 20
    wm_latent_channels: int = 16
    wm_batch_size: int = 16
    heldout_episodes: int = 8
    horizons: tuple[int, ...] = (1, 4, 8)
    jobs: int = 2  # runs in parallel (processes, one torch thread each)
    device: str = "cpu"

    def runs(self) -> list[dict[str, Any]]:
        return [{"task": t, "mode": m, "seed": s} for t in self.tasks for m in self.modes for s in self.seeds]


CONFIGS: dict[str, ExperimentConfig] = {
    "small": ExperimentConfig(),
    # the RL-only baseline at the issue-10 budget: full-length episodes, 20k real steps, 3 seeds (~1 h here)
    "rl": ExperimentConfig(name="rl", modes=("rl-only",), env_steps=20_000, eval_every=2_000, max_steps=0,
                           batch_size=256),
    "full": ExperimentConfig(name="full", tasks=("push", "peg_insertion", "pick_place"), seeds=(0, 1, 2, 3, 4),
                             env_steps=30_000, eval_every=2_000, eval_episodes=20, demos=20, max_steps=0,
                             image_size=64, cameras=("front", "wrist"), batch_size=256, num_critics=10, utd_ratio=2,
                             synthetic_every=1_000, synthetic_branches=64, wm_pretrain_steps=3000,
                             wm_posttrain_steps=600, wm_min_new_episodes=10, wm_latent_channels=32, wm_batch_size=32,
                             heldout_episodes=20,
                             jobs=1, device="auto"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("which", choices=("policy", "worldmodel"), help="which comparison")
    parser.add_argument("--config", choices=tuple(CONFIGS), default="small")
    parser.add_argument("--out", required=True, type=Path, help="experiment directory")
    parser.add_argument("--jobs", type=int, default=None, help="parallel runs (default: the config's)")
    parser.add_argument("--env-steps", type=int, default=None, help="override the config's real steps per run")
    parser.add_argument("--seeds", default=None, help="override the seeds, e.g. 0,1,2")
    parser.add_argument("--tasks", default=None, help="override the tasks, e.g. push,peg_insertion")
    parser.add_argument("--modes", default=None, help=f"override the modes, e.g. rl-only,ppl (of {MODES})")


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    cfg = CONFIGS[args.config]
    over: dict[str, Any] = {}
    if args.jobs is not None:
        over["jobs"] = max(1, args.jobs)
    if args.env_steps is not None:
        over["env_steps"] = args.env_steps
        over["eval_every"] = min(cfg.eval_every, args.env_steps)
    if args.seeds:
        over["seeds"] = tuple(int(s) for s in args.seeds.split(","))
    if args.tasks:
        over["tasks"] = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    if getattr(args, "modes", None):
        modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
        bad = [m for m in modes if m not in MODES]
        if bad:
            raise ValueError(f"--modes {bad} unknown; expected some of {MODES}")
        over["modes"] = modes
    return replace(cfg, **over)


def command_line(args: argparse.Namespace) -> str:
    parts = ["worldsample experiment", args.which, "--config", args.config, "--out", str(args.out)]
    for flag in ("jobs", "env_steps", "seeds", "tasks", "modes"):
        v = getattr(args, flag)
        if v is not None:
            parts += [f"--{flag.replace('_', '-')}", str(v)]
    return " ".join(parts)


# --------------------------------------------------------------------------- building blocks
def env_config(cfg: ExperimentConfig, render: bool):
    from worldsample_control.core.sim import EnvConfig

    return EnvConfig(image_size=cfg.image_size, cameras=cfg.cameras, render=render, max_episode_steps=cfg.max_steps)


def expert_demos(task: str, cfg: ExperimentConfig, n: int, seed0: int = 500) -> list:
    """``n`` successful scripted-expert episodes (rendered: the world model learns from the frames)."""
    from worldsample_common.core.episode import Source
    from worldsample_control.core.experts import make_expert
    from worldsample_control.core.rollout import run_episode
    from worldsample_control.core.sim import make_env

    env = make_env(task, env_config(cfg, render=True))
    expert = make_expert(task)
    out, seed = [], seed0
    while len(out) < n and seed < seed0 + 5 * n:
        expert.reset()
        ep = run_episode(env, lambda o: expert.act(o, env), seed=seed, source=Source.DEMO)
        seed += 1
        if ep.success:
            out.append(ep)
    env.close()
    if len(out) < n:
        raise RuntimeError(f"the {task} expert succeeded only {len(out)} times in {5 * n} tries")
    return out


def wm_service_config(cfg: ExperimentConfig, run_dir: Path, seed: int):
    from worldsample_worldmodel.core.config import WorldModelConfig
    from worldsample_worldmodel.core.service import WorldModelServiceConfig

    model = WorldModelConfig(image_size=cfg.image_size, cameras=cfg.cameras, latent_channels=cfg.wm_latent_channels,
                             batch_size=cfg.wm_batch_size, seed=seed, num_threads=1)
    return WorldModelServiceConfig(run_dir=str(run_dir), min_new_episodes=cfg.wm_min_new_episodes,
                                   pretrain_steps=cfg.wm_pretrain_steps, posttrain_steps=cfg.wm_posttrain_steps,
                                   heldout_every=5, fidelity_horizons=(1, 4), device=cfg.device, threads=1,
                                   model=model)


def pretrain_world_model(task: str, cfg: ExperimentConfig, demos: list, run_dir: Path) -> None:
    """Pre-train once per task on the demos (the synthetic runs start from a copy)."""
    from worldsample_worldmodel.core.source import VideoSourceConfig, VideoWorldModelSource

    if (run_dir / "versions").is_dir() and any((run_dir / "versions").glob("wm-*")):
        return
    src = VideoWorldModelSource(VideoSourceConfig(service=wm_service_config(cfg, run_dir, 0), state_in_proprio=True))
    src.add_demos(demos)
    src.service.train()


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """One training run (in a worker process): returns its results.json content."""
    import torch

    torch.set_num_threads(1)
    from worldsample_control.core.sim import make_env
    from worldsample_learner.core.config import AgentConfig, LearnConfig, PPLConfig
    from worldsample_learner.core.train import train_in_process
    from worldsample_worldmodel.core.source import VideoSourceConfig, VideoWorldModelSource

    cfg = ExperimentConfig(**spec["cfg"])
    task, mode, seed = spec["task"], spec["mode"], spec["seed"]
    out = Path(spec["out"])
    if (out / "results.json").exists():  # finished before (a resumed experiment)
        return json.loads((out / "results.json").read_text())
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    demos = _load_pickle(Path(spec["demos"]))
    source = None
    if mode != "rl-only":
        wm_dir = out / "world_model"
        shutil.copytree(spec["wm_init"], wm_dir)
        source = VideoWorldModelSource(VideoSourceConfig(service=wm_service_config(cfg, wm_dir, seed),
                                                         state_in_proprio=True, seed=seed))
        source.add_demos(demos)
    agent = AgentConfig(obs_mode="state", batch_size=cfg.batch_size, num_critics=cfg.num_critics,
                        num_min_critics=min(2, cfg.num_critics),
                        utd_ratio=cfg.utd_ratio, hidden_dim=cfg.hidden_dim, device=cfg.device, seed=seed)
    lcfg = LearnConfig(agent=agent, ppl=PPLConfig(mode=mode), env_steps=cfg.env_steps, warmup_steps=0,
                       eval_every=cfg.eval_every, eval_episodes=cfg.eval_episodes,
                       synthetic_every=cfg.synthetic_every, synthetic_branches=cfg.synthetic_branches,
                       checkpoint_every=0, log_every=min(250, cfg.env_steps), seed=seed)
    env = make_env(task, replace(env_config(cfg, render=source is not None), seed=seed))
    eval_env = make_env(task, replace(env_config(cfg, render=False), seed=seed))
    t0 = time.time()
    res = train_in_process(env, lcfg, demos, source, out, eval_env=eval_env, progress=False)
    res.update(task=task, seed=seed, wall_s=time.time() - t0)
    with (out / "eval.csv").open() as f:
        import csv

        res["return_curve"] = [(int(float(r["env_steps"])), float(r["mean_return"])) for r in csv.DictReader(f)]
    if source is not None:
        res["world_model"] = {"version": source.version, "rejected": len(source.rejected),
                              "fidelity": source.service.fidelity}
    (out / "results.json").write_text(json.dumps(res, indent=2, default=float))
    env.close()
    eval_env.close()
    return res


def _save_pickle(obj: Any, path: Path) -> None:
    import pickle

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(obj))
    tmp.replace(path)


def _load_pickle(path: Path) -> Any:
    import pickle

    return pickle.loads(path.read_bytes())


# --------------------------------------------------------------------------- analysis (plain, tested)
def mean_curve(curves: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """Mean success over seeds at the evaluation steps all runs share."""
    if not curves:
        return []
    steps = sorted(set.intersection(*[{int(s) for s, _ in c} for c in curves]))
    by = [dict((int(s), float(v)) for s, v in c) for c in curves]
    return [(s, sum(d[s] for d in by) / len(by)) for s in steps]


def steps_to_reach(curve: list[tuple[int, float]], level: float) -> int | None:
    """First evaluation step whose success is >= ``level`` (None if never)."""
    for s, v in curve:
        if v >= level - 1e-9:
            return int(s)
    return None


def summarize_policy(results: list[dict[str, Any]], baseline: str = "rl-only") -> dict[str, Any]:
    """Per task and mode: mean curve, final success (mean, per seed), steps to the baseline's final success."""
    out: dict[str, Any] = {}
    for task in sorted({r["task"] for r in results}):
        rows = [r for r in results if r["task"] == task]
        modes = [m for m in MODES if any(r["mode"] == m for r in rows)]
        modes += sorted({r["mode"] for r in rows} - set(modes))
        per: dict[str, Any] = {}
        for m in modes:
            runs = sorted((r for r in rows if r["mode"] == m), key=lambda r: r["seed"])
            curve = mean_curve([r["success_curve"] for r in runs])
            finals = [float(r["final_success_rate"]) for r in runs]
            rcurve = mean_curve([r["return_curve"] for r in runs]) if all("return_curve" in r for r in runs) else []
            per[m] = {"curve": curve, "final": sum(finals) / len(finals), "finals": finals, "return_curve": rcurve,
                      "seed_curves": [[(int(st), float(v)) for st, v in r["success_curve"]] for r in runs],
                      "final_return": rcurve[-1][1] if rcurve else float("nan"),
                      "seeds": [r["seed"] for r in runs], "env_steps": max(int(r["env_steps"]) for r in runs),
                      "wall_s": sum(float(r.get("wall_s", 0)) for r in runs), "synthetic": _synthetic_stats(runs)}
        if baseline in per:
            target = per[baseline]["final"]
            base_steps = steps_to_reach(per[baseline]["curve"], target) if target > 0 else None
            for d in per.values():
                s = steps_to_reach(d["curve"], target) if target > 0 else None
                d["steps_to_baseline_final"] = s
                d["fraction_of_baseline_steps"] = None if s is None or not base_steps else s / base_steps
                d["delta_vs_baseline"] = d["final"] - target
        out[task] = per
    return out


def _synthetic_stats(runs: list[dict[str, Any]]) -> dict[str, float] | None:
    """Mean over runs of what PPL did with the synthetic data (None for runs without any)."""
    import math

    st = [r.get("ppl_status") or {} for r in runs]
    if not all(s.get("admitted", 0) + s.get("rejected", 0) > 0 for s in st):
        return None

    def mean(xs: list[float]) -> float:
        xs = [x for x in xs if math.isfinite(x)]
        return sum(xs) / len(xs) if xs else float("nan")

    return {"admitted": mean([s["admitted"] for s in st]), "rejected": mean([s["rejected"] for s in st]),
            "admission_rate": mean([s["admitted"] / (s["admitted"] + s["rejected"]) for s in st]),
            "share": mean([float(s["synthetic_share"]) for s in st]),
            "q_gap": mean([float(s["q_synthetic"]) - float(s["q_real"]) for s in st])}


def synthetic_table(summary: dict[str, Any]) -> str:
    """What happened to the synthetic data: admitted, share of the batch, value inflation (Q syn - Q real)."""
    lines = ["| task | mode | synthetic transitions admitted (of scored) | synthetic share of the batch at the end "
             "| Q on synthetic - Q on real data at the end |", "|---|---|---|---|---|"]
    for task, per in summary.items():
        for m, d in per.items():
            x = d.get("synthetic")
            if x:
                lines.append(f"| {task} | {m} | {x['admitted']:.0f} of {x['admitted'] + x['rejected']:.0f} "
                             f"({100 * x['admission_rate']:.0f} %) | {x['share']:.2f} | {x['q_gap']:+.3f} |")
    return "\n".join(lines)


def policy_table(summary: dict[str, Any]) -> str:
    lines = ["| task | mode | final success (mean over seeds) | per seed | vs RL-only | steps to RL-only's final "
             "| fraction of RL-only's steps | final eval return (shaped, mean) |", "|---|---|---|---|---|---|---|---|"]
    for task, per in summary.items():
        base_zero = per.get("rl-only", {}).get("final", 1.0) == 0.0
        for m, d in per.items():
            s = d.get("steps_to_baseline_final")
            f = d.get("fraction_of_baseline_steps")
            reach = s if s is not None else ("n/a: RL-only ends at 0" if base_zero else "not reached")
            lines.append(f"| {task} | {m} | {d['final']:.2f} | {', '.join(f'{x:.1f}' for x in d['finals'])} "
                         f"| {d.get('delta_vs_baseline', float('nan')):+.2f} | {reach} "
                         f"| {f'{f:.2f}' if f is not None else '-'} | {d.get('final_return', float('nan')):.2f} |")
    return "\n".join(lines)


def plot_policy(summary: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(summary), figsize=(5.5 * len(summary), 7.2), squeeze=False)
    for col, (task, per) in enumerate(summary.items()):
        n = len(next(iter(per.values()))["seeds"])
        for row, key, label in ((0, "curve", "eval success rate"), (1, "return_curve", "eval return (shaped)")):
            ax = axes[row][col]
            for m, d in per.items():
                pts = d.get(key) or []
                xs, ys = zip(*pts, strict=True) if pts else ((), ())
                line = ax.plot(xs, ys, marker="o", label=m)[0]
                if row == 0 and len(d.get("seed_curves") or []) > 1 and xs:  # spread over seeds: min..max
                    by = [dict(c) for c in d["seed_curves"]]
                    lo = [min(c.get(x, float("nan")) for c in by) for x in xs]
                    hi = [max(c.get(x, float("nan")) for c in by) for x in xs]
                    ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15)
            ax.set(title=f"{task}: {label} (mean of {n} seeds" + (", band: min-max)" if row == 0 else ")"),
                   xlabel="real environment steps", ylabel=label)
            ax.grid(alpha=0.3)
            ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- the policy comparison
def run_policy(cfg: ExperimentConfig, out: Path, cmd: str) -> int:
    root = out / "policy"
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    t0 = time.time()
    specs = []
    for task in cfg.tasks:
        demo_file = root / task / "demos.pkl"
        if not demo_file.exists():
            print(f"[experiment] {task}: recording {cfg.demos} expert demonstrations", flush=True)
            _save_pickle(expert_demos(task, cfg, cfg.demos), demo_file)
        wm_init = root / task / "wm_pretrained"
        if any(m != "rl-only" for m in cfg.modes):
            print(f"[experiment] {task}: pre-training the world model on the demos ({cfg.wm_pretrain_steps} steps)",
                  flush=True)
            pretrain_world_model(task, cfg, _load_pickle(demo_file), wm_init)
        for r in cfg.runs():
            if r["task"] == task:
                specs.append({**r, "cfg": asdict(cfg), "out": str(root / task / f"{r['mode']}_s{r['seed']}"),
                              "demos": str(demo_file), "wm_init": str(wm_init)})
    fresh = any(not (Path(sp["out"]) / "results.json").exists() for sp in specs)
    print(f"[experiment] {len(specs)} runs ({cfg.env_steps} real steps each), {cfg.jobs} in parallel", flush=True)
    results = []
    with ProcessPoolExecutor(max_workers=cfg.jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(run_one, s): s for s in specs}
        for i, fut in enumerate(futures, 1):
            s = futures[fut]
            res = fut.result()
            results.append(res)
            print(f"[experiment] {i}/{len(specs)} {s['task']} {s['mode']} seed {s['seed']}: final success "
                  f"{res['final_success_rate']:.2f} ({res['wall_s']:.0f} s; {time.time() - t0:.0f} s so far)",
                  flush=True)
    wall = time.time() - t0
    if not fresh and (root / "results.json").exists():  # only re-rendered: keep the wall time of the real run
        wall = float(json.loads((root / "results.json").read_text()).get("wall_s", wall))
    summary = summarize_policy(results)
    plot = plot_policy(summary, root / "success_vs_steps.png")
    (root / "results.json").write_text(json.dumps({"config": asdict(cfg), "command": cmd, "summary": summary,
                                                   "wall_s": wall}, indent=2, default=float))
    table = policy_table(summary) + "\n\nWhat each mode did with the synthetic data (mean over seeds):\n\n" + \
        synthetic_table(summary)
    _write_section(out / "results.md", "policy", cmd, table, plot.relative_to(out), wall, cfg)
    print(table)
    print(f"[experiment] policy comparison done in {time.time() - t0:.0f} s -> {root}", flush=True)
    return 0


# --------------------------------------------------------------------------- the world-model comparison
def heldout_rollouts(task: str, cfg: ExperimentConfig, checkpoint: str, n: int, seed0: int = 900_000,
                     noise: float = 0.2) -> list:
    """Real rollouts of a trained (state-based) policy with exploration noise: the held-out set."""
    import numpy as np
    from worldsample_control.core.rollout import run_episode
    from worldsample_control.core.sim import make_env
    from worldsample_learner.core.policy import load_policy

    policy = load_policy(checkpoint)
    env = make_env(task, env_config(cfg, render=True))
    rng = np.random.default_rng(seed0)

    def act(obs):
        a = policy.act_batch({}, np.asarray(obs.proprio, np.float32)[None], state=np.asarray(obs.state, np.float32)[None])[0]
        return np.clip(a + rng.normal(0, noise, a.shape), -1, 1).astype(np.float32)

    eps = [run_episode(env, act, seed=seed0 + i) for i in range(n)]
    env.close()
    return eps


def run_worldmodel(cfg: ExperimentConfig, out: Path, cmd: str) -> int:
    """Needs the policy comparison's runs (it reuses their world models and policies)."""
    from worldsample_worldmodel.core.fidelity import evaluate_fidelity
    from worldsample_worldmodel.core.source import VideoSourceConfig, VideoWorldModelSource
    from worldsample_worldmodel.core.store import WorldModelStore
    from worldsample_worldmodel.core.train import train_world_model

    root = out / "worldmodel"
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    rows = []
    for task in cfg.tasks:
        pdir = out / "policy" / task
        loop_run = pdir / f"ppl_s{cfg.seeds[0]}"
        other = pdir / f"ppl_s{cfg.seeds[1 % len(cfg.seeds)]}"
        if not (loop_run / "results.json").exists() or not (other / "results.json").exists():
            print(f"worldsample experiment worldmodel: run the policy comparison first ({loop_run} is missing): "
                  f"worldsample experiment policy --config {cfg.name} --out {out}", file=sys.stderr)
            return 2
        store = WorldModelStore(loop_run / "world_model")
        versions = store.versions()
        post = store.load(versions[-1], device="cpu")
        steps_post = sum(int(store.manifest(v).get("steps", 0)) for v in versions[1:])
        # demo-only: the same pre-trained version, trained the same number of further steps on demos only
        src = VideoWorldModelSource(VideoSourceConfig(service=wm_service_config(cfg, root / task / "demo_only", 0),
                                                      state_in_proprio=True))
        demos = _load_pickle(pdir / "demos.pkl")
        src.add_demos(demos)
        pre = WorldModelStore(pdir / "wm_pretrained").load(device="cpu")
        print(f"[experiment] {task}: demo-only baseline: {pre.version} + {steps_post} steps on demos "
              f"(the loop model {versions[-1]} had {len(versions) - 1} post-training rounds, {steps_post} steps)",
              flush=True)
        demo_only, _ = train_world_model(src.service.demos, None, init=pre, steps=max(1, steps_post), progress=False,
                                         run_dir=root / task / "demo_only", tag="demo-only")
        ckpt = json.loads((other / "results.json").read_text())["checkpoint"]
        held = heldout_rollouts(task, cfg, ckpt, cfg.heldout_episodes)
        held = [src.to_model(e) for e in held]
        fid = {name: evaluate_fidelity(m, held, cfg.horizons) for name, m in (("demo-only", demo_only),
                                                                              ("loop post-trained", post))}
        for name, f in fid.items():
            rows.append({"task": task, "model": name, "horizons": f["horizons"], "psnr": f["psnr"], "ssim": f["ssim"],
                         "num_starts": f["num_starts"]})
    (root / "results.json").write_text(json.dumps({"config": asdict(cfg), "command": cmd, "rows": rows,
                                                   "wall_s": time.time() - t0}, indent=2, default=float))
    table = worldmodel_table(rows)
    _write_section(out / "results.md", "worldmodel", cmd, table, None, time.time() - t0, cfg)
    print(table)
    print(f"[experiment] world-model comparison done in {time.time() - t0:.0f} s -> {root}", flush=True)
    return 0


def worldmodel_table(rows: list[dict[str, Any]]) -> str:
    hs = rows[0]["horizons"] if rows else []
    head = "| task | model | " + " | ".join(f"PSNR h={h} [dB] | SSIM h={h}" for h in hs) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(hs))]
    by_task: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_task.setdefault(r["task"], {})[r["model"]] = r
        vals = " | ".join(f"{p:.2f} | {s:.3f}" for p, s in zip(r["psnr"], r["ssim"], strict=True))
        lines.append(f"| {r['task']} | {r['model']} | {vals} |")
    for task, d in by_task.items():
        if "demo-only" in d and "loop post-trained" in d:
            a, b = d["demo-only"], d["loop post-trained"]
            vals = " | ".join(f"{pb - pa:+.2f} | {sb - sa:+.3f}" for pa, pb, sa, sb
                              in zip(a["psnr"], b["psnr"], a["ssim"], b["ssim"], strict=True))
            lines.append(f"| {task} | gain | {vals} |")
    return "\n".join(lines)


def _write_section(path: Path, which: str, cmd: str, table: str, plot: Path | None, wall: float,
                   cfg: ExperimentConfig) -> None:
    """Replace this experiment's section of results.md (the other one is kept)."""
    start, end = f"<!-- {which}:start -->", f"<!-- {which}:end -->"
    body = [start, f"### {'Policy: PPL vs RL-only vs naive augmentation' if which == 'policy' else 'World model: loop post-trained vs demo-only'}",
            "", f"Command: `{cmd}` ({time.strftime('%Y-%m-%d')}, {wall / 60:.1f} min, config `{cfg.name}`: "
            f"tasks {', '.join(cfg.tasks)}; seeds {', '.join(map(str, cfg.seeds))}; {cfg.env_steps} real steps per run; "
            f"{cfg.demos} demos; camera(s) {', '.join(cfg.cameras)} at {cfg.image_size} px)", "", table, ""]
    if plot is not None:
        body += [f"![success vs steps]({plot})", ""]
    body.append(end)
    text = path.read_text() if path.exists() else "# WorldSample results (generated by `worldsample experiment`)\n\n"
    if start in text and end in text:
        text = text[:text.index(start)] + "\n".join(body) + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(body) + "\n"
    path.write_text(text)


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
    except (ValueError, TypeError) as exc:
        print(f"worldsample experiment: {exc}", file=sys.stderr)
        return 2
    from worldsample_control.core.sim.config import TASKS

    bad = [t for t in cfg.tasks if t not in TASKS]
    if bad:
        print(f"worldsample experiment: unknown task(s) {bad}; expected some of {TASKS}", file=sys.stderr)
        return 2
    if len(cfg.seeds) < 1 or cfg.env_steps < 1:
        print("worldsample experiment: need at least one seed and one env step", file=sys.stderr)
        return 2
    out: Path = args.out.resolve()
    cmd = command_line(args)
    if args.which == "policy":
        return run_policy(cfg, out, cmd)
    return run_worldmodel(cfg, out, cmd)


