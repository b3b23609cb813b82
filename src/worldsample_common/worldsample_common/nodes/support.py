"""Helpers shared by the thin rclpy nodes: QoS, stamps, parameters <-> dataclass configs, main()."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..core.env_protocol import Observation
from ..core.franka_interface import QoSSpec
from ..core.image_codec import image_msg_to_rgb8, numpy_to_image_fields


def qos(spec: QoSSpec) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=spec.depth,
        reliability=ReliabilityPolicy.BEST_EFFORT if spec.reliability == "best_effort" else ReliabilityPolicy.RELIABLE,
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if spec.durability == "transient_local"
                    else DurabilityPolicy.VOLATILE),
    )


def ns_to_time(ns: int) -> Time:
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def time_to_ns(t: Any) -> int:
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


def declare_config(node: Node, config: Any, prefix: str = "", skip: tuple[str, ...] = ()) -> Any:
    """Declare one ROS parameter per field of a config dataclass and return the filled config.

    Nested dataclasses are declared recursively with dotted names (``ppl.threshold_max``); tuples
    become arrays; each parameter's description is its field's comment (`core.params`). Fields
    with a ``None`` / empty / dict default, names in ``skip`` and the class's ``PARAM_SKIP`` are
    not parameters. The same tree validates parameter files before a graph starts.
    """
    from rcl_interfaces.msg import ParameterDescriptor

    from ..core.params import build_config, config_params

    values = {}
    for name, spec in config_params(config, skip=skip).items():
        default = list(spec.default) if spec.is_array else spec.default
        value = node.declare_parameter(prefix + name, default,
                                       ParameterDescriptor(description=spec.description)).value
        values[name] = tuple(value) if spec.is_array else value
    return build_config(config, values)


def image_msg(array: np.ndarray, stamp: Time, frame_id: str, encoding: str = "rgb8"):
    from sensor_msgs.msg import Image

    msg = Image(**numpy_to_image_fields(array, encoding))
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


def build_observation(images: dict[str, Any], cameras: tuple[str, ...], proprio: np.ndarray,
                      state: np.ndarray | None = None) -> Observation:
    """Observation from Image messages (any supported encoding -> RGB uint8)."""
    imgs = {}
    for c in cameras:
        if c not in images:
            raise ValueError(f"no image from camera {c!r} yet")
        imgs[c] = image_msg_to_rgb8(images[c])
    return Observation(images=imgs, proprio=np.asarray(proprio, np.float32), state=state)


PARENT_PID_ENV = "WORLDSAMPLE_PARENT_PID"


def die_with_parent() -> None:
    """Get SIGINT, the clean stop, when the parent process dies, even by SIGKILL (Linux
    ``PR_SET_PDEATHSIG``). The parent is `worldsample loop`/`sim`'s runner or ``ros2 launch``,
    which on SIGTERM exits without stopping its nodes ("using SIGTERM can result in orphaned
    processes", launch_service.py): our nodes stop anyway. Started by our runner
    (``WORLDSAMPLE_PARENT_PID`` set), a node whose runner is already gone does not start."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGINT), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: the parent's own stop still applies
        return
    want = os.environ.get(PARENT_PID_ENV, "")
    if want.isdigit() and os.getppid() != int(want):  # the runner died before prctl took effect
        raise SystemExit(f"parent process {want} is gone; not starting")


class _StopRequest:
    """Our own SIGINT / SIGTERM / SIGHUP handling for a node process (rclpy's is off).

    The first signal only sets ``requested``: the spin loop notices within ``STOP_POLL_S`` and the
    node shuts down in order (``on_shutdown``: close bags, flush replay, save state). Every further
    signal is reported and ignored, so a terminal's Ctrl-C plus the one ``ros2 launch`` forwards
    (two SIGINTs), or an impatient second Ctrl-C, cannot break the shutdown code half-way (issue 12).
    With rclpy's own handlers the second SIGINT found the default disposition and killed the node
    (exit -2) in ~10 ms windows; and a KeyboardInterrupt could land anywhere in shutdown code.
    """

    def __init__(self) -> None:
        self.requested: str | None = None
        self.name = "node"
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, _frame) -> None:
        name = signal.Signals(signum).name
        if self.requested is None:
            self.requested = name
            return
        print(f"{self.name}: {name} while stopping; finishing the clean stop (SIGKILL abandons it)",
              file=sys.stderr, flush=True)


STOP_POLL_S = 0.1  # how often the spin loop looks for a stop request


