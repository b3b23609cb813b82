"""ROS-free core of worldsample_common: the types and file formats every package shares (no rclpy)."""
