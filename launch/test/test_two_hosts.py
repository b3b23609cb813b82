"""The loop across two hosts (issue 24): `worldsample loop --part robot` and `--part learning` in two network
namespaces joined by a veth pair (two hosts), with separate run directories (two disks).

- B's learner replay holds exactly the real transitions of A's bags; every bag and demonstration of A is
  in B byte for byte; A's actor ran >= 2 policy versions made in B, from copies in A; the learning part's
  nodes name no path under A and the robot part's none under B.
- The link between the hosts down for 10 s while the robot records: no episode lost, every bag crosses
  once the link is back, replay == bags.

- The learning host restarted (all its processes killed at once, then `loop --part learning --resume`): bags
  that had crossed are not fetched again, the bag recorded meanwhile arrives, the learner resumes from its
  saved state, checkpoints reach the actor again.
- The robot host restarted (killed at once while the link was down, then `loop --part robot --resume`): its
  unconfirmed bag is offered again and arrives, the actor goes on with its newest copy of a policy and then
  runs the versions the learning part makes after the restart.
- `worldsample sim --part robot` / `--part learning`: the simulated robot graph's bags reach the other host.

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


def _start_paced(hosts, a: Path, b: Path, logs: dict[str, Path], episodes: int) -> dict[str, subprocess.Popen]:
    """Both parts, paced (one episode per policy version, 100-step episodes): the robot part cannot run through
    all its episodes before the two payload links have found each other."""
    procs = {"learning": _start(hosts, "b", "learning", b, logs["learning"], episodes, ["--episodes-per-policy", "1"])}
    procs["robot"] = _start(hosts, "a", "robot", a, logs["robot"], episodes,
                            ["--episodes-per-policy", "1", "--max-steps", "100"])
    return procs


def _wait_new_episode(bags: Path, procs: dict[str, subprocess.Popen], logs: dict[str, Path]) -> set[str]:
    """Wait until the robot part opens a bag it had not before; returns the bags there were before."""
    seen = _closed(bags) | _open(bags)
    _wait("a new episode on the robot PC", lambda: _open(bags) - seen, procs, logs)
    return seen


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
    """The bag directories under ``src`` and ``dst`` hold the same files, byte for byte (a damaged original that a
    recovery kept beside the rebuilt bag, ``*.incomplete``, stays on its host)."""
    want = {p.relative_to(src): p.read_bytes() for p in src.glob("*/*")
            if p.is_file() and not p.parent.name.endswith(".incomplete")}
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
    # paced (unpaced, 40-step episodes took 0.3 s each on an idle machine: all done before the links met)
    procs = _start_paced(hosts, a, b, logs, episodes)
    bags_a, bags_b = a / "bags", b / "bags"
    # the fault under test is a drop between connected parts: wait until a first bag has crossed (the two
    # payload links discovered each other; on a loaded machine that takes longer than the first episode) ...
    _wait("a first bag crossed from the robot part to the learning part", lambda: _closed(bags_b), procs, logs)
    # ... and cut the link as the next episode starts
    _wait_new_episode(bags_a, procs, logs)
    down_at = time.monotonic()
    _ip("-n", hosts["ns"]["a"], "link", "set", hosts["dev"]["a"], "down")  # mid-episode
    time.sleep(10)  # the fault: 10 s without a link
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


# --------------------------------------------------------------------------- host restarts (issue 24, faults)
def _closed(bags: Path) -> set[str]:
    from worldsample_common.core.bag_io import bag_closed, find_bags

    return {x.name for x in find_bags(bags) if bag_closed(x)} if bags.is_dir() else set()


def _open(bags: Path) -> set[str]:
    from worldsample_common.core.bag_io import find_bags

    return {x.name for x in find_bags(bags)} - _closed(bags) if bags.is_dir() else set()


def _wait(what: str, cond, procs: dict[str, subprocess.Popen], logs: dict[str, Path], timeout: float = 300) -> None:
    """Until ``cond()`` (polled), failing with ``what`` and the logs when a part exits first or ``timeout`` passes
    (generous: a loaded 2-core machine; the wait ends on the event, the timeout only bounds a failure)."""
    deadline = time.monotonic() + timeout
    while not cond():
        for name, p in procs.items():
            assert p.poll() is None, f"waiting for {what}: the {name} part exited {p.returncode}:\n" \
                                     f"{logs[name].read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s:\n" + "\n".join(
            f"--- {n}:\n{logs[n].read_text()[-2500:]}" for n in procs)
        time.sleep(0.05)


def _kill_host(proc: subprocess.Popen, out: Path) -> None:
    """The host loses power: its part's command and every node it started die by SIGKILL at the same moment."""
    from worldsample_bringup.process_runner import pid_alive

    nodes = list(json.loads((out / "logs" / "graph.pids.json").read_text())["nodes"].values())
    for pid in [proc.pid, *nodes]:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while any(pid_alive(pid) for pid in nodes):
        assert time.monotonic() < deadline, "the killed host's nodes did not go"
        time.sleep(0.1)


