"""Thin rclpy nodes of worldsample_control: each owns a core object and converts messages.

The console scripts are the entries of `entries.py`: each starts its node module through
`worldsample_common.nodes.start` (a Ctrl-C during the node's imports ends it without a traceback).
"""
