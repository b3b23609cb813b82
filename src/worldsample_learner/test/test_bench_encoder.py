"""`worldsample bench encoder`: the read-out table on a tiny budget, and its parts."""

import argparse
import json

import numpy as np
import pytest

from worldsample_learner import bench_encoder


def test_state_groups_pair_the_x_and_y_of_each_quantity():
    labels = ("block_x", "block_y", "block_z", "target_x", "target_y", "ee_to_block_x", "ee_to_block_y",
              "ee_to_block_z", "peg_bottom_above_rim")
    assert bench_encoder.state_groups(labels) == {"block": [0, 1], "target": [3, 4], "ee_to_block": [5, 6]}


def test_readout_learns_a_function_and_the_mean_baseline_is_the_spread():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (600, 3))
    y = np.c_[x[:, 0] * x[:, 1], np.sin(2 * x[:, 2])]
    mean = bench_encoder.readout_rmse(None, y[:400], None, y[400:])
    assert mean == pytest.approx(float(np.sqrt(((y[400:] - y[:400].mean(0)) ** 2).sum(-1).mean())))
    fitted = bench_encoder.readout_rmse(x[:400], y[:400], x[400:], y[400:], steps=800)
    assert fitted < 0.3 * mean
    noise = bench_encoder.readout_rmse(rng.normal(size=(400, 3)), y[:400], rng.normal(size=(200, 3)), y[400:], steps=800)
    assert noise > 0.8 * mean  # inputs that carry nothing read out no better than the mean


def test_bench_encoder_runs_on_push_and_writes_its_table(tmp_path, capsys):
    out = tmp_path / "enc.json"
    args = argparse.Namespace(task="push", train_episodes=2, readout_episodes=2, heldout_episodes=1, keypoints=4,
                              channels=4, color_blobs=3, pretrain_steps=5, readout_steps=20, seed=0, out=out)
    assert bench_encoder.run(args) == 0
    r = json.loads(out.read_text())
    assert set(r["groups"]) == {"block", "target", "block_to_target", "ee_to_block"}
    assert set(r["rmse_mm"]) == {"mean (no input)", "proprio only", "keypoints only", "color blobs only",
                                 "encoder features", "features + proprio"}
    assert all(np.isfinite(v) and v >= 0 for row in r["rmse_mm"].values() for v in row.values())
    assert r["episodes"] == {"train": 2, "readout": 2, "heldout": 1}
    assert "held-out RMSE" in capsys.readouterr().out
    assert bench_encoder.run(argparse.Namespace(**{**vars(args), "color_blobs": 0})) == 0  # learned keypoints alone
    assert set(json.loads(out.read_text())["rmse_mm"]) == {"mean (no input)", "proprio only", "encoder features",
                                                           "features + proprio"}
    bad = argparse.Namespace(**{**vars(args), "task": "juggle"})
    assert bench_encoder.run(bad) == 2
