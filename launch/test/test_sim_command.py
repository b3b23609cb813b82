"""`worldsample sim`: the command runs the node graph, reports each episode and rejects bad arguments."""

from __future__ import annotations

import argparse
import os

import pytest
from worldsample_bringup import sim
from worldsample_common.core import bag_io
from worldsample_common.core.episode import Source
from worldsample_common.testing import test_domain_id


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sim.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.ros
@pytest.mark.slow
def test_sim_command_records_a_bag_per_episode(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", str(test_domain_id(3)))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    out = tmp_path / "run"
    assert sim.run(_args("--task", "push", "--policy", "random", "--episodes", "2", "--max-steps", "4",
                         "--out", str(out), "--seed", "5", "--cameras", "front")) == 0
    printed = capsys.readouterr().out
    assert "episode 1/2" in printed and "episode 2/2" in printed and "2 episode(s)" in printed
    episodes = bag_io.load_episodes(out / "bags")
    assert len(episodes) == 2
    assert sorted(e.seed for e in episodes) == [5, 6]
    for ep in episodes:
        assert ep.length == 4 and ep.source == Source.REAL and list(ep.images) == ["front"]


def test_sim_command_rejects_bad_arguments(tmp_path, capsys):
    assert sim.run(_args("--task", "push", "--episodes", "0", "--out", str(tmp_path))) == 2
    assert "--episodes must be >= 1" in capsys.readouterr().err
    missing = tmp_path / "nope.pt"
    assert sim.run(_args("--task", "push", "--policy", str(missing), "--out", str(tmp_path))) == 2
    assert f"--policy '{missing}' is neither" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _args("--task", "stack", "--out", str(tmp_path))
    assert "invalid choice: 'stack'" in capsys.readouterr().err
    assert not os.listdir(tmp_path)  # nothing started, nothing written


def test_sim_parts_are_the_loops_parts(tmp_path):
    """`worldsample sim --part`: the same part definition as the loop (`parts.select_part`): the robot part is the
    simulated graph plus robot_link (a scripted run's bags offered as demonstrations), the learning part the
    receiving link alone, each with its own directory; a part without a run id is refused before anything runs."""
    from worldsample_bringup.graph import loop_graph, merged_node_params, sim_graph
    from worldsample_bringup.parts import sim_part

    params = merged_node_params()
    a, b = tmp_path / "A", tmp_path / "B"

    def names(specs):
        return sorted(s.name for s in specs)

    robot = sim_part(sim_graph("push", a, policy="scripted", params=params), "robot", "r1", a, params)
    assert names(robot) == ["actor", "arm_control", "recorder", "robot_link", "sim"]
    loop_robot = loop_graph("sim", task="push", run_dir=str(a), part="robot", run_id="r1")
    assert names(robot) == names(loop_robot)  # one definition of the robot part
    link = next(s for s in robot if s.name == "robot_link").parameters
    assert link["send_demos_dir"] == str(a / "bags") and link["send_bags_dir"] == "" and link["run_id"] == "r1"
    actor = next(s for s in robot if s.name == "actor").parameters
    assert actor["topic_policy_checkpoint"] == "robot/policy/checkpoint"
    real = sim_part(sim_graph("push", a, policy="random", params=params), "robot", "r1", a, params)
    assert next(s for s in real if s.name == "robot_link").parameters["send_bags_dir"] == str(a / "bags")
    learning = sim_part(sim_graph("push", b, policy="random", params=params), "learning", "r1", b, params)
    assert names(learning) == ["learning_link"]
    link = learning[0].parameters
    assert link["receive_bags_dir"] == link["receive_demos_dir"] == str(b / "bags")
    for specs, other in ((robot, b), (learning, a)):  # no path of the other host
        for s in specs:
            assert not any(str(v).startswith(str(other)) for v in s.parameters.values()), s.name
    assert names(sim_part(sim_graph("push", a, params=params), "all", "", a, params)) == [
        "actor", "arm_control", "recorder", "sim"]
    assert sim.run(_args("--task", "push", "--part", "robot", "--out", str(tmp_path / "x"))) == 2
    assert not (tmp_path / "x").exists()
