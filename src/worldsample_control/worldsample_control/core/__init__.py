"""ROS-free core of worldsample_control: plain Python/PyTorch/MuJoCo, no rclpy import."""
