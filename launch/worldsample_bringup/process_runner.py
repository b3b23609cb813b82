"""Run a list of `NodeSpec`s as subprocesses: start, monitor, stop cleanly (no `launch` needed).

Each node runs as ``python -m <module> --ros-args -r __node:=<name> -p k:=v -r a:=b`` (or
its console script when ``use_console_scripts``), with stdout/stderr going to
``<log_dir>/<name>.log``. `stop()` sends SIGINT to every node (the clean shutdown path: a
recorder closes its bag), then SIGTERM and SIGKILL after the nodes' grace periods
(`NodeSpec.sigterm_timeout_s` / ``sigkill_timeout_s``, launch's 5 s / 10 s, the same values the
launch files give `ros2 launch`); signals that reach the runner while it stops the graph are reported and
ignored, so a second Ctrl-C cannot leave nodes behind.

No orphans: inside `stop_signals()` SIGTERM and SIGHUP (what ``timeout``, systemd, ``docker stop``
and a closed terminal send) stop the graph exactly like Ctrl-C; every node gets
``WORLDSAMPLE_PARENT_PID`` and asks the kernel for SIGINT when this process dies, even by
SIGKILL (`worldsample_common.nodes.support.die_with_parent`); and ``pid_file`` records the
node PIDs so that a new graph for the same run refuses to start beside a live one.

    with stop_signals(), ProcessGraph(specs, env=os.environ, log_dir=run_dir / "logs") as graph:
        graph.wait(lambda: done(), timeout=600)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .graph import NodeSpec


class NodeFailed(RuntimeError):
    """A node exited while the graph was supposed to be running."""


class GraphAlreadyRunning(RuntimeError):
    """Nodes of the same run (listed in its pid file) are still alive."""


class StopSignal(KeyboardInterrupt):
    """SIGTERM / SIGHUP received: handled like Ctrl-C (a KeyboardInterrupt), exit code 128 + signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_code_of(exc: KeyboardInterrupt) -> int:
    """Shell convention: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + (exc.signum if isinstance(exc, StopSignal) else int(signal.SIGINT))


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise `StopSignal` (a KeyboardInterrupt) in the main thread."""

    def raise_stop(signum, _frame):
        raise StopSignal(signum)

    old = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        old[sig] = signal.signal(sig, raise_stop)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _stop_signals_handled_by(handler: Callable[[int, Any], None]) -> Iterator[dict[int, Any]]:
    """Within the block Ctrl-C / SIGTERM / SIGHUP go to ``handler`` (main thread only; elsewhere nothing changes);
    yields the handlers they had, which are put back at the end."""
    old: dict[int, Any] = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            old[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread
        pass
    try:
        yield old
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Ctrl-C / SIGTERM / SIGHUP arriving within the block are raised when it ends (main thread only).

    For calls into rclpy's C extension (``executor.spin_once``): a Python signal handler that raises
    while pybind11 converts a call argument (``take_message``) has its KeyboardInterrupt turned into
    ``RuntimeError: Unable to convert call argument``, and Ctrl-C would crash the loop instead of
    stopping it (seen in CI). Here the handler only notes the signal; the first one noted is then
    given to the handler that was installed before (KeyboardInterrupt, `StopSignal`) outside rclpy.
    """
    pending: list[int] = []
    with _stop_signals_handled_by(lambda signum, _frame: pending.append(signum)) as old:
        yield
    if pending:
        handler = old.get(pending[0])
        if callable(handler):
            handler(pending[0], None)
        elif handler == signal.SIG_DFL:
            os.kill(os.getpid(), pending[0])


@contextlib.contextmanager
def signals_reported(what: str) -> Iterator[None]:
    """Ctrl-C / SIGTERM / SIGHUP during ``what`` are reported, not raised (main thread only)."""

    def note(signum, _frame):
        print(f"{signal.Signals(signum).name} while {what}; finishing that first (SIGKILL abandons it)",
              file=sys.stderr, flush=True)

    with _stop_signals_handled_by(note):
        yield


def pid_alive(pid: int) -> bool:
    """Running (a zombie left by a killed parent counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def live_graph(pid_file: Path) -> dict[str, int]:
    """Nodes listed in ``pid_file`` that are still running (their command line names the same file's run)."""
    try:
        listed = json.loads(pid_file.read_text())["nodes"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    out = {}
    for name, pid in listed.items():
        if isinstance(pid, int) and pid_alive(pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                cmdline = ""
            if not cmdline or name in cmdline:
                out[name] = pid
    return out


@dataclass
class RunningNode:
    spec: NodeSpec
    process: subprocess.Popen
    log_path: Path | None
    log_offset: int = 0  # where this process's output begins in its log (earlier sessions' output precedes it)

    @property
    def returncode(self) -> int | None:
        return self.process.poll()


class ProcessGraph:
    def __init__(self, specs: list[NodeSpec], env: Mapping[str, str] | None = None,
                 log_dir: str | Path | None = None, python: str = sys.executable,
                 use_console_scripts: bool = False, sigint_timeout_s: float | None = None,
                 sigterm_timeout_s: float | None = None, pid_file: str | Path | None = None) -> None:
        names = [s.name for s in specs]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"node names must be unique, duplicated: {sorted(dup)}")
        self.specs = list(specs)
        from worldsample_common.nodes.support import PARENT_PID_ENV

        self.env = dict(os.environ if env is None else env)
        self.env[PARENT_PID_ENV] = str(os.getpid())
        self.pid_file = None if pid_file is None else Path(pid_file)
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.python = python
        self.use_console_scripts = use_console_scripts
        # None: each node's own grace periods (NodeSpec, as `ros2 launch` applies them)
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
        # through worldsample_common.nodes.start: a stop signal during the node's imports ends it quietly
        return [self.python, "-u", "-m", "worldsample_common.nodes.start", spec.python_module(), *spec.ros_args()]

    def start(self) -> ProcessGraph:
        # A process started in the background by a shell has SIGINT ignored, and its children would
        # inherit that: then the SIGINT of `stop()` (the clean path) would not reach a plain Python
        # child. A handled signal is reset to the default across exec, an ignored one is not.
        import threading

        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if self.pid_file is not None:
            live = live_graph(self.pid_file)
            if live:
                raise GraphAlreadyRunning(
                    f"nodes of this run are still running ({', '.join(f'{n} pid {p}' for n, p in live.items())}, "
                    f"listed in {self.pid_file}); stop them first (kill -INT {' '.join(map(str, live.values()))})")
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for spec in self.specs:
                self.start_node(spec)
                self._write_pids()
        except BaseException:
            self.stop()
            raise
        return self

    def _write_pids(self) -> None:
        if self.pid_file is None:
            return
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.pid_file.with_name(self.pid_file.name + ".tmp")
        tmp.write_text(json.dumps({"runner": os.getpid(),
                                   "nodes": {n: rn.process.pid for n, rn in self.nodes.items()}}))
        os.replace(tmp, self.pid_file)

    def start_node(self, spec: NodeSpec) -> RunningNode:
        if spec.name in self.nodes and self.nodes[spec.name].returncode is None:
            raise RuntimeError(f"node {spec.name!r} is already running")
        cmd = self.command(spec)
        log_path = None
        offset = 0
        if self.log_dir is not None:
            log_path = self.log_dir / f"{spec.name}.log"
            out = log_path.open("ab")
            offset = out.tell()
            self._log_files.append(out)
            out.write(("$ " + " ".join(cmd) + "\n").encode())
            out.flush()
        else:
            out = None
        proc = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT if out else None,
                                stdin=subprocess.DEVNULL)
        node = RunningNode(spec, proc, log_path, offset)
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
        """The last ``lines`` lines this process wrote (not those of an earlier session in the same log)."""
        rn = self.nodes.get(name)
        if rn is None or rn.log_path is None or not rn.log_path.exists():
            return ""
        with rn.log_path.open("rb") as f:
            f.seek(rn.log_offset)
            text = f.read().decode(errors="replace").splitlines()
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
        """SIGINT, then SIGTERM, then SIGKILL; returns the exit codes. Stops in reverse start order.

        Signals that reach this process meanwhile are reported and ignored (a second Ctrl-C must
        not abandon the nodes half-stopped).
        """
        with signals_reported("stopping the nodes"):
            return self._stop(names)

    def _stop(self, names: list[str] | None) -> dict[str, int]:
        targets = [n for n in reversed(list(self.nodes)) if names is None or n in names]
        specs = [self.nodes[n].spec for n in targets]
        grace_int = self.sigint_timeout_s if self.sigint_timeout_s is not None else max(
            (s.sigterm_timeout_s for s in specs), default=5.0)
        grace_term = self.sigterm_timeout_s if self.sigterm_timeout_s is not None else max(
            (s.sigkill_timeout_s for s in specs), default=10.0)
        for sig, timeout in ((signal.SIGINT, grace_int), (signal.SIGTERM, grace_term), (signal.SIGKILL, 5.0)):
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
