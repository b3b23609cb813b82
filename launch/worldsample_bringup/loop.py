"""The whole closed loop in simulation, as separate processes over DDS and rosbag2.

    worldsample loop --task push --out runs/push            # start (Ctrl-C stops cleanly)
    worldsample loop --out runs/push --resume               # continue a stopped run

Nodes (the graph of `graph.loop_graph("sim", ...)`, the same one `sim_loop.launch.py` starts):
MuJoCo Franka simulator (franka_ros2 topics + cameras), arm control (safety filter), actor
(policy, hot-swaps each new checkpoint between episodes), recorder (one MCAP bag per real
episode in RUN/bags), world model (post-trains on the recorded bags, reports PSNR/SSIM on
held-out episodes, generates synthetic branches for the newest policy into RUN/synthetic) and
learner (SAC on demo + real + PPL-selected synthetic data; checkpoints in RUN/learner).

Before the first episode, ``--demos N`` scripted-expert demonstrations are recorded to
RUN/demos (the world model's pre-training data and the learner's demo store).

This process watches the graph over DDS (episodes/recorded, world_model/status, ppl/status,
policy/checkpoint), prints one line per event (``wm wm-000002*``: a newer version is being
trained), appends RUN/progress.csv and draws
RUN/progress.png. Ctrl-C stops every node with SIGINT (the recorder closes its bag first:
no recorded episode is lost); ``--resume`` continues with the next seed, the newest
checkpoint, the learner's persisted replay and agent state and the world model's versions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

LOOP_STATE = "loop.json"
# settings fixed for the life of a run (a resumed run takes them from RUN/loop.json)
RUN_SETTINGS = ("task", "mode", "seed", "max_steps", "image_size", "cameras", "params", "device", "demos",
                "policy", "episodes_per_policy")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from worldsample_control.core.sim.config import TASKS
    from worldsample_learner.core.ppl import PPL_MODES

    parser.add_argument("--task", choices=TASKS, default=None, help=f"simulated task: {', '.join(TASKS)}")
    parser.add_argument("--out", required=True, type=Path, help="run directory")
    parser.add_argument("--resume", action="store_true", help="continue the stopped run in --out")
    parser.add_argument("--episodes", type=int, default=None,
                        help="total real episodes of the run (default 450, 30-36 min on 2 cores; with --resume: the saved total)")
    parser.add_argument("--demos", type=int, default=10, help="scripted-expert demonstrations recorded first")
    # the settings the launch files have too: type, default and description from graph.LoopArguments
    from .graph import add_loop_flags

    add_loop_flags(parser, ("mode", "policy", "episodes_per_policy", "seed", "max_steps", "image_size", "cameras",
                            "device"),
                   mode={"choices": PPL_MODES},
                   policy={"help": "policy of the first episodes: 'random' or a checkpoint path"},
                   # the loop paces iterations by default (the launch files do not: a real run may want to)
                   episodes_per_policy={"default": 5, "help": "iteration pacing: real episodes per policy version; "
                                        "then the actor waits for the learner's next checkpoint (0: never waits)"})
    parser.add_argument("--params", default="", help="parameter YAML laid over worldsample_bringup's config/loop.yaml "
                                                     "key by key (every node's parameters, keyed by node name); "
                                                     "the merged result is kept in RUN/params.yaml and a "
                                                     "resumed run reads that")
    parser.add_argument("--timeout", type=float, default=0.0, help="stop after this many seconds (0: no limit)")
    from .parts import PARTS

    parser.add_argument("--part", choices=PARTS, default="all",
                        help="the part of the loop on this host: all (one machine), robot (robot PC: simulator, arm "
                             "control, actor, recorder) or learning (learning server: world model, learner); payloads "
                             "cross between the parts over ROS 2 (README: Two machines)")
    parser.add_argument("--run-id", default="", help="with --part robot/learning: the run id, the same on both hosts")


# --------------------------------------------------------------------------- run state (plain, tested)
def run_settings(args: argparse.Namespace, out: Path) -> dict:
    """The settings of this run: new ones from ``args``, or the saved ones for ``--resume``."""
    state_file = out / LOOP_STATE
    if args.resume:
        if not state_file.exists():
            raise ValueError(f"--resume: {state_file} does not exist; {out} is not a loop run directory")
        saved = json.loads(state_file.read_text())
        if args.task and args.task != saved["task"]:
            raise ValueError(f"--resume: the run in {out} is task {saved['task']!r}, not {args.task!r}")
        if args.episodes is not None:
            saved["episodes"] = int(args.episodes)
        return saved
    if state_file.exists():
        raise ValueError(f"{out} already holds a loop run ({state_file}); use --resume or another --out")
    if not args.task:
        raise ValueError("--task is required for a new run")
    settings = {k: getattr(args, k) for k in RUN_SETTINGS}
    settings["episodes"] = 450 if args.episodes is None else int(args.episodes)
    settings["part"], settings["run_id"] = args.part, args.run_id
    if settings["params"]:
        settings["params"] = str(Path(settings["params"]).resolve())
    return settings


def validate_settings(s: dict) -> None:
    if s["episodes"] < 1:
        raise ValueError(f"--episodes must be >= 1, got {s['episodes']}")
    if s["demos"] < 0:
        raise ValueError(f"--demos must be >= 0, got {s['demos']}")
    size = int(s["image_size"])
    if size < 8 or size & (size - 1):
        raise ValueError(f"--image-size must be a power of two >= 8 (the world model halves it to 4), got {size}")
    if s["policy"] not in ("random",) and not Path(s["policy"]).exists():
        raise ValueError(f"--policy {s['policy']!r} is neither 'random' nor an existing checkpoint file")
    if s["params"] and not Path(s["params"]).exists():
        raise ValueError(f"--params {s['params']!r} does not exist")


def recorded_real_episodes(bag_dir: Path) -> int:
    """Real episodes already recorded in ``bag_dir``: one bag each; a bag stopped before the episode's
    first step (Ctrl-C right after its START) holds no transition and is not an episode."""
    from worldsample_common.core.bag_io import find_bags, holds_transitions

    return sum(holds_transitions(b) for b in find_bags(bag_dir)) if bag_dir.is_dir() else 0


def recover_interrupted_bags(bag_dir: Path) -> list:
    """Rebuild every bag of ``bag_dir`` a killed recorder left (write-ahead log) or that is truncated,
    before episodes are counted; prints what it did. A bag that cannot be recovered is named, kept
    as it is, and still counted (`holds_transitions`), so the run never repeats its seed."""
    from worldsample_common.core.bag_io import (
        WAL_NAME,
        BagError,
        find_bags,
        mcap_file,
        mcap_truncated,
        recover_bag,
    )

    reports = []
    if not bag_dir.is_dir():
        return reports
    for bag in find_bags(bag_dir):
        mcap = mcap_file(bag) if (bag / "metadata.yaml").exists() else None
        if not (bag / WAL_NAME).exists() and not (mcap is not None and mcap_truncated(mcap)):
            continue
        try:
            rep = recover_bag(bag)
        except BagError as exc:
            print(f"loop: cannot recover {bag}: {exc}", file=sys.stderr, flush=True)
            continue
        reports.append(rep)
        print(f"loop: recovered {bag.name}: {rep.detail}", flush=True)
    return reports


def start_policy(settings: dict, out: Path) -> str:
    """The newest learner checkpoint of the run, else the configured first policy. The robot part of a split
    run has no learner: its newest received copy (RUN/policies, whole files only), so a restarted robot PC goes
    on with the policy it last had and does not wait for the learning part to send it again."""
    from worldsample_learner.core.policy import latest_checkpoint

    robot = settings.get("part", "all") == "robot"
    last = latest_checkpoint(out / "policies" if robot else out / "learner" / "checkpoints")
    return str(last.resolve()) if last is not None else settings["policy"]


def params_file(settings: dict, out: Path) -> str:
    """The run's parameter file: RUN/params.yaml once the run has started (what it started with,
    every node), else the ``--params`` file laid over loop.yaml."""
    from .graph import RESOLVED_PARAMS

    resolved = out / RESOLVED_PARAMS
    return str(resolved) if resolved.exists() else settings["params"]


def loop_specs(settings: dict, out: Path, done: int, policy: str):
    from .graph import loop_graph
    from .sim import new_run_id

    return loop_graph(
        "sim", task=settings["task"], run_dir=str(out), policy=policy, episodes=str(settings["episodes"] - done),
        seed=str(int(settings["seed"]) + done), max_steps=str(settings["max_steps"]),
        image_size=str(settings["image_size"]), cameras=settings["cameras"], mode=settings["mode"],
        demos_dir=str(out / "demos") if settings["demos"] else "", params_file=params_file(settings, out),
        device=settings["device"], episodes_per_policy=str(settings["episodes_per_policy"]),
        run_id=settings.get("run_id") or new_run_id(out), part=settings.get("part", "all"))


def specs_policy(specs) -> str:
    """The policy the graph's actor starts with ("random" or a checkpoint path)."""
    return str(next(s for s in specs if s.name == "actor").parameters["policy"])


