"""The loop across two hosts (issue 24): `worldsample loop --part robot` and `--part learning` in two network
namespaces joined by a veth pair (two hosts), with separate run directories (two disks).

- B's learner replay holds exactly the real transitions of A's bags; every bag and demonstration of A is
  in B byte for byte; A's actor ran >= 2 policy versions made in B, from copies in A; the learning part's
  nodes name no path under A and the robot part's none under B.
- The link between the hosts down for 10 s while the robot records: no episode lost, every bag crosses
  once the link is back, replay == bags.

Needs root (network namespaces): skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from worldsample_common.testing import test_domain_id

pytestmark = [pytest.mark.ros, pytest.mark.slow]

RUN_ID = "two-hosts"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def hosts():
    """Two network namespaces ``a`` (robot PC) and ``b`` (learning server) on one veth link; deleted after."""
    tag = f"{os.getpid() % 10000}"
    ns = {"a": f"ws24a{tag}", "b": f"ws24b{tag}"}
    dev = {"a": f"w24a{tag}", "b": f"w24b{tag}"}
    addr = {"a": "10.224.7.1/24", "b": "10.224.7.2/24"}
    try:
        _ip("netns", "add", ns["a"])
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        pytest.skip(f"network namespaces cannot be made here (needs root and iproute2): {detail.strip()}")
    try:
        _ip("netns", "add", ns["b"])
        _ip("link", "add", dev["a"], "type", "veth", "peer", "name", dev["b"])
        for h in "ab":
            _ip("link", "set", dev[h], "netns", ns[h])
            _ip("-n", ns[h], "addr", "add", addr[h], "dev", dev[h])
            _ip("-n", ns[h], "link", "set", "lo", "up")
            _ip("-n", ns[h], "link", "set", dev[h], "up")
            _ip("-n", ns[h], "route", "add", "224.0.0.0/4", "dev", dev[h])  # DDS discovery multicast
        yield {"ns": ns, "dev": dev}
    finally:
        for h in "ab":
            subprocess.run(["ip", "netns", "del", ns[h]], capture_output=True)


def _env() -> dict[str, str]:
    # SUBNET (ROS 2's default): other tests of the suite set LOCALHOST in os.environ, which keeps discovery from
    # crossing the veth link (the learning part then never heard of the robot's demos)
    env = dict(os.environ, ROS_DOMAIN_ID=str(test_domain_id(7)), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET")
    for name in ("WORLDSAMPLE_SKIP_DOMAIN_CHECK", "ROS_STATIC_PEERS"):
        env.pop(name, None)
    return env


def _start(hosts, host: str, part: str, out: Path, log: Path, episodes: int, extra: list[str]) -> subprocess.Popen:
    from worldsample_bringup.graph import config_path

    cmd = ["ip", "netns", "exec", hosts["ns"][host], sys.executable, "-m", "worldsample_bringup.cli", "loop",
           "--part", part, "--run-id", RUN_ID, "--out", str(out), "--task", "push", "--episodes", str(episodes),
           "--demos", "1", "--image-size", "32", "--cameras", "front", "--params", str(config_path("tiny.yaml")),
           "--timeout", "420", *extra]
    return subprocess.Popen(cmd, env=_env(), stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _finish(procs: dict[str, subprocess.Popen], logs: dict[str, Path], timeout: float = 480) -> None:
    deadline = time.monotonic() + timeout
    try:
        for p in procs.values():
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for p in procs.values():
            if p.poll() is None:
                os.killpg(p.pid, 9)
    for name, p in procs.items():
        assert p.returncode == 0, f"{name} part exited {p.returncode}:\n{logs[name].read_text()[-4000:]}"


def _same_tree(src: Path, dst: Path) -> None:
    """The bag directories under ``src`` and ``dst`` hold the same files, byte for byte."""
    want = {p.relative_to(src): p.read_bytes() for p in src.glob("*/*") if p.is_file()}
    got = {p.relative_to(dst): p.read_bytes() for p in dst.glob("*/*") if p.is_file()}
    assert sorted(got) == sorted(want), (sorted(want), sorted(got))
    assert all(got[k] == want[k] for k in want), "a copied file differs from its original"


def _check_replay(a: Path, b: Path) -> list:
    from worldsample_common.core import bag_io
    from worldsample_learner.core.replay import ObsSpec, ReplayStore

    episodes = bag_io.load_episodes(a / "bags")
    real = ReplayStore("real", ObsSpec(proprio_dim=7, cameras=("front",), image_size=32),
                       directory=b / "learner" / "replay" / "real")
    held = {(eid, step) for eid, step, _ in real.keys()}
    want = {(e.episode_id, t) for e in episodes for t in range(e.length)}
    assert held == want, f"replay of B: {len(held - want)} transition(s) not in A's bags, {len(want - held)} missing"
    assert len(real) == len(want)
    return episodes


def _no_paths_of(settings_dir: Path, other: Path) -> None:
    """Every node parameter of the part run in ``settings_dir`` names no path under ``other``."""
    from worldsample_bringup.loop import loop_specs

    settings = json.loads((settings_dir / "loop.json").read_text())
    for spec in loop_specs(settings, settings_dir, 0, "random"):
        for key, value in spec.parameters.items():
            for v in value if isinstance(value, list) else [value]:
                assert not (isinstance(v, str) and v.startswith(str(other))), f"{spec.name}.{key} = {v}"


def test_loop_across_two_hosts(tmp_path, hosts):
    a, b = tmp_path / "A", tmp_path / "B"
    logs = {"learning": tmp_path / "b.log", "robot": tmp_path / "a.log"}
    # 3 episodes, one per policy version: random first, then two versions the learner made in B
    procs = {"learning": _start(hosts, "b", "learning", b, logs["learning"], 3, ["--episodes-per-policy", "1"])}
    time.sleep(3)
    procs["robot"] = _start(hosts, "a", "robot", a, logs["robot"], 3, ["--episodes-per-policy", "1"])
    _finish(procs, logs)
    _same_tree(a / "bags", b / "bags")
    _same_tree(a / "demos", b / "demos")
    episodes = _check_replay(a, b)
    made_in_b = {p.stem: p for p in (b / "learner" / "checkpoints").glob("policy-*.pt")}
    used = {e.policy_version for e in episodes} - {"", "random"}
    assert len(used) >= 2 and used <= set(made_in_b), (used, sorted(made_in_b))
    for v in used:  # the actor ran copies in A, identical to B's files
        assert (a / "policies" / f"{v}.pt").read_bytes() == made_in_b[v].read_bytes()
    _no_paths_of(b, a)
    _no_paths_of(a, b)
    assert not (a / "learner").exists() and not (b / "actor").exists()  # each part writes only its own


def test_link_down_for_10_s_loses_nothing(tmp_path, hosts):
    a, b = tmp_path / "A", tmp_path / "B"
    logs = {"learning": tmp_path / "b.log", "robot": tmp_path / "a.log"}
    episodes = 6
    procs = {"learning": _start(hosts, "b", "learning", b, logs["learning"], episodes, ["--episodes-per-policy", "0"])}
    time.sleep(3)
    procs["robot"] = _start(hosts, "a", "robot", a, logs["robot"], episodes,
                            ["--episodes-per-policy", "0", "--max-steps", "40"])
    bags_a, bags_b = a / "bags", b / "bags"
    deadline = time.monotonic() + 300
    # the fault under test is a drop between connected parts: wait until a first bag has crossed (the two
    # payload links discovered each other; on a loaded machine that takes longer than the first episode)
    while not (bags_b.is_dir() and any((x / "metadata.yaml").exists() for x in bags_b.iterdir())):
        assert procs["robot"].poll() is None, logs["robot"].read_text()[-3000:]
        assert time.monotonic() < deadline, "no bag crossed from the robot part to the learning part"
        time.sleep(0.5)
    assert len(list(bags_a.iterdir())) < episodes, "the robot part finished before the link could be cut"
    down_at = time.monotonic()
    _ip("-n", hosts["ns"]["a"], "link", "set", hosts["dev"]["a"], "down")  # mid-episode: the first one is closed
    time.sleep(10)
    recorded_during = sum((x / "metadata.yaml").exists() for x in bags_a.iterdir())
    _ip("-n", hosts["ns"]["a"], "link", "set", hosts["dev"]["a"], "up")
    # the kernel dropped the device's multicast route with the link; a host's network manager puts it back (without
    # it a part that started while the link was down is never discovered: 0 bags crossed in a loaded run)
    _ip("-n", hosts["ns"]["a"], "route", "replace", "224.0.0.0/4", "dev", hosts["dev"]["a"])
    _finish(procs, logs)
    print(f"link down for 10 s; both parts done {time.monotonic() - down_at:.0f} s; {recorded_during} bag(s) recorded by "
          "the time it came back up")
    _same_tree(bags_a, b / "bags")  # nothing lost, nothing half-copied
    eps = _check_replay(a, b)
    assert len(eps) == episodes
    assert not list((b / "transfer" / "partial").rglob("*.part"))
