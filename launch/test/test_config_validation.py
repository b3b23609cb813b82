"""Bad configuration is refused before anything is written (issue 11, item 4).

Parameter files are laid over launch/config/loop.yaml key by key and checked against the learning
nodes' config trees (the dataclasses the nodes declare their parameters from): unknown keys, wrong
types, NaN/inf and out-of-range values are refused with the node's and the key's name. An ``--out``
that is a file or cannot be written gives one line in every command that writes a run directory.
Run summaries are strict JSON.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
from worldsample_bringup.graph import config_path, load_node_params, loop_graph


def _params(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _strict_json(text: str):
    def refuse(token):
        raise AssertionError(f"not JSON: bare {token}")

    return json.loads(text, parse_constant=refuse)


BAD = [  # (yaml body, message fragments that must appear)
    ("learner:\n  ros__parameters:\n    batch_size: -64\n", ["learner", "'batch_size'", "-64"]),
    ("learner:\n  ros__parameters:\n    bach_size: 8\n", ["learner", "unknown parameter 'bach_size'", "'batch_size'"]),
    ("learner:\n  ros__parameters:\n    ppl:\n      threshold_max: .nan\n", ["learner", "'ppl.threshold_max'", "finite"]),
    ("learner:\n  ros__parameters:\n    ppl:\n      threshold_max: 1.5\n", ["'ppl.threshold_max'", "[0, 1]"]),
    ("learner:\n  ros__parameters:\n    ppl:\n      horizon_min: 40\n", ["'ppl.horizon_min'", "horizon_max"]),
    ("learner:\n  ros__parameters:\n    ppl:\n      mode: naive\n", ["unknown parameter 'ppl.mode'", "'mode'"]),
    ("learner:\n  ros__parameters:\n    min_transitions: '200'\n", ["'min_transitions'", "integer"]),
    ("learner:\n  ros__parameters:\n    checkpoint_every_updates: 0\n", ["'checkpoint_every_updates'", ">= 1"]),
    ("world_model:\n  ros__parameters:\n    generate_period_s: .inf\n", ["world_model", "'generate_period_s'", "finite"]),
    ("world_model:\n  ros__parameters:\n    model:\n      lr: -1.0\n", ["world_model", "'model.lr'"]),
    ("world_model:\n  ros__parameters:\n    model:\n      no_such: 1\n", ["world_model", "unknown parameter 'model.no_such'"]),
    ("world_model:\n  ros__parameters:\n    min_new_episodes: 0\n", ["'min_new_episodes'", ">= 1"]),
    ("actr:\n  ros__parameters:\n    episodes: 3\n", ["unknown node(s) ['actr']"]),
    ("learner: [\n", ["not valid YAML", "line 2"]),
]


@pytest.mark.parametrize("body,fragments", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_parameter_files_are_refused_by_node_and_key(tmp_path, body, fragments):
    path = _params(tmp_path, body)
    with pytest.raises(ValueError) as err:
        loop_graph("sim", task="push", run_dir=str(tmp_path / "run"), params_file=str(path))
    text = str(err.value)
    for frag in fragments:
        assert frag in text, text
    assert "\n" not in text


def test_parameter_file_overrides_loop_yaml_key_by_key(tmp_path):
    base = load_node_params(config_path("loop.yaml"))
    path = _params(tmp_path, "learner:\n  ros__parameters:\n    batch_size: 8\n    ppl:\n      threshold_max: 1\n"
                             "world_model:\n  ros__parameters:\n    model:\n      batch_size: 2\n")
    specs = {s.name: s.parameters for s in loop_graph("sim", task="push", run_dir=str(tmp_path / "run"), mode="ppl",
                                                       params_file=str(path))}  # ppl: rl-only turns generation off
    learner, wm = specs["learner"], specs["world_model"]
    assert learner["batch_size"] == 8 and learner["ppl.threshold_max"] == 1.0
    assert isinstance(learner["ppl.threshold_max"], float)  # an int where a float is declared is widened
    assert wm["model.batch_size"] == 2
    # every other key keeps loop.yaml's value
    for node, got in (("learner", learner), ("world_model", wm)):
        for key, value in base[node].items():
            if key not in ("batch_size", "ppl.threshold_max", "model.batch_size"):  # the ones the file set
                assert got[key] == value, (node, key)
    assert base["learner"]["batch_size"] != 8 and base["world_model"]["model.batch_size"] != 2


def test_every_ppl_parameter_is_a_learner_parameter_with_a_description():
    from dataclasses import fields

    from worldsample_common.core.params import config_params
    from worldsample_learner.core.config import LearnerNodeConfig, PPLConfig

    specs = config_params(LearnerNodeConfig())
    for f in fields(PPLConfig):
        if f.name != "mode":  # the learner's `mode`
            assert f"ppl.{f.name}" in specs, f.name
    assert "admission threshold at pace 0" in specs["ppl.threshold_max"].description
    cfg = LearnerNodeConfig()
    assert cfg.ppl_config().mode == cfg.mode


def _loop_args(out: Path, **kw) -> argparse.Namespace:
    from worldsample_bringup.loop import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = ["--out", str(out)]
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
    return parser.parse_args(argv)


def test_loop_writes_nothing_before_its_configuration_is_valid(tmp_path, capsys):
    from worldsample_bringup.loop import LOOP_STATE, run

    bad = _params(tmp_path, "learner:\n  ros__parameters:\n    batch_size: -64\n")
    out = tmp_path / "run"
    assert run(_loop_args(out, task="push", params=bad)) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("worldsample loop: learner: parameter 'batch_size': AgentConfig.batch_size must be an "
                           "int >= 1, got -64"), err
    assert not out.exists()  # nothing written: the same --out is still free for a fresh run

    # --resume of a run whose parameter file went bad: refused the same way, the saved state untouched
    good = _params(tmp_path, "learner:\n  ros__parameters:\n    batch_size: 8\n", "good.yaml")
    out.mkdir()
    settings = {"task": "push", "mode": "ppl", "seed": 0, "max_steps": 0, "image_size": 64, "cameras": "front,wrist",
                "params": str(good), "device": "auto", "demos": 0, "policy": "random", "episodes_per_policy": 0,
                "episodes": 3}
    (out / LOOP_STATE).write_text(json.dumps(settings))
    before = (out / LOOP_STATE).read_bytes()
    good.write_text("learner:\n  ros__parameters:\n    ppl:\n      threshold_min: .nan\n")
    assert run(_loop_args(out, resume=True)) == 2
    err = capsys.readouterr().err
    assert "'ppl.threshold_min'" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in out.iterdir()) == [LOOP_STATE] and (out / LOOP_STATE).read_bytes() == before


def _unwritable(tmp_path: Path) -> list[Path]:
    """--out values that cannot be a run directory: a file, a path under a file, a read-only place."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    outs = [afile, afile / "sub"]
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        outs.append(ro / "run")
    elif Path("/sys").is_dir():  # root writes anywhere on a normal file system, not into sysfs
        outs.append(Path("/sys/worldsample-test-run"))
    return outs


