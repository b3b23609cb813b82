"""`worldsample eval`: a saved policy's success over blocks of seeds, with standard errors."""

import argparse
import json

import numpy as np
import pytest
from worldsample_learner.commands import evaluate as ev
from worldsample_learner.core.agent import SACAgent
from worldsample_learner.core.config import AgentConfig
from worldsample_learner.core.policy import save_policy


def test_seed_blocks_start_at_the_learning_runs_evaluation_seeds():
    assert ev.seed_blocks(2, 3) == [1_002_000, 7_100_000, 7_200_000]
    assert ev.seed_blocks(0, 1) == [1_000_000]


def test_rate_and_its_standard_error():
    assert ev.rate([True, False, True, True]) == pytest.approx((0.75, np.sqrt(0.75 * 0.25 / 4)))
    assert ev.rate([True] * 5) == (1.0, 0.0)


def test_eval_runs_a_saved_state_policy_and_writes_its_table(tmp_path, capsys):
    agent = SACAgent(AgentConfig(obs_mode="state", proprio_dim=7, state_dim=10, action_dim=4, hidden_dim=16,
                                 device="cpu", seed=3))
    path = save_policy(agent, tmp_path / "ck", 1)
    out = tmp_path / "eval.json"
    args = argparse.Namespace(policy=path, task="push", episodes=2, blocks=2, run_seed=None, out=out)
    assert ev.run(args) == 0
    r = json.loads(out.read_text())
    assert [b["seed0"] for b in r["blocks"]] == [1_003_000, 7_100_000]  # the checkpoint's seed picks block 0
    assert all(len(b["successes"]) == 2 and 0.0 <= b["success_rate"] <= 1.0 for b in r["blocks"])
    assert r["success_rate"] == pytest.approx(np.mean([s for b in r["blocks"] for s in b["successes"]]))
    assert "block 0" in capsys.readouterr().out
    again = ev.evaluate_policy(path, "push", 2, 2)  # deterministic: the same episodes, the same returns
    assert [b["mean_return"] for b in again["blocks"]] == [b["mean_return"] for b in r["blocks"]]
    assert ev.run(argparse.Namespace(**{**vars(args), "task": "juggle", "out": None})) == 2
    assert ev.run(argparse.Namespace(**{**vars(args), "policy": tmp_path / "none.pt", "out": None})) == 2
    assert ev.run(argparse.Namespace(**{**vars(args), "episodes": 0, "out": None})) == 2
