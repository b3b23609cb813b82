"""The payload link's nodes (issue 24) with a fault in transit: a bag corrupted on the way is refused by the
receiver's SHA-256 check and fetched again, and the copy that lands equals the original byte for byte.

The corruption is made by the sender itself (`transfer.CORRUPT_ENV`, the test fault injector read by
``robot_link``'s outbox): the chunk leaves the sender's fetch service with one byte flipped and crosses DDS
like any other; nothing of the receiver is replaced. Both nodes run on this host over loopback on a domain
of their own (the two-namespace runs of the same nodes are in test_two_hosts.py).
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
from worldsample_common.testing import test_domain_id

pytestmark = [pytest.mark.ros]


def _link(name: str, params: dict, log: Path, env: dict) -> subprocess.Popen:
    from worldsample_bringup.graph import NodeSpec

    spec = NodeSpec("worldsample_bringup", "payload_link_node", name, params, module="worldsample_bringup.payload_link")
    return subprocess.Popen([sys.executable, "-m", spec.python_module(), *spec.ros_args()], env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _confirmed(ledger: Path) -> int:
    try:
        return len(json.loads(ledger.read_text())["confirmed"])
    except (OSError, ValueError, KeyError):
        return 0


def test_bag_corrupted_in_transit_is_refused_resent_and_arrives_identical(tmp_path):
    from worldsample_bringup.loop import _node_env
    from worldsample_common.core import bag_io
    from worldsample_common.core.transfer import CORRUPT_ENV
    from worldsample_common.testing import random_episode

    a, b = tmp_path / "A", tmp_path / "B"
    names = ["ep-000", "ep-001"]
    for i, n in enumerate(names):
        bag_io.write_episode_bag(random_episode(n, steps=20 + i, size=32), a / "bags" / n)
    env = dict(_node_env(), ROS_DOMAIN_ID=str(test_domain_id(61)), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1")
    env.pop(CORRUPT_ENV, None)
    common = {"run_id": "faults", "chunk_bytes": 8192}  # several chunks per bag: one of them is corrupted
    logs = {"recv": tmp_path / "recv.log", "send": tmp_path / "send.log"}
    procs = {
        "recv": _link("learning_link", {**common, "send_prefix": "transfer/learning", "receive_prefix": "transfer/robot",
                                        "receive_bags_dir": str(b / "bags"), "state_dir": str(b / "transfer")},
                      logs["recv"], env),
        "send": _link("robot_link", {**common, "send_prefix": "transfer/robot", "receive_prefix": "transfer/learning",
                                     "send_bags_dir": str(a / "bags"), "state_dir": str(a / "transfer")},
                      logs["send"], {**env, CORRUPT_ENV: "bag"}),
    }
    ledger = a / "transfer" / "outbox.json"
    deadline = time.monotonic() + 240  # generous: a loaded 2-core machine; the loop ends on the event
    try:
        while _confirmed(ledger) < len(names):
            for k, p in procs.items():
                assert p.poll() is None, f"{k} exited {p.returncode}:\n{logs[k].read_text()[-3000:]}"
            assert time.monotonic() < deadline, (f"not every bag confirmed\nsender:\n{logs['send'].read_text()[-3000:]}"
                                                 f"\nreceiver:\n{logs['recv'].read_text()[-3000:]}")
            time.sleep(0.2)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    send_log, recv_log = logs["send"].read_text(), logs["recv"].read_text()
    assert send_log.count("fault injector: served bag") == 1, send_log[-3000:]  # the hook fired, once
    refusals = [line for line in recv_log.splitlines() if "refused, fetched again" in line]
    assert len(refusals) == 1 and "SHA-256" in refusals[0], recv_log[-3000:]
    for n in names:  # each bag in place once, identical to the original
        assert recv_log.count(f"received bag {n}:") == 1, recv_log[-3000:]
        src, dst = a / "bags" / n, b / "bags" / n
        want = {p.relative_to(src): p.read_bytes() for p in src.rglob("*") if p.is_file()}
        got = {p.relative_to(dst): p.read_bytes() for p in dst.rglob("*") if p.is_file()}
        assert sorted(got) == sorted(want) and all(got[k] == want[k] for k in want), n
        bag_io.read_episode_bag(dst)  # and readable
    assert not list((b / "transfer" / "partial").rglob("*.part"))
