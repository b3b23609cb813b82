"""The node graph description (one for launch files and `worldsample loop`) and the loop's run settings."""

from __future__ import annotations

import pytest
from worldsample_bringup.graph import LOOP_ARGUMENTS, config_path, load_node_params, loop_graph


def test_loop_graph_has_every_node_with_parameters_from_yaml_and_arguments(tmp_path):
    specs = loop_graph("sim", task="peg_insertion", run_dir=str(tmp_path), mode="naive", image_size="32",
                       cameras="front", episodes_per_policy="3")
    by = {s.name: s for s in specs}
    assert set(by) == {"sim", "arm_control", "actor", "recorder", "world_model", "learner"}
    wm, learner = by["world_model"].parameters, by["learner"].parameters
    yaml_wm = load_node_params(config_path("loop.yaml"))["world_model"]
    assert wm["posttrain_steps"] == yaml_wm["posttrain_steps"]  # from the YAML
    assert wm["model.image_size"] == 32 and wm["model.cameras"] == ["front"]  # from the arguments
    assert wm["run_dir"] == str(tmp_path / "world_model") and wm["real_dir"] == str(tmp_path / "bags")
    assert learner["mode"] == "naive" and learner["out_dir"] == str(tmp_path / "learner")
    assert by["actor"].parameters["episodes_per_policy"] == 3
    for s in specs:  # every parameter is something `--ros-args -p` can carry
        s.ros_args()


def test_rl_only_generates_nothing_and_real_graph_has_cameras(tmp_path):
    wm = {s.name: s for s in loop_graph("sim", run_dir=str(tmp_path), mode="rl-only")}["world_model"]
    assert wm.parameters["generate_period_s"] == 0.0
    real = {s.name for s in loop_graph("real", run_dir=str(tmp_path), cameras="front,wrist", camera_sources="0,2")}
    assert {"camera_front", "camera_wrist", "world_model", "learner", "success_detector"} <= real and "sim" not in real
    actor = {s.name: s for s in loop_graph("gazebo", run_dir=str(tmp_path))}["actor"].parameters
    assert actor["topic_sim_reward"] == "success/reward" and actor["use_sim_reward"]


def test_bad_loop_arguments_and_parameter_files_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown loop argument"):
        loop_graph("sim", colour="blue")
    with pytest.raises(ValueError, match="mode 'fast'"):
        loop_graph("sim", mode="fast")
    bad = tmp_path / "bad.yaml"
    bad.write_text("learner:\n  parameters: {batch_size: 3}\n")
    with pytest.raises(ValueError, match="ros__parameters"):
        loop_graph("sim", params_file=str(bad))
    bad.write_text("critic:\n  ros__parameters: {x: 1}\n")
    with pytest.raises(ValueError, match="unknown node"):
        loop_graph("sim", params_file=str(bad))
    assert set(LOOP_ARGUMENTS) >= {"task", "robot_ip", "cameras", "run_dir", "mode"}


def test_loop_run_settings_new_resume_and_bad_input(tmp_path):
    import argparse
    import json

    from worldsample_bringup.loop import LOOP_STATE, add_arguments, run_settings, validate_settings

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = tmp_path / "run"
    s = run_settings(parser.parse_args(["--task", "push", "--out", str(out), "--episodes", "7"]), out)
    assert s["task"] == "push" and s["episodes"] == 7 and s["mode"] == "rl-only" and s["episodes_per_policy"] == 5
    validate_settings(s)
    out.mkdir()
    (out / LOOP_STATE).write_text(json.dumps(s))
    with pytest.raises(ValueError, match="already holds a loop run"):
        run_settings(parser.parse_args(["--task", "push", "--out", str(out)]), out)
    resumed = run_settings(parser.parse_args(["--out", str(out), "--resume", "--episodes", "9"]), out)
    assert resumed["episodes"] == 9 and resumed["task"] == "push"
    with pytest.raises(ValueError, match="is task 'push', not 'sort'"):
        run_settings(parser.parse_args(["--task", "sort", "--out", str(out), "--resume"]), out)
    with pytest.raises(ValueError, match="not a loop run directory"):
        run_settings(parser.parse_args(["--out", str(tmp_path / "none"), "--resume"]), tmp_path / "none")
    for key, value, match in (("image_size", 48, "power of two"), ("episodes", 0, "--episodes"),
                              ("policy", "/no/ckpt.pt", "neither 'random'"), ("demos", -1, "--demos")):
        with pytest.raises(ValueError, match=match):
            validate_settings({**s, key: value})


@pytest.mark.parametrize("kind", ["real", "gazebo"])
def test_recorder_records_the_reward_topic_the_actor_uses(tmp_path, kind):
    """Without a simulator, reward comes from the success detector on success/reward: the recorder must
    subscribe there too (it listened on sim/reward, which nothing publishes on a real arm; issue 14)."""
    extra = {"camera_sources": "0,2"} if kind == "real" else {}
    by = {s.name: s for s in loop_graph(kind, run_dir=str(tmp_path), cameras="front,wrist", **extra)}
    reward = by["actor"].parameters["topic_sim_reward"]
    assert reward == "success/reward" == by["recorder"].parameters["topic_sim_reward"]
    sim = {s.name: s for s in loop_graph("sim", run_dir=str(tmp_path))}
    assert "topic_sim_reward" not in sim["recorder"].parameters  # the simulator's own sim/reward
