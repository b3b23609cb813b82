"""Closed loop in simulation: our MuJoCo Franka node + arm control + actor + recorder + world model + learner.

    worldsample demos --task peg_insertion --episodes 10 --out runs/peg_demos      # demonstrations first
    ros2 launch worldsample_bringup sim_loop.launch.py task:=peg_insertion run_dir:=runs/peg mode:=ppl \
        demos_dir:=runs/peg_demos episodes_per_policy:=5 params_file:=my_loop.yaml

The nodes and their parameters come from `worldsample_bringup.graph.loop_graph`, the same
description `worldsample loop` runs as processes, so the two cannot drift.
"""

from worldsample_bringup.launch_support import graph_launch_description


def generate_launch_description():
    return graph_launch_description("sim")
