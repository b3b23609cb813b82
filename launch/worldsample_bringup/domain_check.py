"""Before a graph starts: is another WorldSample graph already on this ROS domain (and namespace)?

Two graphs on one ROS_DOMAIN_ID and namespace share every topic: each recorder would see the other's
episodes, each simulator the other's commands. `worldsample sim` and `worldsample loop` therefore
look first and refuse with a message naming ROS_DOMAIN_ID (`check_free` / `other_graph`). They do not
move to another domain on their own: on a real robot the arm's driver (franka_ros2) is on a chosen
domain, and a loop that silently picked another one would run without its robot. Starting a second
graph on purpose is one variable away: ``ROS_DOMAIN_ID=<n>`` (or ``--namespace``).

The look costs one discovery period (``wait_s``, `DISCOVERY_WAIT_S`) when the domain is free.
Two graphs started within that period both pass; then the run ids (every episode message carries
one; arm control and recorder ignore other runs'), the simulator's sender check and the actor's own check for a second publisher of
``episodes`` (it stops with exit code 3) keep them apart.
"""

from __future__ import annotations

import os
import time

# how long the look waits for discovery when it finds nothing: 2 s missed a running graph on a loaded 2-core
# machine (CI); Fast DDS answers a new participant's announcements within a few hundred ms when idle
DISCOVERY_WAIT_S = 5.0

# node names of a WorldSample graph (graph.sim_graph / robot_graph / learning_graph)
GRAPH_NODES = ("sim", "arm_control", "actor", "recorder", "learner", "world_model", "success_detector", "robot_link",
               "learning_link")


def _norm_ns(namespace: str) -> str:
    ns = "/" + namespace.strip("/")
    return ns


def other_graph(namespace: str = "", wait_s: float = DISCOVERY_WAIT_S, part: str = "all",
                run_id: str = "") -> list[str]:
    """Fully qualified names of WorldSample nodes running in ``namespace`` on this ROS domain.

    For ``part`` robot or learning, the other half of the same run is not another graph: the nodes of
    the other part are left out when their payload link's ``run_id`` parameter is ``run_id``."""
    import rclpy
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx, args=[])
    try:
        node = rclpy.create_node(f"worldsample_domain_check_{os.getpid()}", context=ctx,
                                 enable_rosout=False, start_parameter_services=False)
        try:
            from rclpy.executors import SingleThreadedExecutor

            ex = SingleThreadedExecutor(context=ctx)
            ex.add_node(node)
            ns = _norm_ns(namespace)
            found: list[str] = []
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                ex.spin_once(timeout_sec=0.1)
                found = sorted(f"{n_ns.rstrip('/')}/{name}" for name, n_ns in node.get_node_names_and_namespaces()
                               if name in GRAPH_NODES and n_ns == ns)
                if len(found) >= 2 and part == "all":  # a graph, not one stray node: no need to wait longer
                    break
            if part != "all" and found:
                found = _not_my_other_half(node, ex, found, ns, part, run_id)
            ex.remove_node(node)
            return found
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)


def _not_my_other_half(node, ex, found: list[str], ns: str, part: str, run_id: str) -> list[str]:
    """``found`` without the nodes of this run's other part (all of them, or none: any node of this part,
    or of another run's other part, makes the whole finding stand)."""
    from .parts import LINK_NODES, in_part

    other = "learning" if part == "robot" else "robot"
    names = [f.rsplit("/", 1)[-1] for f in found]
    link = LINK_NODES[other]
    if link not in names or any(n == LINK_NODES[part] or (n != link and not in_part(n, other)) for n in names):
        return found
    from rclpy.parameter_client import AsyncParameterClient

    client = AsyncParameterClient(node, f"{ns.rstrip('/')}/{link}")
    if not client.wait_for_services(timeout_sec=5.0):
        return found
    fut = client.get_parameters(["run_id"])
    deadline = time.monotonic() + 5.0
    while not fut.done() and time.monotonic() < deadline:
        ex.spin_once(timeout_sec=0.1)
    values = fut.result().values if fut.done() and fut.result() is not None else []
    theirs = values[0].string_value if values else None
    return [] if theirs == run_id else [f"{f} (run id {theirs!r}, not {run_id!r})" for f in found]


def refusal(command: str, nodes: list[str], namespace: str = "") -> str:
    domain = os.environ.get("ROS_DOMAIN_ID", "0 (unset)")
    where = f"ROS_DOMAIN_ID={domain}" + (f", namespace /{namespace.strip('/')}" if namespace.strip("/") else "")
    return (f"{command}: another WorldSample graph is running on {where} (nodes {', '.join(nodes)}). Two graphs on one "
            "domain would record and command each other's episodes; nothing was started. Stop the other graph, or "
            "give this run its own domain, e.g. ROS_DOMAIN_ID=<0-101, unused> "
            f"{command} ...")


def check_free(command: str, namespace: str = "", wait_s: float = DISCOVERY_WAIT_S, part: str = "all",
               run_id: str = "") -> str | None:
    """None when no other WorldSample graph is on this domain/namespace, else the refusal message.

    ``WORLDSAMPLE_SKIP_DOMAIN_CHECK=1`` skips the look (e.g. a deliberately shared domain with
    distinct namespaces handled elsewhere)."""
    if os.environ.get("WORLDSAMPLE_SKIP_DOMAIN_CHECK") == "1":
        return None
    nodes = other_graph(namespace, wait_s, part, run_id)
    return refusal(command, nodes, namespace) if nodes else None


def claim_run(command: str, out, part: str = "all", run_id: str = "") -> int | None:
    """Before anything is written: refuse when another graph is on this domain (exit code 1) or ``out``
    cannot be written (exit code 2), each with one line on stderr; None when the run may start."""
    import sys

    from worldsample_common.core.files import prepare_out_dir

    refused = check_free(command, part=part, run_id=run_id)
    if refused:
        print(refused, file=sys.stderr)
        return 1
    try:
        prepare_out_dir(out)
    except ValueError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    return None
