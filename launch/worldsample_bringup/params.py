"""`worldsample params`: every node's parameters, their defaults, loop.yaml's values and descriptions.

    worldsample params                  # the nodes and how many parameters each has
    worldsample params learner          # every parameter of one node ("ppl." ones included)
    worldsample params learner --params my.yaml   # with a parameter file laid over loop.yaml

Each node declares one ROS parameter per field of its config dataclass (the same tree that
`worldsample loop`, `worldsample sim` and the launch files check parameter files against);
launch/config/loop.yaml sets some of them, keyed by node name (marked ``(file)``). Values that the
launch arguments decide (task, run directory, cameras, ...) are set when a graph is built and may
not be set in the file.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("node", nargs="?", default="", help="node name (as in loop.yaml); none: list the nodes")
    parser.add_argument("--params", default="", help="parameter file laid over config/loop.yaml")


def run(args: argparse.Namespace) -> int:
    from worldsample_common.core.params import config_params

    from .graph import config_path, merged_node_params, node_param_configs

    try:
        given = merged_node_params(args.params)
    except ValueError as exc:
        print(f"worldsample params: {exc}", file=sys.stderr)
        return 2
    configs = node_param_configs()
    if not args.node:
        print(f"nodes and their parameters (values set in {config_path('loop.yaml')}" +
              (f" + {args.params}" if args.params else "") + "):")
        for name, cfg in configs.items():
            print(f"  {name:<18} {len(config_params(cfg)):>4} parameters, {len(given.get(name, {})):>3} set in the "
                  f"file  ({type(cfg).__name__})")
        print("worldsample params NODE lists one node's parameters")
        return 0
    if args.node not in configs:
        print(f"worldsample params: unknown node {args.node!r}; known: {', '.join(configs)}", file=sys.stderr)
        return 2
    values = given.get(args.node, {})
    for name, spec in config_params(configs[args.node]).items():
        default = list(spec.default) if spec.is_array else spec.default
        mark = f" = {values[name]!r} (file)" if name in values else ""
        print(f"{name} [{spec.kind.__name__}{'[]' if spec.is_array else ''}] default {default!r}{mark}\n"
              f"    {spec.description}")
    return 0
