"""SIGTERM and kill -9 of `worldsample sim`'s main process leave no node running and no bag open (issue 16).

`worldsample loop` uses the same runner (`worldsample_bringup.process_runner`: `stop_signals`,
``WORLDSAMPLE_PARENT_PID`` + PR_SET_PDEATHSIG in every node, the pid file), so these cover it too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from worldsample_bringup.process_runner import live_graph, pid_alive
from worldsample_common.core import bag_io
from worldsample_common.testing import test_domain_id

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _start(out: Path, offset: int) -> tuple[subprocess.Popen, dict[str, int]]:
    env = dict(os.environ, ROS_DOMAIN_ID=str(test_domain_id(offset)), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    cmd = [sys.executable, "-m", "worldsample_bringup.cli", "sim", "--task", "push", "--policy", "random",
           "--episodes", "50", "--max-steps", "30", "--cameras", "front", "--out", str(out)]
    # own session: the signals of this test reach the runner only, as `kill PID` from another shell would;
    # SIGINT back to its default (a background child inherits it ignored)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    pid_file = out / "logs" / "graph.pids.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait for a finished episode and one being recorded
        bags = list((out / "bags").glob("*")) if (out / "bags").exists() else []
        if pid_file.exists() and len(bags) >= 2 and proc.poll() is None:
            break
        assert proc.poll() is None, f"sim exited early ({proc.returncode}):\n{proc.stdout.read()}"
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("no episode was recorded within 120 s")
    pids = json.loads(pid_file.read_text())["nodes"]
    assert set(pids) >= {"sim", "arm_control", "actor", "recorder"}
    return proc, pids


def _bags_complete(out: Path) -> None:
    bags = sorted(p for p in (out / "bags").iterdir() if p.is_dir())
    assert bags
    for b in bags:
        assert (b / "metadata.yaml").exists(), f"{b.name}: not closed"
        assert not (b / bag_io.WAL_NAME).exists(), f"{b.name}: write-ahead log left (bag was open)"
    assert len(bag_io.load_episodes(out / "bags")) >= 1


def _wait_gone(pids: dict[str, int], timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = {n: p for n, p in pids.items() if pid_alive(p)}
        if not left:
            return {}
        time.sleep(0.2)
    return {n: p for n, p in pids.items() if pid_alive(p)}


def test_sigterm_stops_the_whole_graph_cleanly(tmp_path):
    out = tmp_path / "run"
    proc, pids = _start(out, 41)
    proc.send_signal(signal.SIGTERM)
    try:
        text, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the runner did not stop within 60 s of SIGTERM")
    assert proc.returncode == 128 + signal.SIGTERM, text
    assert "interrupted (SIGTERM)" in text
    assert _wait_gone(pids, 5) == {}, "nodes outlived the runner"
    _bags_complete(out)


def test_kill_9_of_the_runner_leaves_no_node_and_no_open_bag(tmp_path):
    out = tmp_path / "run"
    proc, pids = _start(out, 42)
    proc.kill()
    proc.wait(timeout=10)
    left = _wait_gone(pids, 40)
    for pid in left.values():  # do not leak processes into the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert left == {}, f"nodes still running after the runner was killed: {left}"
    _bags_complete(out)
    # a new graph for this run starts (nothing stale is alive); its pid-file check is what refuses otherwise
    assert live_graph(out / "logs" / "graph.pids.json") == {}
