"""Closed loop in simulation: our MuJoCo Franka node + arm control + actor + recorder + world model + learner.

    ros2 launch worldsample_bringup sim_loop.launch.py task:=peg_insertion run_dir:=runs/peg mode:=ppl

The nodes and their parameters come from `worldsample_bringup.graph.loop_graph`, the same
description `worldsample loop` runs as processes, so the two cannot drift.
"""

from worldsample_bringup.launch_support import graph_launch_description


def generate_launch_description():
    return graph_launch_description("sim")
