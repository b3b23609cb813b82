"""Thin rclpy nodes of worldsample_learner: each owns a core object and converts messages.

The console scripts are the entries below: each starts its node module through
`worldsample_common.nodes.start` (a Ctrl-C during the node's imports ends it without a traceback).
"""

from worldsample_common.nodes.start import node_entry

learner_node = node_entry("worldsample_learner.nodes.learner_node")
success_node = node_entry("worldsample_learner.nodes.success_node")
