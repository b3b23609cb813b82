"""Thin rclpy nodes of worldsample_control: each owns a core object and converts messages.

The console scripts are the entries below: each starts its node module through
`worldsample_common.nodes.start` (a Ctrl-C during the node's imports ends it without a traceback).
"""

from worldsample_common.nodes.start import node_entry

sim_node = node_entry("worldsample_control.nodes.sim_node")
arm_control_node = node_entry("worldsample_control.nodes.arm_control_node")
camera_node = node_entry("worldsample_control.nodes.camera_node")
actor_node = node_entry("worldsample_control.nodes.actor_node")
recorder_node = node_entry("worldsample_control.nodes.recorder_node")
