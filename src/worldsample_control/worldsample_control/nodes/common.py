"""Helpers shared by the thin rclpy nodes: QoS, stamps, parameters <-> dataclass configs, main()."""

from __future__ import annotations

import dataclasses
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
    """Declare one ROS parameter per dataclass field (tuples as arrays) and return the filled config.

    ``None`` defaults are declared as empty strings / skipped where the type is unknown.
    """
    values = {}
    for f in dataclasses.fields(config):
        if f.name in skip:
            continue
        default = getattr(config, f.name)
        if default is None or (isinstance(default, tuple | list) and len(default) == 0) or isinstance(
                default, dict):
            continue
        if dataclasses.is_dataclass(default):
            continue
        name = prefix + f.name
        pdefault = list(default) if isinstance(default, tuple) else default
        value = node.declare_parameter(name, pdefault).value
        if isinstance(default, tuple):
            value = tuple(value)
        values[f.name] = value
    return dataclasses.replace(config, **values)


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
    """When started by `worldsample loop`/`sim` (``WORLDSAMPLE_PARENT_PID`` set): get SIGINT, the clean
    stop, when that parent dies, even by SIGKILL (Linux ``PR_SET_PDEATHSIG``); a node whose parent is
    already gone stops at once. Under ``ros2 launch`` (variable unset) nothing changes."""
    want = os.environ.get(PARENT_PID_ENV, "")
    if not want.isdigit() or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGINT), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: the runner's own stop still applies
        return
    if os.getppid() != int(want):  # the parent died before prctl took effect
        raise SystemExit(f"parent process {want} is gone; not starting")


def _ignore_further_signals(name: str) -> None:
    """Once shutting down, a second Ctrl-C / SIGTERM must not break the shutdown code (issue 12)."""

    def note(signum, _frame):
        print(f"{name}: {signal.Signals(signum).name} while stopping; finishing the clean stop "
              "(SIGKILL abandons it)", file=sys.stderr, flush=True)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            signal.signal(sig, note)
        except (ValueError, OSError):  # not the main thread
            pass


def run(node_factory: Callable[[], Node], args: list[str] | None = None) -> int:
    """rclpy.init -> spin -> clean shutdown on SIGINT/SIGTERM (calls node.on_shutdown() if defined).

    A node with an ``executor_threads`` attribute > 1 spins in a MultiThreadedExecutor of that size
    (its callback groups decide what may run concurrently). Further signals during the shutdown
    are reported and ignored; started by our runner, the node stops when the runner dies.
    """
    die_with_parent()
    rclpy.init(args=sys.argv if args is None else args)
    node = None
    code = 0
    try:
        node = node_factory()
        threads = int(getattr(node, "executor_threads", 1))
        if threads > 1:
            from rclpy.executors import MultiThreadedExecutor

            executor = MultiThreadedExecutor(num_threads=threads)
            executor.add_node(node)
            executor.spin()
        else:
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except SystemExit as exc:
        code = int(exc.code or 0)
    except Exception:
        if rclpy.ok():
            raise
        # rclpy's SIGTERM handler shut the context down while spinning (e.g. "failed to initialize
        # wait set: the given context is not valid"): that is a stop request, not a failure
    finally:
        _ignore_further_signals(node.get_name() if node is not None else "node")
        if node is not None:
            hook = getattr(node, "on_shutdown", None)
            if hook is not None:
                try:
                    hook()
                except Exception as exc:  # noqa: BLE001 - report, keep shutting down
                    print(f"{node.get_name()}: error during shutdown: {exc}", file=sys.stderr)
                    code = code or 1
            code = getattr(node, "exit_code", code) or code
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code
