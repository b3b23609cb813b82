"""`worldsample loop` stopped in every way a week-long run is (kill -9 of the learner, Ctrl-C, SIGTERM, kill -9
of the loop itself) and resumed: nothing learned is lost and what is shown goes on (issue 25).

The runs are the tiny loop of test_closed_loop (32 px, one camera, 10-step episodes) with a post-training
long enough to be cut and the learner's state saved every STATE_EVERY updates.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "launch" / "config" / "tiny.yaml"
STATE_EVERY = 10  # learner.state_every_updates here: a killed learner resumes at most this many updates back
POSTTRAIN = 60  # world-model post-training steps: long enough to be cut by a stop
PER_POLICY = 2  # episodes per policy (iteration pacing)


def _params(tmp_path: Path) -> Path:
    """tiny.yaml with a longer post-training (so a stop cuts it) and frequent learner-state saves."""
    import yaml

    params = yaml.safe_load(TINY.read_text())
    params["world_model"]["ros__parameters"]["posttrain_steps"] = POSTTRAIN
    params["world_model"]["ros__parameters"]["model"]["train_state_every"] = 5
    params["learner"]["ros__parameters"]["state_every_updates"] = STATE_EVERY
    p = tmp_path / "resume.yaml"
    p.write_text(yaml.safe_dump(params))
    return p


RUNNING: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _own_domain_and_cleanup(monkeypatch):
    """A ROS domain of this test's own (another graph on the machine is not ours) and no loop left behind."""
    monkeypatch.setenv("ROS_DOMAIN_ID", str(os.getpid() % 50 + 120 - 100))
    yield
    for proc in RUNNING:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    RUNNING.clear()


def _start(out: Path, log: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, MUJOCO_GL="egl", PYTHONUNBUFFERED="1")
    RUNNING.append(proc := subprocess.Popen([sys.executable, "-m", "worldsample_bringup.cli", "loop", "--out", str(out), *extra],
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT))
    return proc


