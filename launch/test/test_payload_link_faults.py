"""The payload link's nodes (issue 24) with faults in transit: a bag corrupted on the way is refused by the
receiver's SHA-256 check and fetched again, and the copy that lands equals the original byte for byte; a
receiver or a sender killed (-9) in the middle of a bag is replaced and the transfer goes on from the
receiver's part files.

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


def _stop_all(procs) -> None:
    """Ctrl-C every node still running, then wait; a node that does not stop in 20 s is killed."""
    procs = list(procs)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


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
        _stop_all(procs.values())
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


def _kill(p: subprocess.Popen) -> None:
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=20)


def _part_bytes(partial: Path) -> int:
    return sum(p.stat().st_size for p in partial.rglob("*.part")) if partial.is_dir() else 0


def _received(log: Path, name: str) -> list[int]:
    """Bytes fetched by each 'received bag NAME' of a receiver's log."""
    import re

    return [int(m) for m in re.findall(rf"received bag {re.escape(name)}: (\d+) bytes", log.read_text())]


def test_either_end_killed_mid_transfer_resumes_where_it_stopped(tmp_path):
    """kill -9 of the receiver in the middle of a bag, then a new receiver: it goes on from its part files (fetches
    less than the bag) and the bag lands identical; the same for a sender killed in the middle of the next bag."""
    from worldsample_bringup.loop import _node_env
    from worldsample_common.core import bag_io
    from worldsample_common.core.transfer import CORRUPT_ENV
    from worldsample_common.testing import random_episode

    a, b = tmp_path / "A", tmp_path / "B"
    env = dict(_node_env(), ROS_DOMAIN_ID=str(test_domain_id(71)), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1")
    env.pop(CORRUPT_ENV, None)
    common = {"run_id": "faults", "chunk_bytes": 4096}  # ~1200 chunks per bag: a transfer lasts long enough to cut
    recv_params = {**common, "send_prefix": "transfer/learning", "receive_prefix": "transfer/robot",
                   "receive_bags_dir": str(b / "bags"), "state_dir": str(b / "transfer")}
    send_params = {**common, "send_prefix": "transfer/robot", "receive_prefix": "transfer/learning",
                   "send_bags_dir": str(a / "bags"), "state_dir": str(a / "transfer")}
    partial = b / "transfer" / "partial"
    procs: dict[str, subprocess.Popen] = {}
    logs: list[Path] = []

    def start(name: str, node: str, params: dict) -> None:
        logs.append(tmp_path / f"{name}{len(logs)}.log")
        procs[name] = _link(node, params, logs[-1], env)

    def wait(what: str, cond, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            for k, p in procs.items():
                assert p.poll() is None, f"{k} exited {p.returncode}"
            assert time.monotonic() < deadline, f"no {what}:\n" + "\n".join(f"{x}:\n{x.read_text()[-2000:]}"
                                                                            for x in logs)
            time.sleep(0.01)

    sizes = {}
    later = tmp_path / "later"  # the second bag joins the send directory once the first has crossed
    try:
        for i, n in enumerate(["ep-000", "ep-001"]):
            where = (a / "bags" if i == 0 else later) / n
            bag_io.write_episode_bag(random_episode(n, steps=100, size=64, seed=i), where)
            sizes[n] = sum(p.stat().st_size for p in where.rglob("*") if p.is_file())
        start("recv", "learning_link", recv_params)
        start("send", "robot_link", send_params)
        # the receiver dies in the middle of the first bag (the only one offered yet); a new one takes over
        wait("a part file", lambda: _part_bytes(partial / "bag" / "ep-000") > 0)
        _kill(procs.pop("recv"))
        have = _part_bytes(partial / "bag" / "ep-000")
        assert not (b / "bags" / "ep-000").exists() and 0 < have
        start("recv", "learning_link", recv_params)
        # the node renames the bag into place, then logs it (then acknowledges it): wait for the log line, not
        # the directory, or the line may not be written yet
        wait("the first bag received", lambda: _received(logs[-1], "ep-000"))
        fetched = _received(logs[-1], "ep-000")
        assert (b / "bags" / "ep-000").exists() and len(fetched) == 1 and fetched[0] <= sizes["ep-000"] - have, \
            (fetched, have, sizes)
        # the sender dies in the middle of the second bag (its periodic scan finds it); a new one takes over
        (a / "bags").mkdir(parents=True, exist_ok=True)
        os.replace(later / "ep-001", a / "bags" / "ep-001")
        wait("a part file of the second bag", lambda: _part_bytes(partial / "bag" / "ep-001") > 0)
        _kill(procs.pop("send"))
        have = _part_bytes(partial / "bag" / "ep-001")
        assert not (b / "bags" / "ep-001").exists() and 0 < have
        start("send", "robot_link", send_params)
        wait("both bags confirmed", lambda: _confirmed(a / "transfer" / "outbox.json") == 2)
        wait("the second bag's log line", lambda: _received(logs[2], "ep-001"))
    finally:
        _stop_all(procs.values())
    fetched = _received(logs[2], "ep-001")  # the second receiver, across the sender's restart
    assert len(fetched) == 1 and fetched[0] < sizes["ep-001"], (fetched, sizes)
    for n in sizes:
        src, dst = a / "bags" / n, b / "bags" / n
        assert {p.relative_to(src): p.read_bytes() for p in src.rglob("*") if p.is_file()} == \
            {p.relative_to(dst): p.read_bytes() for p in dst.rglob("*") if p.is_file()}, n
    assert not list(partial.rglob("*.part"))


def test_an_offer_of_a_bag_held_here_is_acknowledged_and_another_version_is_refused(tmp_path):
    """A receiver that already holds a bag (it crossed before a restart) acknowledges the offer without fetching;
    a different bag under a name held here is refused, never acknowledged, and the one in place is kept."""
    import shutil

    from worldsample_bringup.loop import _node_env
    from worldsample_common.core import bag_io
    from worldsample_common.core.transfer import CORRUPT_ENV
    from worldsample_common.testing import random_episode

    a, b = tmp_path / "A", tmp_path / "B"
    bag_io.write_episode_bag(random_episode("same", steps=10, size=32, seed=1), a / "bags" / "same")
    shutil.copytree(a / "bags" / "same", b / "bags" / "same")  # crossed before the restart
    bag_io.write_episode_bag(random_episode("clash", steps=10, size=32, seed=2), a / "bags" / "clash")
    bag_io.write_episode_bag(random_episode("clash", steps=10, size=32, seed=3), b / "bags" / "clash")
    kept = {p.name: p.read_bytes() for p in (b / "bags" / "clash").iterdir()}
    bag_io.write_episode_bag(random_episode("new", steps=10, size=32, seed=4), a / "bags" / "new")
    env = dict(_node_env(), ROS_DOMAIN_ID=str(test_domain_id(73)), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1")
    env.pop(CORRUPT_ENV, None)
    logs = {"recv": tmp_path / "recv.log", "send": tmp_path / "send.log"}
    procs = {
        "recv": _link("learning_link", {"run_id": "faults", "send_prefix": "transfer/learning",
                                        "receive_prefix": "transfer/robot", "receive_bags_dir": str(b / "bags"),
                                        "state_dir": str(b / "transfer")}, logs["recv"], env),
        "send": _link("robot_link", {"run_id": "faults", "send_prefix": "transfer/robot",
                                     "receive_prefix": "transfer/learning", "send_bags_dir": str(a / "bags"),
                                     "state_dir": str(a / "transfer")}, logs["send"], env),
    }
    ledger = a / "transfer" / "outbox.json"
    deadline = time.monotonic() + 240
    try:  # until 'same' and 'new' are confirmed and the clash has been refused
        while _confirmed(ledger) < 2 or "another version of it is already" not in logs["recv"].read_text():
            for k, p in procs.items():
                assert p.poll() is None, f"{k} exited {p.returncode}:\n{logs[k].read_text()[-3000:]}"
            assert time.monotonic() < deadline, logs["recv"].read_text()[-3000:]
            time.sleep(0.2)
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGINT)
        for p in procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    recv_log, send_log = logs["recv"].read_text(), logs["send"].read_text()
    assert "received bag same" not in recv_log and "received bag new:" in recv_log  # held: not fetched again
    assert "bag same confirmed" in send_log and "bag clash confirmed" not in send_log
    assert recv_log.count("another version of it is already") == 1  # logged once
    assert {p.name: p.read_bytes() for p in (b / "bags" / "clash").iterdir()} == kept
