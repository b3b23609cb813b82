"""Stand-in franka_ros2 packages for launch tests (issue 12 item 5, issue 14): an install prefix with
``franka_bringup``, ``franka_gazebo_bringup`` and ``controller_manager`` whose launch files declare the
same arguments as franka_ros2 v3.4.0's (franka_bringup/launch/franka.launch.py and
franka_gazebo_bringup/launch/gazebo_franka_arm_example_controller.launch.py, read at tag v3.4.0), a
stand-in robot that publishes franka_ros2-shaped state and follows JointTrajectory commands on
``fr3_arm_controller/joint_trajectory``, and a stand-in spawner that checks its controller has a type.
Written from those files' interfaces, not copied from them.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

# name -> default (None: no default, the argument is required), as declared at franka_ros2 v3.4.0
FRANKA_LAUNCH_ARGS: dict[str, str | None] = {
    "robot_type": "", "arm_prefix": "", "namespace": "", "robot_ip": "172.16.0.3", "load_gripper": "false",
    "use_fake_hardware": "false", "fake_sensor_commands": "false", "joint_state_rate": "30",
    "load_franka_robot_state_broadcaster": "true", "controllers_yaml": "controllers.yaml",
}
GAZEBO_LAUNCH_ARGS: dict[str, str | None] = {
    "load_gripper": "false", "franka_hand": "franka_hand", "robot_type": "fr3", "namespace": "",
    "controller": "gravity_compensation_example_controller", "gz_args": "-r empty.sdf", "rviz": "true",
}

_LAUNCH = '''
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

ARGS = {args!r}


def nodes(context):
    a = {{k: LaunchConfiguration(k).perform(context) for k in ARGS}}
    ns = a["namespace"]
    return [
        Node(package="franka_bringup", executable="standin_robot", namespace=ns,
             parameters=[{{"mode": "{mode}", "log": "{log}/robot.jsonl", "args": repr(a)}}], output="screen"),
        Node(package="controller_manager", executable="spawner", namespace=ns,
             arguments={spawn}, output="screen"),
    ]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(k) if v is None else DeclareLaunchArgument(k, default_value=v) for k, v in ARGS.items()]
        + [OpaqueFunction(function=nodes)])
'''

_ROBOT = '''#!{python}
"""Stand-in FR3 (franka_ros2-shaped topics); follows fr3_arm_controller/joint_trajectory exactly."""
import json
import math

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped, WrenchStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory
from worldsample_control.core.fr3_kinematics import FR3IK, matrix_to_quat

ARM = [f"fr3_joint{{i}}" for i in range(1, 8)]
FINGERS = ["fr3_finger_joint1", "fr3_finger_joint2"]


class Robot(Node):
    def __init__(self):
        super().__init__("standin_robot")
        self.mode = self.declare_parameter("mode", "real").value
        self.log = open(self.declare_parameter("log", "").value, "a")
        self.declare_parameter("args", "")
        self.ik = FR3IK()
        # start with the Franka Hand TCP at (0.45, 0, 0.3) pointing down
        self.q = self.ik.solve((0.45, 0.0, 0.3), (1.0, 0.0, 0.0, 0.0), (0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785)).q
        be = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        rel = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pubs = {{"joint_states": self.create_publisher(JointState, "joint_states", rel)}}
        if self.mode == "real":  # franka_robot_state_broadcaster (best effort since v3.3.0) + gripper node
            self.pubs["pose"] = self.create_publisher(PoseStamped, "franka_robot_state_broadcaster/current_pose", be)
            self.pubs["measured"] = self.create_publisher(
                JointState, "franka_robot_state_broadcaster/measured_joint_states", be)
            self.pubs["wrench"] = self.create_publisher(
                WrenchStamped, "franka_robot_state_broadcaster/external_wrench_in_base_frame", be)
            self.pubs["gripper"] = self.create_publisher(JointState, "franka_gripper/joint_states", rel)
        self.create_subscription(JointTrajectory, "fr3_arm_controller/joint_trajectory", self.on_traj, rel)
        self.create_timer(1.0 / 30.0, self.tick)
        self.log.write(json.dumps({{"event": "started", "mode": self.mode,
                                    "args": self.get_parameter("args").value}}) + "\\n")
        self.log.flush()

    def on_traj(self, msg):
        ok = sorted(msg.joint_names) == ARM and len(msg.points) >= 1 and len(msg.points[-1].positions) == 7
        rec = {{"event": "command", "ok": ok, "joint_names": list(msg.joint_names)}}
        if ok:
            q = dict(zip(msg.joint_names, msg.points[-1].positions))
            q = np.array([q[n] for n in ARM])
            t = msg.points[-1].time_from_start
            rec.update(positions=q.tolist(), time_from_start=t.sec + t.nanosec * 1e-9,
                       measured=self.q.tolist())
            if np.isfinite(q).all():
                self.q = q
        self.log.write(json.dumps(rec) + "\\n")
        self.log.flush()

    def tick(self):
        stamp = self.get_clock().now().to_msg()
        js = JointState(name=ARM + FINGERS, position=list(self.q) + [0.04, 0.04])
        js.header.stamp = stamp
        self.pubs["joint_states"].publish(js)
        if self.mode != "real":
            return
        t = self.ik.forward(self.q)
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, "fr3_link0"
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in t[:3, 3])
        x, y, z, w = matrix_to_quat(t[:3, :3])
        o = pose.pose.orientation
        o.x, o.y, o.z, o.w = float(x), float(y), float(z), float(w)
        self.pubs["pose"].publish(pose)
        m = JointState(name=ARM, position=list(self.q))
        m.header.stamp = stamp
        self.pubs["measured"].publish(m)
        wr = WrenchStamped()
        wr.header.stamp = stamp
        self.pubs["wrench"].publish(wr)
        g = JointState(name=FINGERS, position=[0.04, 0.04])
        g.header.stamp = stamp
        self.pubs["gripper"].publish(g)


def main():
    rclpy.init()
    node = Robot()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass


if __name__ == "__main__":
    main()
'''

_SPAWNER = '''#!{python}
"""Stand-in controller_manager spawner: records its arguments; fails like the real one when a controller
given a --param-file has no type there."""
import json
import sys

import yaml

argv = [a for a in sys.argv[1:] if not a.startswith("--ros-args")]
if "--ros-args" in sys.argv:
    argv = sys.argv[1:sys.argv.index("--ros-args")]
names, files, i = [], [], 0
while i < len(argv):
    if argv[i] in ("--param-file", "-p"):
        files.append(argv[i + 1]); i += 2
    elif argv[i] in ("--controller-manager-timeout", "-c", "--controller-ros-args"):
        i += 2
    elif argv[i].startswith("-"):
        i += 1
    else:
        names.append(argv[i]); i += 1
rec = {{"names": names, "param_files": files, "types": {{}}}}
for f in files:
    data = yaml.safe_load(open(f))
    for n in names:
        body = data.get("/**", {{}}).get(n) or data.get(n) or {{}}
        rec["types"][n] = (body.get("ros__parameters") or {{}}).get("type")
with open("{log}/spawner.jsonl", "a") as out:
    out.write(json.dumps(rec) + "\\n")
missing = [n for n in names if files and not rec["types"].get(n)]
if missing:
    print(f"[spawner] no type for {{missing}} in {{files}}", file=sys.stderr)
    sys.exit(1)
'''


def _exe(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def make_prefix(root: Path, log_dir: Path, rename: dict[str, str] | None = None) -> Path:
    """Write the stand-in install prefix under ``root``; ``rename`` renames declared arguments (old -> new),
    as an upstream release that renames one would."""
    rename = rename or {}
    prefix = root / "standin_install"
    index = prefix / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True, exist_ok=True)
    for pkg in ("franka_bringup", "franka_gazebo_bringup", "controller_manager"):
        (index / pkg).write_text("")
        (prefix / "share" / pkg).mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)

    def args(table):
        return {rename.get(k, k): v for k, v in table.items()}

    real = args(FRANKA_LAUNCH_ARGS)
    (prefix / "share/franka_bringup/launch").mkdir(parents=True, exist_ok=True)
    (prefix / "share/franka_bringup/launch/franka.launch.py").write_text(_LAUNCH.format(
        args=real, mode="real", log=log_dir,
        spawn=["joint_state_broadcaster", "franka_robot_state_broadcaster"]).replace(
        'a["namespace"]', 'a.get("namespace", "")'))
    gz = args(GAZEBO_LAUNCH_ARGS)
    (prefix / "share/franka_gazebo_bringup/launch").mkdir(parents=True, exist_ok=True)
    text = _LAUNCH.format(args=gz, mode="gazebo", log=log_dir, spawn="['joint_state_broadcaster', a['controller']]")
    (prefix / "share/franka_gazebo_bringup/launch/gazebo_franka_arm_example_controller.launch.py").write_text(
        text.replace('a["namespace"]', 'a.get("namespace", "")').replace("a['controller']",
                                                                          "a.get('controller', '')"))
    _exe(prefix / "lib/franka_bringup/standin_robot", _ROBOT.format(python=sys.executable))
    _exe(prefix / "lib/controller_manager/spawner", _SPAWNER.format(python=sys.executable, log=log_dir))
    return prefix


def env_with(prefix: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["AMENT_PREFIX_PATH"] = os.pathsep.join([str(prefix), env.get("AMENT_PREFIX_PATH", "")])
    return env
