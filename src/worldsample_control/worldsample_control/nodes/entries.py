"""Console-script entries of the nodes (``<node> = worldsample_control.nodes.entries:<node>``), apart from the node modules
themselves: an entry named like its node module in ``nodes/__init__`` would be replaced by that submodule as
soon as it is imported."""

from worldsample_common.nodes.start import node_entry

sim_node = node_entry("worldsample_control.nodes.sim_node")
arm_control_node = node_entry("worldsample_control.nodes.arm_control_node")
camera_node = node_entry("worldsample_control.nodes.camera_node")
actor_node = node_entry("worldsample_control.nodes.actor_node")
recorder_node = node_entry("worldsample_control.nodes.recorder_node")