@pytest.mark.parametrize("command", ["loop", "sim", "learn", "wm-train"])
def test_unwritable_out_gives_one_line(tmp_path, capsys, command):
    from worldsample_bringup.cli import main

    demos = tmp_path / "demos"
    demos.mkdir()
    for out in _unwritable(tmp_path):
        argv = {"loop": ["loop", "--task", "push", "--out", str(out)],
                "sim": ["sim", "--task", "push", "--out", str(out)],
                "learn": ["learn", "--task", "push", "--env-steps", "10", "--out", str(out)],
                "wm-train": ["wm", "train", "--demos", str(demos), "--out", str(out)]}[command]
        assert main(argv) == 2, out
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--out" in err and str(out.name) in err, err
        assert "Traceback" not in err


def test_summary_is_strict_json_and_a_failed_world_model_says_so(tmp_path, capsys):
    import rclpy
    from worldsample_bringup.monitor import LoopMonitor
    from worldsample_common.core.files import json_dumps

    from worldsample_msgs.msg import WorldModelStatus

    assert _strict_json(json_dumps({"a": float("nan"), "b": [float("inf"), 1.5]})) == {"a": None, "b": [None, 1.5]}
    rclpy.init()
    try:
        monitor = LoopMonitor(tmp_path, total=3)
        try:
            summary = monitor.summary(0)  # no episode yet: success rate, PSNR ... are NaN inside
            assert _strict_json(json_dumps(summary))["success_rate_recent"] is None
            monitor._on_wm(WorldModelStatus(state=WorldModelStatus.STATE_TRAINING, message="training"))
            monitor._on_wm(WorldModelStatus(state=WorldModelStatus.STATE_ERROR,
                                            message="training failed: RuntimeError: out of memory"))
            out = capsys.readouterr().out
            assert "world model FAILED: training failed: RuntimeError: out of memory" in out, out
            assert "idle" not in out
            assert monitor.summary(0)["wm_error"] == "training failed: RuntimeError: out of memory"
            monitor.close()
        finally:
            monitor.destroy_node()
    finally:
        rclpy.try_shutdown()
