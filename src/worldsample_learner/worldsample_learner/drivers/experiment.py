"""The paper's two comparisons, reproduced in simulation with the in-process driver.

    worldsample experiment policy     --config small --out runs/exp    # PPL vs RL-only vs naive augmentation
    worldsample experiment worldmodel --config wm --out runs/exp       # copy-last-frame vs demo-only vs loop WM

Both call the same core components as the ROS graph (no second implementation): the MuJoCo
task env, the scripted experts for demonstrations, `worldsample_learner.drivers.learn.train_in_process`
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

*worldmodel*: copy-last-frame vs a world model post-trained loop-style on real rollouts (noisy
expert, arriving a few episodes at a time) vs one trained the same total steps on demonstrations
only, scored on held-out rollouts of a policy neither trained on, per horizon and camera, with
the uncertainty-error rank correlation and the post-training time per loop iteration (the
paper: +19.4 dB PSNR, +0.47 SSIM over demo-only; 29.89 dB / 0.925 absolute).

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

MODES = ("rl-only", "naive", "ppl")  # the default comparison (any of worldsample_learner's PPL_MODES may be asked for)
BASELINE = MODES[0]  # what the others are compared against (the paper's RL-only baseline)
ORACLE_PREFIX = "oracle-"  # a run variant "oracle-ppl": synthetic data from the perfect world model
UTD_SUFFIX = "-utd"  # a run variant "ppl-utd4": this many critic updates per real step instead of the config's


def parse_variant(variant: str) -> tuple[str, str, int | None]:
    """A run variant -> (PPL mode, synthetic source "video" | "oracle", UTD or None for the config's).

    ``ppl`` (the video world model), ``oracle-ppl`` (the oracle), ``rl-only-utd4``, ``oracle-naive-utd4``:
    the variant names the run's directory and its row in every table."""
    from worldsample_learner.core.ppl import PPL_MODES

    rest, source, utd = variant, "video", None
    if rest.startswith(ORACLE_PREFIX):
        rest, source = rest[len(ORACLE_PREFIX):], "oracle"
    if UTD_SUFFIX in rest:
        rest, _, n = rest.rpartition(UTD_SUFFIX)
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"run variant {variant!r}: '{UTD_SUFFIX}N' needs an int N >= 1")
        utd = int(n)
    if rest not in PPL_MODES:
        raise ValueError(f"run variant {variant!r}: mode {rest!r} unknown; expected [oracle-]MODE[-utdN] with MODE "
                         f"one of {PPL_MODES}")
    if source == "oracle" and rest == BASELINE:
        raise ValueError(f"run variant {variant!r}: {BASELINE} uses no synthetic data, so no oracle")
    return rest, source, utd


def uses_video_model(variant: str) -> bool:
    from worldsample_learner.core.ppl import uses_synthetic

    mode, source, _ = parse_variant(variant)
    return uses_synthetic(mode) and source == "video"


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
    wm_rollout_steps: int = 4
    wm_real_episodes: int = 20  # worldmodel experiment: "real" rollouts (noisy expert) arriving during the loop
    wm_real_noise: float = 0.6  # their action noise (std on dx, dy, dz)
    wm_heldout_noise: float = 0.3  # the held-out policy's action noise (a policy neither model trained on)
    heldout_episodes: int = 8
    horizons: tuple[int, ...] = (1, 4, 8)
    jobs: int = 2  # runs in parallel (processes, one torch thread each)
    device: str = "cpu"

    def runs(self) -> list[dict[str, Any]]:
        """Seed-major: every variant's first seed runs before any second seed, so an experiment stopped
        part-way (and resumed later) already has a comparison, on fewer seeds."""
        return [{"task": t, "mode": m, "seed": s} for t in self.tasks for s in self.seeds for m in self.modes]


