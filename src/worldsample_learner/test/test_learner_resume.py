"""What a resumed learner continues from (`Learner.state_dict`), the share it reports, and its appended logs."""

from __future__ import annotations

import csv

import numpy as np
import torch
from helpers import make_episode
from worldsample_common.core.episode import Source
from worldsample_learner.core.config import AgentConfig, PPLConfig
from worldsample_learner.core.learner import OPTIMIZERS, Learner
from worldsample_learner.core.ppl import CsvLog

torch.set_num_threads(1)


def _learner() -> Learner:
    cfg = AgentConfig(obs_mode="state", state_dim=2, hidden_dim=32, num_critics=4, batch_size=16, utd_ratio=1)
    lr = Learner(cfg, PPLConfig(mode="ppl"))
    lr.add_demo_episode(make_episode("d", t=20, source=Source.DEMO, cams=()))
    lr.add_real_episode(make_episode("r", t=20, cams=(), seed=1, success=True))
    return lr


def test_learner_state_restores_agent_optimisers_normaliser_generators_and_ppl():
    a = _learner()
    for _ in range(5):
        a.train_step()
    a.ppl.observe_fidelity(0.7)
    a.ppl.reject_invalid(3)
    state = a.state_dict()
    b = _learner()
    assert b.agent.updates == 0 and not b.agent.normalizer_fitted
    b.load_state_dict(state)
    assert b.agent.updates == 5 and b.agent.normalizer_fitted
    for k, v in a.agent.encoder.state_dict().items():  # weights and the normaliser's buffers
        assert torch.equal(v, b.agent.encoder.state_dict()[k]), k
    for name in OPTIMIZERS:  # Adam moments and step counts, not a fresh optimiser
        sa, sb = getattr(a.agent, name).state_dict()["state"], getattr(b.agent, name).state_dict()["state"]
        assert sa and sa.keys() == sb.keys(), name
        for i in sa:
            assert torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) and torch.equal(sa[i]["step"], sb[i]["step"])
    assert b.ppl.state_dict() == a.ppl.state_dict() and b.ppl.fidelity == 0.7 and b.ppl.rejected["invalid"] == 3
    assert b.rng.bit_generator.state == a.rng.bit_generator.state  # the next batches are the ones a would draw
    np.testing.assert_array_equal(a.sample_batch()["action"], b.sample_batch()["action"])
    b.train_step()
    assert b.agent.updates == 6


def test_an_older_runs_bare_agent_state_restores_the_agent():
    a = _learner()
    a.train_step()
    b = _learner()
    b.load_state_dict(a.agent.state_dict())  # what agent_state.pt held before learner_state.pt
    assert b.agent.updates == 1


def test_reported_synthetic_share_is_the_share_used():
    lr = _learner()
    lr.train_step()
    st = lr.close_window()
    # nothing admitted: no batch holds synthetic data, whatever PPL's target
    assert st["synthetic_share"] == 0.0 and st["synthetic_share_target"] > 0
    syn = make_episode("s", t=10, source=Source.SYNTHETIC, cams=(), seed=2, uncertainty=np.zeros(10, np.float32))
    lr.add_synthetic_episodes([syn])
    assert len(lr.synthetic) > 0
    lr.train_step()
    st = lr.close_window()
    assert st["synthetic_share"] == st["synthetic_share_target"] == lr.ppl.synthetic_share() > 0


def test_csv_log_appends_across_sessions_under_one_header(tmp_path):
    path = tmp_path / "ppl.csv"
    first = CsvLog(path, append=True)
    first.write({"learner_step": 1, "share": 0.1})
    first.write({"learner_step": 2, "share": 0.2})
    second = CsvLog(path, append=True)  # a resumed learner
    second.write({"learner_step": 3, "share": 0.3, "new_column": 9})  # a column the file lacks is dropped
    second.write({"learner_step": 4})  # a column the row lacks stays empty
    rows = list(csv.DictReader(path.open()))
    assert [r["learner_step"] for r in rows] == ["1", "2", "3", "4"] and list(rows[0]) == ["learner_step", "share"]
    assert rows[3]["share"] == "" and len(second.rows) == 2
    fresh = CsvLog(path)  # a one-shot run starts its file afresh
    fresh.write({"x": 1})
    assert path.read_text().splitlines() == ["x", "1"]
