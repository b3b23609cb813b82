"""Issue 11.6: a kill -9 during the world model's pre-training keeps what it trained so far.

A real world_model_node process pre-trains on demonstration bags and writes ``RUN/train_state.pt``
every ``model.train_state_every`` steps; it is SIGKILLed before its first version, restarted with the
same parameters, and the version it then saves says it resumed from the step in that file, not 0 -
also when a real episode was recorded in between (as in `worldsample loop --resume`): the cut job
resumes on its own episodes and the new one waits for the next post-training.
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

ROOT = Path(__file__).resolve().parents[3]
PRETRAIN_STEPS = 120


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.skipif(not ros_available(), reason="rclpy / worldsample_msgs not importable (source scripts/env.sh)")
def test_sigkilled_pretraining_resumes_from_its_train_state(tmp_path):
    import torch
    from worldsample_common.core.bag_io import write_episode_bag
    from worldsample_common.core.episode import Source
    from worldsample_common.testing import test_domain_id
    from worldsample_worldmodel.core.store import WorldModelStore
    from worldsample_worldmodel.core.toy import toy_episode
    from worldsample_worldmodel.core.train import TRAIN_STATE

    for i in range(3):
        write_episode_bag(toy_episode(i, steps=10), tmp_path / "demos" / f"demo_{i}")
    run = tmp_path / "run"
    bags = tmp_path / "bags"
    bags.mkdir()
    params = {"run_dir": str(run), "demos_dir": str(tmp_path / "demos"), "real_dir": str(bags),
              "pretrain_steps": PRETRAIN_STEPS,
              "device": "cpu", "threads": 1, "status_period_s": 0.5, "model.image_size": 16,
              "model.latent_channels": 8, "model.base_channels": 8, "model.hidden_dim": 32, "model.ensemble_size": 2,
              "model.batch_size": 4, "model.rollout_steps": 2, "model.train_state_every": 5, "model.log_every": 5}
    cmd = [sys.executable, "-m", "worldsample_worldmodel.nodes.world_model_node", "--ros-args"]
    for k, v in params.items():
        cmd += ["-p", f"{k}:={v}"]
    env = dict(os.environ, ROS_DOMAIN_ID=str(test_domain_id(17)), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               OMP_NUM_THREADS="1")
    state_file = run / TRAIN_STATE
    store = WorldModelStore(run)

    def start(name: str) -> tuple[subprocess.Popen, Path]:
        log = tmp_path / name
        return subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT), log

    def saved_step() -> int:
        return int(torch.load(state_file, map_location="cpu", weights_only=False)["step"])

    proc, log = start("first.log")
    try:
        deadline = time.monotonic() + 120
        while not (state_file.exists() and saved_step() >= 10):
            assert not store.versions(), "pre-training finished without a train state to resume from"
            assert proc.poll() is None, f"world_model_node exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no train state after 120 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not store.versions(), "pre-training finished before the kill; raise PRETRAIN_STEPS"
    killed_at = saved_step()  # what survived the kill (written atomically: never a torn file)
    assert 10 <= killed_at < PRETRAIN_STEPS
    write_episode_bag(toy_episode(20, steps=10, source=Source.REAL, policy="random"), bags / "real_0")

    proc, log = start("second.log")
    try:
        deadline = time.monotonic() + 300
        while not store.versions():
            assert proc.poll() is None, f"restarted world_model_node exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no version after the restart:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    manifest = store.manifest(store.versions()[0])
    assert manifest["mode"] == "pretrain-demos"  # the job that was cut: the new real episode is not in it
    assert sorted(e["episode_id"] for e in manifest["trained_on"]) == sorted(f"toy-demo-{i}" for i in range(3)), \
        manifest["trained_on"]
    assert manifest["metrics"]["resumed_from"] == killed_at, manifest["metrics"]
    assert manifest["metrics"]["steps_this_call"] == PRETRAIN_STEPS - killed_at
    assert manifest["steps"] == PRETRAIN_STEPS
    assert not state_file.exists()  # the version is saved: the train state is done with
