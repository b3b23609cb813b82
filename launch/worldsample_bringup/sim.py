"""Run the robot node graph in simulation and record every episode as a rosbag2 (MCAP).

Starts, as separate processes talking over DDS: the MuJoCo simulator node (franka_ros2
topics + camera images), the arm-control node (safety filter), the actor (the policy) and the
recorder (one bag per episode under OUT/bags). Lock-step by default: the simulator advances one
control period per command, so results do not depend on CPU load.

  worldsample sim --task push --policy scripted --episodes 5 --out runs/push-demos
  worldsample sim --task peg_insertion --policy runs/x/checkpoints/policy-000004.pt --episodes 10 --out runs/eval

Node logs go to OUT/logs/<node>.log, per-step and per-episode logs to OUT/actor/*.jsonl.

Two hosts (README: Two machines): ``--part robot --run-id ID`` runs this graph on the robot PC and offers
its bags over ROS 2 until the other host confirms them; ``--part learning --run-id ID`` on the learning
server receives them into its own OUT/bags (the parts are `worldsample loop`'s, `parts.select_part`).

One graph per ROS domain: before starting, the command looks for another WorldSample graph on
ROS_DOMAIN_ID and refuses (exit 1, nothing written) when it finds one; run a second one with its own
ROS_DOMAIN_ID. Every episode message carries this run's id (printed at start), and arm control and
recorder ignore other runs', so graphs that start at the same moment do not mix either.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from worldsample_control.core.sim.config import TASKS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, choices=TASKS, help=f"simulated task, one of: {', '.join(TASKS)}")
    parser.add_argument("--policy", default="scripted",
                        help="'random', 'scripted' (the task's expert; recorded as demonstrations), 'teleop' "
                             "(commands from a device publishing worldsample_msgs/PolicyAction on teleop/action) "
                             "or a checkpoint path")
    parser.add_argument("--episodes", type=int, default=1, help="episodes to run (default 1)")
    parser.add_argument("--out", required=True, type=Path, help="run directory (bags in OUT/bags)")
    from .graph import add_loop_flags  # the settings the loop has too, documented once (graph.LoopArguments)

    add_loop_flags(parser, ("seed", "max_steps", "image_size", "cameras"),
                   seed={"help": "seed of the first episode; episode k uses seed + k"})
    parser.add_argument("--source", choices=("real", "demo"), default=None,
                        help="transition source (default: demo for scripted, real otherwise)")
    parser.add_argument("--realtime", action="store_true",
                        help="step the simulator at the control rate instead of lock-step with the commands")
    parser.add_argument("--params", default="", type=str,
                        help="parameter YAML laid over config/loop.yaml key by key (keyed by node name: sim, "
                             "arm_control, actor, recorder)")
    parser.add_argument("--timeout", type=float, default=0.0,
                        help="give up after this many seconds (default: 60 s + 2 s per step of every episode)")
    from .parts import PARTS

    parser.add_argument("--part", choices=PARTS, default="all",
                        help="the part of the graph on this host: all (one machine), robot (robot PC: the graph above, "
                             "its bags offered to the learning part) or learning (learning server: receives the robot "
                             "part's bags into its own OUT/bags); the same parts as `worldsample loop --part` "
                             "(README: Two machines)")
    parser.add_argument("--run-id", default="", help="with --part robot/learning: the run id, the same on both hosts")


def node_env() -> dict[str, str]:
    """The environment of the node processes: ours, plus the source folders of the packages in use."""
    import worldsample_bringup
    import worldsample_common
    import worldsample_control

    env = dict(os.environ)
    paths = [str(Path(m.__file__).resolve().parents[1])
             for m in (worldsample_common, worldsample_control, worldsample_bringup)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]))
    env.setdefault("MUJOCO_GL", "egl")
    return env


def new_run_id(out: Path) -> str:
    """A run id: the run directory's name, the process id and a random part (unique per start)."""
    import secrets

    return f"{out.resolve().name}-{os.getpid()}-{secrets.token_hex(3)}"