CONFIGS: dict[str, ExperimentConfig] = {
    "small": ExperimentConfig(),
    # the RL-only baseline at the issue-10 budget: full-length episodes, 20k real steps, 3 seeds (~1 h here)
    "rl": ExperimentConfig(name="rl", modes=(BASELINE,), env_steps=20_000, eval_every=2_000, max_steps=0,
                           batch_size=256),
    # the world-model comparison at the issue-13 size: 64 px, both cameras, 2 loop iterations (~40 min here)
    "wm": ExperimentConfig(name="wm", demos=20, max_steps=0, image_size=64, cameras=("front", "wrist"),
                           wm_pretrain_steps=800, wm_posttrain_steps=200, wm_min_new_episodes=10,
                           wm_latent_channels=32, wm_batch_size=12, wm_rollout_steps=8, heldout_episodes=8),
    "full": ExperimentConfig(name="full", tasks=("push", "peg_insertion", "pick_place"), seeds=(0, 1, 2, 3, 4),
                             env_steps=30_000, eval_every=2_000, eval_episodes=20, demos=20, max_steps=0,
                             image_size=64, cameras=("front", "wrist"), batch_size=256, num_critics=10, utd_ratio=2,
                             synthetic_every=1_000, synthetic_branches=64, wm_pretrain_steps=3000,
                             wm_posttrain_steps=600, wm_min_new_episodes=10, wm_latent_channels=32, wm_batch_size=32,
                             heldout_episodes=20,
                             jobs=1, device="auto"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("which", choices=("policy", "worldmodel", "modelerror"),
                        help="which comparison (modelerror: the world model's error on the state, issue 22)")
    parser.add_argument("--config", choices=tuple(CONFIGS), default="small")
    parser.add_argument("--out", required=True, type=Path, help="experiment directory")
    parser.add_argument("--jobs", type=int, default=None, help="parallel runs (default: the config's)")
    parser.add_argument("--env-steps", type=int, default=None, help="override the config's real steps per run")
    parser.add_argument("--eval-every", type=int, default=None, help="override the real steps between evaluations")
    parser.add_argument("--seeds", default=None, help="override the seeds, e.g. 0,1,2")
    parser.add_argument("--tasks", default=None, help="override the tasks, e.g. push,peg_insertion")
    parser.add_argument("--modes", default=None,
                        help="override the run variants, e.g. rl-only,ppl,oracle-ppl,rl-only-utd4: [oracle-]MODE[-utdN], "
                             "MODE one of worldsample_learner's PPL modes; oracle- = the perfect world model as the "
                             "synthetic source; -utdN = N critic updates per real step")


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    cfg = CONFIGS[args.config]
    over: dict[str, Any] = {}
    if args.jobs is not None:
        over["jobs"] = max(1, args.jobs)
    if args.env_steps is not None:
        over["env_steps"] = args.env_steps
        over["eval_every"] = min(cfg.eval_every, args.env_steps)
    if args.eval_every is not None:
        over["eval_every"] = max(1, args.eval_every)
    if args.seeds:
        over["seeds"] = tuple(int(s) for s in args.seeds.split(","))
    if args.tasks:
        over["tasks"] = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    if getattr(args, "modes", None):
        modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
        for m in modes:
            parse_variant(m)  # a clear error for a bad one
        over["modes"] = modes
    return replace(cfg, **over)


def command_line(args: argparse.Namespace) -> str:
    parts = ["worldsample experiment", args.which, "--config", args.config, "--out", str(args.out)]
    for flag in ("jobs", "env_steps", "eval_every", "seeds", "tasks", "modes"):
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
    from worldsample_control.core.sim.oracle import OracleConfig, OracleSyntheticSource
    from worldsample_worldmodel.core.source import VideoSourceConfig, VideoWorldModelSource

    from worldsample_learner.core.config import AgentConfig, LearnConfig, PPLConfig
    from worldsample_learner.core.ppl import uses_synthetic
    from worldsample_learner.drivers.learn import train_in_process

    cfg = ExperimentConfig(**spec["cfg"])
    task, variant, seed = spec["task"], spec["mode"], spec["seed"]
    mode, source_kind, utd = parse_variant(variant)
    out = Path(spec["out"])
    if (out / "results.json").exists():  # finished before (a resumed experiment)
        return json.loads((out / "results.json").read_text())
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    demos = _load_pickle(Path(spec["demos"]))
    source = None
    if uses_synthetic(mode) and source_kind == "oracle":
        source = OracleSyntheticSource(make_env(task, replace(env_config(cfg, render=False), seed=seed)),
                                       OracleConfig(action_noise=VideoSourceConfig.action_noise), seed=seed)
    elif uses_synthetic(mode):
        wm_dir = out / "world_model"
        shutil.copytree(spec["wm_init"], wm_dir)
        source = VideoWorldModelSource(VideoSourceConfig(service=wm_service_config(cfg, wm_dir, seed),
                                                         state_in_proprio=True, seed=seed))
        source.add_demos(demos)
    agent = AgentConfig(obs_mode="state", batch_size=cfg.batch_size, num_critics=cfg.num_critics,
                        num_min_critics=min(2, cfg.num_critics),
                        utd_ratio=utd or cfg.utd_ratio, hidden_dim=cfg.hidden_dim, device=cfg.device, seed=seed)
    lcfg = LearnConfig(agent=agent, ppl=PPLConfig(mode=mode), env_steps=cfg.env_steps, warmup_steps=0,
                       eval_every=cfg.eval_every, eval_episodes=cfg.eval_episodes,
                       synthetic_every=cfg.synthetic_every, synthetic_branches=cfg.synthetic_branches,
                       checkpoint_every_env_steps=0, log_every=min(250, cfg.env_steps), seed=seed)
    video = isinstance(source, VideoWorldModelSource)
    env = make_env(task, replace(env_config(cfg, render=video), seed=seed))
    eval_env = make_env(task, replace(env_config(cfg, render=False), seed=seed))
    t0 = time.time()
    res = train_in_process(env, lcfg, demos, source, out, eval_env=eval_env, progress=False)
    res.update(task=task, seed=seed, wall_s=time.time() - t0, mode=variant, ppl_mode=mode, synthetic=source_kind,
               utd_ratio=agent.utd_ratio)
    with (out / "eval.csv").open() as f:
        import csv

        res["return_curve"] = [(int(float(r["env_steps"])), float(r["mean_return"])) for r in csv.DictReader(f)]
    if video:
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


# modules that moved since older experiment directories were pickled: old name -> new name
MOVED_MODULES = {"worldsample_control.core.episode": "worldsample_common.core.episode"}


def _load_pickle(path: Path) -> Any:
    """Our own pickles (demos.pkl of an experiment directory), older ones included (`MOVED_MODULES`)."""
    import io
    import pickle

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            return super().find_class(MOVED_MODULES.get(module, module), name)

    return Unpickler(io.BytesIO(path.read_bytes())).load()


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


def at_budget(res: dict[str, Any], env_steps: int) -> dict[str, Any]:
    """A run's results as they stood at ``env_steps`` real steps: a longer run (e.g. the RL-only runs of
    ``--config rl`` at 20k, reused for a comparison at 10k) is cut to the evaluations up to that budget
    and its final success is the last of them. SAC's training does not depend on the total budget, so
    this is the run that a ``--env-steps`` run would have been; shorter runs are returned unchanged."""
    if int(res["env_steps"]) <= env_steps:
        return res
    out = dict(res)
    out["success_curve"] = [(int(s), float(v)) for s, v in res["success_curve"] if int(s) <= env_steps]
    if "return_curve" in res:
        out["return_curve"] = [(int(s), float(v)) for s, v in res["return_curve"] if int(s) <= env_steps]
    if not out["success_curve"]:
        raise ValueError(f"{res.get('task')} {res.get('mode')} seed {res.get('seed')}: no evaluation at or "
                         f"before {env_steps} steps")
    out.update(final_success_rate=out["success_curve"][-1][1], env_steps=env_steps,
               cut_from_env_steps=int(res["env_steps"]))
    return out


def summarize_policy(results: list[dict[str, Any]], baseline: str = BASELINE) -> dict[str, Any]:
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
        base_zero = per.get(BASELINE, {}).get("final", 1.0) == 0.0
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


def plot_paper_figures(summary: dict[str, Any], path: Path, baseline: str = BASELINE) -> Path:
    """The paper's two figures: each mode's final success minus the baseline's (mean over seeds, with
    every seed's difference as a dot), and the fraction of the baseline's real steps a mode needs to
    reach the baseline's final success (mean curves; "not reached" where it never does)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(summary)
    modes = [m for m in dict.fromkeys(m for per in summary.values() for m in per) if m != baseline]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / max(1, len(modes))
    for i, m in enumerate(modes):
        xs = [t + (i - (len(modes) - 1) / 2) * width for t in range(len(tasks))]
        deltas = [summary[t].get(m, {}).get("delta_vs_baseline", float("nan")) for t in tasks]
        bars = ax1.bar(xs, deltas, width, label=m)
        for x, t in zip(xs, tasks, strict=True):
            d, b = summary[t].get(m), summary[t].get(baseline)
            if d and b and len(d["finals"]) == len(b["finals"]):
                ax1.scatter([x] * len(d["finals"]), [f - g for f, g in zip(d["finals"], b["finals"], strict=True)],
                            color="k", s=10, zorder=3)
        fracs = [summary[t].get(m, {}).get("fraction_of_baseline_steps") for t in tasks]
        ax2.bar(xs, [f if f is not None else 0.0 for f in fracs], width, label=m, color=bars.patches[0].get_facecolor())
        for x, f in zip(xs, fracs, strict=True):
            ax2.annotate("not reached" if f is None else f"{f:.2f}", (x, f or 0.0), ha="center", va="bottom",
                         fontsize=8, rotation=90 if f is None else 0)
    ax1.axhline(0, color="k", lw=0.8)
    ax1.set(title=f"final success minus {baseline} (bars: mean; dots: per seed pair)", xticks=range(len(tasks)),
            xticklabels=tasks, ylabel="success difference")
    ax2.axhline(1, color="k", lw=0.8, ls="--")
    ax2.set(title=f"fraction of {baseline}'s steps to reach its final success", xticks=range(len(tasks)),
            xticklabels=tasks, ylabel="fraction (1 = as many steps)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3, axis="y")
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
        if any(uses_video_model(m) for m in cfg.modes):
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
            res = at_budget(fut.result(), cfg.env_steps)
            results.append(res)
            print(f"[experiment] {i}/{len(specs)} {s['task']} {s['mode']} seed {s['seed']}: final success "
                  f"{res['final_success_rate']:.2f} ({res['wall_s']:.0f} s; {time.time() - t0:.0f} s so far)",
                  flush=True)
    wall = time.time() - t0
    if not fresh and (root / "results.json").exists():  # only re-rendered: keep the wall time of the real run
        wall = float(json.loads((root / "results.json").read_text()).get("wall_s", wall))
    summary = summarize_policy(results)
    plot = plot_policy(summary, root / "success_vs_steps.png")
    if any(BASELINE in per and len(per) > 1 for per in summary.values()):  # something to compare
        figures = plot_paper_figures(summary, root / "paper_figures.png")
        plot_note = f"\n\n![the paper's two figures]({figures.relative_to(out)})"
    else:
        plot_note = ""
    (root / "results.json").write_text(json.dumps({"config": asdict(cfg), "command": cmd, "summary": summary,
                                                   "wall_s": wall}, indent=2, default=float))
    table = policy_table(summary) + "\n\nWhat each mode did with the synthetic data (mean over seeds):\n\n" + \
        synthetic_table(summary) + plot_note
    _write_section(out / "results.md", "policy", cmd, table, plot.relative_to(out), wall, cfg)
    print(table)
    print(f"[experiment] policy comparison done in {time.time() - t0:.0f} s -> {root}", flush=True)
    return 0


# --------------------------------------------------------------------------- the world-model comparison
def noisy_expert_episodes(task: str, cfg: ExperimentConfig, n: int, noise: float, seed0: int, source) -> list:
    """``n`` rendered rollouts of the scripted expert with N(0, ``noise``) on its dx, dy, dz (all kept)."""
    from worldsample_control.core.demos import ExpertPolicy
    from worldsample_control.core.rollout import run_episode
    from worldsample_control.core.sim import make_env

    env = make_env(task, env_config(cfg, render=True))
    try:
        return [run_episode(env, ExpertPolicy(task, env, action_noise=noise, seed=seed0 + i), seed=seed0 + i,
                            source=source) for i in range(n)]
    finally:
        env.close()


def _wm_model(path: Path, episodes: list, **train_kw):
    """Load ``path`` if an earlier (resumed) run saved it, else `train_world_model` and save it there."""
    from worldsample_worldmodel.core.model import WorldModel
    from worldsample_worldmodel.core.train import train_world_model

    if path.is_file():
        return WorldModel.load(path, device="cpu"), None
    model, extra = train_world_model(episodes, progress=False, **train_kw)
    tmp = path.with_name(path.name + ".tmp")
    model.save(tmp)
    tmp.replace(path)
    return model, extra


def run_worldmodel(cfg: ExperimentConfig, out: Path, cmd: str) -> int:
    """Copy-last-frame vs demo-only vs loop post-trained world model on held-out rollouts of another policy.

    Per task: ``demos`` scripted-expert demonstrations (pre-training), ``wm_real_episodes`` "real"
    rollouts of the expert with N(0, ``wm_real_noise``) action noise arriving ``wm_min_new_episodes``
    at a time (each arrival post-trains the latest version for ``wm_posttrain_steps`` with the demos
    kept in the mix, as the world-model node does; the time of every iteration is reported), and
    ``heldout_episodes`` held-out rollouts of a policy neither model trained on (the expert with
    N(0, ``wm_heldout_noise``), other seeds). Demo-only = the same pre-trained version trained the
    same number of post-training steps on the demos only.
    """
    from worldsample_common.core.episode import Source
    from worldsample_worldmodel.core.config import WorldModelConfig
    from worldsample_worldmodel.core.fidelity import evaluate_fidelity

    root = out / "worldmodel"
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    rows: list[dict[str, Any]] = []
    for task in cfg.tasks:
        tdir = root / task
        tdir.mkdir(parents=True, exist_ok=True)
        data_file = tdir / "data.pkl"
        if data_file.exists():
            data = _load_pickle(data_file)
        else:
            print(f"[experiment] {task}: recording demos, real and held-out rollouts ({cfg.image_size} px, "
                  f"cameras {', '.join(cfg.cameras)})", flush=True)
            data = {"demos": expert_demos(task, cfg, cfg.demos),
                    "real": noisy_expert_episodes(task, cfg, cfg.wm_real_episodes, cfg.wm_real_noise, 10_000,
                                                  Source.REAL),
                    "held": noisy_expert_episodes(task, cfg, cfg.heldout_episodes, cfg.wm_heldout_noise, 900_000,
                                                  Source.REAL)}
            _save_pickle(data, data_file)
        demos, real, held = data["demos"], data["real"], data["held"]
        mcfg = WorldModelConfig(image_size=cfg.image_size, cameras=cfg.cameras, latent_channels=cfg.wm_latent_channels,
                                batch_size=cfg.wm_batch_size, rollout_steps=cfg.wm_rollout_steps, device=cfg.device)
        print(f"[experiment] {task}: pre-training on {len(demos)} demos ({cfg.wm_pretrain_steps} steps)", flush=True)
        pre, _ = _wm_model(tdir / "pretrained.pt", demos, cfg=mcfg, steps=cfg.wm_pretrain_steps,
                           run_dir=tdir / "pretrain", tag="pretrain")
        model, iter_s = pre, []
        for i, n in enumerate(range(cfg.wm_min_new_episodes, len(real) + 1, cfg.wm_min_new_episodes), 1):
            start = time.time()
            model, met = _wm_model(tdir / f"loop_iter{i}.pt", demos + real[:n], init=model,
                                   steps=cfg.wm_posttrain_steps, run_dir=tdir / "loop", tag=f"iter{i}")
            if met is not None:
                iter_s.append(time.time() - start)
                print(f"[experiment] {task}: loop iteration {i}: post-trained on {n} real episodes in "
                      f"{iter_s[-1]:.0f} s", flush=True)
        steps = cfg.wm_posttrain_steps * (len(real) // cfg.wm_min_new_episodes)
        demo_only, _ = _wm_model(tdir / "demo_only.pt", demos, init=pre, steps=steps, run_dir=tdir / "demo_only",
                                 tag="demo-only")
        demo_f, loop_f = (evaluate_fidelity(m, held, cfg.horizons, max_starts=128) for m in (demo_only, model))
        copy_f = {"horizons": loop_f["horizons"], "psnr": loop_f["copy"]["psnr"], "ssim": loop_f["copy"]["ssim"],
                  "per_camera": {c: {"psnr": v["copy_psnr"], "ssim": v["copy_ssim"]}
                                 for c, v in loop_f["per_camera"].items()}}  # the same starts for every model
        rows += [{"task": task, "model": "copy-last-frame", "fidelity": copy_f},
                 {"task": task, "model": "demo-only", "fidelity": demo_f, "posttrain_steps": steps, "iteration_s": []},
                 {"task": task, "model": "loop post-trained", "fidelity": loop_f, "posttrain_steps": steps,
                  "iteration_s": iter_s}]
        print(f"[experiment] {task}: held-out {len(held)} episodes of the expert + N(0, {cfg.wm_heldout_noise}), "
              f"{rows[-1]['fidelity']['num_starts']} starts", flush=True)
    (root / "results.json").write_text(_json_dumps({"config": asdict(cfg), "command": cmd, "rows": rows,
                                                    "wall_s": time.time() - t0}))
    table = worldmodel_table(rows)
    _write_section(out / "results.md", "worldmodel", cmd, table, None, time.time() - t0, cfg)
    print(table)
    print(f"[experiment] world-model comparison done in {time.time() - t0:.0f} s -> {root}", flush=True)
    return 0


def _json_dumps(obj: Any) -> str:
    from worldsample_common.core.files import json_dumps

    return json_dumps(obj, indent=2)


def worldmodel_table(rows: list[dict[str, Any]]) -> str:
    """Per task: copy-last-frame, demo-only and loop post-trained (both cameras, then each), the loop model's
    gain over copy-last-frame, its uncertainty-error rank correlation and its post-training time per iteration."""
    hs = rows[0]["fidelity"]["horizons"] if rows else []
    head = "| task | model | camera | " + " | ".join(f"PSNR h={h} [dB] | SSIM h={h}" for h in hs) + " |"
    lines = [head, "|" + "---|" * (3 + 2 * len(hs))]

    def cells(ps, ss, fmt_p="{:.2f}", fmt_s="{:.3f}"):
        return " | ".join(f"{fmt_p.format(p)} | {fmt_s.format(s)}" for p, s in zip(ps, ss, strict=True))

    for r in rows:
        f = r["fidelity"]
        lines.append(f"| {r['task']} | {r['model']} | both | {cells(f['psnr'], f['ssim'])} |")
        for cam, v in f["per_camera"].items():
            lines.append(f"| {r['task']} | {r['model']} | {cam} | {cells(v['psnr'], v['ssim'])} |")
        if "gain" in f:
            bold = "**" if r["model"] == "loop post-trained" else ""
            lines.append(f"| {r['task']} | {bold}{r['model']} - copy{bold} | both | "
                         f"{cells(f['gain']['psnr'], f['gain']['ssim'], '{:+.2f}', '{:+.3f}')} |")
    lines.append("")
    lines.append("| task | model | " + " | ".join(f"rho(uncertainty, error) h={h}" for h in hs)
                 + " | post-training per loop iteration |")
    lines.append("|" + "---|" * (3 + len(hs)))
    for r in rows:
        f = r["fidelity"]
        if "spearman" in f:
            its = ", ".join(f"{s:.0f} s" for s in r.get("iteration_s", [])) or "-"
            lines.append(f"| {r['task']} | {r['model']} | " + " | ".join(
                "-" if x is None or x != x else f"{x:.2f}" for x in f["spearman"]) + f" | {its} |")
    return "\n".join(lines)


def _write_section(path: Path, which: str, cmd: str, table: str, plot: Path | None, wall: float,
                   cfg: ExperimentConfig) -> None:
    """Replace this experiment's section of results.md (the other one is kept)."""
    start, end = f"<!-- {which}:start -->", f"<!-- {which}:end -->"
    if which == "policy":
        title = "Policy: PPL vs RL-only vs naive augmentation"
        what = (f"seeds {', '.join(map(str, cfg.seeds))}; {cfg.env_steps} real steps per run; {cfg.demos} demos")
    else:
        title = "World model: copy-last-frame vs demo-only vs loop post-trained"
        what = (f"{cfg.demos} expert demos, pre-training {cfg.wm_pretrain_steps} steps; {cfg.wm_real_episodes} real "
                f"rollouts (expert + N(0, {cfg.wm_real_noise})) arriving {cfg.wm_min_new_episodes} at a time, "
                f"{cfg.wm_posttrain_steps} post-training steps each; held out: {cfg.heldout_episodes} rollouts of "
                f"the expert + N(0, {cfg.wm_heldout_noise}), other seeds")
    body = [start, f"### {title}", "", f"Command: `{cmd}` ({time.strftime('%Y-%m-%d')}, {wall / 60:.1f} min, config "
            f"`{cfg.name}`: tasks {', '.join(cfg.tasks)}; {what}; camera(s) {', '.join(cfg.cameras)} at "
            f"{cfg.image_size} px)", "", table, ""]
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
    if args.which == "modelerror":
        from .model_error import run_model_error

        return run_model_error(cfg, out, cmd)
    return run_worldmodel(cfg, out, cmd)


