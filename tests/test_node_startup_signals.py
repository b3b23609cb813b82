"""Ctrl-C at any moment of a node's start-up ends it cleanly: no traceback, exit code 0 (issue 26).

Each node of the loop is started as `worldsample loop` starts it (`ProcessGraph.command`: through
`worldsample_common.nodes.start`) and gets SIGINT

- during its imports, before rclpy init: as soon as the process has taken over the stop signals
  (SIGTERM caught, /proc/PID/status ``SigCgt``) and while no RMW library is loaded yet;
- after rclpy init: as soon as the process holds a Fast DDS shared-memory file (/proc/PID/fd), i.e.
  its DDS participant exists (rclpy.init made it) and the node is being built or has just started.

The moments are read from the process itself, not from a clock.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from worldsample_common.testing import ros_available

pytestmark = [pytest.mark.ros, pytest.mark.slow,
              pytest.mark.skipif(not ros_available(), reason="rclpy / worldsample_msgs not importable")]

ROOT = Path(__file__).resolve().parents[1]
NODES = ("sim", "arm_control", "actor", "recorder", "world_model", "learner")


def _catches(pid: int, sig: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def _dds_participant(pid: int) -> bool:
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd).startswith("/dev/shm/fastdds"):
                return True
        except OSError:  # closed meanwhile
            continue
    return False


def _wait(proc: subprocess.Popen, ready, what: str, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    while not ready(proc.pid):
        assert proc.poll() is None, f"node exited ({proc.returncode}) before {what}: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, f"never reached {what}"
        time.sleep(0.002)


@pytest.fixture(scope="module")
def commands(tmp_path_factory):
    from worldsample_bringup.graph import loop_graph
    from worldsample_bringup.process_runner import ProcessGraph

    run = tmp_path_factory.mktemp("run")
    specs = {s.name: s for s in loop_graph("sim", run_dir=str(run), device="cpu")}
    runner = ProcessGraph(list(specs.values()))
    return {name: runner.command(specs[name]) for name in NODES}


@pytest.mark.parametrize("phase", ["imports", "after_rclpy_init"])
@pytest.mark.parametrize("name", NODES)
def test_sigint_during_start_up_exits_cleanly(commands, name, phase):
    from worldsample_common.testing import test_domain_id

    env = dict(os.environ, ROS_DOMAIN_ID=str(test_domain_id(47)), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               MUJOCO_GL="egl", PYTHONPATH=os.pathsep.join([str(ROOT / "launch"), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, *commands[name][1:]]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        if phase == "imports":
            _wait(proc, lambda pid: _catches(pid, signal.SIGTERM), "taking over the stop signals")
            assert not _dds_participant(proc.pid)  # still before rclpy init
        else:
            _wait(proc, _dds_participant, "rclpy init")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "Traceback" not in err, err[-3000:]
    assert proc.returncode == 0, (proc.returncode, err[-3000:])
    if phase == "imports":  # it landed in the imports (rclpy, numpy, MuJoCo, torch take far longer than the poll)
        assert f"{commands[name][4].rsplit('.', 1)[-1]}: SIGINT during start-up" in err, err[-3000:]