def record_demonstrations(settings: dict, out: Path) -> None:
    """RUN/demos: the scripted expert's demonstrations (skipped when already there)."""
    from worldsample_common.core.bag_io import find_bags
    from worldsample_control.core.demos import record_demos
    from worldsample_control.core.sim import EnvConfig

    demo_dir = out / "demos"
    have = len(find_bags(demo_dir)) if demo_dir.is_dir() else 0
    need = int(settings["demos"]) - have
    if need <= 0:
        return
    cams = tuple(c.strip() for c in settings["cameras"].split(",") if c.strip())
    print(f"loop: recording {need} scripted-expert demonstration(s) of {settings['task']} -> {demo_dir}", flush=True)
    cfg = EnvConfig(image_size=int(settings["image_size"]), cameras=cams)  # the expert gets the task's full length
    rep = record_demos(settings["task"], need, demo_dir, cfg, seed0=10_000 + have, keep_failures=False,
                       log=sys.stdout)
    print(f"loop: demonstrations: {rep}", flush=True)


# --------------------------------------------------------------------------- the run
def run(args: argparse.Namespace) -> int:
    from worldsample_common.core.files import json_dumps

    out: Path = args.out.resolve()
    try:  # everything is checked, the parameter files included, before anything is written
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out}: is a file, not a directory")
        settings = run_settings(args, out)
        validate_settings(settings)
        loop_specs(settings, out, 0, settings["policy"])  # loop.yaml + --params, checked key by key
    except ValueError as exc:
        print(f"worldsample loop: {exc}", file=sys.stderr)
        return 2
    from .domain_check import claim_run

    rc = claim_run("worldsample loop", out, settings.get("part", "all"), settings.get("run_id", ""))
    if rc is not None:
        return rc
    (out / LOOP_STATE).write_text(json_dumps(settings, indent=2))
    from .graph import RESOLVED_PARAMS, merged_node_params, write_node_params

    if not (out / RESOLVED_PARAMS).exists():  # a resumed run keeps the parameters it started with
        write_node_params(merged_node_params(settings["params"]), out / RESOLVED_PARAMS)
    recover_interrupted_bags(out / "bags")  # a killed recorder's bags count once they are readable
    done = recorded_real_episodes(out / "bags")
    if done >= settings["episodes"]:
        from .parts import link_only, run_part, undelivered

        if settings.get("part", "all") == "robot" and undelivered(out):  # e.g. restarted after its last episode
            print(f"loop[robot]: all {settings['episodes']} real episodes recorded; {undelivered(out)} bag(s) not yet "
                  "confirmed by the learning part: offering them", flush=True)
            return run_part(link_only(loop_specs(settings, out, done, settings["policy"])), settings, out, done,
                            args.timeout, _node_env())
        print(f"worldsample loop: {out} already has {done} of {settings['episodes']} real episodes; "
              "raise --episodes to continue", file=sys.stderr)
        return 0
    try:
        if settings.get("part", "all") == "learning":  # they come from the robot part
            from .parts import receive_demonstrations

            receive_demonstrations(settings, out)
        else:
            record_demonstrations(settings, out)
    except KeyboardInterrupt:
        print("worldsample loop: interrupted while recording demonstrations; finished ones are kept, "
              "--resume continues", file=sys.stderr)
        return 130
    policy = start_policy(settings, out)
    specs = loop_specs(settings, out, done, policy)
    print(f"loop: {settings['task']} mode={settings['mode']} episodes {done}/{settings['episodes']} done, "
          f"starting with policy {Path(policy).name if policy != 'random' else 'random'}; node logs in "
          f"{out / 'logs'}", flush=True)
    if settings.get("part", "all") != "all":
        from .parts import run_part

        return run_part(specs, settings, out, done, args.timeout, _node_env())
    return _run_graph(specs, settings, out, done, args.timeout)


