"""The experiment driver's analysis: curves, the paper's two figures, comparisons at one budget."""

from __future__ import annotations

import pytest
from worldsample_learner.drivers.experiment_report import (
    at_budget,
    mean_curve,
    policy_table,
    smoothed,
    steps_to_reach,
    summarize_policy,
    synthetic_table,
)


def test_policy_summary_success_difference_and_steps_fraction():
    def run(mode, seed, curve):
        return {"task": "push", "mode": mode, "seed": seed, "success_curve": curve, "final_success_rate": curve[-1][1],
                "env_steps": curve[-1][0]}

    results = [run("rl-only", 0, [(100, 0.0), (200, 0.2), (300, 0.4)]),
               run("rl-only", 1, [(100, 0.0), (200, 0.4), (300, 0.4)]),
               run("ppl", 0, [(100, 0.4), (200, 0.6), (300, 0.8)]),
               run("ppl", 1, [(100, 0.2), (200, 0.6), (300, 0.6)])]
    assert mean_curve([r["success_curve"] for r in results[:2]]) == [(100, 0.0), (200, pytest.approx(0.3)),
                                                                     (300, pytest.approx(0.4))]
    assert steps_to_reach([(100, 0.0), (200, 0.5)], 0.5) == 200 and steps_to_reach([(100, 0.1)], 0.5) is None
    s = summarize_policy(results)["push"]
    assert s["rl-only"]["final"] == pytest.approx(0.4) and s["ppl"]["final"] == pytest.approx(0.7)
    assert s["ppl"]["delta_vs_baseline"] == pytest.approx(0.3)
    assert s["rl-only"]["steps_to_baseline_final"] == 300 and s["ppl"]["steps_to_baseline_final"] == 200
    assert s["ppl"]["fraction_of_baseline_steps"] == pytest.approx(2 / 3)
    # smoothed over 3 evaluations: rl-only 0.15, 0.23, 0.35 (its smoothed final); ppl 0.45, 0.53, 0.65
    assert [v for _, v in smoothed(s["rl-only"]["curve"])] == pytest.approx([0.15, 0.7 / 3, 0.35])
    assert s["ppl"]["fraction_of_baseline_steps_smoothed"] == pytest.approx(100 / 300)
    assert s["rl-only"]["fraction_of_baseline_steps_smoothed"] == pytest.approx(1.0)
    table = policy_table(summarize_policy(results))
    assert "| push | ppl | 0.70 |" in table and "| 0.67 | 0.33 |" in table
    assert s["ppl"]["final_return"] != s["ppl"]["final_return"]  # no return curves given: NaN, not invented
    assert s["rl-only"]["synthetic"] is None  # no synthetic data, no row
    # another RL-only variant as the baseline (RL-only at the synthetic modes' UTD): every ratio is against it
    results += [run("rl-only-utd4", 0, [(100, 0.2), (200, 0.8), (300, 0.8)]),
                run("rl-only-utd4", 1, [(100, 0.0), (200, 0.4), (300, 0.6)])]
    u = summarize_policy(results, "rl-only-utd4")["push"]
    assert u["ppl"]["delta_vs_baseline"] == pytest.approx(0.0) and u["ppl"]["steps_to_baseline_final"] == 300
    assert u["ppl"]["fraction_of_baseline_steps"] == pytest.approx(1.0) and u["rl-only"]["steps_to_baseline_final"] is None
    table = policy_table(summarize_policy(results, "rl-only-utd4"), "rl-only-utd4")
    assert "vs rl-only-utd4 | steps to rl-only-utd4's final" in table and "| push | rl-only | 0.40 |" in table


def test_synthetic_table_reports_admission_and_value_inflation():
    def run(seed, adm, rej, qs):
        return {"task": "peg", "mode": "naive", "seed": seed, "success_curve": [(10, 0.0)], "final_success_rate": 0.0,
                "env_steps": 10, "ppl_status": {"admitted": adm, "rejected": rej, "synthetic_share": 0.5,
                                                "q_real": 1.0, "q_synthetic": qs}}

    s = summarize_policy([run(0, 30, 10, 1.5), run(1, 10, 30, 1.1)])
    x = s["peg"]["naive"]["synthetic"]
    assert x["admitted"] == 20 and x["admission_rate"] == pytest.approx(0.5) and x["q_gap"] == pytest.approx(0.3)
    assert "| peg | naive | 20 of 40 (50 %) | 0.50 | +0.300 |" in synthetic_table(s)


