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

This module runs the comparisons; `experiment_config` holds the presets, run variants and command
line, `experiment_report` the tables, plots and results.md sections.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from .experiment_config import (  # noqa: F401 - the command's argument parser, re-exported for cli.py
    BASELINE,
    ExperimentConfig,
    add_arguments,
    command_line,
    config_from_args,
    parse_variant,
    uses_video_model,
)
from .experiment_report import (
    at_budget,
    plot_paper_figures,
    plot_policy,
    policy_table,
    summarize_policy,
    synthetic_table,
    worldmodel_table,
    write_section,
)
from .snapshot import SNAPSHOT


# --------------------------------------------------------------------------- building blocks
def env_config(cfg: ExperimentConfig, render: bool):
    from worldsample_control.core.sim import EnvConfig

    return EnvConfig(image_size=cfg.image_size, cameras=cfg.cameras, render=render, max_episode_steps=cfg.max_steps)


def expert_demos(task: str, cfg: ExperimentConfig, n: int, seed0: int = 500) -> list:
    """``n`` successful scripted-expert episodes (rendered: the world model learns from the frames)."""
    from worldsample_control.core.demos import expert_episodes

    return expert_episodes(task, n, seed0=seed0, env_cfg=env_config(cfg, render=True), successes_only=True)


def wm_service_config(cfg: ExperimentConfig, run_dir: Path, seed: int):
    from worldsample_worldmodel.core.config import WorldModelConfig
    from worldsample_worldmodel.core.service import WorldModelServiceConfig

    model = WorldModelConfig(image_size=cfg.image_size, cameras=cfg.cameras, latent_channels=cfg.wm_latent_channels,
                             batch_size=cfg.wm_batch_size, seed=seed, num_threads=1,
                             proprio_step_scaled=cfg.wm_proprio_step_scaled)
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
    import faulthandler

    import torch

    faulthandler.enable()  # a crash in native code prints the Python stack (the pool only says "terminated abruptly")

    torch.set_num_threads(1)
    from worldsample_control.core.sim import make_env
    from worldsample_control.core.sim.env import PROPRIO_DIM
    from worldsample_control.core.sim.oracle import OracleConfig, OracleSyntheticSource, SyntheticAudit
    from worldsample_control.core.sim.tasks import contact_states, judge_states, model_blind_dims
    from worldsample_worldmodel.core.mlp_dynamics import MLPDynamicsConfig
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
    lock = _lock_run(out)  # noqa: F841 - held until this function returns
    resume = (out / SNAPSHOT).exists()  # stopped part-way: go on from its last snapshot
    if out.exists() and not resume:  # stopped before its first snapshot: start over
        shutil.rmtree(out)
    if resume:
        print(f"[experiment] {task} {variant} seed {seed}: going on from its snapshot ({out / SNAPSHOT})", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    demos = _load_pickle(Path(spec["demos"]))
    source = None
    if uses_synthetic(mode) and source_kind == "oracle":
        source = OracleSyntheticSource(make_env(task, replace(env_config(cfg, render=False), seed=seed)),
                                       OracleConfig(action_noise=VideoSourceConfig.action_noise,
                                                    object_noise=cfg.oracle_object_noise,
                                                    object_motion_scale=cfg.oracle_motion_scale), seed=seed)
    elif uses_synthetic(mode):
        wm_dir = out / "world_model"
        if Path(spec["wm_init"]).is_dir() and not resume:  # absent with wm_source.frames=False: no video model
            shutil.copytree(spec["wm_init"], wm_dir)
        judge = partial(judge_states, reward=env_config(cfg, render=False).reward) if cfg.wm_judge else None
        blind = model_blind_dims(task, PROPRIO_DIM) if cfg.wm_mlp_translation_free else ()
        # the source takes only the MLP's next state and disagreement: no fitting of the reward and termination,
        # which a blind model cannot tell (push's reward is made of the hidden block-to-target offset)
        unread = {"reward_weight": 0.0, "done_weight": 0.0} if blind else {}
        source = VideoWorldModelSource(VideoSourceConfig(service=wm_service_config(cfg, wm_dir, seed),
                                                         state_in_proprio=True, state_model=cfg.wm_state_model,
                                                         mlp=MLPDynamicsConfig(**{**unread, **cfg.wm_mlp},
                                                                                 ignore_inputs=blind),
                                                         seed=seed, **cfg.wm_source),
                                        judge=judge, contact=contact_states)
        source.add_demos(demos)
        if cfg.audit_synthetic or cfg.oracle_labels:
            source = SyntheticAudit(source, make_env(task, replace(env_config(cfg, render=False), seed=seed)),
                                    out / "synthetic_audit.csv", relabel=cfg.oracle_labels,
                                    # relabelling drops no branch: every start kept
                                    **({"keep_episodes": None} if cfg.oracle_labels else {}))
    agent = AgentConfig(obs_mode="state", batch_size=cfg.batch_size, num_critics=cfg.num_critics,
                        num_min_critics=min(2, cfg.num_critics),
                        utd_ratio=utd or cfg.utd_ratio, hidden_dim=cfg.hidden_dim, device=cfg.device, seed=seed)
    lcfg = LearnConfig(agent=agent, ppl=PPLConfig(mode=mode, **cfg.ppl), env_steps=cfg.env_steps, warmup_steps=0,
                       eval_every=cfg.eval_every, eval_episodes=cfg.eval_episodes,
                       synthetic_every=cfg.synthetic_every, synthetic_branches=cfg.synthetic_branches,
                       checkpoint_every_env_steps=0, log_every=min(250, cfg.env_steps),
                       snapshot_every_env_steps=cfg.snapshot_every, seed=seed)
    video = isinstance(getattr(source, "inner", source), VideoWorldModelSource)
    env = make_env(task, replace(env_config(cfg, render=video), seed=seed))
    eval_env = make_env(task, replace(env_config(cfg, render=False), seed=seed))
    res = train_in_process(env, lcfg, demos, source, out, eval_env=eval_env, progress=False, resume=resume)
    res.update(task=task, seed=seed, mode=variant, ppl_mode=mode, synthetic=source_kind,
               utd_ratio=agent.utd_ratio)
    with (out / "eval.csv").open() as f:
        import csv

        res["return_curve"] = [(int(float(r["env_steps"])), float(r["mean_return"])) for r in csv.DictReader(f)]
    if video:
        res["world_model"] = {"version": source.version, "rejected": len(source.rejected),
                              "fidelity": source.service.fidelity, "state_model": cfg.wm_state_model,
                              "state_model_trainings": source.mlp_metrics, "train_failures": source.train_failures,
                              "success_trust": source.success_trust_log,
                              # a source restored from a snapshot taken before the count existed has none
                              "dropped_at_contact": getattr(source, "dropped_at_contact", 0)}
    if isinstance(source, SyntheticAudit):
        res["synthetic_audit"] = {**source.summary(), "relabelled": source.relabel, "unlabelled": source.unlabelled}
    (out / "results.json").write_text(json.dumps(res, indent=2, default=float))
    env.close()
    eval_env.close()
    return res


def _die_with_parent(parent: int) -> None:
    """Pool worker initializer (Linux): the kernel kills the worker when the experiment's process dies, so a killed
    experiment leaves no run writing on (the run goes on from its snapshot when the experiment is started again)."""
    import ctypes
    import signal

    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)


