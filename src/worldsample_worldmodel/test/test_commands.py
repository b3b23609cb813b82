"""`worldsample wm train/replay/generate/fidelity` end to end on toy bags (tiny step counts)."""

from __future__ import annotations

import argparse
import json

import torch
from worldsample_control.core.bag_io import read_bag_episodes, write_episode_bag
from worldsample_control.core.episode import Source
from worldsample_worldmodel.commands import wm
from worldsample_worldmodel.core.store import WorldModelStore
from worldsample_worldmodel.core.toy import toy_episode

torch.set_num_threads(1)


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    wm.add_arguments(parser)
    return wm.run(parser.parse_args(list(argv)))


def test_wm_commands_end_to_end(tmp_path, capsys):
    for i in range(3):
        write_episode_bag(toy_episode(i, steps=10), tmp_path / "demos" / f"d{i}")
        write_episode_bag(toy_episode(10 + i, steps=10, source=Source.REAL, policy="random"), tmp_path / "real" / f"r{i}")
        write_episode_bag(toy_episode(20 + i, steps=10, source=Source.REAL), tmp_path / "held" / f"h{i}")
    (tmp_path / "real" / "corrupt").mkdir()
    (tmp_path / "real" / "corrupt" / "metadata.yaml").write_text("{{{")
    run = tmp_path / "run"
    common = ["--image-size", "16", "--batch-size", "4", "--threads", "1", "--no-progress", "--device", "cpu"]
    assert cli("train", "--demos", str(tmp_path / "demos"), "--out", str(run), "--steps", "3", *common) == 0
    assert cli("replay", str(tmp_path / "real"), "--model", str(run), "--steps", "2", "--no-progress",
               "--device", "cpu") == 0
    err = capsys.readouterr().err
    assert "corrupt" in err  # the bad bag is named
    store = WorldModelStore(run)
    assert store.versions() == ["wm-000001", "wm-000002"]
    man = store.manifest("wm-000002")
    assert man["parent"] == "wm-000001" and man["steps"] == 2
    assert {e["source"] for e in man["trained_on"]} == {"DEMO", "REAL"}
    assert (run / "logs" / "wm-000001_loss.png").exists() and (run / "logs" / "wm-000002_metrics.csv").exists()
    assert not (run / "train_state.pt").exists()
    assert cli("generate", "--model", str(run), "--from", str(tmp_path / "real"), "--policy", "random",
               "--out", str(tmp_path / "syn"), "--branches", "5", "--horizon", "3") == 0
    bags = list((tmp_path / "syn").iterdir())
    assert len(bags) == 1
    eps = read_bag_episodes(bags[0])
    assert len(eps) == 5 and all(e.source == Source.SYNTHETIC and e.world_model_version == "wm-000002" for e in eps)
    assert cli("fidelity", "--model", str(run), "--vs", f"{run}:wm-000001", "--on", str(tmp_path / "held"),
               "--horizons", "1,2", "--out", str(tmp_path / "fid")) == 0
    out = capsys.readouterr().out
    assert "PSNR" in out and "gain of" in out
    res = json.loads((tmp_path / "fid" / "fidelity.json").read_text())
    assert {r["version"] for r in res.values()} == {"wm-000001", "wm-000002"}
    assert len(list((tmp_path / "fid").glob("strip_*.png"))) == 2
    # demo-only continuation baseline: same parent, demos only, its own run
    assert cli("train", "--demos", str(tmp_path / "demos"), "--out", str(tmp_path / "demo_only"), "--init",
               f"{run}:wm-000001", "--steps", "2", "--no-progress", "--device", "cpu") == 0
    base = WorldModelStore(tmp_path / "demo_only")
    assert base.versions() == ["wm-000001"] and base.manifest("wm-000001")["mode"] == "posttrain-demos"
    assert "wm-000001" in base.manifest("wm-000001")["parent"]
    assert {e["source"] for e in base.manifest("wm-000001")["trained_on"]} == {"DEMO"}
    # bad input: clear errors, exit code 2, no new version
    assert cli("replay", str(tmp_path / "nope"), "--model", str(run)) == 2
    assert cli("fidelity", "--model", str(run), "--on", str(tmp_path / "held"), "--horizons", "0") == 2
    assert cli("generate", "--model", str(tmp_path / "norun"), "--from", str(tmp_path / "real"),
               "--out", str(tmp_path / "syn2")) == 2
    assert "does not exist" in capsys.readouterr().err
    assert store.versions() == ["wm-000001", "wm-000002"]