def run(args: argparse.Namespace) -> int:
    from worldsample_control.core.sim.config import DEFAULT_MAX_STEPS

    from .graph import sim_graph
    from .process_runner import GraphAlreadyRunning, NodeFailed, ProcessGraph, exit_code_of, stop_signals

    if args.episodes < 1:
        print(f"worldsample sim: --episodes must be >= 1, got {args.episodes}", file=sys.stderr)
        return 2
    if args.policy not in ("random", "scripted", "teleop") and not Path(args.policy).exists():
        print(f"worldsample sim: --policy {args.policy!r} is neither 'random', 'scripted', 'teleop' nor an "
              "existing checkpoint file", file=sys.stderr)
        return 2
    cameras = tuple(c.strip() for c in args.cameras.split(",") if c.strip())
    out: Path = args.out
    part = getattr(args, "part", "all")
    from .graph import merged_node_params
    from .parts import sim_part

    def graph_specs(run_id: str = "") -> list:
        params = merged_node_params(args.params)
        specs = sim_graph(args.task, out, policy=args.policy, episodes=args.episodes, seed=args.seed,
                          max_steps=args.max_steps, image_size=args.image_size, cameras=cameras,
                          lockstep=not args.realtime, source=args.source or "", run_id=run_id, params=params)
        return sim_part(specs, part, run_id, out.resolve(), params)

    try:  # every node's parameters checked before anything is written
        graph_specs(args.run_id)
    except ValueError as exc:
        print(f"worldsample sim: {exc}", file=sys.stderr)
        return 2
    from .domain_check import claim_run

    rc = claim_run("worldsample sim", out, part, args.run_id)  # before anything is written
    if rc is not None:
        return rc
    out.mkdir(parents=True, exist_ok=True)
    run_id = args.run_id or new_run_id(out)
    steps = args.max_steps or DEFAULT_MAX_STEPS[args.task]
    timeout = args.timeout or 60.0 + 2.0 * steps * args.episodes
    specs = graph_specs(run_id)
    if part != "all":
        return _run_part(specs, part, out.resolve(), args.episodes, timeout, run_id)
    episodes_log = out / "actor" / "episodes.jsonl"
    before = len(episodes_log.read_text().splitlines()) if episodes_log.exists() else 0
    print(f"worldsample sim: {args.episodes} episode(s) of {args.task} with policy {args.policy!r}; "
          f"run id {run_id}; logs in {out / 'logs'}", flush=True)
    graph = ProcessGraph(specs, env=node_env(), log_dir=out / "logs", pid_file=out / "logs" / "graph.pids.json")
    t0 = time.monotonic()
    seen = before
    try:
        with stop_signals(), graph:  # SIGTERM / SIGHUP stop the graph like Ctrl-C
            actor = graph.nodes["actor"]

            def progress() -> bool:
                nonlocal seen
                if episodes_log.exists():
                    lines = episodes_log.read_text().splitlines()
                    for line in lines[seen:]:
                        e = json.loads(line)
                        print(f"  episode {len(lines[before:seen + 1])}/{args.episodes}: {e['episode_id']} "
                              f"{e['length']} steps, return {e['return']:.3f}, success {e['success']}", flush=True)
                        seen += 1
                return actor.returncode is not None

            finished = graph.wait(progress, timeout=timeout, allow_exit=("actor",))
            if not finished:
                print(f"worldsample sim: timed out after {timeout:.0f} s\n{graph.log_tail('actor')}", file=sys.stderr)
                return 1
            if actor.returncode != 0:
                print(f"worldsample sim: the actor failed (exit {actor.returncode})\n{graph.log_tail('actor')}",
                      file=sys.stderr)
                return 1
    except (NodeFailed, GraphAlreadyRunning) as exc:
        print(f"worldsample sim: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"worldsample sim: interrupted ({exc or 'SIGINT'}); nodes stopped, finished episodes are in "
              f"{out / 'bags'}", file=sys.stderr)
        return exit_code_of(exc)
    results = [json.loads(line) for line in episodes_log.read_text().splitlines()[before:]]
    wins = sum(bool(e["success"]) for e in results)
    print(f"worldsample sim: {len(results)} episode(s) in {time.monotonic() - t0:.1f} s, success "
          f"{wins}/{len(results)}; bags in {out / 'bags'}")
    return 0


def _run_part(specs: list, part: str, out: Path, episodes: int, timeout: float, run_id: str) -> int:
    """``--part robot``: the graph until its episodes are recorded and the learning part confirmed every bag in
    OUT/bags; ``--part learning``: the payload link until ``episodes`` more bags are in OUT/bags. Exit 1 when
    that did not happen (the robot part's bags stay and are offered again by the next robot part on OUT)."""
    from .parts import _bag_count, _confirmed, run_part

    before = _bag_count(out / "bags")
    print(f"worldsample sim: part {part} of run {run_id}; {episodes} episode(s); logs in {out / 'logs'}", flush=True)
    code = run_part(specs, {"part": part, "episodes": before + episodes if part == "learning" else episodes}, out,
                    0, timeout, node_env(), command="sim")
    if code:
        return code
    have = _bag_count(out / "bags")
    if part == "learning" and have < before + episodes:
        print(f"worldsample sim: {have - before} of {episodes} bag(s) arrived from the robot part", file=sys.stderr)
        return 1
    if part == "robot" and _confirmed(out) < have:
        print(f"worldsample sim: {have - _confirmed(out)} bag(s) in {out / 'bags'} not confirmed by the learning part",
              file=sys.stderr)
        return 1
    return 0