def _received_once(b: Path, names: set[str]) -> None:
    """B's payload link (every session of it) fetched each of these bags exactly once."""
    log = (b / "logs" / "learning_link.log").read_text()
    counts = {n: log.count(f"received bag {n}:") for n in names}
    assert set(counts.values()) == {1}, counts


def test_learning_host_restarted_catches_up_and_the_learner_resumes(tmp_path, hosts):
    a, b = tmp_path / "A", tmp_path / "B"
    logs = {"learning": tmp_path / "b1.log", "robot": tmp_path / "a.log"}
    episodes = 6  # one per policy version: the robot holds for the next checkpoint after each episode
    procs = _start_paced(hosts, a, b, logs, episodes)
    # a bag has crossed and the learner saved its state (it does at each checkpoint) ...
    _wait("a crossed bag and the learner's saved state", lambda: _closed(b / "bags")
          and (b / "learner" / "learner_state.pt").exists(), procs, logs)
    # ... then the learning host goes down right after an episode starts on the robot PC
    _wait_new_episode(a / "bags", procs, logs)
    _kill_host(procs.pop("learning"), b)
    crossed = {n: (b / "bags" / n).stat().st_ino for n in _closed(b / "bags")}
    ckpts_before = {p.name for p in (b / "learner" / "checkpoints").glob("policy-*.pt")}
    # the robot PC goes on alone: that episode ends and its bag waits in A
    _wait("the episode recorded while the learning host is down", lambda: _closed(a / "bags") - set(crossed),
          procs, logs)
    meanwhile = _closed(a / "bags") - set(crossed)
    assert not (_closed(b / "bags") & meanwhile)
    restart = time.time()
    logs["learning"] = tmp_path / "b2.log"
    procs["learning"] = _start(hosts, "b", "learning", b, logs["learning"], episodes, ["--resume"])
    _finish(procs, logs)
    _same_tree(a / "bags", b / "bags")  # the bags recorded meanwhile and after arrived; nothing half-copied
    _same_tree(a / "demos", b / "demos")
    assert meanwhile <= _closed(b / "bags")
    for n, ino in crossed.items():  # what had crossed was not fetched or written again
        assert (b / "bags" / n).stat().st_ino == ino, n
    _received_once(b, _closed(a / "bags"))
    eps = _check_replay(a, b)
    assert len(eps) == episodes
    assert "resumed the learner from" in (b / "logs" / "learner.log").read_text()
    # the resumed learner made new checkpoints, and they reached the actor (its copies are identical)
    after = {p.name: p for p in (b / "learner" / "checkpoints").glob("policy-*.pt")
             if p.name not in ckpts_before and p.stat().st_mtime > restart}
    used = {e.policy_version for e in eps}
    reached = [v for v in used if f"{v}.pt" in after]
    assert reached, (sorted(used), sorted(after))
    for v in reached:
        assert (a / "policies" / f"{v}.pt").read_bytes() == after[f"{v}.pt"].read_bytes()
    assert not list((b / "transfer" / "partial").rglob("*.part"))


