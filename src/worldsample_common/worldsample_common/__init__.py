"""WorldSample's shared interface: what every other package uses, and nothing that uses them.

- ``core`` (ROS-free): the episode type (`episode`), the environment protocol (`env_protocol`),
  the image codec (`image_codec`), rosbag2 MCAP episode I/O and the one Transition codec
  (`bag_io`), the franka_ros2 topic and QoS tables (`franka_interface`), config dataclasses <-> ROS parameters (`params`), policy
  checkpoints by file type (`policy_registry`), atomic files and strict JSON (`files`);
- ``nodes`` (rclpy): node support (`support`: QoS, stamps, `declare_config`, `run`); Episode <->
  message conversion is `core.bag_io.codec`'s alone (its CDR bytes are what rclpy publishes);
- ``testing``: helpers the packages' tests share.

It sits right above worldsample_msgs in the package layers (tests/test_import_graph.py).
"""