def test_a_longer_run_is_compared_at_the_budget():
    """RL-only runs of 20k steps reused in a comparison at 10k: cut to the evaluations up to 10k."""
    res = {"task": "push", "mode": "rl-only", "seed": 0, "env_steps": 20_000, "final_success_rate": 1.0,
           "success_curve": [(5_000, 0.2), (10_000, 0.5), (15_000, 0.8), (20_000, 1.0)],
           "return_curve": [(5_000, -50.0), (10_000, -30.0), (15_000, -20.0), (20_000, -10.0)]}
    cut = at_budget(res, 10_000)
    assert cut["final_success_rate"] == 0.5 and cut["env_steps"] == 10_000 and cut["cut_from_env_steps"] == 20_000
    assert cut["success_curve"] == [(5_000, 0.2), (10_000, 0.5)] and cut["return_curve"][-1] == (10_000, -30.0)
    assert res["final_success_rate"] == 1.0  # the run's own record is not changed
    assert at_budget(res, 20_000) is res and at_budget(res, 30_000) is res
    with pytest.raises(ValueError, match="no evaluation"):
        at_budget(res, 1_000)


def test_run_variants_name_mode_source_and_updates():
    from worldsample_learner.drivers.experiment_config import parse_variant, uses_video_model

    assert parse_variant("ppl") == ("ppl", "video", None)
    assert parse_variant("oracle-naive") == ("naive", "oracle", None)
    assert parse_variant("rl-only-utd4") == ("rl-only", "video", 4)
    assert parse_variant("oracle-selection-utd8") == ("selection", "oracle", 8)
    assert uses_video_model("ppl") and not uses_video_model("oracle-ppl") and not uses_video_model("rl-only-utd4")
    for bad, why in (("oracle-rl-only", "uses no synthetic data"), ("ppl-utd0", "int N >= 1"),
                     ("ppl-utdx", "int N >= 1"), ("mbpo", "unknown")):
        with pytest.raises(ValueError, match=why):
            parse_variant(bad)


