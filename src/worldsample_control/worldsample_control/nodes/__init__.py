"""Thin rclpy nodes of worldsample_control: each owns a core object and converts messages."""
