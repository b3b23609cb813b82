"""ROS-free core of worldsample_learner: plain Python/PyTorch/MuJoCo, no rclpy import."""
