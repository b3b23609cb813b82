"""Thin rclpy nodes of worldsample_worldmodel: each owns a core object and converts messages."""
