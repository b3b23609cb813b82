"""`worldsample wm train/replay/generate/fidelity` end to end on toy bags (tiny step counts)."""

from __future__ import annotations

import argparse
import json

import torch
from worldsample_common.core.bag_io import read_bag_episodes, write_episode_bag
from worldsample_common.core.episode import Source
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
    # on the wire: worldsample_msgs/Transition messages, SYNTHETIC, each with a finite uncertainty and both versions
    from worldsample_common.core.bag_io import TRANSITION_TYPE, read_bag_messages

    msgs = [m for _t, typ, _ns, m in read_bag_messages(bags[0]) if typ == TRANSITION_TYPE]
    assert len(msgs) == sum(e.length for e in eps) and 5 <= len(msgs) <= 15
    for m in msgs:
        assert m.source == int(Source.SYNTHETIC) and m.uncertainty >= 0 and m.uncertainty == m.uncertainty
        assert m.world_model_version == "wm-000002" and m.policy_version == "random"
        assert list(m.camera_names) == ["front", "wrist"] and len(m.observation_images) == 2
        assert all(img.encoding == "rgb8" and (img.height, img.width) == (16, 16) for img in m.next_observation_images)
        assert len(m.action) == 4 and max(abs(x) for x in m.action) <= 1.0
    assert cli("fidelity", "--model", str(run), "--vs", f"{run}:wm-000001", "--on", str(tmp_path / "held"),
               "--horizons", "1,2", "--out", str(tmp_path / "fid")) == 0
    out = capsys.readouterr().out
    assert "PSNR" in out and "gain of" in out
    # copy-last-frame beside every model row, the gain over it, and the uncertainty-error rank correlation
    assert "copy PSNR" in out and "rho(unc,err)" in out and "copy-last-frame" in out
    res = json.loads((tmp_path / "fid" / "fidelity.json").read_text())
    for r in res.values():
        assert len(r["copy"]["psnr"]) == 2 and len(r["gain"]["ssim"]) == 2 and len(r["spearman"]) == 2
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


def _damaged_bags(root):
    """A truncated MCAP, a bag with bgr8 frames, a bag without Transition messages, one of the wrong size."""
    from worldsample_common.core.bag_io import (
        EPISODE_INFO_TYPE,
        TOPIC_EPISODES,
        TOPIC_TRANSITIONS,
        TRANSITION_TYPE,
        EpisodeBagWriter,
        episode_info_msg,
        transition_msgs,
    )

    trunc = write_episode_bag(toy_episode(40, steps=10, source=Source.REAL), root / "truncated")
    mcap = next(trunc.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])
    ep = toy_episode(41, steps=4, source=Source.REAL)
    with EpisodeBagWriter(root / "bgr") as w:
        for ns, msg in transition_msgs(ep):
            msg.observation_images[0].encoding = "bgr8"
            w.write(TOPIC_TRANSITIONS, TRANSITION_TYPE, msg, ns)
    with EpisodeBagWriter(root / "no_transitions") as w:
        w.write(TOPIC_EPISODES, EPISODE_INFO_TYPE, episode_info_msg(ep, 1, 1), 1)
    write_episode_bag(toy_episode(42, steps=6, size=32, source=Source.REAL), root / "wrong_size")


def test_replay_skips_damaged_bags_by_name_and_publishes_nothing_partial(tmp_path, capsys):
    write_episode_bag(toy_episode(0, steps=10), tmp_path / "demos" / "d0")
    write_episode_bag(toy_episode(1, steps=10), tmp_path / "demos" / "d1")
    run = tmp_path / "run"
    assert cli("train", "--demos", str(tmp_path / "demos"), "--out", str(run), "--steps", "2", "--image-size", "16",
               "--batch-size", "4", "--threads", "1", "--no-progress", "--device", "cpu") == 0
    _damaged_bags(tmp_path / "bad")
    capsys.readouterr()
    # only damaged bags: a clear error naming each, exit 2, no new version, no leftovers
    assert cli("replay", str(tmp_path / "bad"), "--model", str(run), "--steps", "2", "--no-progress",
               "--device", "cpu") == 2
    err = capsys.readouterr().err
    assert "truncated" in err and "cannot read bag" in err
    assert "bgr" in err and "encoding 'bgr8', expected 'rgb8'" in err
    assert "no_transitions" in err and "no worldsample_msgs/msg/Transition messages" in err
    assert "none of its 1 REAL episode(s) fits wm-000001" in err and "wrong_size" in err and "32x32" in err
    store = WorldModelStore(run)
    assert store.versions() == ["wm-000001"]
    assert not [p for p in (run / "versions").iterdir() if p.name.startswith(".tmp")]
    # damaged bags next to good ones: the good ones train a new version, each bad one is named
    write_episode_bag(toy_episode(43, steps=10, source=Source.REAL), tmp_path / "bad" / "good")
    assert cli("replay", str(tmp_path / "bad"), "--model", str(run), "--steps", "2", "--no-progress",
               "--device", "cpu") == 0
    err = capsys.readouterr().err
    assert err.count("skipping bag") == 3 and "wrong_size" in err and "32x32" in err
    assert store.versions() == ["wm-000001", "wm-000002"]
    trained = {e["episode_id"] for e in store.manifest("wm-000002")["trained_on"]}
    assert "toy-real-43" in trained and "toy-real-42" not in trained
