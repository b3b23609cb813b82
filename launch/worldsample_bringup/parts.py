"""The loop split over two hosts: ``part`` = all | robot | learning.

A real rig is a robot PC (simulator or franka_ros2, arm control, cameras, actor, recorder, success
detector) and a learning server (world model, learner). DDS carries the topics between them; the
payloads announced by path do not cross a host, so each part runs a payload link
(`worldsample_bringup.payload_link`) and its nodes listen for the local copies:

- robot part (`robot_link`): offers RUN/bags and the demonstrations, receives the learner's checkpoints
  into RUN/policies and announces them on ``robot/policy/checkpoint``, the actor's checkpoint topic;
- learning part (`learning_link`): receives the bags into RUN/bags and the demonstrations into its
  demos directory and announces them on ``learning/episodes/recorded``, the learner's and world
  model's recorded-episode topic; offers every checkpoint the learner announces.

Each part has its own run directory; neither names a path of the other. Both carry the same run id
(`--run-id`), which is how each half recognises the other (`domain_check`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PARTS = ("all", "robot", "learning")
LEARNING_NODES = ("world_model", "learner")
LINK_NODES = {"robot": "robot_link", "learning": "learning_link"}
ROBOT_CHECKPOINT_TOPIC = "robot/policy/checkpoint"  # the robot part's actor listens here (local copies)
LEARNING_EPISODES_TOPIC = "learning/episodes/recorded"  # the learning part's nodes listen here (local copies)
PREFIX = {"robot": "transfer/robot", "learning": "transfer/learning"}


def check_part(part: str, run_id: str) -> None:
    if part not in PARTS:
        raise ValueError(f"part {part!r}; expected one of {PARTS}")
    if part != "all" and not run_id:
        raise ValueError(f"part {part!r} needs a run id shared by both parts (--run-id / run_id:=NAME, the "
                         "same on the robot PC and the learning server)")


def in_part(node: str, part: str) -> bool:
    if part == "all":
        return True
    return (node in LEARNING_NODES) == (part == "learning")


def link_spec(part: str, run_dir: Path, run_id: str, demos_dir: str, namespace: str,
              params: dict[str, dict[str, Any]], records_demos: bool = False):
    """The payload link node of ``part`` with its parameters (checked against `PayloadLinkConfig`).

    ``records_demos``: the robot part's recorder writes demonstrations into RUN/bags (`worldsample sim
    --policy scripted`): they are offered as demonstrations, not as real episodes."""
    from .graph import NodeSpec, node_parameters

    other = "learning" if part == "robot" else "robot"
    decided: dict[str, Any] = {"run_id": run_id, "send_prefix": PREFIX[part], "receive_prefix": PREFIX[other],
                               "state_dir": str(run_dir / "transfer")}
    if part == "robot" and records_demos:
        decided.update({"send_bags_dir": "", "send_demos_dir": str(run_dir / "bags"),
                        "receive_checkpoints_dir": str(run_dir / "policies"),
                        "announce_checkpoint_topic": ROBOT_CHECKPOINT_TOPIC})
    elif part == "robot":
        decided.update({"send_bags_dir": str(run_dir / "bags"), "send_demos_dir": demos_dir,
                        "receive_checkpoints_dir": str(run_dir / "policies"),
                        "announce_checkpoint_topic": ROBOT_CHECKPOINT_TOPIC})
    else:
        decided.update({"send_checkpoints": True, "receive_bags_dir": str(run_dir / "bags"),
                        "receive_demos_dir": demos_dir or str(run_dir / "demos"),
                        "announce_episodes_topic": LEARNING_EPISODES_TOPIC})
    name = LINK_NODES[part]
    return NodeSpec("worldsample_bringup", "payload_link_node", name, node_parameters(params, name, decided),
                    namespace=namespace, module="worldsample_bringup.payload_link")


def select_part(specs: list, args: dict[str, str], params: dict[str, dict[str, Any]]) -> list:
    """The nodes of ``args['part']`` out of the whole graph's ``specs``, rewired for a host of their own.

    The one definition of a part, for `worldsample loop` / the launch files (`graph.loop_graph`: robot side +
    learning side) and `worldsample sim` (`sim_part`: the robot side alone, so its learning part is the
    payload link that receives the bags). ``args``: part, run_id, run_dir, demos_dir, namespace."""
    part = args.get("part", "all")
    check_part(part, args["run_id"])
    if part == "all":
        return specs
    kept = [s for s in specs if in_part(s.name, part)]
    records_demos = False
    for s in kept:
        if s.name == "actor":
            s.parameters["topic_policy_checkpoint"] = ROBOT_CHECKPOINT_TOPIC
            records_demos = s.parameters.get("source") == "demo"
        elif s.name in LEARNING_NODES:
            s.parameters["topic_episodes_recorded"] = LEARNING_EPISODES_TOPIC
    return kept + [link_spec(part, Path(args["run_dir"]), args["run_id"], args["demos_dir"], args["namespace"],
                             params, records_demos=records_demos)]


def sim_part(specs: list, part: str, run_id: str, out: Path, params: dict[str, dict[str, Any]]) -> list:
    """`worldsample sim --part`: `select_part` of the simulated robot graph (`graph.sim_graph`). The robot part
    is that graph plus ``robot_link`` (offers OUT/bags: real episodes, or demonstrations with ``--policy
    scripted``); the learning part is ``learning_link`` alone, receiving both kinds into its own OUT/bags."""
    return select_part(specs, {"part": part, "run_id": run_id, "run_dir": str(out), "namespace": "",
                               "demos_dir": str(out / "bags") if part == "learning" else ""}, params)


# --------------------------------------------------------------------------- `worldsample loop --part`
TRANSFER_WAIT_S = 120.0  # robot part, after its last episode: how long it waits for the other part's confirmations
WAIT_REPORT_S = 15.0
SETTLE_WAIT_S = 120.0  # learning part, after the last bag: at most this long for the learner to train past it


def _bag_count(directory: Path) -> int:
    from worldsample_common.core.bag_io import bag_closed, find_bags

    return sum(bag_closed(b) for b in find_bags(directory)) if directory.is_dir() else 0


def _confirmed(out: Path) -> int:
    import json

    ledger = out / "transfer" / "outbox.json"
    try:
        return len(json.loads(ledger.read_text())["confirmed"]) if ledger.exists() else 0
    except (ValueError, KeyError, OSError):
        return 0


def undelivered(out: Path) -> int:
    """Robot part: closed bags and demonstrations in RUN that the learning part has not confirmed yet."""
    return max(0, _bag_count(out / "bags") + _bag_count(out / "demos") - _confirmed(out))


def link_only(specs: list) -> list:
    """The payload link of a part's ``specs``: a robot part restarted after its last episode runs it alone, until
    the learning part has confirmed the bags it had not before the restart."""
    return [s for s in specs if s.name in LINK_NODES.values()]


def receive_demonstrations(settings: dict, out: Path) -> None:
    """Learning part, before its graph starts: the robot part's ``--demos`` demonstrations into RUN/demos
    (the world model pre-trains on them at its start). Waits, reporting, until they are all here."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from .payload_link import PayloadLinkNode
    from .process_runner import signals_deferred

    need = int(settings["demos"])
    demos = out / "demos"
    if _bag_count(demos) >= need:
        return
    print(f"loop: waiting for {need} demonstration(s) from the robot part (run id {settings['run_id']}) -> {demos}",
          flush=True)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, args=[])
    overrides = [Parameter("run_id", value=settings["run_id"]), Parameter("send_prefix", value=PREFIX["learning"]),
                 Parameter("receive_prefix", value=PREFIX["robot"]), Parameter("receive_demos_dir", value=str(demos)),
                 Parameter("state_dir", value=str(out / "transfer"))]
    node = PayloadLinkNode(context=ctx, parameter_overrides=overrides, node_name="learning_link_demos")
    ex = MultiThreadedExecutor(num_threads=2, context=ctx)
    ex.add_node(node)
    import time

    last = time.monotonic()
    try:
        while _bag_count(demos) < need:
            with signals_deferred():  # Ctrl-C raised after rclpy's call, never inside it
                ex.spin_once(timeout_sec=0.2)
            if time.monotonic() - last > WAIT_REPORT_S:
                last = time.monotonic()
                print(f"loop: {_bag_count(demos)}/{need} demonstration(s) received", flush=True)
    finally:
        node.on_shutdown()
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
    print(f"loop: {need} demonstration(s) received", flush=True)


def run_part(specs: list, settings: dict, out: Path, done: int, timeout: float, env: dict[str, str],
             command: str = "loop") -> int:
    """Run one part's nodes (`worldsample loop --part` and `worldsample sim --part`, ``command``). Robot: until
    the actor's episodes are done, then until the learning part has confirmed every bag (at most
    `TRANSFER_WAIT_S`). Learning: until ``episodes`` bags are all in RUN/bags (the loop's learner then trains
    past the last one; its shutdown rescan loads them all)."""
    import sys
    import time

    from .process_runner import GraphAlreadyRunning, NodeFailed, ProcessGraph, exit_code_of, stop_signals

    part, total = settings["part"], int(settings["episodes"])
    graph = ProcessGraph(specs, env=env, log_dir=out / "logs", pid_file=out / "logs" / "graph.pids.json")
    t0 = time.monotonic()
    code = 0
    state = {"last": t0}

    def report(text: str) -> None:
        if time.monotonic() - state["last"] > WAIT_REPORT_S:
            state["last"] = time.monotonic()
            print(f"{command}[{part}]: {text}", flush=True)

    def timed_out() -> bool:
        return timeout > 0 and time.monotonic() - t0 > timeout

    with stop_signals():
        try:
            graph.start()
            if part == "robot":
                actor = graph.nodes.get("actor")  # absent when only the rest is to be delivered (`undelivered`)
                if actor is not None:
                    graph.wait(lambda: actor.returncode is not None or timed_out(), allow_exit=("actor",))
                if actor is not None and actor.returncode not in (None, 0):
                    print(f"worldsample {command}: the actor failed (exit {actor.returncode})\n{graph.log_tail('actor')}",
                          file=sys.stderr)
                    code = 1
                else:
                    shipped = _bag_count(out / "bags") + _bag_count(out / "demos")
                    end = time.monotonic() + TRANSFER_WAIT_S

                    def delivered() -> bool:
                        report(f"{_confirmed(out)}/{shipped} bag(s) confirmed by the learning part")
                        return _confirmed(out) >= shipped or time.monotonic() > end or timed_out()

                    graph.wait(delivered, allow_exit=("actor",))
                    if _confirmed(out) < shipped:
                        print(f"{command}[robot]: {shipped - _confirmed(out)} bag(s) not yet confirmed; they stay in {out} "
                              "and are offered again at the next start", flush=True)
            else:
                def arrived() -> bool:
                    n = _bag_count(out / "bags")
                    report(f"{n}/{total} real episode bag(s) received")
                    return n >= total or timed_out()

                graph.wait(arrived)
                if "learner" in graph.nodes:  # not in `worldsample sim --part learning`: the bags are its result
                    # then until the learner is up and has trained past the last arrival (a checkpoint newer than
                    # the newest bag): a stop while its nodes are still starting or loading is a kill, not a stop
                    bags = out / "bags"  # absent when nothing arrived (e.g. --timeout reached first)
                    newest = max((p.stat().st_mtime for p in bags.iterdir()), default=0.0) if bags.is_dir() else 0.0
                    end = time.monotonic() + SETTLE_WAIT_S

                    def settled() -> bool:
                        ckpts = list((out / "learner" / "checkpoints").glob("policy-*.pt"))
                        report("waiting for the learner's first checkpoint after the last bag")
                        return (any(c.stat().st_mtime > newest for c in ckpts) or time.monotonic() > end
                                or timed_out())

                    graph.wait(settled)
            if timed_out():
                print(f"worldsample {command}: --timeout {timeout:.0f} s reached; stopping", flush=True)
        except (NodeFailed, GraphAlreadyRunning) as exc:
            print(f"worldsample {command}: {exc}", file=sys.stderr)
            code = 1
        except KeyboardInterrupt as exc:
            print(f"\nworldsample {command}: interrupted ({str(exc) or 'SIGINT'}); stopping the nodes", file=sys.stderr,
                  flush=True)
            code = exit_code_of(exc)
        finally:
            codes = graph.stop()
    bad = {n: c for n, c in codes.items() if c not in (0, None) and n != "actor" and code == 0}
    if bad:
        print(f"worldsample {command}: node(s) {', '.join(bad)} failed (exit codes {bad}); logs in {out / 'logs'}",
              file=sys.stderr)
        for name in bad:  # the reason, where the node wrote it (a traceback, faulthandler's stacks)
            print(graph.log_tail(name, lines=30), file=sys.stderr)
        code = 1
    print(f"{command}[{part}]: {_bag_count(out / 'bags')}/{total} real episode bag(s) in {out / 'bags'}; "
          f"{time.monotonic() - t0:.0f} s", flush=True)
    return code
