"""Run a list of `NodeSpec`s as subprocesses: start, monitor, stop cleanly (no `launch` needed).

Each node runs as ``python -m <module> --ros-args -r __node:=<name> -p k:=v -r a:=b`` (or
its console script when ``use_console_scripts``), with stdout/stderr going to
``<log_dir>/<name>.log``. `stop()` sends SIGINT to every node (rclpy's shutdown path: a
recorder closes its bag), then SIGTERM after ``sigint_timeout_s``, then SIGKILL after
``sigterm_timeout_s``.

    with ProcessGraph(specs, env=os.environ, log_dir=run_dir / "logs") as graph:
        graph.wait(lambda: done(), timeout=600)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .graph import NodeSpec


class NodeFailed(RuntimeError):
    """A node exited while the graph was supposed to be running."""


@dataclass
class RunningNode:
    spec: NodeSpec
    process: subprocess.Popen
    log_path: Path | None

    @property
    def returncode(self) -> int | None:
        return self.process.poll()


class ProcessGraph:
    def __init__(self, specs: list[NodeSpec], env: Mapping[str, str] | None = None,
                 log_dir: str | Path | None = None, python: str = sys.executable,
                 use_console_scripts: bool = False, sigint_timeout_s: float = 10.0,
                 sigterm_timeout_s: float = 5.0) -> None:
        names = [s.name for s in specs]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"node names must be unique, duplicated: {sorted(dup)}")
        self.specs = list(specs)
        self.env = dict(os.environ if env is None else env)
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.python = python
        self.use_console_scripts = use_console_scripts
        self.sigint_timeout_s = sigint_timeout_s
        self.sigterm_timeout_s = sigterm_timeout_s
        self.nodes: dict[str, RunningNode] = {}
        self._log_files: list = []

    # ------------------------------------------------------------------ start
    def command(self, spec: NodeSpec) -> list[str]:
        if self.use_console_scripts:
            exe = shutil.which(spec.executable, path=self.env.get("PATH"))
            if exe is None:
                raise FileNotFoundError(f"console script {spec.executable!r} of node {spec.name!r} is not on PATH")
            return [exe, *spec.ros_args()]
        return [self.python, "-u", "-m", spec.python_module(), *spec.ros_args()]

    def start(self) -> ProcessGraph:
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for spec in self.specs:
                self.start_node(spec)
        except BaseException:
            self.stop()
            raise
        return self

    def start_node(self, spec: NodeSpec) -> RunningNode:
        if spec.name in self.nodes and self.nodes[spec.name].returncode is None:
            raise RuntimeError(f"node {spec.name!r} is already running")
        cmd = self.command(spec)
        log_path = None
        if self.log_dir is not None:
            log_path = self.log_dir / f"{spec.name}.log"
            out = log_path.open("ab")
            self._log_files.append(out)
            out.write(("$ " + " ".join(cmd) + "\n").encode())
            out.flush()
        else:
            out = None
        proc = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT if out else None,
                                stdin=subprocess.DEVNULL)
        node = RunningNode(spec, proc, log_path)
        self.nodes[spec.name] = node
        return node

    # ------------------------------------------------------------------ monitor
    def exited(self) -> dict[str, int]:
        """Nodes that have exited, with their return codes."""
        return {n: rn.returncode for n, rn in self.nodes.items() if rn.returncode is not None}

    def check(self, allow_exit: tuple[str, ...] = ()) -> None:
        """Raise `NodeFailed` (with the log tail) if a node exited, unless allowed with code 0."""
        for name, code in self.exited().items():
            if name in allow_exit and code == 0:
                continue
            raise NodeFailed(f"node {name!r} exited with code {code}\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 30) -> str:
        rn = self.nodes.get(name)
        if rn is None or rn.log_path is None or not rn.log_path.exists():
            return ""
        text = rn.log_path.read_text(errors="replace").splitlines()
        return "\n".join(f"  [{name}] {line}" for line in text[-lines:])

    def wait(self, until: Callable[[], bool] | None = None, timeout: float | None = None,
             allow_exit: tuple[str, ...] = (), poll_s: float = 0.2) -> bool:
        """Block until ``until()`` is true (True), the timeout passes (False) or a node fails (raises).

        Without ``until``: until every node has exited (nodes in ``allow_exit`` may exit 0 early).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if until is not None and until():
                return True
            if until is None and len(self.exited()) == len(self.nodes):
                return True
            self.check(allow_exit=allow_exit if until is not None else tuple(self.nodes))
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)

    # ------------------------------------------------------------------ stop
    def signal(self, name: str, sig: int) -> None:
        rn = self.nodes[name]
        if rn.returncode is None:
            rn.process.send_signal(sig)

    def stop(self, names: list[str] | None = None) -> dict[str, int]:
        """SIGINT, then SIGTERM, then SIGKILL; returns the exit codes. Stops in reverse start order."""
        targets = [n for n in reversed(list(self.nodes)) if names is None or n in names]
        for sig, timeout in ((signal.SIGINT, self.sigint_timeout_s), (signal.SIGTERM, self.sigterm_timeout_s),
                             (signal.SIGKILL, 5.0)):
            alive = [n for n in targets if self.nodes[n].returncode is None]
            if not alive:
                break
            for n in alive:
                try:
                    self.signal(n, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and any(self.nodes[n].returncode is None for n in alive):
                time.sleep(0.05)
        if names is None:
            for f in self._log_files:
                f.close()
            self._log_files.clear()
        return {n: self.nodes[n].returncode for n in targets}

    def __enter__(self) -> ProcessGraph:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