def _detach_dead_stdio() -> None:
    """Point stdout/stderr at /dev/null when nobody reads them any more (the launch process that
    captured them died, e.g. on SIGTERM): a write would raise BrokenPipeError in the middle of the
    shutdown code that closes bags and saves state."""
    import select

    poller = select.poll()
    for fd in (1, 2):
        try:
            poller.register(fd, select.POLLOUT)
        except (OSError, ValueError):
            continue
    try:
        events = poller.poll(0)
    except OSError:
        return
    for fd, ev in events:
        if ev & (select.POLLERR | select.POLLHUP):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)


def run(node_factory: Callable[[], Node], args: list[str] | None = None, exit_process: bool = True) -> int:
    """rclpy.init -> spin -> clean shutdown on SIGINT/SIGTERM/SIGHUP, then the process ends with the code.

    A node with an ``executor_threads`` attribute > 1 spins in a MultiThreadedExecutor of that size
    (its callback groups decide what may run concurrently). Signals are handled here, not by rclpy:
    the first asks for a stop, later ones are reported and ignored (`_StopRequest`). Started by our
    runner, the node also stops when the runner dies (`die_with_parent`). A node ends itself with
    ``raise SystemExit(code)`` in a callback or by setting ``exit_code``.

    The stop sequence (it must fit launch's 5 s SIGINT grace on a loaded machine, issue 12):
    ``node.request_stop()`` if defined (long work in callbacks or threads ends at its next check),
    the executor stops and waits for the callbacks in flight (so ``on_shutdown`` never races one),
    ``node.on_shutdown()`` if defined (close bags, flush replay, save state), node and rclpy shut
    down, registered exit functions run, stdio is flushed, and with ``exit_process`` the process
    ends at once (`os._exit`): everything the node keeps is on disk by then, and the interpreter's
    own teardown of torch & co. took 2-5 s under load while saving nothing.
    """
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    stop = _StopRequest()
    die_with_parent()
    rclpy.init(args=sys.argv if args is None else args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    executor = None
    code = 0
    try:
        if stop.requested is not None:  # stopped during start-up (imports, rclpy.init): build nothing
            raise ExternalShutdownException()
        node = node_factory()
        stop.name = node.get_name()
        threads = int(getattr(node, "executor_threads", 1))
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        while stop.requested is None and rclpy.ok():
            executor.spin_once(timeout_sec=STOP_POLL_S)
    except ExternalShutdownException:
        pass
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int | None):
            print(exc.code, file=sys.stderr)
    finally:
        stop.requested = stop.requested or "exit"  # from here on every signal is only reported
        _detach_dead_stdio()

        def step(what: str, fn: Callable[[], Any]) -> None:
            nonlocal code
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - report, keep shutting down
                print(f"{node.get_name() if node is not None else 'node'}: error during shutdown ({what}): {exc}",
                      file=sys.stderr, flush=True)
                code = code or 1

        if node is not None and hasattr(node, "request_stop"):
            step("request_stop", node.request_stop)
        if executor is not None:  # waits for the callbacks in flight (the thread pool is joined)
            step("executor", lambda: executor.shutdown(timeout_sec=1.0))
        if node is not None:
            if hasattr(node, "on_shutdown"):
                step("on_shutdown", node.on_shutdown)
            code = getattr(node, "exit_code", code) or code
        if exit_process:  # what the node keeps is on disk now: a hung teardown must not cost a SIGKILL
            _bound_teardown(node.get_name() if node is not None else "node", lambda: code)
        if node is not None:
            step("destroy_node", node.destroy_node)
        if rclpy.ok():
            step("rclpy.shutdown", rclpy.shutdown)
        # Interpreter finalisation puts Python-handled signals back to their default (terminate) while
        # DDS and threads are still being torn down; ignored ones it leaves alone.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
    if exit_process:
        _exit_now(code)
    return code


def take_pending(node: Node, limit_s: float = 1.0) -> int:
    """Run the node's callbacks that are ready now, until none is or ``limit_s`` passed; returns how many ran.

    For ``on_shutdown`` (its executor has stopped by then): messages DDS delivered to the node's
    subscriptions before the stop but not yet taken, e.g. an episode's last transitions on a loaded
    machine, are handled instead of dropped. Due timers run too; a node's timers should do nothing
    once it is stopping.
    """
    import time

    from rclpy.executors import SingleThreadedExecutor, TimeoutException

    executor = SingleThreadedExecutor()
    executor.add_node(node)
    ran = 0
    deadline = time.monotonic() + limit_s
    try:
        while time.monotonic() < deadline:
            try:
                handler, _, _ = executor.wait_for_ready_callbacks(timeout_sec=0.0)
            except TimeoutException:
                break
            handler()
            if handler.exception() is not None:
                raise handler.exception()
            ran += 1
    finally:
        executor.remove_node(node)
        executor.shutdown(timeout_sec=0.0)
    return ran


