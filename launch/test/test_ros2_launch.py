"""`ros2 launch worldsample_bringup sim_loop.launch.py` for real, stopped as a user stops it (issue 12).

The launch file runs under the real launch system (`ros2 launch`, installed by scripts/setup.sh from
WORLDSAMPLE_ROS2_UPSTREAM; CI passes ../shared/ros2-upstream). Once the graph is busy (bags recorded,
the learner checkpointing, the world model post-training), it is stopped

- as a terminal's Ctrl-C does: SIGINT to the whole process group, so every node gets SIGINT twice
  (from the terminal and forwarded by launch); SIGINT is reset to its default in the child first,
  since a process started in the background inherits it ignored and would hide the bug;
- as ``kill``/systemd/``docker stop`` do: SIGTERM to the launch process. Upstream launch answers
  SIGTERM by cancelling its task ("using SIGTERM can result in orphaned processes",
  launch_service.py); depending on timing it exits at once (our nodes notice their parent's death,
  PR_SET_PDEATHSIG -> SIGINT, and stop cleanly) or its asyncio transports kill the nodes outright.
  Either way no node may outlive it and no recorded step may be lost: an open bag's write-ahead
  log recovers it (`worldsample bags recover`). Use Ctrl-C / SIGINT for a clean stop.

After Ctrl-C every node must finish cleanly before launch escalates (no "sending signal 'SIGTERM'",
i.e. within launch's 5 s SIGINT grace) and print no traceback; after either, no node may outlive
the stop and the state must be complete: closed bags, the learner's replay (equal to the bags) and
agent state, the world model's versions.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from worldsample_bringup.process_runner import pid_alive

pytestmark = [pytest.mark.ros, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
NODES = ("sim_node", "arm_control_node", "actor_node", "recorder_node", "world_model_node", "learner_node")


def _ros2() -> str:
    exe = shutil.which("ros2")
    if exe is None:
        msg = ("the `ros2` CLI / launch are not installed: run WORLDSAMPLE_ROS2_UPSTREAM=/path/to/ros2-upstream "
               "bash scripts/setup.sh (or use a full ROS 2 install)")
        if os.environ.get("WORLDSAMPLE_REQUIRE_ROS2_LAUNCH"):
            pytest.fail(msg)
        pytest.skip(msg)
    return exe


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    from worldsample_control.core.demos import record_demos
    from worldsample_control.core.sim import EnvConfig

    out = tmp_path_factory.mktemp("demos")
    record_demos("push", 2, out, EnvConfig(image_size=32, cameras=("front",)))
    return out


def _start(run_dir: Path, demos: Path, offset: int) -> subprocess.Popen:
    from worldsample_common.testing import test_domain_id

    env = dict(os.environ, ROS_DOMAIN_ID=str(test_domain_id(offset)), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1")
    cmd = [_ros2(), "launch", "worldsample_bringup", "sim_loop.launch.py", "task:=push", f"run_dir:={run_dir}",
           f"demos_dir:={demos}", "max_steps:=20", "image_size:=32", "cameras:=front", "device:=cpu",
           f"params_file:={ROOT / 'launch' / 'config' / 'tiny.yaml'}"]
    return subprocess.Popen(cmd, env=env, stdout=open(run_dir.parent / "launch.log", "w"), stderr=subprocess.STDOUT,
                            start_new_session=True,  # its own process group, as a terminal's foreground job
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _busy(run_dir: Path) -> bool:
    bags = [b for b in (run_dir / "bags").glob("*") if (b / "metadata.yaml").exists()] if (run_dir / "bags").exists() else []
    ckpts = list((run_dir / "learner" / "checkpoints").glob("policy-*.pt"))
    versions = list((run_dir / "world_model" / "versions").glob("wm-*"))
    return len(bags) >= 3 and len(ckpts) >= 2 and len(versions) >= 2


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_sim_loop_launch_stops_cleanly(tmp_path, demos, how):
    import torch
    from worldsample_common.core import bag_io
    from worldsample_learner.core.replay import ObsSpec, ReplayStore

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = _start(run_dir, demos, 60 if how == "ctrl-c" else 61)
    log = tmp_path / "launch.log"
    deadline = time.monotonic() + 150
    try:
        while not _busy(run_dir):
            assert proc.poll() is None, f"ros2 launch exited early ({proc.returncode}):\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"the loop never got busy:\n{log.read_text()[-4000:]}"
            time.sleep(0.5)
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    pids = [int(p) for p in re.findall(r"process started with pid \[(\d+)\]", text)]
    assert len(pids) == len(NODES), text[:3000]
    deadline = time.monotonic() + 30
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in pids if pid_alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, f"nodes {left} outlived the stop ({how})"
    if how == "ctrl-c":
        assert rc == 0, text[-4000:]
        finished = [line for line in text.splitlines() if "process has finished cleanly" in line]
        assert len(finished) == len(NODES), "\n".join(line for line in text.splitlines() if "process has" in line)
        assert "has died" not in text and "Traceback" not in text, text[-4000:]
        assert "sending signal 'SIGTERM'" not in text, "a node outlived launch's SIGINT grace period"
    # nothing recorded is lost
    bags = sorted(b for b in (run_dir / "bags").iterdir() if b.is_dir())
    open_bags = [b for b in bags if not (b / "metadata.yaml").exists() or (b / bag_io.WAL_NAME).exists()]
    if how == "ctrl-c":
        assert not open_bags, open_bags
    else:
        if open_bags:  # killed by launch: every step that reached the recorder is in its write-ahead log
            for b in open_bags:
                bag_io.recover_bag(b)
                assert (b / "metadata.yaml").exists() and not (b / bag_io.WAL_NAME).exists(), b
            assert bag_io.load_episodes(run_dir / "bags")  # readable again
            return  # the learner and world model were killed too: their state is what they last saved
    episodes = bag_io.load_episodes(run_dir / "bags")
    real = ReplayStore("real", ObsSpec(proprio_dim=7, cameras=("front",), image_size=32),
                       directory=run_dir / "learner" / "replay" / "real")
    # every step of every episode recorded before the stop, persisted by the learner, once. The episode the
    # stop cut short reaches the recorder's bag and the learner in either order (both stop at once); the
    # learner reads that bag at its next start (test_learner_gets_every_real_bag_across_a_kill_and_restart)
    cut = {e.episode_id for e in episodes if not (e.terminated[-1] or e.truncated[-1])}  # no END: cut by the stop
    assert len(cut) <= 1, cut
    # Episodes reach the learner as bags only (one path per payload): a bag closed in the last moments
    # before a SIGTERM (which launch may escalate to a kill before the learner's shutdown rescan) is read at
    # the learner's next start. So under SIGTERM the newest finished episode may be missing as well; any
    # older one missing is a lost episode. Under Ctrl-C the shutdown rescan must have read it.
    late = {e.episode_id for e in sorted(episodes, key=lambda e: e.episode_id)[-2:]} if how == "sigterm" else set()
    held = {(eid, step) for eid, step, _ in real.keys()}
    for e in episodes:
        want = {(e.episode_id, t) for t in range(e.length)}
        assert want <= held or e.episode_id in cut | late, \
            f"{e.episode_id}: {len(want - held)} of {e.length} steps not in replay"
    assert len(real) == len(held) <= sum(e.length for e in episodes)
    state = torch.load(run_dir / "learner" / "learner_state.pt", map_location="cpu", weights_only=False)
    assert state["agent"]["updates"] > 0
    from worldsample_worldmodel.core.store import WorldModelStore

    store = WorldModelStore(run_dir / "world_model")
    assert store.latest() is not None and store.load() is not None  # its newest version loads