def _node_env() -> dict[str, str]:
    """Our environment plus the source folders of every package (nodes run as ``python -m``)."""
    import worldsample_learner
    import worldsample_worldmodel

    from .sim import node_env as robot_env

    env = robot_env()
    extra = [str(Path(m.__file__).resolve().parents[1]) for m in (worldsample_learner, worldsample_worldmodel)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(extra + env["PYTHONPATH"].split(os.pathsep)))
    return env


FINISH_WM_S = 120.0  # after the last episode, how long a running world-model post-training may take to finish


def _run_graph(specs, settings: dict, out: Path, done: int, timeout: float) -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions
    from worldsample_common.core.files import json_dumps

    from .monitor import LoopMonitor
    from .process_runner import (
        GraphAlreadyRunning,
        NodeFailed,
        ProcessGraph,
        exit_code_of,
        signals_deferred,
        signals_reported,
        stop_signals,
    )
    from .progress import plot_progress

    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)  # Ctrl-C stays a KeyboardInterrupt here
    start = specs_policy(specs)
    monitor = LoopMonitor(out, episodes_before=done, total=settings["episodes"], namespace="",
                          policy_version="" if start == "random" else Path(start).stem)
    executor = SingleThreadedExecutor()
    executor.add_node(monitor)
    graph = ProcessGraph(specs, env=_node_env(), log_dir=out / "logs", pid_file=out / "logs" / "graph.pids.json")
    t0 = time.monotonic()
    code = 0

    def spin(timeout_sec: float) -> None:  # a stop signal is raised after rclpy's call, never inside it
        with signals_deferred():
            executor.spin_once(timeout_sec=timeout_sec)

    with stop_signals():  # SIGTERM / SIGHUP stop the graph like Ctrl-C (restored after the stop)
        try:
            graph.start()
            actor = graph.nodes["actor"]

            def finished() -> bool:
                spin(0.1)
                return actor.returncode is not None or (timeout > 0 and time.monotonic() - t0 > timeout)

            graph.wait(finished, allow_exit=("actor",))
            if actor.returncode not in (None, 0):
                print(f"worldsample loop: the actor failed (exit {actor.returncode})\n{graph.log_tail('actor')}",
                      file=sys.stderr)
                code = 1
            elif actor.returncode is None:
                print(f"worldsample loop: --timeout {timeout:.0f} s reached; stopping (resume with --resume)")
            else:  # all episodes done: let a world-model post-training in progress finish (bounded)
                end = time.monotonic() + FINISH_WM_S
                spin(0.5)
                job = out / "world_model" / "train_job.json"  # there while a training runs (or was cut)

                def wm_training() -> bool:
                    return monitor.progress.wm_training or job.exists()

                if wm_training():
                    print(f"loop: all episodes recorded; waiting up to {FINISH_WM_S:.0f} s for the world model's "
                          "post-training to finish (Ctrl-C stops now, its train state is kept)", flush=True)
                while wm_training() and time.monotonic() < end:
                    graph.check(allow_exit=("actor",))
                    spin(0.2)
            # let the last recorded episode and status messages arrive
            end = time.monotonic() + 2.0
            while time.monotonic() < end:
                spin(0.1)
        except (NodeFailed, GraphAlreadyRunning) as exc:
            print(f"worldsample loop: {exc}", file=sys.stderr)
            code = 1
        except KeyboardInterrupt as exc:
            print(f"\nworldsample loop: interrupted ({str(exc) or 'SIGINT'}); stopping the nodes (the recorder closes its "
                  "bag first)...", file=sys.stderr, flush=True)
            code = exit_code_of(exc)
        finally:
            codes = graph.stop()
            with signals_reported("collecting the last events"):
                for _ in range(10):  # recorded-episode events sent while stopping
                    executor.spin_once(timeout_sec=0.05)
            monitor.close()
            executor.shutdown()
            monitor.destroy_node()
            rclpy.try_shutdown()
    bad = {n: c for n, c in codes.items() if c not in (0, None) and n != "actor" and code == 0}
    if bad:  # a node that died (or did not stop cleanly) fails the run, by name
        print(f"worldsample loop: node(s) {', '.join(bad)} failed (exit codes {bad}); logs in {out / 'logs'}",
              file=sys.stderr)
        for name in bad:
            print(graph.log_tail(name, lines=30), file=sys.stderr)
        code = 1
    total = recorded_real_episodes(out / "bags")
    summary = monitor.summary(total)
    (out / "summary.json").write_text(json_dumps(summary, indent=2))
    if (out / "progress.csv").exists() and monitor.rows_written:
        plot_progress(out / "progress.csv", out / "progress.png")
    print(f"loop: {total}/{settings['episodes']} real episodes recorded in {out / 'bags'}; policy versions used "
          f"{summary['policy_versions_used']}; world model {summary['wm_version'] or '-'}; "
          f"{summary['synthetic_bags']} synthetic bag(s); {time.monotonic() - t0:.0f} s", flush=True)
    if code >= 128 or total < settings["episodes"]:
        print(f"loop: continue with: worldsample loop --out {out} --resume", flush=True)
    return code
