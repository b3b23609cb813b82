"""A training run stopped part-way goes on from its last snapshot as if it had never stopped (`drivers.snapshot`)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from point_env import PointEnv
from worldsample_common.core.episode import Source
from worldsample_control.core.rollout import run_episode
from worldsample_learner.core.config import AgentConfig, LearnConfig, PPLConfig
from worldsample_learner.drivers.learn import StaticSyntheticSource, train_in_process
from worldsample_learner.drivers.snapshot import SNAPSHOT, SnapshotMismatch


class Stopped(Exception):
    pass


class StopsAt(PointEnv):
    """PointEnv that raises at its ``at``-th step, as a run killed there would stop."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.steps = at, 0

    def step(self, action):
        self.steps += 1
        if self.steps == self.at:
            raise Stopped(f"stopped at step {self.at}")
        return super().step(action)


def _cfg() -> LearnConfig:
    agent = AgentConfig(obs_mode="state", hidden_dim=32, num_critics=2, batch_size=32, utd_ratio=1)
    return LearnConfig(agent=agent, ppl=PPLConfig(mode="naive"), env_steps=900, warmup_steps=100, eval_every=150,
                       eval_episodes=3, synthetic_every=50, synthetic_branches=4, log_every=100,
                       checkpoint_every_env_steps=300, snapshot_every_env_steps=250)


def _pool() -> StaticSyntheticSource:
    """A synthetic source with a state of its own (its position in the pool)."""
    rng = np.random.default_rng(5)
    return StaticSyntheticSource([run_episode(PointEnv(), lambda obs: rng.uniform(-1, 1, 4), seed=100 + i,
                                              source=Source.SYNTHETIC) for i in range(7)])


def _demos() -> list:
    def expert(o):
        return np.concatenate([np.clip((o.state - o.proprio[:2]) / 0.15, -1, 1), [0.0, 0.0]]).astype(np.float32)

    return [run_episode(PointEnv(), expert, seed=i, source=Source.DEMO) for i in range(3)]


def _rows(path, drop=("wall_s", "scored_at", "episode_id")):
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(f)]


def _weights(path):
    state = torch.load(path, map_location="cpu", weights_only=False)
    return {f"{part}.{k}": v for part in ("actor", "encoder") for k, v in state[part].items()}


