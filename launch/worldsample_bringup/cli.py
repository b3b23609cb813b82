"""`worldsample`: the one command-line tool of WorldSample.

Each subcommand lives in the package that owns the capability, as a module exposing
``add_arguments(parser)`` and ``run(args) -> int``. This file only maps names to those
modules, so a newcomer finds every command's code from the table below.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help). Order is the order of `worldsample --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("worldsample_bringup.doctor", "check this machine: rclpy + Fast DDS, worldsample_msgs, MuJoCo, torch, disk"),
    "demos": ("worldsample_control.commands.demos", "record scripted-expert demonstrations of a sim task to rosbag2"),
    "sim": ("worldsample_bringup.sim", "run the robot node graph in simulation and record episodes"),
    "bags": ("worldsample_control.commands.bags", "episode bags: list episodes (info), rebuild bags of a killed recorder (recover)"),
    "wm": ("worldsample_worldmodel.commands.wm", "world model: train, replay bags into it, generate, fidelity"),
    "learn": ("worldsample_learner.commands.learn", "train a policy in-process against a sim task (rl-only / naive / ppl ...)"),
    "success": ("worldsample_learner.commands.success_classifier",
                "train the success classifier (reward on a real arm) from episode bags; prints held-out accuracy"),
    "eval": ("worldsample_learner.commands.evaluate",
             "a saved policy's success rate on a sim task over several blocks of seeds, with standard errors"),
    "loop": ("worldsample_bringup.loop", "the whole closed loop in simulation over the ROS graph (main command)"),
    "params": ("worldsample_bringup.params", "every node's parameters: defaults, loop.yaml's values, descriptions"),
    "experiment": ("worldsample_learner.drivers.experiment", "reproduce the paper's comparisons in simulation"),
}

BENCHMARKS: dict[str, tuple[str, str]] = {
    "sim": ("worldsample_control.bench", "simulator steps/s and DDS image latency"),
    "wm": ("worldsample_worldmodel.bench", "world-model training and generation throughput"),
    "learner": ("worldsample_learner.bench", "our SAC beside stable-baselines3 SAC on one task; time per phase; UTD/critic scaling"),
    "encoder": ("worldsample_learner.bench_encoder", "what the frozen pixel encoder's features locate (held-out mm) beside "
                "predicting the mean and proprio alone"),
    "wmfeatures": ("worldsample_learner.bench_wmfeatures", "a loop's imagined frames through the policy's frozen encoder: "
                   "object positions (mm) and feature skill beside copy-last-frame"),
    "transfer": ("worldsample_bringup.bench_transfer", "one episode bag between two hosts (payload link) beside a local copy"),
}


def _add_module_command(subparsers, name: str, module_name: str, help_text: str) -> None:
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure makes the command unavailable, not the tool
        parser = subparsers.add_parser(name, help=f"{help_text} [unavailable: {exc}]")
        parser.set_defaults(func=lambda _args, e=exc, m=module_name: _unavailable(m, e))
        return
    parser = subparsers.add_parser(name, help=help_text, description=module.__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(parser)
    parser.set_defaults(func=module.run)


def _unavailable(module_name: str, exc: BaseException) -> int:
    print(f"worldsample: this command could not be loaded ({module_name}: {exc}).\n"
          "Run `worldsample doctor` to see what is missing.", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="worldsample",
        description="WorldSample: closed-loop real-robot RL with a world model (ROS 2).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        _add_module_command(subparsers, name, module_name, help_text)
    bench = subparsers.add_parser("bench", help="benchmarks: sim, wm, learner (ratios against an in-run baseline)")
    bench_sub = bench.add_subparsers(dest="bench", metavar="WHAT")
    for name, (module_name, help_text) in BENCHMARKS.items():
        _add_module_command(bench_sub, name, module_name, help_text)
    bench.set_defaults(func=lambda _a: (bench.print_help(), 2)[1])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("worldsample: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` & co., which closed it: not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
