"""Thin rclpy nodes of worldsample_learner: each owns a core object and converts messages."""
