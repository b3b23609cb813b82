"""`worldsample bench wm` prints post-training time per loop iteration and generation vs the simulator, in one run."""

from __future__ import annotations

import argparse
import re

from worldsample_worldmodel import bench


def test_bench_wm_prints_posttraining_and_generation_ratio(capsys):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--task", "push", "--image-size", "16", "--episodes", "3", "--sim-steps", "20",
                              "--pretrain-steps", "2", "--posttrain-steps", "3", "--branches", "4", "--horizon", "2",
                              "--device", "cpu", "--threads", "1"])
    assert bench.run(args) == 0
    out = capsys.readouterr().out
    assert "MuJoCo push" in out  # the real simulator is the baseline, not the toy stand-in
    sim = float(re.search(r"simulator real step rate\s+([\d.]+) steps/s", out).group(1))
    gen = float(re.search(r"generation throughput\s+([\d.]+) transitions/s", out).group(1))
    ratio = float(re.search(r"generation / simulator\s+([\d.]+) x", out).group(1))
    assert sim > 0 and gen > 0 and abs(ratio - gen / sim) <= 0.01 * ratio + 0.01
    assert re.search(r"post-training, one loop iteration\s+[\d.]+ s\s+\(3 steps", out)
    full = re.search(r"no branch ending early\s+([\d.]+) transitions/s \((\d+) transitions\)", out)
    assert float(full.group(1)) > 0 and int(full.group(2)) == 4 * 2  # every branch ran the full horizon
    assert "copy-last-frame baseline" in out
