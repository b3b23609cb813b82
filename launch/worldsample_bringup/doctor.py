"""Check that this machine can run WorldSample, and say how to fix what is missing.

Checks: Python version, rclpy with Fast DDS (a real publish/subscribe round trip),
the colcon-built worldsample_msgs, MuJoCo headless rendering, PyTorch, rosbag2 I/O, whether
`ros2 launch` is available (optional: `worldsample loop` runs the same graph without it) and
free disk space. Exit code 0 when everything needed passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SETUP_HINT = "run `bash scripts/setup.sh`, then `source scripts/env.sh`"


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def check_python() -> CheckResult:
    ok = sys.version_info[:2] >= (3, 10)
    return CheckResult("python", ok, sys.version.split()[0], "use Python 3.11 (the ROS 2 Kilted wheels are built for it)")


def check_ros_dds(timeout_s: float = 10.0) -> CheckResult:
    try:
        import rclpy
        from std_msgs.msg import String
    except ImportError as exc:
        return CheckResult("rclpy + Fast DDS", False, f"cannot import rclpy: {exc}", SETUP_HINT)
    rmw = os.environ.get("RMW_IMPLEMENTATION", "(default)")
    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=(os.getpid() % 100) + 100)
    try:
        node = rclpy.create_node("worldsample_doctor", context=context)
        received: list[str] = []
        node.create_subscription(String, "doctor_ping", lambda m: received.append(m.data), 10)
        pub = node.create_publisher(String, "doctor_ping", 10)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        deadline = time.monotonic() + timeout_s
        while not received and time.monotonic() < deadline:
            pub.publish(String(data="ping"))
            executor.spin_once(timeout_sec=0.1)
        impl = rclpy.get_rmw_implementation_identifier()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    if not received:
        return CheckResult("rclpy + Fast DDS", False, f"no message came back over DDS in {timeout_s:.0f} s ({impl})",
                           "check that loopback multicast works and ROS_LOCALHOST_ONLY / ROS_AUTOMATIC_DISCOVERY_RANGE allow it")
    return CheckResult("rclpy + Fast DDS", True, f"publish/subscribe round trip over {impl} (RMW_IMPLEMENTATION={rmw})")


def check_msgs() -> CheckResult:
    try:
        from worldsample_msgs.msg import Transition
    except ImportError as exc:
        return CheckResult("worldsample_msgs", False, f"not importable: {exc}", SETUP_HINT)
    return CheckResult("worldsample_msgs", True, f"built; Transition.SOURCE_SYNTHETIC={Transition.SOURCE_SYNTHETIC}")


def check_mujoco() -> CheckResult:
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import mujoco
    except ImportError as exc:
        return CheckResult("mujoco rendering", False, f"cannot import mujoco: {exc}", SETUP_HINT)
    xml = """<mujoco><worldbody><light pos="0 0 2"/><geom type="plane" size="1 1 .1"/>
             <body pos="0 0 .2"><freejoint/><geom type="box" size=".05 .05 .05" rgba="1 0 0 1"/></body>
             </worldbody></mujoco>"""
    try:
        model = mujoco.MjModel.from_xml_string(xml)
        data = mujoco.MjData(model)
        mujoco.mj_forward(model, data)
        with mujoco.Renderer(model, 64, 64) as renderer:
            renderer.update_scene(data)
            frame = renderer.render()
    except Exception as exc:  # noqa: BLE001 - report any rendering failure
        return CheckResult("mujoco rendering", False, f"{type(exc).__name__}: {exc}",
                           "headless rendering needs MUJOCO_GL=egl and Mesa's EGL (apt-get install libegl1 libgl1-mesa-dri)")
    return CheckResult("mujoco rendering", True, f"mujoco {mujoco.__version__}, MUJOCO_GL={os.environ['MUJOCO_GL']}, "
                       f"frame {frame.shape} mean {frame.mean():.1f}")


def check_torch() -> CheckResult:
    try:
        import torch
    except ImportError as exc:
        return CheckResult("torch", False, f"cannot import torch: {exc}", "pip install torch==2.13.0 (" + SETUP_HINT + ")")
    device = "cuda: " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu only"
    return CheckResult("torch", True, f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads")


def check_bags() -> CheckResult:
    try:
        from worldsample_common.core import bag_io
    except ImportError as exc:
        return CheckResult("rosbag2 I/O", False, f"cannot import bag I/O: {exc}", SETUP_HINT)
    try:
        store = bag_io.typestore()
        names = [n for n in store.fielddefs if n.startswith("worldsample_msgs/")]
    except Exception as exc:  # noqa: BLE001
        return CheckResult("rosbag2 I/O", False, f"{type(exc).__name__}: {exc}", SETUP_HINT)
    return CheckResult("rosbag2 I/O", True, f"rosbags typestore with {len(names)} worldsample_msgs types")


def check_ros2_launch() -> CheckResult:
    """`ros2 launch` (ros2cli + launch + launch_ros): optional, `worldsample loop` does not need it."""
    missing = []
    for mod in ("ros2cli", "launch", "launch_ros", "composition_interfaces"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    exe = shutil.which("ros2")
    if missing or exe is None:
        what = ", ".join(missing + ([] if exe else ["the `ros2` command"]))
        return CheckResult("ros2 launch", False, f"not available (missing {what}); `worldsample loop` works without it",
                           "WORLDSAMPLE_ROS2_UPSTREAM=/path/to/ros2-upstream bash scripts/setup.sh (their upstream "
                           "sources; CI uses ../shared/ros2-upstream), or source a full ROS 2 install",
                           required=False)
    return CheckResult("ros2 launch", True, f"{exe} with launch, launch_ros", required=False)


def check_disk(path: Path, min_gb: float = 5.0) -> CheckResult:
    path = path if path.exists() else Path.cwd()
    free_gb = shutil.disk_usage(path).free / 1e9
    return CheckResult("disk space", free_gb >= min_gb, f"{free_gb:.1f} GB free at {path}",
                       f"free at least {min_gb:.0f} GB: every episode is a rosbag2 and every model version is kept")


CHECKS: list[Callable[[], CheckResult]] = [check_python, check_ros_dds, check_msgs, check_mujoco, check_torch, check_bags,
                                           check_ros2_launch]


def run_checks(run_dir: Path) -> list[CheckResult]:
    results = []
    for check in CHECKS:
        try:
            results.append(check())
        except Exception as exc:  # noqa: BLE001 - a crashing check is a failed check
            results.append(CheckResult(check.__name__.removeprefix("check_"), False, f"{type(exc).__name__}: {exc}", SETUP_HINT))
    results.append(check_disk(run_dir))
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", type=Path, default=Path("runs"), help="where runs will be written (disk check)")


def run(args: argparse.Namespace) -> int:
    results = run_checks(args.run_dir)
    width = max(len(r.name) for r in results)
    for r in results:
        mark = "ok  " if r.ok else ("FAIL" if r.required else "warn")
        print(f"[{mark}] {r.name:<{width}}  {r.detail}")
        if not r.ok and r.fix:
            print(f"       {'':<{width}}  fix: {r.fix}")
    failed = [r for r in results if not r.ok and r.required]
    print("all checks passed" if not failed else f"{len(failed)} check(s) failed")
    return 0 if not failed else 1
