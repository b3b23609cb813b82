"""One parameter YAML holds every node's parameters (issue 15, item 1).

launch/config/loop.yaml is keyed by node name for every node of the three graphs (sim, real,
Gazebo); each node declares one ROS parameter per field of its config dataclass, and the same
trees check the file before anything starts. What the launch arguments decide cannot also be set
in the file (it would be overridden silently). The merged file a run started with is written to
RUN/params.yaml and a resumed run reads it back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from worldsample_bringup.graph import (
    RESOLVED_PARAMS,
    config_path,
    load_node_params,
    loop_graph,
    merged_node_params,
    node_param_configs,
    write_node_params,
)
from worldsample_common.core.params import config_params
from worldsample_common.testing import ros_available

ROOT = Path(__file__).resolve().parents[2]


def _key(name: str) -> str:
    return "camera_*" if name.startswith("camera_") else name


def _graph(kind: str, tmp_path: Path, params: str = "") -> dict:
    extra = {"camera_sources": "0,1"} if kind == "real" else {}
    # mode ppl: every value of the file reaches its node (rl-only turns the world model's generation off)
    return {s.name: s for s in loop_graph(kind, run_dir=str(tmp_path / "run"), params_file=params, mode="ppl", **extra)}


def _file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("kind", ["sim", "real", "gazebo"])
def test_loop_yaml_has_every_node_of_every_graph_and_only_declared_parameters(tmp_path, kind):
    sections = load_node_params(config_path("loop.yaml"))
    configs = node_param_configs()
    assert set(sections) == set(configs)  # one file, every node (and nothing else)
    specs = _graph(kind, tmp_path)
    assert {_key(n) for n in specs} <= set(sections)
    for name, spec in specs.items():
        declared = config_params(configs[_key(name)])
        assert set(spec.parameters) <= set(declared), (name, set(spec.parameters) - set(declared))
        for key, value in sections[_key(name)].items():  # the file's values reach the node
            want = list(value) if isinstance(value, tuple | list) else value
            assert spec.parameters[key] == want, (name, key)


def test_loop_yaml_shows_ppl_main_knobs_at_their_defaults():
    """PPL, the paper's method, is visible in the file: its main knobs under learner.ppl, each at
    PPLConfig's default (the file shows them; the dataclass stays the one place they are defaulted)."""
    from worldsample_learner.core.config import PPLConfig

    learner = load_node_params(config_path("loop.yaml"))["learner"]
    ppl = {k.removeprefix("ppl."): v for k, v in learner.items() if k.startswith("ppl.")}
    assert {"threshold_max", "threshold_min", "share_min", "share_max", "horizon_min", "horizon_max",
            "uncertainty_scale", "value_risk_scale"} <= set(ppl), sorted(ppl)
    assert ppl == {k: getattr(PPLConfig(), k) for k in ppl}


@pytest.mark.parametrize("profile", ["tiny.yaml", "gpu.yaml"])
@pytest.mark.parametrize("kind", ["sim", "real", "gazebo"])
def test_shipped_profiles_are_valid_over_every_graph_and_their_values_reach_the_nodes(tmp_path, kind, profile):
    """The profiles the README points at (tiny: CI and smoke tests; gpu: a real rig's learning server)
    pass the same checks as a user's file, and each of their values is what the node gets."""
    specs = _graph(kind, tmp_path, str(config_path(profile)))
    for node, values in load_node_params(config_path(profile)).items():
        for key, value in values.items():
            want = list(value) if isinstance(value, tuple | list) else value
            assert specs[node].parameters[key] == want, (profile, node, key)


def test_robot_node_values_from_a_params_file_reach_the_specs(tmp_path):
    path = _file(tmp_path, "arm_control:\n  ros__parameters:\n    safety:\n      max_velocity: 0.2\n"
                           "recorder:\n  ros__parameters:\n    record_images: false\n"
                           "sim:\n  ros__parameters:\n    reward: sparse\n"
                           "camera_*:\n  ros__parameters:\n    fps: 15\n")
    sim = _graph("sim", tmp_path, path)
    assert sim["arm_control"].parameters["safety.max_velocity"] == 0.2
    assert sim["arm_control"].parameters["safety.watchdog_timeout_s"] == 0.5  # loop.yaml's value kept
    assert sim["recorder"].parameters["record_images"] is False and sim["sim"].parameters["reward"] == "sparse"
    real = _graph("real", tmp_path, path)
    assert real["camera_front"].parameters["fps"] == real["camera_wrist"].parameters["fps"] == 15.0
    assert real["camera_wrist"].parameters["source"] == "1"


@pytest.mark.parametrize("body,fragments", [
    ("sim:\n  ros__parameters:\n    task: peg_insertion\n", ["sim", "'task'", "launch arguments"]),
    ("arm_control:\n  ros__parameters:\n    safety:\n      max_velocity: -1.0\n",
     ["arm_control", "'safety.max_velocity'"]),
    ("arm_control:\n  ros__parameters:\n    safety:\n      control_hz: 50.0\n", ["arm_control", "unknown parameter"]),
    ("actor:\n  ros__parameters:\n    reset_timeout: 3.0\n", ["actor", "did you mean 'reset_timeout_s'"]),
    ("sim:\n  ros__parameters:\n    reward: dense\n", ["sim", "'reward'", "sparse"]),
    ("camera_front:\n  ros__parameters:\n    fps: 15\n", ["unknown node", "camera_*"]),
    # the per-node names of lock-step before the one switch
    ("arm_control:\n  ros__parameters:\n    publish_mode: rate\n", ["arm_control", "'publish_mode'", "'lockstep'"]),
    ("sim:\n  ros__parameters:\n    mode: realtime\n", ["sim", "'mode'", "replaced by 'lockstep'"]),
])
def test_bad_robot_node_values_are_refused_by_node_and_key(tmp_path, body, fragments):
    with pytest.raises(ValueError) as err:
        _graph("sim", tmp_path, _file(tmp_path, body))
    assert all(f in str(err.value) for f in fragments), str(err.value)


