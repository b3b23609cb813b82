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
