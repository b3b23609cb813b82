"""`worldsample bench sim`: simulator throughput and DDS image latency, with in-run baselines.

1. MuJoCo control steps per second of a task, state-only and with camera rendering
   (`core.sim.benchmark.measure_steps_per_s`), and their ratio.
2. One-way latency of sensor_msgs/Image between two processes over DDS (this process publishes,
   a child process subscribes and reports receive time - header stamp; same machine, same
   clock) at 64x64 and 640x480 rgb8, as median and p99, each also as a ratio to the time of a
   numpy copy of the same frame measured in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

BENCH_TOPIC = "worldsample_bench/image"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="push", help="task for the simulator throughput (default push)")
    parser.add_argument("--steps", type=int, default=200, help="simulator steps per measurement")
    parser.add_argument("--frames", type=int, default=200, help="images sent per DDS latency measurement")
    parser.add_argument("--rate", type=float, default=30.0, help="image publish rate [Hz]")
    parser.add_argument("--sizes", default="64x64,640x480", help="image sizes WxH, comma-separated")
    parser.add_argument("--skip-sim", action="store_true", help="only the DDS latency")
    parser.add_argument("--skip-dds", action="store_true", help="only the simulator throughput")
    parser.add_argument("--json", type=str, default="", help="also write the results to this JSON file")


def memcpy_seconds(frame, reps: int = 200) -> float:
    """Median time of copying ``frame`` into a preallocated array."""
    import numpy as np

    dst = np.empty_like(frame)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        np.copyto(dst, frame)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _child(count: int, timeout: float) -> int:
    """Subscriber process: print one JSON list of latencies [s] after ``count`` frames or the timeout."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_image_sink")
    lat: list[float] = []

    def cb(msg: Image) -> None:
        now = node.get_clock().now().nanoseconds
        lat.append((now - (msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)) * 1e-9)

    node.create_subscription(Image, BENCH_TOPIC, cb, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    deadline = time.monotonic() + timeout
    while len(lat) < count and time.monotonic() < deadline and rclpy.ok():
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps(lat), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


def measure_dds_latency(width: int, height: int, frames: int, rate: float, node=None) -> list[float]:
    """Latencies [s] of ``frames`` rgb8 images published at ``rate`` Hz to a child process."""
    import numpy as np
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from worldsample_common.core.image_codec import numpy_to_image_fields

    warmup = 10
    env = dict(os.environ)
    child = subprocess.Popen([sys.executable, "-m", "worldsample_control.bench", "--child", str(frames + warmup),
                              str(30.0 + 2 * (frames + warmup) / rate)], env=env, stdout=subprocess.PIPE, text=True)
    own = node is None
    if own:
        rclpy.init()
        node = rclpy.create_node("bench_image_source")
    pub = node.create_publisher(Image, BENCH_TOPIC, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    try:
        deadline = time.monotonic() + 30
        while pub.get_subscription_count() == 0:
            if time.monotonic() > deadline or child.poll() is not None:
                raise RuntimeError("the latency child process did not subscribe within 30 s")
            time.sleep(0.05)
        time.sleep(0.5)
        frame = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
        fields = numpy_to_image_fields(frame, "rgb8")
        period = 1.0 / rate
        for _ in range(frames + warmup):
            t0 = time.perf_counter()
            msg = Image(**fields)
            msg.header.stamp = node.get_clock().now().to_msg()
            pub.publish(msg)
            rest = period - (time.perf_counter() - t0)
            if rest > 0:
                time.sleep(rest)
        out, _ = child.communicate(timeout=60)
        lat = json.loads(out.strip().splitlines()[-1])
        return lat[warmup:]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        node.destroy_publisher(pub)
        if own:
            node.destroy_node()
            rclpy.shutdown()


def run(args: argparse.Namespace) -> int:
    import numpy as np

    results: dict = {}
    if not args.skip_sim:
        from .core.sim.benchmark import measure_steps_per_s

        fast = measure_steps_per_s(args.task, render=False, steps=args.steps)
        slow = measure_steps_per_s(args.task, render=True, image_size=64, steps=args.steps)
        results["sim"] = {"task": args.task, "steps_per_s_state_only": fast, "steps_per_s_render_2x64": slow,
                          "ratio": fast / slow}
        print(f"simulator {args.task}: {fast:.1f} steps/s state-only, {slow:.1f} steps/s rendering 2 cameras "
              f"64x64 -> rendering costs {fast / slow:.2f}x")
    if not args.skip_dds:
        results["dds"] = []
        for size in args.sizes.split(","):
            w, h = (int(v) for v in size.lower().split("x"))
            frame = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)  # same as sent
            copy_s = memcpy_seconds(frame)
            lat = np.array(measure_dds_latency(w, h, args.frames, args.rate))
            if lat.size == 0:
                print(f"DDS {w}x{h}: no frame arrived", file=sys.stderr)
                return 1
            med, p99 = float(np.median(lat)), float(np.percentile(lat, 99))
            results["dds"].append({"size": f"{w}x{h}", "frames": int(lat.size), "sent": args.frames,
                                   "median_s": med, "p99_s": p99, "memcpy_s": copy_s,
                                   "median_over_memcpy": med / copy_s, "p99_over_memcpy": p99 / copy_s})
            print(f"DDS image {w}x{h} rgb8 ({w * h * 3 / 1024:.0f} KiB), {lat.size}/{args.frames} frames: "
                  f"median {med * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms; numpy copy {copy_s * 1e6:.2f} us -> "
                  f"median {med / copy_s:.0f}x, p99 {p99 / copy_s:.0f}x a memcpy")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--child":
        raise SystemExit(_child(int(sys.argv[2]), float(sys.argv[3])))
    p = argparse.ArgumentParser(prog="python -m worldsample_control.bench", description=__doc__)
    add_arguments(p)
    raise SystemExit(run(p.parse_args()))
