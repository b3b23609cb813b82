"""Thin rclpy nodes of worldsample_worldmodel: each owns a core object and converts messages.

The console script is the entry below: it starts the node module through
`worldsample_common.nodes.start` (a Ctrl-C during the node's imports ends it without a traceback).
"""

from worldsample_common.nodes.start import node_entry

world_model_node = node_entry("worldsample_worldmodel.nodes.world_model_node")