def _lock_run(out: Path) -> Any:
    """An exclusive lock on the run directory ``out`` for as long as the returned file stays open: a second process
    on the same run (an experiment started twice, or a worker left running by a killed parent) fails with a clear
    error instead of writing into the same files."""
    import fcntl

    out.parent.mkdir(parents=True, exist_ok=True)
    f = open(out.parent / f".{out.name}.lock", "a+")  # noqa: SIM115 - held open on purpose
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise RuntimeError(f"run {out} is being written by another process (an experiment started twice on the "
                           "same --out, or a worker of a killed one still running); stop it first") from None
    return f


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


# --------------------------------------------------------------------------- the policy comparison
def _run_name(spec: dict[str, Any]) -> str:
    """How a run is named in progress lines and failure lists: "push ppl seed 0"."""
    return f"{spec['task']} {spec['mode']} seed {spec['seed']}"


def run_policy(cfg: ExperimentConfig, out: Path, cmd: str, report_only: bool = False,
               report_from: tuple[Path, ...] = ()) -> int:
    """Run every task x variant x seed not finished before (seed-major), then write the tables and plots.
    ``report_only``: run nothing; report the runs finished so far and list the others; a run not finished under
    ``out`` is taken from the first of ``report_from`` (other experiment directories) where it finished."""
    root = out / "policy"
    root.mkdir(parents=True, exist_ok=True)
    if not report_only:
        (root / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    t0 = time.time()
    specs = []
    for task in cfg.tasks:
        demo_file = root / task / "demos.pkl"
        if report_only:
            pass
        elif not demo_file.exists():
            print(f"[experiment] {task}: recording {cfg.demos} expert demonstrations", flush=True)
            _save_pickle(expert_demos(task, cfg, cfg.demos), demo_file)
        wm_init = root / task / "wm_pretrained"
        if not report_only and any(uses_video_model(m) for m in cfg.modes) and cfg.wm_source.get("frames", True):
            print(f"[experiment] {task}: pre-training the world model on the demos ({cfg.wm_pretrain_steps} steps)",
                  flush=True)
            pretrain_world_model(task, cfg, _load_pickle(demo_file), wm_init)
        for r in cfg.runs():
            if r["task"] == task:
                specs.append({**r, "cfg": asdict(cfg), "out": str(root / task / f"{r['mode']}_s{r['seed']}"),
                              "demos": str(demo_file), "wm_init": str(wm_init)})
    fresh = any(not (Path(sp["out"]) / "results.json").exists() for sp in specs)
    missing = []
    if report_only:  # each run from the first directory (``out``, then ``report_from``) where it finished
        finished = []
        for sp in specs:
            rel = Path(sp["out"]).relative_to(root)
            found = next((d / rel for d in (root, *(d / "policy" for d in report_from))
                          if (d / rel / "results.json").exists()), None)
            if found is None:
                missing.append(_run_name(sp))
            else:
                finished.append({**sp, "out": str(found)})
        specs = finished
        if not specs:
            print(f"[experiment] nothing finished yet under {root}", file=sys.stderr)
            return 1
    print(f"[experiment] reporting {len(specs)} finished runs" if report_only else
          f"[experiment] {len(specs)} runs ({cfg.env_steps} real steps each), {cfg.jobs} in parallel", flush=True)
    results = [at_budget(json.loads((Path(sp["out"]) / "results.json").read_text()), cfg.env_steps)
               for sp in specs] if report_only else []
    failed: list[str] = []
    with ProcessPoolExecutor(max_workers=cfg.jobs, mp_context=get_context("spawn"), initializer=_die_with_parent,
                             initargs=(os.getpid(),)) as pool:
        futures = {} if report_only else {pool.submit(run_one, s): s for s in specs}
        for i, fut in enumerate(futures, 1):
            s = futures[fut]
            run = _run_name(s)
            try:
                res = at_budget(fut.result(), cfg.env_steps)
            except Exception as exc:  # noqa: BLE001 - one run's failure is named at once; the others go on
                traceback.print_exception(exc)
                why = f"{type(exc).__name__}: {exc}"
                failed.append(f"{run} ({why})")
                print(f"[experiment] {i}/{len(specs)} {run}: FAILED ({why}; traceback above); the other runs go on",
                      file=sys.stderr, flush=True)
                continue
            results.append(res)
            print(f"[experiment] {i}/{len(specs)} {run}: final success "
                  f"{res['final_success_rate']:.2f} ({res['wall_s']:.0f} s; {time.time() - t0:.0f} s so far)",
                  flush=True)
    if failed:  # the finished runs stay on disk; the report waits until every run has finished
        print(f"[experiment] {len(failed)} of {len(specs)} runs failed: " + "; ".join(failed) + ". Start the same "
              "command again to retry them (finished runs are kept).", file=sys.stderr, flush=True)
        return 1
    wall = time.time() - t0
    if report_only:  # the finished runs' own wall times (they ran in other sittings, two at a time)
        wall = sum(float(r.get("wall_s", 0.0)) for r in results) / max(1, cfg.jobs)
    elif not fresh and (root / "results.json").exists():  # only re-rendered: keep the wall time of the real run
        wall = float(json.loads((root / "results.json").read_text()).get("wall_s", wall))
    summary = summarize_policy(results, cfg.baseline)
    plot = plot_policy(summary, root / "success_vs_steps.png")
    if any(cfg.baseline in per and len(per) > 1 for per in summary.values()):  # something to compare
        figures = plot_paper_figures(summary, root / "paper_figures.png", cfg.baseline)
        plot_note = f"\n\n![the paper's two figures]({figures.relative_to(out)})"
    else:
        plot_note = ""
    (root / "results.json").write_text(json.dumps({"config": asdict(cfg), "command": cmd, "summary": summary,
                                                   "wall_s": wall}, indent=2, default=float))
    table = policy_table(summary, cfg.baseline) + "\n\nWhat each mode did with the synthetic data (mean over seeds):\n\n" + \
        synthetic_table(summary) + plot_note
    if missing:
        table += "\n\nNot finished yet, left out (`--report` of an experiment in progress): " + ", ".join(missing)
    write_section(out / "results.md", "policy", cmd, table, plot.relative_to(out), wall, cfg)
    print(table)
    print(f"[experiment] policy comparison done in {time.time() - t0:.0f} s -> {root}", flush=True)
    return 0


# --------------------------------------------------------------------------- the world-model comparison
def noisy_expert_episodes(task: str, cfg: ExperimentConfig, n: int, noise: float, seed0: int, source) -> list:
    """``n`` rendered rollouts of the scripted expert with N(0, ``noise``) on its dx, dy, dz (all kept)."""
    from worldsample_control.core.demos import expert_episodes

    return expert_episodes(task, n, seed0=seed0, env_cfg=env_config(cfg, render=True), action_noise=noise,
                           source=source)


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
    write_section(out / "results.md", "worldmodel", cmd, table, None, time.time() - t0, cfg)
    print(table)
    print(f"[experiment] world-model comparison done in {time.time() - t0:.0f} s -> {root}", flush=True)
    return 0


def _json_dumps(obj: Any) -> str:
    from worldsample_common.core.files import json_dumps

    return json_dumps(obj, indent=2)


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
        if args.report_from and not args.report:
            print("worldsample experiment: --report-from needs --report", file=sys.stderr)
            return 2
        return run_policy(cfg, out, cmd, report_only=args.report,
                          report_from=tuple(d.resolve() for d in args.report_from))
    if args.which == "modelerror":
        from .model_error import run_model_error

        return run_model_error(cfg, out, cmd)
    return run_worldmodel(cfg, out, cmd)