TEARDOWN_LIMIT_S = 3.0  # destroy_node + rclpy.shutdown + exit hooks after on_shutdown; then the process ends anyway


def _exit_status(code: Any) -> int:
    """``code`` as a process exit status: itself when an int in 0..255, else 1."""
    return code if isinstance(code, int) and 0 <= code <= 255 else 1


def _exit_from_c_after(seconds: float, code: int) -> bool:
    """Arm a POSIX timer whose expiry calls libc's ``_exit(code)`` on a thread of its own (``SIGEV_THREAD``): it ends
    the process with ``code`` even while a C call holds the GIL and no Python thread can run. False where this libc
    offers no such timer (then only faulthandler's watchdog, whose exit code is always 1, can end a GIL-bound hang)."""
    import ctypes
    import ctypes.util

    class Sigevent(ctypes.Structure):  # glibc / musl `struct sigevent` (64 bytes) with the SIGEV_THREAD members
        _fields_ = [("value", ctypes.c_void_p), ("signo", ctypes.c_int), ("notify", ctypes.c_int),
                    ("function", ctypes.c_void_p), ("attribute", ctypes.c_void_p), ("pad", ctypes.c_int * 8)]

    class Timespec(ctypes.Structure):
        _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]

    class Itimerspec(ctypes.Structure):
        _fields_ = [("interval", Timespec), ("value", Timespec)]

    sigev_thread, clock_monotonic = 2, 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        create = getattr(libc, "timer_create", None)
        if create is None:  # glibc < 2.34 keeps the POSIX timers in librt
            rt = ctypes.CDLL(ctypes.util.find_library("rt") or "librt.so.1", use_errno=True)
            create, settime = rt.timer_create, rt.timer_settime
        else:
            settime = libc.timer_settime
        ev = Sigevent(value=int(code), notify=sigev_thread,
                      function=ctypes.cast(libc._exit, ctypes.c_void_p).value)  # _exit(int) gets sigev_value's int
        timer_id = ctypes.c_void_p()
        if create(clock_monotonic, ctypes.byref(ev), ctypes.byref(timer_id)) != 0:
            return False
        whole = int(seconds)
        spec = Itimerspec(value=Timespec(whole, int((seconds - whole) * 1e9)))
        return settime(timer_id, 0, ctypes.byref(spec), None) == 0
    except (OSError, AttributeError, ValueError, TypeError):
        return False


def _bound_teardown(name: str, code: Callable[[], int]) -> None:
    """End the process if the teardown after ``on_shutdown`` hangs (seen in the test suite on a loaded machine:
    arm_control logged its shutdown line, then sat in the DDS teardown through SIGINT and SIGTERM until SIGKILL; and in
    CI: world_model held the GIL in rclpy's ``destroy_node`` for over 6 s after a network link came back up).

    Everything the node keeps was saved by ``on_shutdown``, so the process ends with the node's code either way:
    after `TEARDOWN_LIMIT_S` a daemon thread exits with it. Should a C call hold the GIL so that no Python thread runs,
    faulthandler's watchdog (a C thread) prints every thread's stack to the node's log at twice the limit, and a POSIX
    timer (`_exit_from_c_after`) ends the process half a second later, still inside launch's SIGTERM grace."""
    import faulthandler
    import threading

    def give_up() -> None:
        c = code()
        try:
            print(f"{name}: the teardown after on_shutdown (destroy_node, rclpy.shutdown, exit hooks) did not finish in "
                  f"{TEARDOWN_LIMIT_S:.0f} s; the node's data was saved before it: exiting with {c}", file=sys.stderr, flush=True)
        except (OSError, ValueError):
            pass
        os._exit(_exit_status(c))

    timer = threading.Timer(TEARDOWN_LIMIT_S, give_up)
    timer.daemon = True
    timer.start()
    in_c = _exit_from_c_after(2 * TEARDOWN_LIMIT_S + 0.5, _exit_status(code()))
    try:  # without the POSIX timer faulthandler ends the process itself (exit code 1)
        faulthandler.dump_traceback_later(2 * TEARDOWN_LIMIT_S, exit=not in_c, file=sys.stderr)
    except (OSError, ValueError, RuntimeError):  # no usable stderr: the timers alone
        pass


def _exit_now(code: int) -> None:
    """End the process after a completed stop without the interpreter's teardown (see `run`)."""
    import atexit
    import logging

    atexit._run_exitfuncs()  # what a normal exit runs (exit hooks of libraries), minus module teardown
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(_exit_status(code))
