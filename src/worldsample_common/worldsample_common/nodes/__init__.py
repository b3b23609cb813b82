"""rclpy support shared by every package's nodes: QoS, stamps, parameters, main(), message conversions."""
