"""Turn the node graph of `graph.py` into a ROS 2 launch description (needs `launch`, `launch_ros`).

This is the only place that imports `launch`/`launch_ros`, which a full ROS 2 install has and
our PyPI-wheel environment does not; everything it calls (`graph.loop_graph`, the argument
table) is plain Python and tested. The three launch files are one line each on top of it.
"""

from __future__ import annotations

from typing import Any

from .graph import (
    LOOP_ARGUMENTS,
    RESOLVED_PARAMS,
    NodeSpec,
    config_path,
    loop_graph,
    merged_node_params,
    write_node_params,
)

ARM_CONTROLLER = "fr3_arm_controller"  # core.franka_interface.FrankaTopics.arm_controller

# franka_ros2 launch files the real / Gazebo loops include, and the arguments we pass them. Every
# name is checked against the arguments the included file declares before anything starts
# (`check_include_arguments`), so a renamed upstream argument fails the launch instead of being
# silently ignored. Verified against franka_ros2 v3.4.0 (jazzy):
# - franka_bringup/launch/franka.launch.py (robot_type since v3.2.0; controllers_yaml since v2.0.3):
#   robot state publisher, ros2_control_node with the FR3 hardware and the controllers file we give,
#   joint_state_broadcaster, franka_robot_state_broadcaster, the Franka Hand node (load_gripper).
#   (example.launch.py's controller_names spawns only controllers of franka_bringup's own
#   controllers.yaml, which has no trajectory controller.)
# - franka_gazebo_bringup/launch/gazebo_franka_arm_example_controller.launch.py: Gazebo, the FR3 model,
#   and a spawner for joint_state_broadcaster plus `controller`; only joint_states, no state
#   broadcaster, gripper node or error recovery.
FRANKA_BRINGUP = {
    "real": ("franka_bringup", "launch/franka.launch.py",
             lambda a, yaml: {"robot_type": "fr3", "robot_ip": a["robot_ip"], "load_gripper": "true",
                              "namespace": a["namespace"], "controllers_yaml": yaml}),
    "gazebo": ("franka_gazebo_bringup", "launch/gazebo_franka_arm_example_controller.launch.py",
               lambda a, yaml: {"robot_type": "fr3", "load_gripper": "true", "franka_hand": "franka_hand",
                                "namespace": a["namespace"], "controller": ARM_CONTROLLER, "rviz": "false"}),
}


def check_include_arguments(package: str, path: str, arguments: dict[str, str], context: Any) -> None:
    """Raise when ``package/path`` does not declare every argument we pass (names a renamed argument)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    try:
        share = get_package_share_directory(package)
    except PackageNotFoundError as exc:
        raise RuntimeError(f"package {package!r} is not installed (franka_ros2 on jazzy, see README)") from exc
    file = f"{share}/{path}"
    declared = {a.name for a in PythonLaunchDescriptionSource(file).get_launch_description(context)
                .get_launch_arguments()}
    unknown = sorted(set(arguments) - declared)
    if unknown:
        raise RuntimeError(f"{file} declares no argument(s) {unknown} (it declares {sorted(declared)}): this "
                           "franka_ros2 version does not match the one real_loop/gazebo_loop are written for "
                           "(v3.4.0, see README)")


def arm_controller_spawner(yaml: str, namespace: str) -> Any:
    """controller_manager's spawner for the trajectory controller, type and parameters from ``yaml``."""
    from launch_ros.actions import Node

    return Node(package="controller_manager", executable="spawner", namespace=namespace or None,
                arguments=[ARM_CONTROLLER, "--param-file", yaml, "--controller-manager-timeout", "60"],
                output="screen")


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
        from pathlib import Path

        write_node_params(merged_node_params(args["params_file"]), Path(args["run_dir"]) / RESOLVED_PARAMS)
        if kind in FRANKA_BRINGUP:
            package, path, launch_args = FRANKA_BRINGUP[kind]
            yaml = str(config_path("fr3_controllers.yaml"))
            include_args = launch_args(args, yaml)
            check_include_arguments(package, path, include_args, context)
            source = PythonLaunchDescriptionSource([FindPackageShare(package), "/", path])
            actions[:0] = [IncludeLaunchDescription(source, launch_arguments=include_args.items()),
                           arm_controller_spawner(yaml, args["namespace"])]
        return actions

    declared = [DeclareLaunchArgument(name, default_value=str(default), description=help_text)
                for name, (default, help_text) in LOOP_ARGUMENTS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=nodes)])
