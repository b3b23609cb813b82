"""The robot graph as separate processes over DDS: sim + arm_control + actor (scripted expert) + recorder.

Two short episodes; the bags must be valid, hold every topic of the episode, and their
transitions must match what the actor published and what the simulator (replayed in-process
with the same seed and actions) produces.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from worldsample_common.testing import ros_available

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "launch"))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = [str(ROOT / "src" / p) for p in ("worldsample_control", "worldsample_worldmodel", "worldsample_learner")]
    env["PYTHONPATH"] = os.pathsep.join(src + [str(ROOT / "launch"), env.get("PYTHONPATH", "")])
    env["ROS_DOMAIN_ID"] = str(os.getpid() % 100 + 1)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.setdefault("MUJOCO_GL", "egl")
    return env


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.skipif(not ros_available(), reason="rclpy / worldsample_msgs not importable (source scripts/env.sh)")
def test_sim_graph_records_two_episodes(tmp_path):
    from worldsample_bringup.graph import sim_graph
    from worldsample_bringup.process_runner import ProcessGraph
    from worldsample_common.core import bag_io
    from worldsample_common.core.episode import Source
    from worldsample_control.core.sim import EnvConfig, make_env

    steps, seed, task = 10, 7, "push"
    specs = sim_graph(task, tmp_path, policy="scripted", episodes=2, max_steps=steps, seed=seed)
    graph = ProcessGraph(specs, env=_env(), log_dir=tmp_path / "logs")
    with graph:
        finished = graph.wait(lambda: graph.nodes["actor"].returncode is not None, timeout=50, allow_exit=("actor",))
        assert finished, "actor did not finish 2 episodes in 50 s\n" + graph.log_tail("actor")
        assert graph.nodes["actor"].returncode == 0, graph.log_tail("actor")
        codes = graph.stop()
    assert all(c == 0 for c in codes.values()), (codes, [graph.log_tail(n) for n in codes])

    episodes = _jsonl(tmp_path / "actor" / "episodes.jsonl")
    logged = _jsonl(tmp_path / "actor" / "steps.jsonl")
    assert len(episodes) == 2 and [e["seed"] for e in episodes] == [seed, seed + 1]
    bags = sorted((tmp_path / "bags").iterdir())
    assert [b.name for b in bags] == sorted(e["episode_id"] for e in episodes)

    for info in episodes:
        bag = tmp_path / "bags" / info["episode_id"]
        ep = bag_io.read_episode_bag(bag)
        assert ep.source == Source.DEMO and ep.task == task and ep.length == info["length"] == steps
        mine = [s for s in logged if s["episode_id"] == info["episode_id"]]
        np.testing.assert_array_equal(ep.actions, np.array([s["action"] for s in mine], np.float32))
        np.testing.assert_array_equal(ep.rewards, np.array([s["reward"] for s in mine], np.float32))
        assert ep.success == info["success"] and bool(ep.successes[-1]) == bool(mine[-1]["success"])
        assert ep.truncated[-1] or ep.terminated[-1]
        assert set(ep.images) == {"front", "wrist"} and ep.images["front"].shape == (steps + 1, 64, 64, 3)

        topics: dict[str, int] = {}
        actions = []
        end = None
        for topic, msgtype, _, msg in bag_io.read_bag_messages(bag):
            topics[topic] = topics.get(topic, 0) + 1
            if msgtype == "worldsample_msgs/msg/PolicyAction":
                actions.append(np.asarray(msg.action, np.float32))
            if msgtype == bag_io.EPISODE_INFO_TYPE and msg.event == msg.EVENT_END:
                end = msg
        for needed in ("/cameras/front/image_raw", "/cameras/wrist/image_raw", "/arm/applied_action",
                       "/franka_robot_state_broadcaster/current_pose", "/franka_gripper/joint_states",
                       "/transitions/real", "/episodes", "/sim/reward"):
            assert topics.get(needed, 0) > 0, f"{needed} missing from {bag}: {topics}"
        assert end is not None and end.length == steps and end.success == ep.success and end.seed == info["seed"]
        # every action sent to the arm is in the bag, in order, and equals the transition's action
        np.testing.assert_array_equal(np.array(actions[:steps]), ep.actions)

        # The simulator produced these transitions: replay the actions in-process from the same seed.
        env = make_env(task, EnvConfig(max_episode_steps=steps, image_size=64))
        try:
            obs = env.reset(seed=info["seed"])
            np.testing.assert_array_equal(obs.images["front"], ep.images["front"][0])
            np.testing.assert_allclose(obs.proprio, ep.proprio[0], atol=1e-6)
            rewards, successes = [], []
            for a in ep.actions:
                res = env.step(a)
                rewards.append(res.reward)
                successes.append(res.success)
            np.testing.assert_allclose(rewards, ep.rewards, atol=1e-3)
            np.testing.assert_allclose(res.observation.proprio[:4], ep.proprio[-1][:4], atol=1e-3)
            assert successes == ep.successes.tolist()
        finally:
            env.close()


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.skipif(not ros_available(), reason="rclpy / worldsample_msgs not importable (source scripts/env.sh)")
def test_arm_control_commands_the_sim_through_the_joint_trajectory_path(tmp_path):
    """The real nodes over DDS: arm control turns actions into JointTrajectory commands on
    fr3_arm_controller/joint_trajectory (fr3_joint1..7, our IK), the simulator follows them. A NaN action
    holds the arm, a huge one is clipped to one safety step, and steered actions bring the MuJoCo end
    effector to Cartesian targets (issue 14)."""
    import time

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseStamped
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from trajectory_msgs.msg import JointTrajectory
    from worldsample_bringup.graph import sim_graph
    from worldsample_bringup.process_runner import ProcessGraph
    from worldsample_control.core.fr3_kinematics import FR3IK, IKConfig
    from worldsample_control.core.joint_command import joints_from_state
    from worldsample_control.core.sim.config import SIM_TCP_OFFSET

    from worldsample_msgs.msg import EpisodeInfo, PolicyAction

    specs = [s for s in sim_graph("push", tmp_path, render=False) if s.name in ("sim", "arm_control")]
    env = _env()
    os.environ["ROS_DOMAIN_ID"] = env["ROS_DOMAIN_ID"]
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    fk = FR3IK(IKConfig(tcp_xyz=SIM_TCP_OFFSET[0], tcp_quat=SIM_TCP_OFFSET[1]))
    with ProcessGraph(specs, env=env, log_dir=tmp_path / "logs") as graph:
        rclpy.init()
        node = rclpy.create_node("actor")  # arm control applies only the actor's actions
        try:
            poses, commands, reports = [], [], []
            be = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
            rel = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
            node.create_subscription(PoseStamped, "franka_robot_state_broadcaster/current_pose", poses.append, be)
            node.create_subscription(JointTrajectory, "fr3_arm_controller/joint_trajectory", commands.append, rel)
            node.create_subscription(DiagnosticArray, "arm/safety", reports.append, rel)
            pub = node.create_publisher(PolicyAction, "policy/action", rel)
            episodes = node.create_publisher(EpisodeInfo, "episodes", QoSProfile(depth=100,
                                                                                 reliability=ReliabilityPolicy.RELIABLE))

            def spin_until(cond, what, timeout=30.0):
                deadline = time.monotonic() + timeout
                while not cond():
                    graph.check()
                    assert time.monotonic() < deadline, f"timed out waiting for {what}"
                    rclpy.spin_once(node, timeout_sec=0.05)

            def stamp_ns(msg):
                return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec

            def xyz(pose):
                return np.array([pose.pose.position.x, pose.pose.position.y, pose.pose.position.z])

            def commanded(traj):
                assert list(traj.joint_names) == [f"fr3_joint{i}" for i in range(1, 8)] and len(traj.points) == 1
                return fk.pose(joints_from_state(traj.joint_names, traj.points[0].positions))[0]

            spin_until(lambda: poses and pub.get_subscription_count() > 0 and episodes.get_subscription_count() > 0,
                       "the simulator pose and arm control")
            spin_until(lambda: len(poses) >= 2, "a second pose (arm control has it too)")
            episodes.publish(EpisodeInfo(event=EpisodeInfo.EVENT_START, episode_id="probe"))
            time.sleep(0.3)
            pose = poses[-1]
            p0 = xyz(pose)
            step = [0]

            def send(action):
                msg = PolicyAction(episode_id="probe", step=step[0], action=[float(v) for v in action])
                msg.header.stamp = poses[-1].header.stamp
                step[0] += 1
                pub.publish(msg)

            send([float("nan"), 0.0, 0.0, 0.0])
            spin_until(lambda: commands and reports, "the hold command and the safety report")
            reasons = [s.values[0].value for r in reports for s in r.status]
            assert "non_finite_action" in reasons
            np.testing.assert_allclose(commanded(commands[-1]), p0, atol=1e-4)  # held where the arm is

            spin_until(lambda: poses[-1].header.stamp != pose.header.stamp, "the simulator to step")
            n_cmd, n_rep = len(commands), len(reports)
            p1 = xyz(poses[-1])
            send([100.0, 0.0, -50.0, 1.0])
            spin_until(lambda: len(commands) > n_cmd and len(reports) > n_rep, "the clipped command")
            assert np.linalg.norm(commanded(commands[-1]) - p1) <= 0.035 + 1e-4
            assert "action_out_of_range" in [s.values[0].value for r in reports[n_rep:] for s in r.status]

            # steer to Cartesian targets with actions (normalised steps of 2 cm, which arm control integrates
            # like an impedance equilibrium); then hold still: the simulated end effector must be there
            scale = 0.02
            for target in (np.array([0.55, 0.12, 0.15]), np.array([0.45, -0.1, 0.08])):
                for i in range(30):
                    n, seen = len(commands), stamp_ns(poses[-1])
                    err = target - commanded(commands[-1])
                    send([*np.clip(err / scale, -1.0, 1.0), -1.0] if i < 20 else [0.0, 0.0, 0.0, -1.0])
                    spin_until(lambda n=n: len(commands) > n, "the joint command")
                    # like an actor: the next action after the observation of this step
                    spin_until(lambda seen=seen: stamp_ns(poses[-1]) > seen, "the simulator to step")
                np.testing.assert_allclose(commanded(commands[-1]), target, atol=1e-4)  # the IK got the target
                reached = xyz(poses[-1])
                print(f"target {target} reached {np.round(reached, 4)}: {np.linalg.norm(reached - target) * 1000:.2f} mm")
                assert np.linalg.norm(reached - target) < 0.002, (target, reached)
        finally:
            node.destroy_node()
            rclpy.shutdown()
        codes = graph.stop()
    assert all(c == 0 for c in codes.values()), codes


def test_process_graph_escalates_signals_and_reports_failures(tmp_path):
    from worldsample_bringup.graph import NodeSpec, format_param
    from worldsample_bringup.process_runner import NodeFailed, ProcessGraph

    (tmp_path / "polite.py").write_text(
        "import sys, time\ntry:\n    print('ready', flush=True)\n    time.sleep(60)\n"
        "except KeyboardInterrupt:\n    sys.exit(0)\n")
    (tmp_path / "stubborn.py").write_text(
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)\n")
    (tmp_path / "crash.py").write_text("import sys\nsys.exit(3)\n")
    # the test modules beside the workspace (nodes start through worldsample_common.nodes.start)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(tmp_path), os.environ.get("PYTHONPATH")))))
    specs = [NodeSpec("p", "polite", "polite", {"a": 1, "s": "x y", "n": "1.5", "l": ["u", "v"], "b": True},
                      [("in", "out")], module="polite"),
             NodeSpec("p", "stubborn", "stubborn", module="stubborn")]
    graph = ProcessGraph(specs, env=env, log_dir=tmp_path / "logs", sigint_timeout_s=1.0, sigterm_timeout_s=1.0)
    with graph:
        assert graph.wait(lambda: all("] ready" in graph.log_tail(n) for n in ("polite", "stubborn")), timeout=20)
        codes = graph.stop()
    assert codes == {"stubborn": -9, "polite": 0}
    log = (tmp_path / "logs" / "polite.log").read_text()
    for arg in ("__node:=polite", "a:=1", "s:=x y", "n:='1.5'", "l:=[u, v]", "b:=true", "in:=out"):
        assert arg in log
    assert format_param("true") == "'true'" and format_param(2.0) == "2.0"
    with pytest.raises(ValueError, match="empty list"):
        format_param([])
    crash = ProcessGraph([NodeSpec("p", "crash", "crash", module="crash")], env=env, log_dir=tmp_path / "logs2")
    with crash, pytest.raises(NodeFailed, match="crash.*code 3"):
        crash.wait(lambda: False, timeout=20)


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.skipif(not ros_available(), reason="rclpy / worldsample_msgs not importable (source scripts/env.sh)")
def test_teleop_demonstration_is_recorded_as_a_demo_bag(tmp_path):
    """actor policy:=teleop forwards the operator's teleop/action commands; the recorder writes a DEMO bag."""
    import time

    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from worldsample_bringup.graph import sim_graph
    from worldsample_bringup.process_runner import ProcessGraph
    from worldsample_common.core import bag_io
    from worldsample_common.core.episode import Source

    from worldsample_msgs.msg import PolicyAction

    steps, command, stay = 30, [1.0, 0.0, 0.0, -1.0], [0.0, 0.0, 0.0, -1.0]
    specs = sim_graph("push", tmp_path, policy="teleop", source="demo", episodes=1, max_steps=steps, seed=3)
    env = _env()
    os.environ["ROS_DOMAIN_ID"] = env["ROS_DOMAIN_ID"]
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    graph = ProcessGraph(specs, env=env, log_dir=tmp_path / "logs")
    with graph:
        rclpy.init()
        node = rclpy.create_node("teleop_device")
        try:
            pub = node.create_publisher(PolicyAction, "teleop/action",
                                        QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
            deadline = time.monotonic() + 50
            sent = []  # what the actor sent to the arm
            node.create_subscription(PolicyAction, "policy/action", lambda m: sent.append(list(m.action)),
                                     QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
            i = 0
            while graph.nodes["actor"].returncode is None:
                graph.check(allow_exit=("actor",))
                assert time.monotonic() < deadline, "actor did not finish its teleop episode\n" + graph.log_tail("actor")
                i += 1
                if command in sent and i % 2:  # commands get through: glitches now, which the actor ignores
                    pub.publish(PolicyAction(action=[float("nan"), 0.0, 0.0, 0.0]))
                pub.publish(PolicyAction(action=command))
                rclpy.spin_once(node, timeout_sec=0.02)
        finally:
            node.destroy_node()
            rclpy.shutdown()
        assert graph.nodes["actor"].returncode == 0, graph.log_tail("actor")
        codes = graph.stop()
    assert all(c == 0 for c in codes.values()), codes

    (bag,) = sorted((tmp_path / "bags").iterdir())
    ep = bag_io.read_episode_bag(bag)
    assert ep.source == Source.DEMO and ep.policy_version == "" and ep.length == steps
    actions = ep.actions.tolist()
    # the episode waited for the operator: every action is the command (a late one may be "stay")
    assert all(a in (command, stay) for a in actions) and actions[0] == command, actions
    assert actions.count(command) >= steps // 2 and actions[-1] == command, actions
    assert ep.proprio[-1][0] - ep.proprio[0][0] > 0.02  # the arm followed the operator along +x
    assert "teleop/action: teleop command [nan, 0.0, 0.0, 0.0] is not finite; ignored" in \
        (tmp_path / "logs" / "actor.log").read_text()
