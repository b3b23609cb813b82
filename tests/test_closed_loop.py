"""A tiny closed loop through the real node graph over DDS: `worldsample loop`, stopped with Ctrl-C
(SIGINT) half-way and resumed. Checks every stage left its artifact: real bags (none lost),
world-model versions with fidelity, synthetic bags, PPL-scored synthetic bags with trust scores,
and at least two learner checkpoints used by the actor (hot-swapped between episodes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "launch" / "config" / "tiny.yaml"


def _loop_cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "worldsample_bringup.cli", "loop", "--out", str(out), *extra]


def _count_bags(d: Path) -> int:
    return len([p for p in d.iterdir() if p.is_dir()]) if d.is_dir() else 0


def test_tiny_loop_stops_on_ctrl_c_and_resumes(tmp_path):
    from worldsample_common.core.bag_io import holds_transitions, load_episodes, read_bag_episodes
    from worldsample_common.core.episode import Source

    out = tmp_path / "run"
    env = dict(os.environ, MUJOCO_GL="egl", PYTHONUNBUFFERED="1")
    args = ["--task", "push", "--mode", "ppl", "--episodes", "6", "--demos", "2", "--max-steps", "10", "--image-size", "32",
            "--cameras", "front", "--params", str(TINY), "--episodes-per-policy", "2"]
    log1 = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(_loop_cmd(out, *args), env=env, stdout=log1, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    # stop early: the learner now starts training (and checkpointing) sooner, so 6 short episodes can
    # finish within seconds; Ctrl-C after the first recorded bag leaves the rest to --resume
    while _count_bags(out / "bags") < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
    assert _count_bags(out / "bags") >= 1, "no recorded episode within 240 s\n" + (tmp_path / "first.log").read_text()[-3000:]
    proc.send_signal(signal.SIGINT)  # what Ctrl-C does
    assert proc.wait(timeout=60) == 130, (tmp_path / "first.log").read_text()[-3000:]
    log1.close()
    first = (tmp_path / "first.log").read_text()
    assert "--resume" in first
    recorded = _count_bags(out / "bags")
    assert 1 <= recorded < 6
    # every episode recorded so far is a readable bag; only a bag cut between an episode's START and its
    # first step may hold no transition (it is then not counted as an episode)
    empty = [bag for bag in sorted((out / "bags").iterdir()) if not holds_transitions(bag)]
    assert len(empty) <= 1, empty
    for bag in sorted((out / "bags").iterdir()):
        if bag not in empty:
            assert read_bag_episodes(bag), bag

    res = subprocess.run(_loop_cmd(out, "--resume"), env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    # real episodes: 6 bags, none lost; the one cut by Ctrl-C is kept (partial, its END never came);
    # the resumed run goes on with the next seeds
    real = load_episodes(out / "bags")
    assert len(real) == 6 and all(e.source == Source.REAL for e in real)
    seeds = sorted(e.seed for e in real)  # the cut episode's seed comes from its START event
    assert len(set(seeds)) == 6 and seeds[0] == 0 and max(seeds) == 5, seeds
    # world model: pre-trained on the demos, post-trained on real bags, fidelity on held-out episodes
    versions = sorted(p.name for p in (out / "world_model" / "versions").iterdir() if p.name.startswith("wm-"))
    assert len(versions) >= 2, versions
    manifests = [json.loads((out / "world_model" / "versions" / v / "manifest.json").read_text()) for v in versions]
    assert manifests[-1]["mode"] == "posttrain-real"
    # with held-out episodes a version has its fidelity, or (saved while the graph was stopping) is marked
    # pending: it is evaluated at the next start
    assert all(m["fidelity"] or m.get("fidelity_pending") for m in manifests[1:] if m["heldout"]), manifests
    evaluated = [m for m in manifests if m["mode"] == "posttrain-real" and m["fidelity"]]
    # (no fidelity exists without a held-out episode: every heldout_every-th real episode is one)
    assert evaluated or manifests[-1].get("fidelity_pending") or not manifests[-1]["heldout"], manifests[-1]
    assert all(np.isfinite(m["fidelity"]["psnr"]).all() for m in evaluated)
    # synthetic rollouts from the world model, and PPL's decision (trust in [0, 1]) on every transition
    syn = load_episodes(out / "synthetic")
    assert syn and all(e.source == Source.SYNTHETIC and np.isfinite(e.uncertainty).all() for e in syn)
    import csv

    decisions = list(csv.DictReader((out / "learner" / "ppl_decisions.csv").open()))
    assert decisions and {Path(d["bag"]).name for d in decisions} <= {b.name for b in (out / "synthetic").iterdir()}
    trust = np.array([float(d["trust"]) for d in decisions])
    assert ((trust >= 0) & (trust <= 1)).all() and (trust < 1).any()  # PPL's scores, not the default 1.0
    # policies: >= 2 learner checkpoints used by the actor, hot-swapped between episodes
    used = {json.loads(line)["policy_version"] for line in (out / "actor" / "episodes.jsonl").read_text().splitlines()}
    assert len({v for v in used if v.startswith("policy-")}) >= 2, used
    ckpts = sorted(p.name for p in (out / "learner" / "checkpoints").glob("policy-*.pt"))
    assert len(ckpts) == len(set(ckpts)) >= 2
    # PPL decisions logged on disk by the learner (status rows every status period)
    assert len((out / "learner" / "ppl.csv").read_text().splitlines()) >= 3
    # progress for a person: CSV rows, plot, summary
    rows = (out / "progress.csv").read_text().splitlines()
    assert rows[0].startswith("wall_s,iteration") and len(rows) > 6
    assert (out / "progress.png").stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["real_episodes_recorded"] == 6
