"""Moving one episode bag between two hosts over ROS 2 (the payload link) beside copying it locally.

    worldsample bench transfer                     # one 64 px two-camera episode, 3 repeats

Records one scripted-expert episode (64 px, cameras front + wrist) to a bag, then per repeat: copies
the bag directory on this disk (shutil.copytree), and moves it with two payload-link nodes in two
network namespaces joined by a veth pair (robot PC -> learning server; needs root: without it both
nodes run in this namespace over loopback, and the output says so). Prints the receiver's fetch time
(first chunk request to the checked rename, from its log), the time from the sender's start to the bag
in place (DDS discovery included), and the ratios to the local copy.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image-size", type=int, default=64, help="camera image size [px] (default 64)")
    parser.add_argument("--cameras", default="front,wrist", help="cameras (default front,wrist)")
    parser.add_argument("--repeats", type=int, default=3, help="transfers measured (default 3)")
    parser.add_argument("--task", default="push", help="task of the recorded episode (default push)")


def _namespaces(tag: str) -> list[str] | None:
    ns = [f"wsbench{tag}a", f"wsbench{tag}b"]
    dev = [f"wsb{tag}a", f"wsb{tag}b"]
    cmds = [["netns", "add", ns[0]], ["netns", "add", ns[1]], ["link", "add", dev[0], "type", "veth", "peer", "name",
                                                                dev[1]]]
    for i, addr in enumerate(("10.224.9.1/24", "10.224.9.2/24")):
        cmds += [["link", "set", dev[i], "netns", ns[i]], ["-n", ns[i], "addr", "add", addr, "dev", dev[i]],
                 ["-n", ns[i], "link", "set", "lo", "up"], ["-n", ns[i], "link", "set", dev[i], "up"],
                 ["-n", ns[i], "route", "add", "224.0.0.0/4", "dev", dev[i]]]
    try:
        for c in cmds:
            subprocess.run(["ip", *c], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        for n in ns:
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
        return None
    return ns


def _link(name: str, params: dict, prefix: list[str], log: Path, env: dict) -> subprocess.Popen:
    from .graph import NodeSpec

    spec = NodeSpec("worldsample_bringup", "payload_link_node", name, params, module="worldsample_bringup.payload_link")
    return subprocess.Popen([*prefix, sys.executable, "-m", spec.python_module(), *spec.ros_args()], env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _transfer(bag: Path, work: Path, ns: list[str] | None, run: int, env: dict) -> tuple[float, float]:
    a, b = work / f"A{run}", work / f"B{run}"
    shutil.copytree(bag, a / "demos" / bag.name)
    pre = [["ip", "netns", "exec", n] for n in ns] if ns else [[], []]
    common = {"run_id": f"bench{run}"}
    recv = _link("learning_link", {**common, "send_prefix": "transfer/learning", "receive_prefix": "transfer/robot",
                                   "receive_demos_dir": str(b / "demos"), "state_dir": str(b / "transfer")},
                 pre[1], work / f"recv{run}.log", env)
    t0 = time.monotonic()
    send = _link("robot_link", {**common, "send_prefix": "transfer/robot", "receive_prefix": "transfer/learning",
                                "send_demos_dir": str(a / "demos"), "state_dir": str(a / "transfer")},
                 pre[0], work / f"send{run}.log", env)
    target = b / "demos" / bag.name
    try:
        while not target.exists():
            if time.monotonic() - t0 > 120:
                raise RuntimeError(f"no transfer within 120 s; logs in {work}")
            time.sleep(0.01)
        wall = time.monotonic() - t0
        time.sleep(0.3)
    finally:
        for p in (send, recv):
            p.send_signal(2)
        for p in (send, recv):
            p.wait(timeout=15)
    m = re.search(r"received demo \S+: \d+ bytes in ([0-9.]+) s", (work / f"recv{run}.log").read_text())
    return (float(m.group(1)) if m else float("nan")), wall


def run(args: argparse.Namespace) -> int:
    import os

    from worldsample_control.core.demos import record_demos
    from worldsample_control.core.sim import EnvConfig

    from .loop import _node_env

    work = Path(tempfile.mkdtemp(prefix="ws-bench-transfer-"))
    cams = tuple(c.strip() for c in args.cameras.split(",") if c.strip())
    record_demos(args.task, 1, work / "src", EnvConfig(image_size=args.image_size, cameras=cams), seed0=0,
                 keep_failures=True, log=open(os.devnull, "w"))
    bag = next(p for p in (work / "src").iterdir() if p.is_dir())
    size = sum(p.stat().st_size for p in bag.rglob("*") if p.is_file())
    ns = _namespaces(str(os.getpid() % 1000))
    env = _node_env()
    print(f"bench transfer: one {args.task} episode, {args.image_size} px, cameras {','.join(cams)}: {size / 1e6:.2f} MB "
          f"in {sum(1 for p in bag.rglob('*') if p.is_file())} files; "
          + ("two network namespaces over a veth pair" if ns else "NOT root: both ends in this namespace (loopback)"))
    try:
        for r in range(args.repeats):
            t = time.perf_counter()
            shutil.copytree(bag, work / f"copy{r}")
            local = time.perf_counter() - t
            fetch, wall = _transfer(bag, work, ns, r, env)
            print(f"  run {r + 1}: local copy {local * 1e3:7.1f} ms | payload link: fetch {fetch * 1e3:7.1f} ms "
                  f"({fetch / local:5.1f}x the copy, {size / 1e6 / fetch:6.1f} MB/s), sender start -> in place "
                  f"{wall:5.2f} s (DDS discovery included)", flush=True)
    finally:
        for n in ns or []:
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0