def test_a_stopped_run_resumes_from_its_snapshot_as_if_it_never_stopped(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    torch.manual_seed(0)
    ref = train_in_process(PointEnv(), _cfg(), _demos(), _pool(), whole, eval_env=PointEnv(), progress=False)
    assert not (whole / SNAPSHOT).exists()  # a finished run keeps no snapshot
    torch.manual_seed(0)
    with pytest.raises(Stopped):
        train_in_process(StopsAt(620), _cfg(), _demos(), _pool(), cut, eval_env=PointEnv(), progress=False)
    assert (cut / SNAPSHOT).exists()
    stopped_rows = len(_rows(cut / "eval.csv"))
    assert stopped_rows == 620 // 150  # rows after the last snapshot are there until the resume cuts them
    source = _pool()  # a fresh object, as a new process builds it: the resume fills it in
    torch.manual_seed(123)  # the resume restores the process's generators too
    # no demos given, as `worldsample learn --resume` gives none: the snapshot's replay and demos are the run's
    res = train_in_process(PointEnv(), _cfg(), [], source, cut, eval_env=PointEnv(), progress=False, resume=True)
    assert source._next == 4 * res["synthetic_calls"]  # the pool position carried over and went on
    assert not (cut / SNAPSHOT).exists()
    for name in ("eval.csv", "metrics.csv", "ppl.csv", "ppl_decisions.csv"):
        assert _rows(cut / name) == _rows(whole / name), name
    assert res["success_curve"] == ref["success_curve"] and res["updates"] == ref["updates"]
    assert res["synthetic_calls"] == ref["synthetic_calls"] and res["replay"] == ref["replay"]
    a, b = _weights(ref["checkpoint"]), _weights(res["checkpoint"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert sorted(p.name for p in (cut / "checkpoints").iterdir()) == \
        sorted(p.name for p in (whole / "checkpoints").iterdir())


def _old_snapshot(tmp_path, edit):
    """A whole run, and the same run stopped at step 620 with its snapshot passed through ``edit(blob)`` (what an
    older version of the code wrote); returns the whole run's result and the stopped run's directory."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    torch.manual_seed(0)
    ref = train_in_process(PointEnv(), _cfg(), _demos(), _pool(), whole, eval_env=PointEnv(), progress=False)
    torch.manual_seed(0)
    with pytest.raises(Stopped):
        train_in_process(StopsAt(620), _cfg(), _demos(), _pool(), cut, eval_env=PointEnv(), progress=False)
    blob = torch.load(cut / SNAPSHOT, weights_only=False)
    edit(blob)
    torch.save(blob, cut / SNAPSHOT)
    return ref, whole, cut


def _resumes_as_if_never_stopped(ref, whole, cut) -> dict:
    res = train_in_process(PointEnv(), _cfg(), _demos(), _pool(), cut, eval_env=PointEnv(), progress=False,
                           resume=True)
    for name in ("eval.csv", "metrics.csv", "ppl.csv"):
        assert _rows(cut / name) == _rows(whole / name), name
    assert res["success_curve"] == ref["success_curve"]
    return res


def test_a_snapshot_written_before_demos_were_kept_in_it_resumes_with_the_callers_demos(tmp_path):
    """Snapshots of the fourteenth sitting's first runs have no ``demos`` in their loop state; an experiment hands
    the same demos in again, and the run goes on as if it never stopped."""
    ref, whole, cut = _old_snapshot(tmp_path, lambda blob: blob["loop"].pop("demos"))
    res = _resumes_as_if_never_stopped(ref, whole, cut)
    assert res["replay"] == ref["replay"]


def test_a_snapshot_from_before_a_config_field_existed_resumes_only_at_that_fields_default(tmp_path):
    """Runs interrupted by a sitting's end go on with newer code: a field added since (here PPL's progress_by) is
    no difference while the run asks for its default, and is one when it asks for anything else."""
    def drop_fields(blob):
        for name in ("progress_by", "return_baseline_episodes"):
            del blob["loop"]["config"]["ppl"][name]

    ref, whole, cut = _old_snapshot(tmp_path, drop_fields)
    other = _cfg()
    other.ppl.progress_by = "return"
    with pytest.raises(SnapshotMismatch, match=r"ppl.progress_by: None in the snapshot, 'return' now"):
        train_in_process(PointEnv(), other, _demos(), _pool(), cut, eval_env=PointEnv(), progress=False, resume=True)
    _resumes_as_if_never_stopped(ref, whole, cut)


def test_without_resume_a_stale_snapshot_is_dropped_and_a_damaged_one_is_named(tmp_path):
    cfg = _cfg()
    with pytest.raises(Stopped):
        train_in_process(StopsAt(400), cfg, [], _pool(), tmp_path, eval_env=PointEnv(), progress=False)
    assert (tmp_path / SNAPSHOT).exists()
    before = (tmp_path / "eval.csv").read_text()
    other = _cfg()
    other.agent.batch_size = 64
    with pytest.raises(SnapshotMismatch, match=r"another configuration: agent.batch_size: 32 in the snapshot, 64 now"):
        train_in_process(PointEnv(), other, [], _pool(), tmp_path, eval_env=PointEnv(), progress=False, resume=True)
    assert (tmp_path / "eval.csv").read_text() == before and (tmp_path / SNAPSHOT).exists()  # nothing touched
    assert '"batch_size": 32' in (tmp_path / "config.json").read_text()
    (tmp_path / SNAPSHOT).write_bytes(b"not a snapshot")
    with pytest.raises(ValueError, match="cannot read the run snapshot .*delete it to start the run afresh"):
        train_in_process(PointEnv(), cfg, [], _pool(), tmp_path, eval_env=PointEnv(), progress=False, resume=True)
    with pytest.raises(Stopped):
        train_in_process(StopsAt(400), cfg, [], None, tmp_path / "bare", eval_env=PointEnv(), progress=False)
    with pytest.raises(ValueError, match="without a synthetic source; this run has one"):
        train_in_process(PointEnv(), cfg, [], _pool(), tmp_path / "bare", eval_env=PointEnv(), progress=False, resume=True)
    # not resuming: the stale snapshot goes, the run starts at step 1 and finishes
    res = train_in_process(PointEnv(), cfg, [], _pool(), tmp_path, eval_env=PointEnv(), progress=False)
    assert res["env_steps"] == 900 and not (tmp_path / SNAPSHOT).exists()
    assert [int(r["env_steps"]) for r in _rows(tmp_path / "eval.csv")] == list(range(150, 901, 150))
