import argparse
import json

import numpy as np
import pytest
from worldsample_common.core.bag_io import write_episode_bag
from worldsample_common.core.episode import Source
from worldsample_control.core.experts import make_expert
from worldsample_control.core.rollout import run_episode
from worldsample_control.core.sim import EnvConfig, make_env
from worldsample_learner.commands import learn


def _args(**kw):
    p = argparse.ArgumentParser()
    learn.add_arguments(p)
    argv = []
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    return p.parse_args(argv)


@pytest.mark.slow
def test_learn_command_runs_push_from_demo_and_synthetic_bags(tmp_path):
    env = make_env("push", EnvConfig(render=False))
    expert = make_expert("push")
    demo = run_episode(env, lambda o: expert.act(o, env), seed=1, source=Source.DEMO, max_steps=30)
    write_episode_bag(demo, tmp_path / "demos" / demo.episode_id)
    syn = run_episode(env, lambda o: expert.act(o, env), seed=2, source=Source.SYNTHETIC, max_steps=20)
    syn.uncertainty = np.linspace(0, 2, syn.length).astype(np.float32)
    write_episode_bag(syn, tmp_path / "syn" / syn.episode_id)
    out = tmp_path / "run"
    args = _args(task="push", mode="naive", demos=tmp_path / "demos", synthetic=tmp_path / "syn", out=out,
                 env_steps=120, eval_every=120, eval_episodes=1, hidden=32, critics=2, batch_size=16, utd=1,
                 synthetic_every=50)
    assert learn.run(args) == 0
    r = json.loads((out / "results.json").read_text())
    # requests every 50 env steps once a real episode (80 steps) gives start states: at step 100
    assert r["mode"] == "naive" and r["synthetic_calls"] == 1
    # naive: every valid step of the pool admitted once (branches cut to the naive horizon 10, deduplicated)
    assert r["replay"]["synthetic"]["size"] == 10 and r["ppl_status"]["admitted"] == 10
    assert r["replay"]["synthetic"]["duplicates"] == 15 * 10
    assert r["replay"]["demo"]["size"] == demo.length
    assert (out / "plots.png").exists() and (out / "checkpoints" / "policy-000001.pt").exists()


def test_learn_command_bad_input_named(tmp_path, capsys):
    assert learn.run(_args(task="nope", out=tmp_path)) == 2
    assert "--task must be one of" in capsys.readouterr().err
    assert learn.run(_args(task="push", demos=tmp_path / "missing", out=tmp_path)) == 2
    assert "is not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert learn.run(_args(task="push", demos=tmp_path / "empty", out=tmp_path / "o")) == 2
    assert "no readable 'push' episodes" in capsys.readouterr().err


@pytest.mark.slow
def test_learn_command_with_the_oracle_logs_every_decision(tmp_path):
    """`worldsample learn --synthetic oracle`: branches rolled in the simulator from exact real states go
    through PPL like the world model's, and every decision lands in ppl_decisions.csv."""
    import csv

    out = tmp_path / "run"
    args = _args(task="push", mode="naive", synthetic="oracle", expert_demos=1, out=out, env_steps=200,
                 eval_every=200, eval_episodes=1, hidden=32, critics=2, batch_size=16, utd=1,
                 synthetic_every=50, synthetic_branches=4)
    assert learn.run(args) == 0
    r = json.loads((out / "results.json").read_text())
    # a real episode is 80 steps: requests at 100, 150, 200 (naive horizon 10, so up to 40 per request)
    assert r["synthetic_calls"] == 3
    rows = list(csv.DictReader((out / "ppl_decisions.csv").open()))
    assert len(rows) == r["ppl_status"]["admitted"] + r["ppl_status"]["rejected"] > 0
    assert {row["bag"] for row in rows} == {"generate-0", "generate-1", "generate-2"}
    assert all(float(row["uncertainty"]) == 0.0 for row in rows)  # the oracle is exact
    assert sum(int(row["admitted"]) for row in rows) == r["ppl_status"]["admitted"] > 0
    assert r["replay"]["synthetic"]["size"] == r["ppl_status"]["admitted"]
    # where the time went: generation and admission split out of "other" (the oracle has no training)
    assert r["time_s"]["generate"] > 0 and r["time_s"]["admit"] > 0 and r["time_s"]["world_model"] >= 0
    assert learn.run(_args(task="push", synthetic="nowhere", out=tmp_path / "o2")) == 2  # neither oracle nor a dir
