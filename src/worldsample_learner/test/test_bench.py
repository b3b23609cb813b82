"""`worldsample bench learner` trains ours and stable-baselines3's SAC on the same task and prints both."""

from __future__ import annotations

import argparse

import pytest

from worldsample_learner import bench


@pytest.mark.slow
def test_bench_learner_prints_ours_and_the_peer_side_by_side(capsys, tmp_path):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--task", "push", "--steps", "40", "--eval-every", "20", "--eval-episodes", "1",
                              "--demos", "1", "--scaling-calls", "1", "--out", str(tmp_path)])
    assert bench.run(args) == 0
    out = capsys.readouterr().out
    assert "worldsample" in out and "sb3 SAC" in out
    rows = [line.split() for line in out.splitlines() if line.strip().split(" ")[0] in ("20", "40")]
    assert [r[0] for r in rows] == ["20", "40"] and all(len(r) == 3 for r in rows)  # step, ours, peer
    assert "where the time goes" in out and "env_step" in out and "update" in out
    assert out.count("critics:") == len(bench.SCALING)
    assert (tmp_path / "sb3" / "sb3_sac.zip").exists() and (tmp_path / "ours" / "eval.csv").exists()


@pytest.mark.slow
def test_bench_learner_pixels_prints_ours_pixels_and_state_beside_sb3s_cnn_policy(capsys, tmp_path):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--obs", "pixels", "--task", "push", "--steps", "8", "--eval-every", "4",
                              "--eval-episodes", "1", "--demos", "1", "--pretrain-steps", "3", "--scaling-calls", "1",
                              "--out", str(tmp_path)])
    assert bench.run(args) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip().split(" ")[0] in ("4", "8")]
    assert [r[0] for r in rows] == ["4", "8"] and all(len(r) == 4 for r in rows)  # step, pixels, state, sb3
    for name in ("ours pixels:", "ours state:", "sb3 pixels:"):
        assert name in out
    assert "encoder_pretrain" in out and "ours pixels / ours state" in out and "ours pixels / sb3 pixels" in out
    assert all(f"{n}:" in out for n in bench.ENCODERS)  # update cost per encoder
    assert (tmp_path / "sb3" / "sb3_sac.zip").exists()
    assert (tmp_path / "ours_pixels" / "results.json").exists() and (tmp_path / "ours_state" / "eval.csv").exists()


def test_bench_learner_rejects_bad_arguments(capsys):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert bench.run(parser.parse_args(["--task", "stack"])) == 2
    assert bench.run(parser.parse_args(["--steps", "0"])) == 2
    assert bench.run(parser.parse_args(["--obs", "pixels", "--pixel-encoder", "resnet"])) == 2
    assert "--task must be one of" in capsys.readouterr().err
