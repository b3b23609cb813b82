"""ROS-free core of worldsample_worldmodel: plain Python/PyTorch/MuJoCo, no rclpy import."""
