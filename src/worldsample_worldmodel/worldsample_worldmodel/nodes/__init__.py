"""Thin rclpy nodes of worldsample_worldmodel: each owns a core object and converts messages.

The console script is the entry of `entries.py`: it starts the node module through
`worldsample_common.nodes.start` (a Ctrl-C during the node's imports ends it without a traceback).
"""