def test_robot_host_restarted_reoffers_its_bags_and_gets_policies_again(tmp_path, hosts):
    a, b = tmp_path / "A", tmp_path / "B"
    logs = {"learning": tmp_path / "b.log", "robot": tmp_path / "a1.log"}
    episodes = 6
    procs = _start_paced(hosts, a, b, logs, episodes)
    _wait("a policy made in B on the robot PC", lambda: any((a / "policies").glob("policy-*.pt")), procs, logs)
    seen = _wait_new_episode(a / "bags", procs, logs)
    # the link goes down during that episode: its bag cannot cross; then the robot PC loses power
    _ip("-n", hosts["ns"]["a"], "link", "set", hosts["dev"]["a"], "down")
    new = _open(a / "bags") - seen
    _wait("the episode's bag closed on the robot PC", lambda: new <= _closed(a / "bags"), procs, logs)
    _kill_host(procs.pop("robot"), a)
    unconfirmed = _closed(a / "bags") - _closed(b / "bags")
    assert new <= unconfirmed
    recorded_before = _closed(a / "bags")
    policy_at_kill = max(p.name for p in (a / "policies").glob("policy-*.pt"))
    _ip("-n", hosts["ns"]["a"], "link", "set", hosts["dev"]["a"], "up")
    _ip("-n", hosts["ns"]["a"], "route", "replace", "224.0.0.0/4", "dev", hosts["dev"]["a"])
    restart = time.time()
    logs["robot"] = tmp_path / "a2.log"
    procs["robot"] = _start(hosts, "a", "robot", a, logs["robot"], episodes, ["--resume"])
    _finish(procs, logs)
    assert "starting with policy " + policy_at_kill in logs["robot"].read_text()  # its newest copy, not random
    _same_tree(a / "bags", b / "bags")  # the unconfirmed bag was offered again and arrived, and every later one
    _same_tree(a / "demos", b / "demos")
    _received_once(b, _closed(a / "bags"))
    eps = _check_replay(a, b)
    assert len(eps) == episodes
    made_in_b = {p.stem: p for p in (b / "learner" / "checkpoints").glob("policy-*.pt")}
    later = [e for e in eps if e.episode_id not in recorded_before]
    assert later, "no episode after the robot host's restart"
    for e in later:  # every later episode ran a version made in B, from an identical copy in A
        assert e.policy_version in made_in_b, (e.episode_id, e.policy_version)
        assert (a / "policies" / f"{e.policy_version}.pt").read_bytes() == made_in_b[e.policy_version].read_bytes()
    arrived_after = {e.policy_version for e in later
                     if (a / "policies" / f"{e.policy_version}.pt").stat().st_mtime > restart}
    assert arrived_after, "no checkpoint reached the restarted robot PC's actor"
    assert not list((b / "transfer" / "partial").rglob("*.part"))


def test_robot_host_restarted_after_its_last_episode_delivers_the_rest(tmp_path, hosts):
    """Killed after recording its last episode, before the learning part confirmed it: the resumed robot part
    has no episode left to run, and runs its payload link alone until that bag is confirmed."""
    a, b = tmp_path / "A", tmp_path / "B"
    logs = {"learning": tmp_path / "b.log", "robot": tmp_path / "a1.log"}
    episodes = 3
    procs = _start_paced(hosts, a, b, logs, episodes)
    _wait("the last episode on the robot PC", lambda: len(_closed(a / "bags") | _open(a / "bags")) >= episodes,
          procs, logs)
    _ip("-n", hosts["ns"]["a"], "link", "set", hosts["dev"]["a"], "down")
    _wait("the last episode's bag", lambda: len(_closed(a / "bags")) >= episodes, procs, logs)
    _kill_host(procs.pop("robot"), a)
    last = _closed(a / "bags") - _closed(b / "bags")
    assert last, "every bag had crossed before the link went down"
    _ip("-n", hosts["ns"]["a"], "link", "set", hosts["dev"]["a"], "up")
    _ip("-n", hosts["ns"]["a"], "route", "replace", "224.0.0.0/4", "dev", hosts["dev"]["a"])
    logs["robot"] = tmp_path / "a2.log"
    procs["robot"] = _start(hosts, "a", "robot", a, logs["robot"], episodes, ["--resume"])
    _finish(procs, logs)
    assert "not yet confirmed by the learning part: offering them" in logs["robot"].read_text()
    _same_tree(a / "bags", b / "bags")
    _received_once(b, _closed(a / "bags"))
    assert len(_check_replay(a, b)) == episodes


# --------------------------------------------------------------------------- `worldsample sim --part`
def _start_sim(hosts, host: str, part: str, out: Path, log: Path, extra: list[str]) -> subprocess.Popen:
    cmd = ["ip", "netns", "exec", hosts["ns"][host], sys.executable, "-m", "worldsample_bringup.cli", "sim",
           "--part", part, "--run-id", RUN_ID, "--out", str(out), "--task", "push", "--episodes", "2",
           "--image-size", "32", "--cameras", "front", "--timeout", "300", *extra]
    return subprocess.Popen(cmd, env=_env(), stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def test_sim_command_across_two_hosts(tmp_path, hosts):
    a, b = tmp_path / "A", tmp_path / "B"
    logs = {"learning": tmp_path / "b.log", "robot": tmp_path / "a.log"}
    procs = {"learning": _start_sim(hosts, "b", "learning", b, logs["learning"], []),
             "robot": _start_sim(hosts, "a", "robot", a, logs["robot"], ["--policy", "scripted", "--max-steps", "15"])}
    _finish(procs, logs)
    _same_tree(a / "bags", b / "bags")
    assert len(_closed(b / "bags")) == 2
    log = (b / "logs" / "learning_link.log").read_text()
    assert log.count("received demo ") == 2, log[-3000:]  # a scripted run's bags cross as demonstrations
    assert not (a / "transfer" / "partial").exists() and not (b / "actor").exists()
