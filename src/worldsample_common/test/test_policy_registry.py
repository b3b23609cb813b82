"""Policy checkpoints load by suffix through one registry; a package registers its own loader."""

from __future__ import annotations

import pytest
from worldsample_common.core import policy_registry
from worldsample_common.core.policy_registry import load_checkpoint, register_checkpoint_loader


def test_a_registered_loader_loads_its_files(tmp_path, monkeypatch):
    monkeypatch.setattr(policy_registry, "CHECKPOINT_LOADERS", dict(policy_registry.CHECKPOINT_LOADERS))
    register_checkpoint_loader(".toy", lambda path, **kw: ("toy", path.name, kw))
    (tmp_path / "p.toy").write_text("x")
    assert load_checkpoint(tmp_path / "p.toy", device="cpu") == ("toy", "p.toy", {"device": "cpu"})


def test_bad_checkpoints_are_named(tmp_path, monkeypatch):
    monkeypatch.setattr(policy_registry, "CHECKPOINT_LOADERS", dict(policy_registry.CHECKPOINT_LOADERS))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "p.onnx").write_text("x")
    with pytest.raises(ValueError, match="no loader for '.onnx'"):
        load_checkpoint(tmp_path / "p.onnx")
    register_checkpoint_loader(".bad", "no_such_module:load")
    (tmp_path / "p.bad").write_text("x")
    with pytest.raises(RuntimeError, match="not importable"):
        load_checkpoint(tmp_path / "p.bad")
    with pytest.raises(ValueError, match="must start with"):
        register_checkpoint_loader("pt", "x:y")


def test_the_learner_checkpoints_are_registered():
    assert policy_registry.CHECKPOINT_LOADERS[".pt"] == "worldsample_learner.core.policy:load_policy"
