"""Turn the node graph of `graph.py` into a ROS 2 launch description (needs `launch`, `launch_ros`).

This is the only place that imports `launch`/`launch_ros`, which a full ROS 2 install has and
our PyPI-wheel environment does not; everything it calls (`graph.loop_graph`, the argument
table) is plain Python and tested. The three launch files are one line each on top of it.
"""

from __future__ import annotations

from typing import Any

from .graph import LOOP_ARGUMENTS, NodeSpec, loop_graph

FRANKA_BRINGUP = {
    # franka_ros2 (jazzy, v3.x): FR3 with the topic-driven Cartesian impedance controller.
    "real": ("franka_bringup", "launch/example.launch.py",
             lambda a: {"controller_names": "cartesian_impedance_example_controller", "robot_ips": a["robot_ip"]}),
    # franka_ros2's Gazebo bringup: only joint_states, no state broadcaster / gripper / error recovery.
    "gazebo": ("franka_gazebo_bringup", "launch/gazebo_franka_arm_example_controller.launch.py",
               lambda a: {"controller": "cartesian_impedance_example_controller", "load_gripper": "true"}),
}


def to_launch_node(spec: NodeSpec) -> Any:
    from launch_ros.actions import Node

    return Node(package=spec.package, executable=spec.executable, name=spec.name, namespace=spec.namespace or None,
                parameters=[dict(spec.parameters)], remappings=list(spec.remappings), output="screen",
                sigterm_timeout=str(spec.sigterm_timeout_s), sigkill_timeout=str(spec.sigkill_timeout_s))


def graph_launch_description(kind: str) -> Any:
    """LaunchDescription for `kind` in {"sim", "real", "gazebo"} with the loop's launch arguments."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch.substitutions import LaunchConfiguration
    from launch_ros.substitutions import FindPackageShare

    def nodes(context):
        args = {name: LaunchConfiguration(name).perform(context) for name in LOOP_ARGUMENTS}
        actions = [to_launch_node(spec) for spec in loop_graph(kind, **args)]
        if kind in FRANKA_BRINGUP:
            package, path, launch_args = FRANKA_BRINGUP[kind]
            source = PythonLaunchDescriptionSource([FindPackageShare(package), "/", path])
            actions.insert(0, IncludeLaunchDescription(source, launch_arguments=launch_args(args).items()))
        return actions

    declared = [DeclareLaunchArgument(name, default_value=str(default), description=help_text)
                for name, (default, help_text) in LOOP_ARGUMENTS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=nodes)])