def _wait(what: str, cond, proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, f"loop ended before {what}\n" + log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s\n" + log.read_text()[-3000:]
        time.sleep(0.2)


def _node_pid(out: Path, name: str) -> int:
    return json.loads((out / "logs" / "graph.pids.json").read_text())["nodes"][name]


def _bags(out: Path) -> int:
    return len([p for p in (out / "bags").iterdir() if p.is_dir()]) if (out / "bags").is_dir() else 0


def _session_text(log: Path, session: int) -> str:
    """What a node wrote in one session of the run (sessions start with the command line it logs)."""
    parts = re.split(r"^\$ .*$", log.read_text(errors="replace"), flags=re.M)
    return parts[session]


def _pids_gone(out: Path, timeout: float = 60) -> None:
    from worldsample_bringup.process_runner import live_graph

    deadline = time.monotonic() + timeout
    while live_graph(out / "logs" / "graph.pids.json"):
        assert time.monotonic() < deadline, live_graph(out / "logs" / "graph.pids.json")
        time.sleep(0.2)


def _not_older(version: str, start: str) -> bool:
    """``version`` is a checkpoint ("policy-NNNNNN", never "random") no older than ``start``."""
    return version.startswith("policy-") and int(version.split("-")[1]) >= int(start.split("-")[1])


def _args(tmp_path: Path, episodes: int) -> list[str]:
    return ["--task", "push", "--mode", "ppl", "--episodes", str(episodes), "--demos", "2", "--max-steps", "10", "--image-size", "32",
            "--cameras", "front", "--params", str(_params(tmp_path)), "--episodes-per-policy", str(PER_POLICY)]


def test_kill_9_of_the_learner_mid_iteration_then_resume_loses_nothing_learned(tmp_path):
    out = tmp_path / "run"
    log1 = tmp_path / "first.log"
    proc = _start(out, log1, *_args(tmp_path, 8))
    wm = out / "world_model"

    def posttraining_cut_ready() -> bool:  # a post-training (it has a parent) in progress, its state saved
        try:
            job = json.loads((wm / "train_job.json").read_text())
        except (OSError, ValueError):
            return False
        return bool(job.get("parent")) and (wm / "train_state.pt").exists() and (out / "learner" / "learner_state.pt").exists()

    _wait("a world-model post-training in progress", posttraining_cut_ready, proc, log1)
    os.kill(_node_pid(out, "learner"), signal.SIGKILL)
    assert proc.wait(timeout=120) == 1, log1.read_text()[-3000:]
    first = log1.read_text()
    assert "node 'learner' exited with code -9" in first
    tag = json.loads((wm / "train_job.json").read_text())["tag"]
    rows1 = list(csv.DictReader((out / "learner" / "ppl.csv").open()))
    last_step = max(int(r["learner_step"]) for r in rows1)  # <= the update count at the kill

    log2 = tmp_path / "second.log"
    # more episodes than the first session's 8: on an idle machine that session may have recorded all of them
    # before the kill, and a resume with nothing left to record would stop at once
    proc = _start(out, log2, "--resume", "--episodes", "12")
    assert proc.wait(timeout=600) == 0, log2.read_text()[-3000:]
    second = log2.read_text()
    start = re.search(r"starting with policy (\S+?)(?:\.pt)?;", second).group(1)
    # the learner went on from its last periodic save: at most STATE_EVERY updates before the kill
    resumed = int(re.search(r"resumed the learner from \S+ at learner step (\d+)",
                            _session_text(out / "logs" / "learner.log", 2)).group(1))
    assert last_step - STATE_EVERY <= resumed, (last_step, resumed)
    # ppl.csv: the rows of both sessions under one header, learner steps going on
    lines = (out / "learner" / "ppl.csv").read_text().splitlines()
    assert sum(line.startswith("mode,") for line in lines) == 1
    rows = list(csv.DictReader((out / "learner" / "ppl.csv").open()))
    assert rows[:len(rows1)] == rows1 and len(rows) > len(rows1)
    assert any(int(r["learner_step"]) > last_step for r in rows[len(rows1):])
    # the cut post-training completed its steps in total across the sessions
    man = json.loads((wm / "versions" / tag / "manifest.json").read_text())
    assert man["steps"] == POSTTRAIN and 0 < man["metrics"]["resumed_from"] < POSTTRAIN, man["metrics"]
    wm2 = _session_text(out / "logs" / "world_model.log", 2)
    assert "another training job" not in wm2 and "recorder killed" not in wm2, wm2[-3000:]
    # the first synthetic batch after the resume is for the policy the actor runs, not "random"
    first_batch = re.search(r"scheduled generation: .* for policy (\S+) \(horizon", wm2)
    # (or for a newer checkpoint, when the resumed learner published one before the first generation: never
    # "random" and never an older policy)
    assert first_batch and start.startswith("policy-"), (start, wm2[-2000:])
    assert _not_older(first_batch.group(1), start), (start, wm2[-2000:])
    # the display goes on: the first lines of the resumed run show its iteration and policy
    shown = [line for line in second.splitlines() if line.startswith("[loop]")]
    assert shown and "iter   0 " not in shown[0], shown[:2]
    # the policy it shows is the one the actor started with, or a newer one the resumed learner published before the
    # first display line: never "random" and never an older policy
    shown_policy = re.search(r"\| policy +(\S+) \|", shown[0])
    assert shown_policy and _not_older(shown_policy.group(1), start), (start, shown[:2])


def test_three_stops_and_resumes_keep_iterations_policies_and_pacing(tmp_path):
    out = tmp_path / "run"
    total = 10
    proc = _start(out, tmp_path / "s0.log", *_args(tmp_path, total))
    for i, how in enumerate(("SIGINT", "SIGTERM", "SIGKILL")):
        log = tmp_path / f"s{i}.log"
        before = _bags(out)
        _wait("a new recorded episode", lambda b=before: _bags(out) > b and (out / "progress.csv").exists(), proc, log)
        proc.send_signal(getattr(signal, how))
        code = proc.wait(timeout=120)
        assert code == {"SIGINT": 130, "SIGTERM": 143, "SIGKILL": -9}[how], log.read_text()[-3000:]
        if how == "SIGKILL":  # the nodes stop by themselves when the loop dies (their parent-death signal)
            _pids_gone(out)
        else:
            text = log.read_text()
            assert f"interrupted ({how})" in text and "interrupted ()" not in text
        proc = _start(out, tmp_path / f"s{i + 1}.log", "--resume")
    assert proc.wait(timeout=600) == 0, (tmp_path / "s3.log").read_text()[-3000:]
    # iteration numbers and policy versions on the progress rows never go back
    rows = list(csv.DictReader((out / "progress.csv").open()))
    its = [int(float(r["iteration"])) for r in rows]
    pols = [int(r["policy_version"].rsplit("-", 1)[-1]) for r in rows if r["policy_version"]]
    assert its == sorted(its) and pols == sorted(pols) and its[-1] >= 2, (its, pols)
    steps = [float(r["env_steps"]) for r in rows]
    assert steps == sorted(steps)
    # episodes per policy hold across the stops (a stop mid-episode logs the cut one under its policy)
    ran: dict[str, int] = {}
    for line in (out / "actor" / "episodes.jsonl").read_text().splitlines():
        v = json.loads(line)["policy_version"]
        ran[v] = ran.get(v, 0) + 1
    assert max(ran.values()) <= PER_POLICY, ran
    summary = json.loads((out / "summary.json").read_text())
    assert summary["last_checkpoint"] == rows[-1]["policy_version"] and summary["notes"]