@pytest.mark.parametrize("kind,lockstep", [("sim", True), ("real", False), ("gazebo", False)])
def test_one_lockstep_switch_reaches_every_node_that_has_it(tmp_path, kind, lockstep):
    from worldsample_bringup.graph import sim_graph
    from worldsample_control.core.node_config import LOCKSTEP_NODES

    specs = _graph(kind, tmp_path)
    have = {n for n, s in specs.items() if "lockstep" in config_params(node_param_configs()[_key(n)])}
    assert have == set(LOCKSTEP_NODES) & set(specs)
    assert {specs[n].parameters["lockstep"] for n in have} == {lockstep}
    realtime = {s.name: s for s in sim_graph("push", tmp_path, lockstep=False)}
    assert {realtime[n].parameters["lockstep"] for n in LOCKSTEP_NODES} == {False}


def test_the_merged_file_is_written_and_read_back_on_resume(tmp_path):
    from worldsample_bringup.loop import params_file

    user = _file(tmp_path, "learner:\n  ros__parameters:\n    ppl:\n      threshold_max: 0.6\n")
    merged = merged_node_params(user)
    run = tmp_path / "run"
    write_node_params(merged, run / RESOLVED_PARAMS)
    assert load_node_params(run / RESOLVED_PARAMS) == {
        n: {k: list(v) if isinstance(v, tuple) else v for k, v in p.items()} for n, p in merged.items()}
    settings = {"params": user}
    assert params_file(settings, run) == str(run / RESOLVED_PARAMS)  # what the run started with
    Path(user).write_text("learner:\n  ros__parameters:\n    ppl:\n      threshold_max: 0.9\n")  # edited later
    specs = {s.name: s for s in loop_graph("sim", run_dir=str(run), params_file=params_file(settings, run))}
    assert specs["learner"].parameters["ppl.threshold_max"] == 0.6
    assert params_file(settings, tmp_path / "fresh") == user


@pytest.mark.ros
@pytest.mark.skipif(not ros_available(), reason="rclpy / worldsample_msgs not importable (source scripts/env.sh)")
def test_each_node_declares_exactly_its_config_tree(tmp_path):
    """The nodes' declared parameters are their config trees (so the file can set any of them)."""
    import rclpy
    from worldsample_control.nodes.actor_node import ActorNode
    from worldsample_control.nodes.arm_control_node import ArmControlNode
    from worldsample_control.nodes.camera_node import CameraNode
    from worldsample_control.nodes.recorder_node import RecorderNode
    from worldsample_control.nodes.sim_node import SimNode
    from worldsample_learner.nodes.success_node import SuccessNode

    configs = node_param_configs()
    rclpy.init(args=["--ros-args", "-p", f"recorder:out_dir:={tmp_path / 'bags'}",
                     "-p", f"camera:source:={tmp_path / 'none.mp4'}"])
    try:
        for key, cls in (("sim", SimNode), ("arm_control", ArmControlNode), ("actor", ActorNode),
                         ("recorder", RecorderNode), ("camera_*", CameraNode), ("success_detector", SuccessNode)):
            node = cls()
            try:
                declared = set(node._parameters) - {"use_sim_time", "start_type_description_service"}  # rclpy's own
                want = set(config_params(configs[key]))
                assert declared == want, (key, sorted(declared - want), sorted(want - declared))
            finally:
                if hasattr(node, "on_shutdown"):
                    node.on_shutdown()
                node.destroy_node()
    finally:
        rclpy.shutdown()


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.skipif(not ros_available(), reason="rclpy / worldsample_msgs not importable (source scripts/env.sh)")
def test_worldsample_sim_runs_the_robot_nodes_with_the_files_values(tmp_path):
    """`worldsample sim --params`: sparse rewards (sim) and no images in the bag (recorder)."""
    from worldsample_common.core import bag_io
    from worldsample_common.testing import test_domain_id

    params = _file(tmp_path, "sim:\n  ros__parameters:\n    reward: sparse\n"
                             "recorder:\n  ros__parameters:\n    record_images: false\n")
    env = dict(os.environ, ROS_DOMAIN_ID=str(test_domain_id(41)), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               MUJOCO_GL="egl", PYTHONPATH=os.pathsep.join([str(ROOT / "launch"), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "worldsample_bringup.cli", "sim", "--task", "push", "--episodes", "1",
                           "--max-steps", "6", "--out", str(out), "--params", params],
                          env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (bag,) = bag_io.find_bags(out / "bags")
    topics = {t for t, *_ in bag_io.read_bag_messages(bag)}
    assert not any(t.startswith("cameras/") for t in topics), topics  # recorder: record_images false
    rewards = bag_io.read_episode_bag(bag).rewards
    assert len(rewards) == 6 and set(rewards.tolist()) == {-1.0}, rewards  # sim: sparse (shaped would be > -1)