def test_any_config_field_can_be_set_from_the_command_line():
    import argparse
    from dataclasses import replace

    from worldsample_learner.drivers.experiment_config import (
        add_arguments,
        command_line,
        config_from_args,
        parse_variant,
    )

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["policy", "--config", "rl", "--out", "x", "--set", "wm_judge=false",
                              "--set", "synthetic_branches=64", "--set", "cameras=front,wrist",
                              "--set", "ppl.naive_horizon=3", "--set", "ppl.horizon_max=5", "--set", "oracle_object_noise=0.006",
                              "--set", "wm_mlp.probabilistic=true", "--set", "wm_source.uncertainty_over=branch_mean",
                              "--set", "wm_mlp_translation_free=true"])
    cfg = config_from_args(args)
    assert cfg.wm_mlp_translation_free is True
    assert cfg.wm_judge is False and cfg.synthetic_branches == 64 and cfg.cameras == ("front", "wrist")
    assert cfg.ppl == {"naive_horizon": 3, "horizon_max": 5} and cfg.oracle_object_noise == 0.006
    assert cfg.wm_mlp == {"probabilistic": True} and cfg.wm_source == {"uncertainty_over": "branch_mean"}
    assert cfg.env_steps == 20_000  # the rest is the config's
    assert "--set wm_judge=false" in command_line(args)
    # the "mbpo" preset is the fifth sitting's runs: 64 branches every 100 steps, UTD 4 named in every variant
    mb = config_from_args(parser.parse_args(["policy", "--config", "mbpo", "--out", "x"]))
    assert (mb.synthetic_branches, mb.synthetic_every, mb.utd_ratio, mb.wm_state_model) == (64, 100, 4, "mlp")
    assert all(parse_variant(m)[2] == 4 for m in mb.modes)
    # the "ppl20k" preset is exactly the command line of the runs that met push's target (docs/results.md,
    # "Translation-free inputs"), and a --set on a preset's dict field adds to it
    recipe = ["--config", "rl", "--tasks", "push", "--modes", "rl-only,rl-only-utd4,ppl-utd4", "--env-steps", "20000",
              "--eval-every", "1000", "--jobs", "1", "--set", "wm_state_model=mlp", "--set", "synthetic_every=100",
              "--set", "synthetic_branches=64", "--set", "wm_mlp.weight_decay=0.001",
              "--set", "wm_mlp_translation_free=true"]
    by_flags = config_from_args(parser.parse_args(["policy", *recipe, "--out", "x"]))
    preset = config_from_args(parser.parse_args(["policy", "--config", "ppl20k", "--out", "x"]))
    assert replace(preset, name="rl") == by_flags
    assert config_from_args(parser.parse_args(["policy", "--config", "ppl20k", "--out", "x", "--set",
                                               "wm_mlp.probabilistic=true"])).wm_mlp == \
        {"weight_decay": 1e-3, "probabilistic": True}
    for bad, why in (("nope=1", "FIELD=VALUE"), ("wm_judge=maybe", "takes a bool"),
                     ("synthetic_branches=lots", "takes a int"), ("wm_judge", "FIELD=VALUE"),
                     ("ppl.nope=1", "FIELD=VALUE"), ("ppl.mode=naive", "FIELD=VALUE"), ("ppl=1", "FIELD=VALUE"),
                     ("ppl.horizon_max=long", "takes a int"), ("wm_mlp.seed=3", "FIELD=VALUE"),
                     ("wm_mlp.ignore_inputs=7", "FIELD=VALUE"), ("wm_mlp=1", "FIELD=VALUE"), ("wm_mlp.min_logvar=2", "must be below max_logvar"),
                     ("wm_source.uncertainty_over=sum", "uncertainty_over must be one of"),
                     ("wm_source.seed=1", "FIELD=VALUE"), ("wm_source.service=x", "FIELD=VALUE")):
        with pytest.raises(ValueError, match=why):
            config_from_args(parser.parse_args(["policy", "--out", "x", "--set", bad]))
    # wm_source is checked as the runs build it: frames=false needs the MLP state model (its own field) and the judge
    frameless = ["policy", "--out", "x", "--set", "wm_source.frames=false"]
    with pytest.raises(ValueError, match="frames=False needs state_model 'mlp'"):
        config_from_args(parser.parse_args(frameless))
    assert config_from_args(parser.parse_args([*frameless, "--set", "wm_state_model=mlp"])).wm_source == {"frames": False}
    with pytest.raises(ValueError, match="needs wm_judge"):
        config_from_args(parser.parse_args([*frameless, "--set", "wm_state_model=mlp", "--set", "wm_judge=false"]))
    assert config_from_args(parser.parse_args(["policy", "--out", "x", "--set", "baseline=rl-only-utd4"])).baseline == \
        "rl-only-utd4"
    for bad in ("ppl", "oracle-naive-utd4", "rl-only-utdx"):
        with pytest.raises(ValueError, match="RL-only variant|needs an int"):
            config_from_args(parser.parse_args(["policy", "--out", "x", "--set", f"baseline={bad}"]))


