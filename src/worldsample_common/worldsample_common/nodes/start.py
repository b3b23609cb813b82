"""Start a node process so that a stop signal at any moment of its start-up ends it without a traceback.

A node's module imports rclpy, numpy, MuJoCo or torch before its ``main()`` runs (seconds on a
loaded machine), and Python's default SIGINT handler turns a Ctrl-C there into a KeyboardInterrupt
traceback. `start_node` first makes SIGINT / SIGTERM / SIGHUP end the process at once, quietly and
with exit code 0 (nothing is built yet, so there is nothing to save), then imports the node's module
and runs its ``main()``; `support.run` then takes the signals over (from there a signal asks for
the clean stop). Every node's console script (`node_entry`) and `worldsample loop`'s process runner
(``python -m worldsample_common.nodes.start MODULE [--ros-args ...]``) start nodes through here.

Standard library only: importing this module is as fast as Python's own start.
"""

from __future__ import annotations

import faulthandler
import importlib
import os
import signal
import sys
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def quiet_start(name: str) -> None:
    """Until `support.run` installs its own handlers: a stop signal ends the process with exit code 0
    and one line on stderr, without a traceback."""

    def stop(signum: int, _frame) -> None:
        os.write(2, f"{name}: {signal.Signals(signum).name} during start-up; stopped before starting\n".encode())
        os._exit(0)

    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)


def start_node(module: str, args: list[str] | None = None) -> int:
    """Import the node module ``module`` under `quiet_start` and run its ``main(args)``."""
    faulthandler.enable()  # a crash in native code (rclpy, torch, MuJoCo) prints every thread's Python stack to the log
    quiet_start(module.rsplit(".", 1)[-1])
    return importlib.import_module(module).main(args)


def node_entry(module: str) -> Callable[[], int]:
    """A console-script entry point (``sim_node = worldsample_control.nodes:sim_node``) for ``module``."""

    def main() -> int:
        return start_node(module)

    main.__name__ = module.rsplit(".", 1)[-1]
    main.__doc__ = f"Start {module} (`worldsample_common.nodes.start`)."
    return main


if __name__ == "__main__":  # python -m worldsample_common.nodes.start MODULE [--ros-args ...]
    if len(sys.argv) < 2:
        sys.exit("usage: python -m worldsample_common.nodes.start NODE_MODULE [--ros-args ...]")
    target = sys.argv[1]
    sys.argv = [target, *sys.argv[2:]]
    sys.exit(start_node(target))