@pytest.mark.slow
def test_a_policy_experiment_without_frames_uses_the_state_model_alone(tmp_path):
    """``wm_source.frames=false``: no video model is pre-trained or copied, the PPL run's branches come from the MLP
    ensemble (its versions ``mlp-NNN``) and PPL admits them."""
    import csv
    import json

    from worldsample_learner.drivers.experiment import ExperimentConfig, run_policy

    cfg = ExperimentConfig(tasks=("push",), modes=("ppl",), seeds=(0,), env_steps=120, eval_every=120,
                           eval_episodes=1, demos=2, max_steps=20, batch_size=16, hidden_dim=32, synthetic_every=20,
                           synthetic_branches=8, jobs=1, wm_state_model="mlp", wm_source={"frames": False},
                           wm_mlp={"steps": 30, "eval_every": 10})
    assert run_policy(cfg, tmp_path, "frameless") == 0
    run = tmp_path / "policy" / "push" / "ppl_s0"
    res = json.loads((run / "results.json").read_text())
    assert not (tmp_path / "policy" / "push" / "wm_pretrained").exists() and not (run / "world_model").exists()
    assert res["synthetic_calls"] >= 1 and res["world_model"]["version"].startswith("mlp-")
    assert res["world_model"]["state_model_trainings"]
    with (run / "ppl_decisions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows and sum(int(float(r["admitted"])) for r in rows) > 0


@pytest.mark.slow
def test_an_interrupted_policy_experiment_resumes(tmp_path, capsys):
    """`experiment policy` again on the same directory: finished runs are kept and skipped, a run cut off
    before its results.json is redone, and new variants (here the oracle's) join the same table. A run that
    fails is named when it fails, and the others go on."""
    import json
    from dataclasses import replace

    from worldsample_learner.drivers.experiment import ExperimentConfig, run_policy

    cfg = ExperimentConfig(tasks=("push",), modes=("rl-only",), seeds=(0,), env_steps=60, eval_every=60,
                           eval_episodes=1, demos=1, max_steps=20, batch_size=16, hidden_dim=32,
                           synthetic_every=20, synthetic_branches=2, jobs=1)
    assert run_policy(cfg, tmp_path, "first sitting") == 0
    runs = tmp_path / "policy" / "push"
    kept = runs / "rl-only_s0" / "results.json"
    record = json.loads(kept.read_text())
    record["marker"] = "finished in the first sitting"
    kept.write_text(json.dumps(record))
    cut = runs / "oracle-naive_s0"  # as if the sitting had ended during this run
    cut.mkdir()
    (cut / "metrics.csv").write_text("env_steps\n20\n")
    # --report between sittings: the finished runs' table, the unfinished one listed, nothing run
    assert run_policy(replace(cfg, modes=("rl-only", "oracle-naive")), tmp_path, "report", report_only=True) == 0
    assert not (cut / "results.json").exists()
    assert "left out (`--report` of an experiment in progress): push oracle-naive seed 0" in \
        (tmp_path / "results.md").read_text()
    # the same experiment run as several commands (e.g. one per seed): --report-from takes the finished runs there
    other = tmp_path / "other"
    assert run_policy(cfg, other, "report", report_only=True) == 1  # nothing finished under it
    assert run_policy(replace(cfg, modes=("rl-only", "oracle-naive")), other, "report", report_only=True,
                      report_from=(tmp_path,)) == 0
    assert set(json.loads((other / "policy" / "results.json").read_text())["summary"]["push"]) == {"rl-only"}
    assert "left out (`--report` of an experiment in progress): push oracle-naive seed 0" in \
        (other / "results.md").read_text()
    # a run that fails (here its snapshot is damaged) is named at once, the others go on, and the command fails
    (cut / "snapshot.pt").write_bytes(b"not a snapshot")
    assert run_policy(replace(cfg, modes=("oracle-naive", "rl-only-utd4")), tmp_path, "damaged") == 1
    err = capsys.readouterr().err
    assert "1/2 push oracle-naive seed 0: FAILED (ValueError: cannot read the run snapshot" in err
    assert "1 of 2 runs failed: push oracle-naive seed 0" in err
    assert (runs / "rl-only-utd4_s0" / "results.json").exists()  # the other run went on and finished
    (cut / "snapshot.pt").unlink()
    assert run_policy(replace(cfg, modes=("rl-only", "oracle-naive")), tmp_path, "second sitting") == 0
    assert json.loads(kept.read_text())["marker"] == "finished in the first sitting"  # skipped, not redone
    oracle = json.loads((cut / "results.json").read_text())
    assert oracle["mode"] == "oracle-naive" and oracle["synthetic"] == "oracle" and oracle["synthetic_calls"] >= 1
    assert oracle["env_steps"] == 60 and (cut / "metrics.csv").read_text() != "env_steps\n20\n"
    summary = json.loads((tmp_path / "policy" / "results.json").read_text())["summary"]["push"]
    assert set(summary) == {"rl-only", "oracle-naive"}
    assert "oracle-naive" in (tmp_path / "results.md").read_text()


@pytest.mark.slow
def test_a_video_run_killed_part_way_goes_on_from_its_snapshot_as_if_never_stopped(tmp_path):
    """A PPL run on the video world model (MLP state, the audit's simulator replay relabelling every branch: oracle
    labels) killed with SIGKILL in the middle of a run: started again, it goes on from its last snapshot and ends
    with the same curves, PPL decisions, audit rows, world-model versions and policy weights as a run that was never
    stopped. A second process on a run that is being written is refused."""
    import csv
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    from dataclasses import asdict

    import torch
    from worldsample_learner.drivers.experiment import ExperimentConfig, _lock_run, run_policy

    cfg = ExperimentConfig(tasks=("push",), modes=("ppl",), seeds=(0,), env_steps=120, eval_every=40, eval_episodes=1,
                           demos=2, max_steps=20, batch_size=16, hidden_dim=32, synthetic_every=20,
                           synthetic_branches=4, jobs=1, wm_state_model="mlp", wm_mlp={"steps": 30, "eval_every": 10},
                           wm_mlp_translation_free=True, wm_pretrain_steps=2, wm_posttrain_steps=2,
                           wm_min_new_episodes=2, wm_batch_size=2, wm_rollout_steps=2, oracle_labels=True,
                           snapshot_every=40)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert run_policy(cfg, whole, "whole") == 0
    script = ("import sys; from worldsample_learner.drivers.experiment import ExperimentConfig, run_policy; "
              f"run_policy(ExperimentConfig(**{asdict(cfg)!r}), __import__('pathlib').Path(sys.argv[1]), 'cut')")
    proc = subprocess.Popen([sys.executable, "-c", script, str(cut)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = cut / "policy" / "push" / "ppl_s0"
    deadline = time.time() + 600
    while not ((run / "snapshot.pt").exists() and (run / "eval.csv").exists()
               and len((run / "eval.csv").read_text().splitlines()) >= 3):
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be killed part-way"
        time.sleep(0.1)
    with pytest.raises(RuntimeError, match="being written by another process"):
        _lock_run(run)
    os.killpg(proc.pid, signal.SIGKILL)  # the parent and its worker, as a sitting's end stops them
    proc.wait()
    assert not (run / "results.json").exists()
    assert run_policy(cfg, cut, "resumed") == 0

    def rows(path):
        with open(path) as f:
            return [{k: v for k, v in r.items() if k not in ("wall_s", "scored_at", "episode_id")}
                    for r in csv.DictReader(f)]

    ref = whole / "policy" / "push" / "ppl_s0"
    for name in ("eval.csv", "metrics.csv", "ppl.csv", "ppl_decisions.csv", "synthetic_audit.csv"):
        assert rows(run / name) == rows(ref / name), name
    a, b = (json.loads((d / "results.json").read_text()) for d in (ref, run))
    assert a["success_curve"] == b["success_curve"] and a["world_model"]["version"] == b["world_model"]["version"]
    audits = [{k: (v["steps"], v["success_real"]) if isinstance(v, dict) else v for k, v in r["synthetic_audit"].items()}
              for r in (a, b)]
    assert audits[0] == audits[1] and audits[0]["relabelled"] and audits[0]["k=1"][0] > 0
    assert len(a["world_model"]["state_model_trainings"]) == len(b["world_model"]["state_model_trainings"])
    assert sorted(p.name for p in (run / "world_model" / "versions").iterdir()) == \
        sorted(p.name for p in (ref / "world_model" / "versions").iterdir())
    wa, wb = (torch.load(r["checkpoint"], weights_only=False)["actor"] for r in (a, b))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not (run / "snapshot.pt").exists()


@pytest.mark.slow
def test_modelerror_scores_every_predictor_and_resumes_per_task(tmp_path):
    """`experiment modelerror` at a toy size: the held-out table has copy-state, both MLP ensembles and the video
    models at every horizon; copy-state has no predicted motion and no uncertainty, the MLP ensembles an
    uncertainty rank; a second call keeps the finished task instead of recomputing it."""
    import json

    from worldsample_learner.drivers.experiment import ExperimentConfig
    from worldsample_learner.drivers.model_error import run_model_error

    cfg = ExperimentConfig(tasks=("push",), demos=2, max_steps=40, wm_pretrain_steps=2, wm_posttrain_steps=2,
                           wm_min_new_episodes=2, wm_batch_size=2, wm_rollout_steps=2, heldout_episodes=3,
                           horizons=(1, 4))
    assert run_model_error(cfg, tmp_path, "toy") == 0
    root = tmp_path / "modelerror"
    res = json.loads((root / "results.json").read_text())["tasks"]["push"]
    preds = res["predictors"]
    assert {"copy-state", "MLP ensemble", "MLP ensemble, probabilistic", "video WM, demos only",
            "video WM, post-trained"} <= set(preds), sorted(preds)
    for name, per in preds.items():
        assert set(per) == {"h=1", "h=4"}, name
    copy = preds["copy-state"]["h=1"]
    assert copy["rmse"]["object"] > 0 and not copy["uncertainty_spearman"]  # the held-out objects move
    assert preds["MLP ensemble"]["h=4"]["uncertainty_spearman"]
    assert res["train_episodes"]["demos"] == 2 and res["heldout_episodes"] == 3
    table = (root / "results.md").read_text()
    assert "| push | 4 | MLP ensemble, probabilistic |" in table
    # resumed: the finished task is kept (a marker written into its record survives)
    per_task = json.loads((root / "per_task.json").read_text())
    per_task["push"]["marker"] = "kept"
    (root / "per_task.json").write_text(json.dumps(per_task))
    assert run_model_error(cfg, tmp_path, "again") == 0
    assert json.loads((root / "results.json").read_text())["tasks"]["push"]["marker"] == "kept"
